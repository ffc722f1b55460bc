"""The course's data lists: ``<csv_folder>/<split>_images.csv``.

This module MAKES them from image folders: :func:`create_data_lists` and its command
``python -m course_sr data-lists``. The format, the one rule of where a split's list is found, and
reading, writing and checking lists are :mod:`course_sr.data.listfiles`; the splits and their
folder layouts are :mod:`course_sr.data.splits`. Their public names are imported here too, so
``from course_sr.data.lists import find_data_list`` keeps working: this is the name the kit and
its course material import the data lists by.

File names: HR files are any image file in the HR folder (``course_sr.utils.IMAGE_EXTENSIONS``:
``.png``, ``.jpg``, ``.bmp``, ``.tif``, ``.webp``, ...; extension case ignored, so ``0001.PNG``
works); the LR partner of ``<stem>.<ext>`` is ``<stem>x<scale>.<any image ext>`` (``.png``
preferred), where ``<stem>`` is everything before the last dot (``img.v2.png`` -> ``img.v2x4.png``).
Missing LR files are made with the kit's MATLAB-exact ``imresize`` when asked
(``make_missing_lr=True``, bicubic splits only: the unknown degradation cannot be made), else the
error lists every missing file.

``create_data_lists`` writes into ``<data_root>/data_lists`` by default and refuses to change the
canonical lists unless told to (``replace_canonical=True``, ``--replace-canonical``): rewriting
them from a partial data root would silently cut the course's 800 training images to what that
root holds.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from course_sr.data.listfiles import (  # noqa: F401  (re-exported: callers import them from here)
    MissingDataError, canonical_dir, check_listed_files, check_splits, find_data_list, list_path, lists_folder,
    missing_fix, read_data_list, row_count, write_data_list)
from course_sr.data.splits import SPLITS, Layout, find_layout, layouts  # noqa: F401  (re-exported, as above)
from course_sr.imresize import matlab_lr
from course_sr.plumbing.errors import UserError, user_errors
from course_sr.utils import IMAGE_EXTENSIONS, load_image, save_image


def check_scale(scale, option: str = "scale") -> int:
    """``scale`` as an int >= 2, or a :class:`UserError` naming the value (``--scale 0`` would
    otherwise fail later as a division by zero or a missing ``X0`` folder)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise UserError(f"{option} {scale!r}: must be a whole number >= 2, the SR factor (the course uses 4)")
    return scale


class CanonicalListError(UserError, ValueError):
    """``create_data_lists`` would change the course's canonical lists (see the module docstring)."""


# --------------------------------------------------------------------------------------
# Building the lists from folders
# --------------------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]


def _stem_index(folder: Path) -> dict[str, Path]:
    """``{stem: file}``; when a stem exists with several extensions, ``.png`` wins, then by name."""
    index: dict[str, Path] = {}
    for p in sorted(_image_files(folder), key=lambda p: (p.suffix.lower() != ".png", p.name)):
        index.setdefault(p.stem, p)
    return index


def _div2k_number(stem: str, scale: int | None = None) -> int | None:
    """``'0401'`` -> 401 (``'0401x4'`` with scale 4); None when the name is not a DIV2K number."""
    suffix = f"x{scale}" if scale else ""
    m = re.fullmatch(r"(\d+)" + re.escape(suffix), stem)
    return int(m.group(1)) if m else None


def _in_range(number: int | None, ids: tuple[int, int] | None) -> bool:
    return ids is None or (number is not None and ids[0] <= number <= ids[1])


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _make_lr(hr_path: Path, lr_path: Path, scale: int) -> None:
    """Write the MATLAB-bicubic LR of ``hr_path`` (HR cropped top-left to a multiple of scale)."""
    hr = load_image(hr_path)
    if hr.shape[0] < scale or hr.shape[1] < scale:
        raise ValueError(f"{hr_path} is {hr.shape[1]}x{hr.shape[0]}, smaller than the scale {scale}")
    save_image(lr_path, matlab_lr(hr, scale))


def _split_rows(root: Path, split: str, layout: Layout, scale: int, make_missing_lr: bool,
                missing: list[str]) -> list[tuple[str, str]]:
    """Rows of one split; LR files that are absent are appended to ``missing`` (or made)."""
    lr_dir = root / layout.lr_dir
    if layout.hr_dir is None:                          # LR-only (unpaired real LR)
        files = [p for p in _image_files(lr_dir) if _in_range(_div2k_number(p.stem, scale), layout.ids)]
        return sorted(("", _rel(p, root)) for p in files)
    hr_dir = root / layout.hr_dir
    hr_files = [p for p in _image_files(hr_dir) if _in_range(_div2k_number(p.stem), layout.ids)]
    if not hr_files:
        raise FileNotFoundError(f"split {split!r}: no HR images in {hr_dir}")
    lr_index = _stem_index(lr_dir)
    rows = []
    for hr in sorted(hr_files, key=lambda p: p.name):
        lr = lr_index.get(f"{hr.stem}x{scale}")
        if lr is None:
            lr = lr_dir / f"{hr.stem}x{scale}.png"
            if make_missing_lr and layout.lr_makeable:
                _make_lr(hr, lr, scale)
            else:
                missing.append(str(lr))
                continue
        rows.append((_rel(hr, root), _rel(lr, root)))
    return sorted(rows)


def _available(root: Path, layout: Layout, make_missing_lr: bool) -> bool:
    """Whether a split can be listed from what is under root (for ``splits=None``): its HR
    images, and its LR folder holding images unless they may be made (bicubic + make_missing_lr)."""
    if layout.hr_dir is not None and not _image_files(root / layout.hr_dir):
        return False
    return bool(_image_files(root / layout.lr_dir)) or (layout.lr_makeable and make_missing_lr)


def create_data_lists(data_root, out_folder=None, splits=None, scale: int = 4,
                      make_missing_lr: bool = False, replace_canonical: bool = False) -> dict[str, Path]:
    """Write ``<out_folder>/<split>_images.csv`` for the folders found under ``data_root``.

    Args:
        data_root: folder holding ``DIV2K/`` and/or ``benchmark/`` (or ``<Set>/`` folders; rows are
            relative to it). Layouts: :mod:`course_sr.data.splits`.
        out_folder: where the CSV files go (created). None: ``<data_root>/data_lists``, where
            :func:`find_data_list` looks first, so training and evaluation then use them.
        splits: names from ``SPLITS``, or any set name with a ``<Set>/HR`` folder (as ``evaluate``
            accepts). None: every split of ``SPLITS`` whose HR and LR folders hold images under
            data_root (e.g. only the four test sets after ``download --what benchmark``; with
            make_missing_lr, bicubic splits need only their HR). An explicitly named split whose
            HR folder is empty or absent is an error.
        scale: 2, 3, 4 or 8: picks ``LR_bicubic/X<scale>`` and the ``x<scale>`` name suffix.
        make_missing_lr: make absent bicubic LR files with ``imresize`` (MATLAB-exact, HR cropped
            top-left to a multiple of scale) instead of failing.
        replace_canonical: allow changing the course's canonical lists (:func:`canonical_dir`)
            when out_folder is that folder; without it such a change is refused.

    Returns:
        ``{split: path of the CSV written}``.

    Raises:
        FileNotFoundError: data_root absent; no split found; a named split's folders absent;
            LR files absent (the message lists every one of them, over all splits).
        ValueError: a name that is neither a known split nor a set folder under data_root.
        CanonicalListError: the lists would replace the course's canonical ones (rows before and
            after named) and replace_canonical is False.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise MissingDataError(f"data root not found: {root}")
    scale = check_scale(scale)
    out_folder = lists_folder(root) if out_folder is None else Path(out_folder)
    for folder in (out_folder, *out_folder.parents):    # the first that exists must be a folder
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == out_folder else f"is inside {folder}, which is a file"
                raise UserError(f"output folder {out_folder} {what}, not a folder: give --out a folder for "
                                "the <split>_images.csv lists")
            break
    if splits is None:
        found = {s: find_layout(root, s, scale) for s in SPLITS}
        table = {s: lay for s, lay in found.items() if _available(root, lay, make_missing_lr)}
        if not table:
            standard = layouts(scale)
            raise FileNotFoundError(
                f"no image folders of the standard layouts under {root} (looked for e.g. "
                f"{root / standard['train'].hr_dir} and {root / standard['Set5'].hr_dir}); see "
                "`python -m course_sr download`")
    else:
        chosen = [splits] if isinstance(splits, str) else list(splits)
        table = {s: find_layout(root, s, scale) for s in chosen}
        unknown = [s for s, lay in table.items() if lay is None]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}: not one of {', '.join(SPLITS)}, and no "
                             f"<Set>/HR folder of that name under {root} or {root / 'benchmark'}")
    missing: list[str] = []
    all_rows = {s: _split_rows(root, s, lay, scale, make_missing_lr, missing) for s, lay in table.items()}
    if missing:
        raise MissingDataError(
            f"{len(missing)} LR file(s) missing (pass make_missing_lr=True / --make-missing-lr to "
            "make bicubic ones with imresize): " + ", ".join(missing))
    empty = [s for s, rows in all_rows.items() if not rows]
    if empty:
        raise FileNotFoundError(f"no images found for split(s) {empty} under {root}")
    canon = canonical_dir()
    if canon is not None and out_folder.resolve() == canon.resolve() and not replace_canonical:
        changed = []
        for s, rows in all_rows.items():
            old = list_path(canon, s)
            if old.is_file() and read_data_list(canon, s) != [(h, l) for h, l in rows]:
                changed.append(f"{s} ({row_count(old)} rows -> {len(rows)})")
        if changed:
            raise CanonicalListError(
                f"refusing to change the course's canonical lists in {out_folder}: {', '.join(changed)}. "
                f"They define the course's splits for every student. A data root's own lists belong in "
                f"{lists_folder(root)} (the default: leave out --out); training and evaluation find them "
                "there first. To replace the course's lists on purpose (from the complete data), pass "
                "--replace-canonical")
    return {s: write_data_list(list_path(out_folder, s), rows) for s, rows in all_rows.items()}


def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr data-lists --data-root DIR [--out DIR] [--splits ...]``."""
    p = argparse.ArgumentParser(prog="python -m course_sr data-lists", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True, help="folder holding DIV2K/ and/or benchmark/ (or <Set>/ folders)")
    p.add_argument("--out", default=None,
                   help="output folder for <split>_images.csv (default: <data-root>/data_lists, where "
                        "train and evaluate look first)")
    p.add_argument("--splits", nargs="+", default=None, metavar="SPLIT",
                   help=f"default: every split found ({', '.join(SPLITS)}); any other name with a "
                        "<Set>/HR folder works too")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--make-missing-lr", action="store_true",
                   help="make absent bicubic LR files with the MATLAB-exact imresize")
    p.add_argument("--replace-canonical", action="store_true",
                   help="allow replacing the course's canonical lists (maintainers, from the complete data)")
    args = p.parse_args(argv)
    check_scale(args.scale, "--scale")
    out = Path(args.out) if args.out is not None else lists_folder(args.data_root)
    before = {f.name: row_count(f) for f in out.glob("*_images.csv")} if out.is_dir() else {}
    with user_errors(FileNotFoundError, ValueError):    # built-in errors below name the file or value
        written = create_data_lists(args.data_root, out, args.splits, args.scale, args.make_missing_lr,
                                    replace_canonical=args.replace_canonical)
    for split, path in written.items():
        n = row_count(path)
        old = before.get(path.name)
        note = "" if old is None or old == n else f"  (replaced a list of {old} rows)"
        print(f"{split:>16}: {n:5d} rows -> {path}{note}")
    return 0
