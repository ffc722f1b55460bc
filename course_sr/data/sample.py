"""The embedded sample dataset: ten small photos from scikit-image, no download.

Quick mode, the demo and the tests run the real data path (data lists, files, ``SRDataset``) on
these images. They are deterministic crops of photos that scikit-image ships inside its wheel
(``skimage.data``), written as PNG in the same layout and list format as the real data::

    <root>/sample/train/HR/astronaut.png          <root>/sample/train/LR_bicubic/X4/astronautx4.png
    <root>/sample/test/HR/chelsea.png             <root>/sample/test/LR_bicubic/X4/chelseax4.png
    <root>/data_lists/sample_train_images.csv     rows "sample/train/HR/astronaut.png,sample/..."
    <root>/data_lists/sample_test_images.csv
    <root>/sample/unpaired/clean/HR/astronaut_left.png  (and .../real/HR/astronaut_right.png)
    <root>/course_sr_sample.json                  completion marker: version, files, sha256

- ``sample_train`` (6 images, sides multiples of 4, at most 512 px): astronaut, coffee, rocket,
  hubble (deep field), retina (optic disc), gravel (grayscale texture).
- ``sample_test`` (4 images, disjoint photos, Set5-like sizes): chelsea (the whole 300x451 photo:
  its width is not a multiple of 4, like Set14's comic), ihc, camera, coins (the whole 303x384).
- LR files: ``course_sr.imresize.imresize(HR, 1/4)`` on uint8 data (MATLAB's path: round and
  clip after each 1-D pass), HR cropped TOP-LEFT to a multiple of 4 first, exactly how the MATLAB
  LR files of the standard benchmarks were made.
- Grayscale photos (gravel, camera, coins) are stored as RGB with R = G = B (like Set14's man).
- ``sample_unpaired_clean`` / ``sample_unpaired_real`` (6 images each): the unpaired setting of
  CycleSR in miniature. Each training photo is cut into a left and a right half (at a multiple of
  4 px); the left halves are the clean domain (HR + bicubic LR), the right halves the "real" domain,
  whose HR the kit only ever degrades (``config.degradation``) to make real LR. No pixel is in both
  domains, yet both show the same kinds of scene, as DIV2K 0001-0400 and 0401-0800 do. (Splitting
  by photo instead, 3 against 3, lets a discriminator tell the domains apart by their content, a
  rocket against a retina, instead of by the camera: measured, CycleSR then learns nothing.)

Licences, as the docstrings of the installed ``skimage.data`` functions state them:
astronaut (NASA, "No known copyright restrictions, released into the public domain"),
coffee (CC0, Rachel Michetti), rocket (SpaceX, released into the public domain),
hubble_deep_field (NASA, "may be freely used in the public domain"), retina (Wikimedia Commons,
CC0 1.0), gravel (CC0Textures, CC0), chelsea (CC0, Stefan van der Walt),
immunohistochemistry ("No known copyright restrictions"), camera (CC0, Lav Varshney),
coins ("No known copyright restrictions"). ``stereo_motorcycle`` (Middlebury 2014) is NOT used:
its docstring states no licence. scikit-image itself is BSD-3-Clause.

The sample is built once per root (default ``$COURSE_SR_SAMPLE_DIR`` or
``~/.cache/course_sr/sample``), in a temporary folder beside it that is renamed into place when
complete, so an interrupted build never looks finished. Later calls reuse it when the marker
names the current ``SAMPLE_VERSION``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from course_sr.data.listfiles import list_path, lists_folder, row_count, write_data_list
from course_sr.imresize import matlab_lr
from course_sr.plumbing.errors import user_errors
from course_sr.utils import file_sha256, save_image

SAMPLE_VERSION = 2                  # bump when images, crops or layout change: caches rebuild
SCALE = 4
ENV_DIR = "COURSE_SR_SAMPLE_DIR"
MARKER = "course_sr_sample.json"
SPLITS = ("sample_train", "sample_test", "sample_unpaired_clean", "sample_unpaired_real")
# unpaired split -> (which half of each train photo, its folder under sample/)
HALVES = {"sample_unpaired_clean": ("left", "unpaired/clean"), "sample_unpaired_real": ("right", "unpaired/real")}

# name -> (skimage.data function, (top, left, height, width) or None for the whole photo)
TRAIN_IMAGES: dict[str, tuple[str, tuple[int, int, int, int] | None]] = {
    "astronaut": ("astronaut", None),                      # 512x512
    "coffee": ("coffee", (0, 44, 400, 512)),               # of 400x600
    "rocket": ("rocket", (0, 64, 424, 512)),               # of 427x640
    "hubble": ("hubble_deep_field", (0, 0, 384, 512)),     # of 872x1000
    "retina": ("retina", (380, 100, 512, 512)),            # of 1411x1411, around the optic disc
    "gravel": ("gravel", None),                            # 512x512 grayscale texture
}
TEST_IMAGES: dict[str, tuple[str, tuple[int, int, int, int] | None]] = {
    "chelsea": ("chelsea", None),                          # 300x451 (width not a multiple of 4)
    "ihc": ("immunohistochemistry", (128, 128, 256, 256)),  # of 512x512
    "camera": ("camera", (32, 160, 256, 256)),             # of 512x512 grayscale
    "coins": ("coins", None),                              # 303x384 grayscale
}


def default_root() -> Path:
    """``$COURSE_SR_SAMPLE_DIR`` when set, else ``~/.cache/course_sr/sample``."""
    env = os.environ.get(ENV_DIR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "course_sr" / "sample"


def _photo(func: str, box) -> np.ndarray:
    """The crop of one skimage photo as uint8 ``(H, W, 3)``."""
    # Deferred: scikit-image is not ours and is slow to import; only a first build needs it.
    import skimage.data

    img = np.asarray(getattr(skimage.data, func)())
    if box is not None:
        top, left, h, w = box
        if top + h > img.shape[0] or left + w > img.shape[1]:
            raise ValueError(f"sample crop {box} does not fit skimage.data.{func} {img.shape}")
        img = img[top:top + h, left:left + w]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)


def _build(dest: Path) -> dict[str, str]:
    """Write every image, LR and list under ``dest``; returns ``{relative path: sha256}``."""
    files: dict[str, str] = {}
    lists: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}

    def write_pair(split: str, folder: str, name: str, hr: np.ndarray) -> None:
        lr = matlab_lr(hr, SCALE)                     # top-left crop, MATLAB uint8 path
        if lr.dtype != np.uint8 or lr.shape != (hr.shape[0] // SCALE, hr.shape[1] // SCALE, 3):
            raise RuntimeError(f"imresize returned {lr.dtype} {lr.shape} for {name}")
        hr_rel = f"sample/{folder}/HR/{name}.png"
        lr_rel = f"sample/{folder}/LR_bicubic/X{SCALE}/{name}x{SCALE}.png"
        save_image(dest / hr_rel, hr)
        save_image(dest / lr_rel, lr)
        lists[split].append((hr_rel, lr_rel))

    for name, (func, box) in TEST_IMAGES.items():
        write_pair("sample_test", "test", name, _photo(func, box))
    for name, (func, box) in TRAIN_IMAGES.items():
        hr = _photo(func, box)
        write_pair("sample_train", "train", name, hr)
        cut = hr.shape[1] // (2 * SCALE) * SCALE       # train photos' sides are multiples of 4: so are both halves
        halves = {"left": hr[:, :cut], "right": hr[:, cut:]}
        for split, (side, folder) in HALVES.items():
            write_pair(split, folder, f"{name}_{side}", halves[side])
    for split, rows in lists.items():
        write_data_list(dest / f"data_lists/{split}_images.csv", sorted(rows))
    for p in sorted(dest.rglob("*")):
        if p.is_file():
            files[p.relative_to(dest).as_posix()] = file_sha256(p)
    return files


def _is_complete(root: Path) -> bool:
    try:
        info = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (info.get("version") == SAMPLE_VERSION
            and all((root / rel).is_file() for rel in info.get("files", {})))


def ensure_sample(root=None, force: bool = False) -> Path:
    """Build the embedded sample under ``root`` once and return ``root``.

    ``root`` None: :func:`default_root`. A complete sample of the current version is reused
    (``force=True`` rebuilds). ``root`` may be absent, empty, or an older sample; any other
    non-empty folder is refused (the sample never writes into a folder it did not make).
    """
    root = Path(root).expanduser() if root is not None else default_root()
    if not force and _is_complete(root):
        return root
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"sample root {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
        raise FileExistsError(f"sample root {root} is not empty and holds no course_sr sample "
                              f"(no {MARKER}); choose a new or empty folder")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.build-", dir=root.parent))
    except PermissionError as err:                  # name the folder asked for, not the build folder
        raise PermissionError(err.errno, err.strerror, str(root)) from err
    try:
        files = _build(tmp)
        marker = {"version": SAMPLE_VERSION, "scale": SCALE, "splits": list(SPLITS), "files": files}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True))  # written last
        aside = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
        if root.exists():
            os.rename(root, aside)          # empty or outdated: move it out of the way
        try:
            os.rename(tmp, root)
        except OSError:
            if not _is_complete(root):      # someone else finished first: use theirs
                raise
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def resolve_data(cfg):
    """Point a config with ``data_root=None`` at the embedded sample (built on first use).

    Sets ``data_root`` and, when they are None, ``csv_folder`` (the sample's own ``data_lists``),
    ``HR_data_folder`` and ``LR_data_folder``. A config with a data_root keeps its ``csv_folder``
    (None: each split's list is found by ``data.lists.find_data_list``). Mutates and returns cfg.

    Called where paths are resolved (``course_sr.training.data_config``, the commands, the
    notebooks' first cells): the datasets never build the sample themselves.
    """
    if cfg.get("data_root") is None:
        root = ensure_sample()
        cfg.data_root = str(root)
        if cfg.get("csv_folder") is None:
            cfg.csv_folder = str(root / "data_lists")
    if cfg.get("HR_data_folder") is None:
        cfg.HR_data_folder = str(cfg.data_root)
    if cfg.get("LR_data_folder") is None:
        cfg.LR_data_folder = str(cfg.data_root)
    return cfg


def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr sample [--root DIR] [--force]``: build (or find) the sample."""
    p = argparse.ArgumentParser(prog="python -m course_sr sample",
                                description="build the embedded sample dataset (no download)")
    p.add_argument("--root", default=None, help=f"default: ${ENV_DIR} or ~/.cache/course_sr/sample")
    p.add_argument("--force", action="store_true", help="rebuild even when a complete sample exists")
    args = p.parse_args(argv)
    with user_errors(OSError):                          # a root that is a file or someone else's folder
        root = ensure_sample(args.root, force=args.force)
    print(f"sample root: {root}")
    for split in SPLITS:
        path = list_path(lists_folder(root), split)
        print(f"  {split}: {row_count(path)} images, list {path}")
    print(f"use it with: data_root={root}  csv_folder={root / 'data_lists'}")
    return 0
