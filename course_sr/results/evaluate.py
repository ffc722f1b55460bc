"""PSNR/SSIM tables for bicubic and any generator checkpoint on the standard test sets.

    >>> results = evaluate(["bicubic", "SRResNet=runs/a/checkpoints/best.pt"], ["Set5", "Set14"],
    ...                    data_root="data")
    >>> print(format_table(results))

Command: ``python -m course_sr evaluate [--method bicubic] [--checkpoint [NAME=]PATH ...]
--sets Set5 Set14 ... --data-root DIR [--csv-folder DIR] [--scale 4] [--degradation SPEC] [--json]
[--out DIR]``.
With ``--json`` the last line on stdout is one JSON object
``{"<Set>": {"<method>": {"psnr": float, "ssim": float, "n": int}}}``.

Methods: ``"bicubic"`` (the kit's MATLAB-exact ``imresize`` of the LR file, uint8),
``"torch-bicubic"`` (PyTorch's a = -0.75 bicubic, ``models.TorchBicubic``: the base that a
``bicubic_residual`` SRResNet adds to; :func:`bicubic_bases` says when a table needs it) or a
generator checkpoint ``"PATH"`` / ``"NAME=PATH"``, loaded with
``course_sr.models.load_generator``; its SR output is rounded to uint8 before scoring, as
papers do. ``NAME=PATH`` is the convention of every command (``course_sr.results.specs``); the
old ``"PATH=NAME"`` still works, with one deprecation line on stderr.

Besides PSNR and SSIM every image gets ``y_shift``, its mean Y minus the HR's mean Y (same Y and
shave as the metrics, levels of 255): a brightness or colour cast moves it, texture does not.
Each set reports ``y_shift_max``, the largest ``|y_shift|`` of its images.

Where a set's images come from, first match wins (``<s>`` is the scale):

1. a data list, found by the kit's one rule (``course_sr.data.lists.find_data_list``): the
   ``csv_folder`` given, else ``<data_root>/data_lists/<set>_images.csv``, else the course's
   canonical list when the data root holds the set's standard folder; rows ``HR,LR`` relative
   to ``data_root``;
2. ``valid``: ``<data_root>/DIV2K/DIV2K_valid_HR/*.png`` with
   ``DIV2K_valid_LR_bicubic/X<s>/<name>x<s>.png``;
3. ``<data_root>/benchmark/<Set>/HR/*`` or ``<data_root>/<Set>/HR/*`` with
   ``<Set>/LR_bicubic/X<s>/<name>x<s>.png`` (so ``--data-root ../shared/benchmarks`` works;
   ``data.lists.find_layout``, the same scan ``data-lists`` makes lists from).

HR is cropped top-left to ``scale x`` the LR size (LR must be ``HR // scale``).

``--degradation SPEC`` (``degradation=``): a fixed synthetic camera instead of the LR files. SPEC
is a preset of ``course_sr.unpaired.degradations`` (``sensor-fixed``, ``fixed``, ...) or a JSON
object of its fields (``'{"preset": "fixed", "noise": 10}'``). Each image's LR is
``degrade(hr, spec, seed=zlib.crc32(<HR file name>.encode("utf-8")))`` of its HR cropped top-left
to a multiple of ``scale`` (``unpaired.data.degrade_image``, the LR CycleSR validates on), so the
same command always gives the same LR; the LR files are not read (nor needed). Every method,
bicubic included, sees that LR. A set is then labelled ``"<Set> (<SPEC>)"`` (e.g. ``"Set5
(sensor-fixed)"``) in the tables and every ``--out`` file, each entry has ``"degradation": SPEC``,
and ``table.txt`` spells out the spec's fields (``results.degraded``). A gray HR is degraded as RGB
and scored as Y. The metric
convention is ``course_sr.metrics``'s; :data:`CONVENTION` is printed under every table.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from course_sr.data.lists import (MissingDataError, check_scale, find_data_list, find_layout, lists_folder,
                                  missing_fix, read_data_list)
from course_sr.data.sample import ensure_sample
from course_sr.imresize import imresize
from course_sr.metrics import mean_y_shift, psnr_ssim
from course_sr.models import TorchBicubic, load_generator
from course_sr.plumbing.checkpoint import load_checkpoint
from course_sr.plumbing.distributed import resolve_device
from course_sr.plumbing.errors import UserError, naming, user_errors
from course_sr.results.degraded import read_degradation
from course_sr.results.inference import super_resolve_uint8
from course_sr.results.specs import DEPRECATED_ORDER, read_checkpoint_spec
from course_sr.unpaired.data import degrade_image
from course_sr.unpaired.degradations import PRESETS, Degradation
from course_sr.utils import IMAGE_EXTENSIONS, convert_image, load_image

CONVENTION = ("PSNR (dB) / SSIM on Y of MATLAB rgb2ycbcr (not rounded), {scale} px shaved from each border; "
              "SSIM of Wang et al. 2004 (11x11 Gaussian, sigma 1.5, L=255, valid window); SR rounded to "
              "uint8; gray images scored as Y; mean over images. Published bicubic x4: Set5 28.42/0.8104, "
              "Set14 26.00/0.7027.")
NOT_COMPUTED = "not computed"


# --------------------------------------------------------------------------------------
# Where the images are
# --------------------------------------------------------------------------------------
def _lr_partner(lr_dir: Path, stem: str, scale: int) -> Path:
    """``<lr_dir>/<stem>x<scale>.png`` (or another image extension when that exists)."""
    for ext in IMAGE_EXTENSIONS:              # .png first
        for candidate in (lr_dir / f"{stem}x{scale}{ext}", lr_dir / f"{stem}x{scale}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return lr_dir / f"{stem}x{scale}.png"     # missing: reported by the caller with the others


def image_pairs(set_name: str, data_root, csv_folder=None, scale: int = 4,
                lr_files: bool = True) -> list[tuple[str, Path, Path]]:
    """``[(image_name, hr_path, lr_path), ...]`` of one set, sorted (rules in the module docstring).
    ``lr_files=False``: the LR files may be absent (``--degradation`` makes the LR from the HR).

    Raises:
        FileNotFoundError: no folder or list for the set (says where it looked), or LR files
            missing (lists them).
    """
    root = Path(data_root)
    try:
        data_list = find_data_list(set_name, root, csv_folder, scale)
    except MissingDataError:                     # no list: the set's folders, scanned
        data_list = None
    if data_list is not None:
        pairs = []
        for hr_rel, lr_rel in read_data_list(data_list.parent, set_name):
            if not hr_rel:
                raise ValueError(f"{data_list} has LR-only rows (no HR to score against): {lr_rel}")
            pairs.append((Path(hr_rel).stem, root / hr_rel, root / lr_rel))
        source, fix = str(data_list), " " + missing_fix(set_name, data_list, root)
    else:
        layout = find_layout(root, set_name, scale)
        hr_dir = root / layout.hr_dir if layout is not None and layout.hr_dir else None
        if hr_dir is None or not hr_dir.is_dir():
            looked = [lists_folder(root) / f"{set_name}_images.csv"]
            looked += ([root / "DIV2K" / "DIV2K_valid_HR"] if set_name.lower() == "valid" else
                       [root / "benchmark" / set_name / "HR", root / set_name / "HR"])
            raise MissingDataError(f"set {set_name!r} not found; looked for: " + ", ".join(map(str, looked)))
        lr_dir = root / layout.lr_dir
        hr_files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        pairs = [(p.stem, p, _lr_partner(lr_dir, p.stem, scale)) for p in hr_files]
        source, fix = str(hr_dir), ""
    if not pairs:
        raise MissingDataError(f"set {set_name!r} has no images in {source}")
    missing = [str(lr) for _, hr, lr in pairs if lr_files and not lr.is_file()]
    missing += [str(hr) for _, hr, lr in pairs if not hr.is_file()]
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise MissingDataError(f"set {set_name!r} (x{scale}, from {source}): {len(missing)} missing "
                               f"file(s):{fix} {shown}")
    return sorted(pairs, key=lambda t: t[0])


# --------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------
BASELINES = ("bicubic", "torch-bicubic")


def _read_method(spec: str) -> tuple[str, Path | None, bool]:
    """``(name, path or None, written in the deprecated PATH=NAME order)`` (see :func:`parse_method`)."""
    if spec in BASELINES:
        return spec, None, False
    name, path, old_order = read_checkpoint_spec(spec)      # the NAME=PATH rule: course_sr.results.specs
    if not name:
        name = f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" else path.stem
    return name, path, old_order


def parse_method(spec: str) -> tuple[str, Path | None]:
    """``"bicubic"`` / ``"torch-bicubic"`` -> ``(spec, None)``; ``"NAME=PATH"`` -> ``(NAME, PATH)``
    (the old ``"PATH=NAME"`` too, told apart by the rule of ``course_sr.results.specs``);
    ``"PATH"`` -> (``<run>/<stem>`` for ``<run>/checkpoints/<stem>.pt``, else the stem; PATH).
    A spec whose order the rule cannot tell raises MethodSpecError (a ValueError) naming it."""
    name, path, _ = _read_method(spec)
    return name, path


def bicubic_bases(checkpoints) -> list[str]:
    """``["torch-bicubic"]`` when any of these checkpoints holds a ``bicubic_residual`` network
    (a table should then show the base it adds to beside MATLAB bicubic), else ``[]``."""
    for path in checkpoints:
        # a metadata read (the config only): evaluate's load_generator reads and verifies the weights
        if load_checkpoint(path, verify=False).get("config", {}).get("bicubic_residual"):
            return ["torch-bicubic"]
    return []


def _load_methods(methods, scale: int, device) -> dict:
    """{name: None (bicubic) | model in eval mode}; checkpoints must be of ``scale``."""
    read = [_read_method(str(spec)) for spec in methods]    # every spec checked before a network loads
    if any(old_order for _, _, old_order in read):
        print(DEPRECATED_ORDER, file=sys.stderr)            # once per call, however many specs use it
    loaded: dict[str, torch.nn.Module | None] = {}
    for name, path, _ in read:
        if name in loaded:
            raise ValueError(f"two methods are named {name!r}; name them with NAME=PATH")
        if path is None:
            if name == "torch-bicubic":
                loaded[name] = TorchBicubic(scale)
            else:
                loaded[name] = None
            continue
        model, info = load_generator(path, device)
        if int(info["scale"]) != scale:
            raise ValueError(f"checkpoint {path} is a x{info['scale']} model, but scale x{scale} was requested "
                             f"(evaluate it with --scale {info['scale']})")
        loaded[name] = model
    return loaded


def _super_resolve_uint8(model, lr: np.ndarray, scale: int, device, tile) -> np.ndarray:
    """uint8 LR (H, W[, 3]) -> uint8 SR: bicubic (``model`` None) or the network, rounded as papers do."""
    if model is None:
        return imresize(lr, scale)                     # uint8 in -> MATLAB-rounded uint8 out
    return super_resolve_uint8(model, lr, tile=tile, device=device)


def _lpips_scorer(device):
    """A function (sr_uint8, hr_uint8) -> LPIPS distance, or the reason it cannot be computed.

    Needs the ``lpips`` package and its AlexNet weights on this machine; nothing is downloaded
    for you here and a missing piece gives "not computed", never a number.
    """
    try:
        import lpips                                   # optional, heavy, not ours: imported only when asked
        net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
    except Exception as err:                           # no package, or weights not downloadable
        return None, f"{NOT_COMPUTED} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"

    def score(sr: np.ndarray, hr: np.ndarray) -> float:
        def t(a):
            a = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a
            x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].to(device)
            return convert_image(x, "[0, 255]", "[-1, 1]")
        with torch.inference_mode():
            return float(net(t(sr), t(hr)).item())
    return score, None


# --------------------------------------------------------------------------------------
# LR images: the files, or the HR through a fixed degradation
# --------------------------------------------------------------------------------------
def scored_images(set_pairs, scale: int, degradation: Degradation | None = None):
    """Yield ``(image, hr_path, lr, hr)`` uint8 for :func:`image_pairs`' pairs: the LR file and its
    HR cropped top-left to ``scale x`` its size, or with ``degradation`` the LR made from the HR
    (seeded by the HR file name, ``unpaired.data.degrade_image``); gray HR stays ``(H, W)``."""
    for image, hr_path, lr_path in set_pairs:
        if degradation is not None:
            yield (image, hr_path, *degrade_image(hr_path, degradation, scale, keep_gray=True)[1:])
            continue
        hr = load_image(hr_path, keep_gray=True)
        lr = load_image(lr_path, keep_gray=True)
        if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
            raise ValueError(f"{lr_path} is {lr.shape[1]}x{lr.shape[0]} px but {hr_path} is "
                             f"{hr.shape[1]}x{hr.shape[0]}: not its x{scale} LR image")
        yield image, hr_path, lr, hr[: lr.shape[0] * scale, : lr.shape[1] * scale]     # top-left crop


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------
def evaluate(methods, sets, data_root, csv_folder=None, scale: int = 4, out_dir=None, device=None,
             tile: int | None = None, lpips: bool = False, progress: bool = False, degradation=None) -> dict:
    """Mean PSNR/SSIM of each method on each set.

    Args:
        methods: ``"bicubic"`` and/or checkpoint specs ``"PATH"`` / ``"NAME=PATH"`` (the old
            ``"PATH=NAME"`` prints one deprecation line on stderr per call).
        sets: split names: ``valid``, ``Set5``, ``Set14``, ``B100``, ``Urban100``, or any other
            with a data list or an ``HR`` folder (see the module docstring).
        data_root: the data root; ``None`` means the embedded sample (``course_sr.data.sample``); or
            ``{set: root}`` when the sets live in different places (each then reads its own
            ``<root>/data_lists`` unless ``csv_folder`` is given).
        csv_folder: where ``<set>_images.csv`` lists live (default: the rule of ``data.lists.find_data_list``).
        scale: SR factor; a checkpoint of another scale is an error naming the file and both scales.
        out_dir: when given, writes ``per_image.csv``, ``per_set.csv``, ``summary.json`` (the
            returned object) and ``table.txt`` (see :func:`write_results`).
        device: where networks run (``None``: CUDA when available, else CPU).
        tile: LR tile side for ``super_resolve`` (``None``: its automatic rule).
        lpips: also report LPIPS (AlexNet) when the ``lpips`` package and weights are present;
            otherwise each entry's ``"lpips"`` is the string ``"not computed (...)"``.
        progress: show a tqdm bar per set.
        degradation: None (the LR files), or a preset name / JSON text / mapping of fields: every
            method scores the LR made from each HR with that fixed degradation, seeded by the HR
            file name (module docstring); sets are labelled ``"<set> (<spec>)"``.

    Returns:
        ``{set: {method: {"psnr": float, "ssim": float, "n": int, "y_shift_max": float}}}`` (plus
        ``"lpips"`` when asked, ``"degradation"`` when given), in the order given.
    """
    roots = dict(data_root) if isinstance(data_root, Mapping) else {s: data_root for s in sets}
    if any(roots.get(s) is None for s in sets):
        roots = {s: roots.get(s) or ensure_sample() for s in sets}
    device = resolve_device(device or "auto")
    scale = check_scale(scale)
    spec, label = read_degradation(degradation, scale) if degradation is not None else (None, None)
    models = _load_methods(list(methods), scale, device)
    pairs = {s: image_pairs(s, roots[s], csv_folder, scale, lr_files=spec is None) for s in sets}   # errors up front
    lpips_fn, lpips_note = _lpips_scorer(device) if lpips else (None, None)

    results: dict[str, dict[str, dict]] = {}
    rows: list[dict] = []
    for name_on_disk, set_pairs in pairs.items():
        set_name = f"{name_on_disk} ({label})" if label else name_on_disk
        per_method: dict[str, list[dict]] = {name: [] for name in models}
        it = set_pairs
        if progress:
            from tqdm.auto import tqdm                 # not ours: loaded only for a progress bar

            it = tqdm(set_pairs, desc=set_name, leave=False)
        for image, hr_path, lr, hr in scored_images(it, scale, spec):   # each decoded once, for every method
            for name, model in models.items():
                sr = _super_resolve_uint8(model, lr, scale, device, tile)
                p, s = psnr_ssim(sr, hr, scale, name=hr_path)
                row = {"set": set_name, "method": name, "image": image, "psnr": p, "ssim": s,
                       "y_shift": mean_y_shift(sr, hr, scale, name=hr_path)}
                if lpips:
                    row["lpips"] = lpips_fn(sr, hr) if lpips_fn else lpips_note
                if label:
                    row["degradation"] = label
                per_method[name].append(row)
        results[set_name] = {}
        for name, scores in per_method.items():      # rows grouped by method, as the CSV has them
            rows += scores
            entry = {"psnr": float(np.mean([r["psnr"] for r in scores])),
                     "ssim": float(np.mean([r["ssim"] for r in scores])), "n": len(scores),
                     "y_shift_max": float(max(abs(r["y_shift"]) for r in scores))}
            if lpips:
                entry["lpips"] = float(np.mean([r["lpips"] for r in scores])) if lpips_fn else lpips_note
            if label:
                entry["degradation"] = label
            results[set_name][name] = entry
    if out_dir is not None:
        write_results(results, rows, out_dir, scale)
    return results


def write_results(results: dict, rows: list[dict], out_dir, scale: int) -> Path:
    """Write into ``out_dir``: ``per_image.csv`` (set, method, image, psnr, ssim, y_shift),
    ``per_set.csv`` (set, method, psnr, ssim, n, y_shift_max), ``summary.json`` (exactly the object :func:`evaluate` returns and
    ``--json`` prints) and ``table.txt`` (:func:`format_table`, with the convention)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with naming(out):                                    # a full disk names the folder
        _write_results(results, rows, out, scale)
    return out


def _write_results(results: dict, rows: list[dict], out: Path, scale: int) -> None:
    extra = [k for k in ("lpips", "degradation") if rows and k in rows[0]]
    with open(out / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["set", "method", "image", "psnr", "ssim", "y_shift"] + extra)
        writer.writeheader()
        writer.writerows(rows)
    with open(out / "per_set.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["set", "method", "psnr", "ssim", "n", "y_shift_max"] + extra)
        for set_name, by_method in results.items():
            for name, e in by_method.items():
                writer.writerow([set_name, name, e["psnr"], e["ssim"], e["n"], e["y_shift_max"]]
                                + [e[k] for k in extra])
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "table.txt").write_text(format_table(results, scale) + "\n")


def format_table(results: dict, scale: int = 4) -> str:
    """Methods as rows, sets as columns, ``PSNR / SSIM`` cells, the convention underneath."""
    sets = list(results)
    methods = list(dict.fromkeys(m for s in sets for m in results[s]))
    headers = ["method"] + [f"{s} (n={next(iter(results[s].values()))['n']})" for s in sets]
    cells = [[m] + [f"{results[s][m]['psnr']:.2f} / {results[s][m]['ssim']:.4f}" if m in results[s] else "-"
                    for s in sets] for m in methods]
    widths = [max(len(r[i]) for r in [headers] + cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [headers] + cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    shifts = [f"{s}/{m} {e['y_shift_max']:.2f}" for s in sets for m, e in results[s].items() if "y_shift_max" in e]
    if shifts:
        lines += textwrap.wrap("Largest |mean Y shift| of one image (SR - HR, levels of 255; a colour or "
                               "brightness cast shows here): " + ", ".join(shifts), width=100)
    lpips = {e.get("lpips") for s in sets for e in results[s].values()} - {None}
    if lpips:
        lines.append("LPIPS (AlexNet, lower is better): " + "; ".join(
            f"{s}/{m}: " + (f"{e['lpips']:.4f}" if isinstance(e["lpips"], float) else e["lpips"])
            for s in sets for m, e in results[s].items()))
    for label in dict.fromkeys(e["degradation"] for s in sets for e in results[s].values() if "degradation" in e):
        lines += textwrap.wrap(f"LR made from each HR with the fixed degradation {label} = "
                               f"{read_degradation(label, scale)[0]}, seeded by the CRC-32 of the HR file "
                               "name: not the standard bicubic benchmark.", width=100)
    lines += textwrap.wrap(CONVENTION.format(scale=scale), width=100)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr evaluate ...`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m course_sr evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--method", action="append", choices=list(BASELINES), default=[],
                        help="baseline to include: bicubic (MATLAB imresize), torch-bicubic (PyTorch's "
                             "a=-0.75, the base of bicubic_residual networks); default: bicubic when no "
                             "--checkpoint is given")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]PATH",
                        help="generator checkpoint, optionally after a display name (SRGAN=runs/x/checkpoints/"
                             "gan_end.pt); repeatable. The old PATH=NAME order still works (deprecated)")
    parser.add_argument("--sets", nargs="+", required=True, help="valid Set5 Set14 B100 Urban100 ...")
    parser.add_argument("--data-root", required=True, help="holds benchmark/<Set>, DIV2K/ or <Set>/ directly")
    parser.add_argument("--csv-folder", default=None, help="data lists folder (default <data-root>/data_lists)")
    parser.add_argument("--scale", type=int, default=4, help="SR factor; checkpoints must match it (default 4)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object, last line")
    parser.add_argument("--out", default=None, help="write per_image.csv, per_set.csv, summary.json, table.txt here")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:1 (default: cuda when available)")
    parser.add_argument("--tile", type=int, default=None, help="LR tile side (default: automatic)")
    parser.add_argument("--lpips", action="store_true", help="also LPIPS when the lpips package and weights exist")
    parser.add_argument("--degradation", default=None, metavar="SPEC",
                        help="score every method on LR made from the HR with this fixed degradation instead of "
                             f"the LR files: a preset ({', '.join(sorted(PRESETS))}) or a JSON object of fields; "
                             "seeded by each HR file name (CRC-32), so the same command gives the same LR; sets "
                             "are labelled '<Set> (SPEC)'")
    args = parser.parse_args(argv)
    check_scale(args.scale, "--scale")                   # the boundary: before any file is read
    if args.device is not None:
        resolve_device(args.device)
    if args.tile is not None and args.tile < 1:
        raise UserError(f"--tile {args.tile}: must be a whole number >= 1 (LR pixels), or left out")
    if args.degradation is not None:
        read_degradation(args.degradation, args.scale, "--degradation")   # a bad spec: one line, before any file is read

    methods = args.method + args.checkpoint or ["bicubic"]
    with user_errors(FileNotFoundError, ValueError):    # built-in errors below name the file or value
        results = evaluate(methods, args.sets, args.data_root, args.csv_folder, args.scale, args.out,
                           args.device, args.tile, lpips=args.lpips, progress=sys.stderr.isatty(),
                           degradation=args.degradation)
    print(format_table(results, args.scale))
    if args.out:
        print(f"wrote per_image.csv, per_set.csv, summary.json, table.txt in {args.out}")
    if args.json:
        print(json.dumps(results))
    return 0

