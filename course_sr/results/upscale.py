"""Super-resolve images for people to look at: files, folders, the Set5 deliverable, comparison sheets.

Three layers, each calling the one below:

- :func:`upscale_array` one uint8 image (gray, RGB or RGBA) -> its x``scale`` version, by a
  trained SR network (through ``course_sr.results.inference.super_resolve``: whole image when it fits,
  else blended tiles) or by ``"bicubic"`` (the kit's MATLAB-exact ``imresize``);
- :func:`upscale_file` / :func:`upscale_folder` image files in, PNGs with the same stems out
  (the ``python -m course_sr upscale`` command);
- :func:`super_resolve_set` the course's human-evaluation deliverable: for every LR image of a
  set (Set5; files found by ``course_sr.results.evaluate.image_pairs``) and every method, ``<out>/<method>/<name>.png`` at full resolution, plus one
  comparison sheet ``<out>/sheets/<name>.png`` (:func:`comparison_figure`) and, when HR images
  are given, ``<out>/metrics.csv`` with per-image PSNR/SSIM (paper convention, ``course_sr.metrics``).

File rules (documented once, here):

- grayscale files are replicated to RGB for the network (which was trained on colour), and the
  RGB result is written back as grayscale with full-range BT.601 luma
  ``0.299 R + 0.587 G + 0.114 B`` (what Pillow's ``convert("L")`` uses and what
  ``course_sr.metrics`` compares gray against RGB with), so a gray image stays a gray image;
- an alpha channel (RGBA, LA, palette with transparency) is not shown to the network: it is
  upscaled on its own with the kit's bicubic ``imresize`` and re-attached, so the output is RGBA
  (LA for gray); the colour channels are the stored values (no compositing on a background);
- outputs are always PNG (lossless), named after the HR image (:func:`output_name`): the input's
  stem without the ``x<scale>`` suffix that benchmark and DIV2K LR files carry, so
  ``babyx4.png`` becomes ``baby.png``, the name of its HR reference, and ``rating-pack`` or
  ``evaluate``-style pairing by name works on the folder as written.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from course_sr.data.lists import check_scale
from course_sr.imresize import imresize
from course_sr.metrics import psnr_ssim
from course_sr.models import load_generator
from course_sr.plumbing.distributed import resolve_device
from course_sr.plumbing.errors import UserError, user_errors
from course_sr.results.inference import super_resolve_uint8
from course_sr.utils import LUMA_601, list_images, load_image, pil_to_array, with_image

BICUBIC = "bicubic"


# --------------------------------------------------------------------------------------
# One image
# --------------------------------------------------------------------------------------
def read_image(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(pixels, alpha)``: pixels uint8 ``(H, W)`` for gray files else ``(H, W, 3)``; alpha
    uint8 ``(H, W)`` or None. Errors name the file (``load_image``'s rules otherwise)."""
    def pixels_and_alpha(im: Image.Image):
        has_alpha = "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info)
        alpha = np.asarray(im.convert("RGBA"))[:, :, 3].copy() if has_alpha else None
        return pil_to_array(im, keep_gray=True), alpha

    return with_image(path, pixels_and_alpha)


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> uint8 ``(H, W)`` by full-range BT.601 luma, rounded."""
    return np.clip(np.rint(rgb.astype(np.float64) @ LUMA_601), 0, 255).astype(np.uint8)


def method_scale(method: Any, scale: int | None = None) -> int:
    """The upscaling factor of ``method`` (an SR network or ``"bicubic"``), checked against ``scale``."""
    if isinstance(method, str):
        if method != BICUBIC:
            raise ValueError(f"unknown method {method!r}: give 'bicubic' or a loaded SR network")
        if scale is None:
            raise ValueError("bicubic upscaling needs a scale (e.g. scale=4)")
        return int(scale)
    net_scale = int(getattr(method, "scale"))
    if scale is not None and int(scale) != net_scale:
        raise ValueError(f"the network is a x{net_scale} model, but x{scale} was asked for")
    return net_scale


def upscale_array(method: Any, image: np.ndarray, alpha: np.ndarray | None = None, scale: int | None = None,
                  tile: int | None = None, device: str | torch.device | None = None,
                  half: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Upscale one image: ``(sr, sr_alpha)``, uint8, ``scale`` times the height and width.

    ``method``: an SR network (LR in [0, 1], attributes ``scale`` and ``output_range``; run by
    ``super_resolve`` with ``tile``/``device``/``half``) or ``"bicubic"`` (kit ``imresize``,
    needs ``scale``). ``image``: uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB (gray goes through
    the network as RGB and comes back as luma). ``alpha``: uint8 ``(H, W)`` or None, upscaled
    with bicubic ``imresize``. ``scale``, when given for a network, must be its scale.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"upscale_array expects uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"cannot upscale an empty image of shape {image.shape}")
    s = method_scale(method, scale)
    if isinstance(method, str):
        sr = imresize(image, s)
    else:
        sr = super_resolve_uint8(method, image, tile=tile, device=device, half=half)
        if image.ndim == 2:
            sr = _to_gray(sr)
    expected = (image.shape[0] * s, image.shape[1] * s)
    if sr.shape[:2] != expected:
        raise RuntimeError(f"upscaling gave {sr.shape[:2]}, expected {expected} (x{s} of {image.shape[:2]})")
    sr_alpha = None if alpha is None else imresize(np.asarray(alpha, dtype=np.uint8), s)
    return sr, sr_alpha


def _write_png(path: Path, pixels: np.ndarray, alpha: np.ndarray | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if alpha is None:
        Image.fromarray(pixels).save(path)
    else:
        stacked = np.dstack([pixels, alpha])
        Image.fromarray(stacked, "LA" if pixels.ndim == 2 else "RGBA").save(path)
    return path


# --------------------------------------------------------------------------------------
# Files and folders (the `upscale` command)
# --------------------------------------------------------------------------------------
def upscale_file(model: Any, path: str | Path, out_path: str | Path, scale: int | None = None,
                 tile: int | None = None, device: str | torch.device | None = None, half: bool = False) -> Path:
    """Upscale the image file ``path`` with ``model`` (network or ``"bicubic"``); write a PNG to ``out_path``.

    Gray stays gray, alpha is kept (module docstring). Errors name the file.
    """
    pixels, alpha = read_image(path)
    sr, sr_alpha = upscale_array(model, pixels, alpha, scale=scale, tile=tile, device=device, half=half)
    return _write_png(Path(out_path), sr, sr_alpha)


def output_name(path: str | Path, scale: int) -> str:
    """The SR file name for the LR file ``path``: its HR name, ``babyx4.png`` -> ``baby.png`` at x4
    (LR files of the benchmarks and DIV2K are ``<HR stem>x<scale>``); other stems are kept."""
    stem, suffix = Path(path).stem, f"x{int(scale)}"
    if stem.endswith(suffix) and len(stem) > len(suffix):
        stem = stem[: -len(suffix)]
    return f"{stem}.png"


def upscale_folder(model: Any, in_dir: str | Path, out_dir: str | Path, scale: int | None = None,
                   tile: int | None = None, device: str | torch.device | None = None, half: bool = False,
                   progress: bool = True) -> list[Path]:
    """Upscale every image in ``in_dir``; write ``out_dir/<HR name>.png`` for each
    (:func:`output_name`); return the paths. Two inputs that would share a name are an error."""
    from tqdm import tqdm                 # not ours: loaded only when a folder is upscaled

    files = list_images(in_dir)
    out = Path(out_dir)
    s = method_scale(model, scale)
    names: dict[str, Path] = {}
    for p in files:
        name = output_name(p, s)
        if name in names:
            raise ValueError(f"{names[name]} and {p} would both be written as {out / name}; "
                             "upscale them into different folders")
        names[name] = p
    return [upscale_file(model, p, out / name, scale=scale, tile=tile, device=device, half=half)
            for name, p in tqdm(names.items(), desc="upscale", unit="img", disable=not progress)]


# --------------------------------------------------------------------------------------
# Comparison sheets
# --------------------------------------------------------------------------------------
def crop_hr(hr: np.ndarray, lr_shape: Sequence[int], scale: int, name: str = "HR") -> np.ndarray:
    """HR cropped top-left to ``scale x`` the LR size (the benchmark convention); clear error when
    ``hr`` cannot be the LR's original (smaller than LR x scale, or at least ``scale`` px larger)."""
    want = (int(lr_shape[0]) * scale, int(lr_shape[1]) * scale)
    h, w = hr.shape[:2]
    if h < want[0] or w < want[1] or h >= want[0] + scale or w >= want[1] + scale:
        raise ValueError(f"{name} is {w}x{h} px but the LR image is {lr_shape[1]}x{lr_shape[0]} at x{scale}: "
                         f"expected {want[1]}x{want[0]} (up to {scale - 1} px more, cropped)")
    return hr[: want[0], : want[1]]


def auto_crop(image: np.ndarray, scale: int, size: int | None = None) -> tuple[int, int, int]:
    """``(top, left, size)`` of the most detailed square of ``image`` (sum of absolute gradients),
    aligned to ``scale`` so the same region is exact in the LR image. Deterministic."""
    h, w = image.shape[:2]
    if size is None:
        size = max(4 * scale, (min(h, w) // 4) // scale * scale)
    size = max(scale, min(size, min(h, w) // scale * scale))
    g = image.astype(np.float64)
    g = g.mean(axis=2) if g.ndim == 3 else g
    detail = np.zeros_like(g)
    detail[:, 1:] += np.abs(np.diff(g, axis=1))
    detail[1:, :] += np.abs(np.diff(g, axis=0))
    integral = np.pad(detail.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(scale, size // 4 // scale * scale)
    best, where = -1.0, (0, 0)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            total = (integral[top + size, left + size] - integral[top, left + size]
                     - integral[top + size, left] + integral[top, left])
            if total > best:
                best, where = total, (top, left)
    return where[0], where[1], size


def comparison_figure(lr: np.ndarray, panels: Mapping[str, np.ndarray], hr: np.ndarray | None = None,
                      scale: int | None = None, crop: tuple[int, int, int] | None = None,
                      metrics: Mapping[str, tuple[float, float]] | None = None, title: str | None = None,
                      panel_inches: float = 2.6):
    """A matplotlib Figure: LR (nearest-upscaled), each panel (bicubic, SR methods...), HR when
    given, side by side; below each, a zoom on the same region (box drawn on the top row).

    ``lr``: uint8 ``(h, w[, 3])``; ``panels``: ``{name: uint8 (s*h, s*w[, 3])}`` in display order;
    ``hr``: uint8, cropped top-left to ``s*h x s*w`` (error if it cannot match). With ``hr``,
    titles carry per-image PSNR/SSIM (Y channel, ``s`` px shaved, ``course_sr.metrics``) unless
    ``metrics`` gives them. ``crop``: ``(top, left, size)`` in SR pixels, default
    :func:`auto_crop` of HR (else the first panel). The figure is not registered with pyplot
    (safe in loops); a notebook shows it by ending a cell with it.
    """
    # matplotlib is heavy and not ours: loaded when a figure is drawn, not when upscale is imported
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if not panels:
        raise ValueError("comparison_figure needs at least one upscaled panel")
    first = next(iter(panels.values()))
    if scale is None:
        scale = first.shape[0] // lr.shape[0]
    size = (lr.shape[0] * scale, lr.shape[1] * scale)
    for name, img in panels.items():
        if img.shape[:2] != size:
            raise ValueError(f"panel {name!r} is {img.shape[1]}x{img.shape[0]} px, expected "
                             f"{size[1]}x{size[0]} (x{scale} of the LR)")
    columns = {"LR (nearest)": np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1), **panels}
    if hr is not None:
        hr = crop_hr(hr, lr.shape, scale)
        if metrics is None:
            metrics = {name: psnr_ssim(img, hr, scale) for name, img in panels.items()}
        columns["HR"] = hr
    top, left, side = crop if crop is not None else auto_crop(hr if hr is not None else first, scale)

    n = len(columns)
    aspect = size[0] / size[1]
    fig = Figure(figsize=(panel_inches * n, panel_inches * (aspect + 1) + (0.5 if title else 0.2)),
                 layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, height_ratios=[aspect, 1])
    for k, (name, img) in enumerate(columns.items()):
        gray = dict(cmap="gray", vmin=0, vmax=255) if img.ndim == 2 else {}
        label = name
        if metrics and name in metrics:
            p, s = metrics[name]
            label += f"\n{p:.2f} dB / {s:.4f}"
        axes[0, k].imshow(img, interpolation="nearest", **gray)
        axes[0, k].add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, edgecolor="yellow", lw=1.2))
        axes[0, k].set_title(label, fontsize=9)
        axes[1, k].imshow(img[top:top + side, left:left + side], interpolation="nearest", **gray)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title + ("   (PSNR/SSIM: Y channel, %d px border shaved)" % scale if metrics else ""),
                     fontsize=10)
    return fig


# --------------------------------------------------------------------------------------
# A whole set (Set5): the human-evaluation deliverable
# --------------------------------------------------------------------------------------
def _load_method(method: Any, device: Any) -> Any:
    """``"bicubic"`` stays; a checkpoint path becomes its generator (on ``device``, default: CUDA
    when available); a network stays where it is."""
    if isinstance(method, str) and method == BICUBIC:
        return method
    if isinstance(method, (str, Path)):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return load_generator(method, device=device)[0]
    return method


def super_resolve_set(methods: Mapping[str, Any], images: Sequence[tuple[str, Any, Any]], out_dir: str | Path,
                      scale: int | None = None, tile: int | None = None, device: Any = None, half: bool = False,
                      sheets: bool = True, write_hr: bool = True, progress: bool = True) -> dict:
    """Upscale every image with every method; write PNGs, comparison sheets and metrics.

    ``methods``: ``{display name: "bicubic" | SR network | checkpoint path}`` (order = sheet
    order; all networks must share one scale, which bicubic then uses; ``scale`` defaults to it,
    or 4 with bicubic only). ``images``: ``[(name, hr_path or None, lr_path)]``, the order of
    ``course_sr.results.evaluate.image_pairs(set, data_root)``, which finds a set's files. Writes ``out_dir/<method>/<name>.png`` (full resolution),
    ``out_dir/sheets/<name>.png`` and, when any HR is given, ``out_dir/metrics.csv``
    (image, method, psnr, ssim, of the images as written: a gray image's SR is scored as the gray
    file it becomes) and (``write_hr``) ``out_dir/HR/<name>.png``, the HR cropped to
    the SR size: the reference a rating pack can include, as the paper's MOS test did.
    Returns ``{"dirs": {method: path} (+ "HR"), "sheets": [paths],
    "metrics": {name: {method: (psnr, ssim)}}, "mean": {method: (psnr, ssim)}, "csv": path | None}``.
    """
    if not methods:
        raise ValueError("super_resolve_set needs at least one method")
    if not images:
        raise ValueError("super_resolve_set got no images")
    reserved = {"HR", "sheets"} & set(methods)
    if reserved:
        raise ValueError(f"method names {sorted(reserved)} are reserved for the output folders; rename them")
    loaded = {name: _load_method(m, device) for name, m in methods.items()}
    net_scales = {name: method_scale(m) for name, m in loaded.items() if not isinstance(m, str)}
    if len(set(net_scales.values())) > 1:
        raise ValueError(f"the methods have different scales: {net_scales}")
    s = int(scale or next(iter(net_scales.values()), 4))
    for m in loaded.values():
        method_scale(m, s)                                    # raises on a mismatch with `scale`

    out = Path(out_dir)
    dirs = {name: out / name for name in loaded}
    sheet_paths, metrics = [], {}
    from tqdm import tqdm                 # not ours: loaded only when a set is upscaled

    for name, hr_path, lr_path in tqdm(images, desc="super-resolve", unit="img", disable=not progress):
        lr = load_image(lr_path, keep_gray=True)
        hr = None if hr_path is None else crop_hr(load_image(hr_path, keep_gray=True), lr.shape, s, str(hr_path))
        panels = {}
        for mname, m in loaded.items():
            sr, _ = upscale_array(m, lr, scale=s, tile=tile, device=device, half=half)
            _write_png(dirs[mname] / f"{name}.png", sr, None)
            panels[mname] = sr
        if hr is not None:
            if write_hr:
                dirs["HR"] = out / "HR"
                _write_png(dirs["HR"] / f"{name}.png", hr, None)

            metrics[name] = {mname: psnr_ssim(sr, hr, s) for mname, sr in panels.items()}
        if sheets:
            fig = comparison_figure(lr, panels, hr=hr, scale=s, metrics=metrics.get(name), title=name)
            path = out / "sheets" / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=100)
            sheet_paths.append(path)

    mean, csv_path = {}, None
    if metrics:
        for mname in loaded:
            vals = [metrics[n][mname] for n in metrics]
            mean[mname] = (float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])))
        csv_path = out / "metrics.csv"
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["image", "method", "psnr", "ssim"])
            for n, row in metrics.items():
                for mname, (p, q) in row.items():
                    w.writerow([n, mname, f"{p:.4f}", f"{q:.6f}"])
    return {"dirs": {k: str(v) for k, v in dirs.items()}, "sheets": [str(p) for p in sheet_paths],
            "metrics": metrics, "mean": mean, "csv": None if csv_path is None else str(csv_path)}


# --------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr upscale --checkpoint PATH --input FILE|DIR --out DIR [--tile N] [--device D]``."""
    p = argparse.ArgumentParser(prog="python -m course_sr upscale",
                                description="Super-resolve an image or every image of a folder; PNGs named after "
                                            "the HR images (babyx4.png -> baby.png) are written to --out. Gray "
                                            "stays gray; alpha is upscaled with bicubic imresize and kept.")
    p.add_argument("--checkpoint", required=True,
                   help="a course_sr checkpoint (its generator is used), or 'bicubic' (needs --scale)")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scale", type=int, default=None, help="expected scale; an error if the checkpoint's differs")
    p.add_argument("--tile", type=int, default=None,
                   help="LR tile side for tiled inference (default: whole image when it fits)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--half", action="store_true", help="float16 inference (CUDA only)")
    args = p.parse_args(argv)
    if args.scale is not None:
        check_scale(args.scale, "--scale")
    if args.tile is not None and args.tile < 1:
        raise UserError(f"--tile {args.tile}: must be a whole number >= 1 (LR pixels), or left out")
    device = resolve_device(args.device or "auto")
    with user_errors(OSError, ValueError):              # built-in errors below name the file or value
        model = _load_method(args.checkpoint, device)
        s = method_scale(model, args.scale)
        src = Path(args.input)
        if not (src.is_dir() or src.is_file()):
            raise UserError(f"input not found: {src} (--input takes an image file or a folder of images)")
        Path(args.out).mkdir(parents=True, exist_ok=True)   # an unwritable --out fails before any image
        kw = dict(scale=args.scale, tile=args.tile, device=device, half=args.half)
        if src.is_dir():
            written = upscale_folder(model, src, args.out, **kw)
        else:
            written = [upscale_file(model, src, Path(args.out) / output_name(src, s), **kw)]
    print(f"wrote {len(written)} image(s) to {args.out}")
    return 0
