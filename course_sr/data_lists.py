"""The course's data lists: ``<csv_folder>/<split>_images.csv``.

Format (the course template's): no header, one image pair per row, ``HR_file,LR_file``, paths
relative to the data root (``config.HR_data_folder`` / ``config.LR_data_folder``), forward slashes,
rows sorted. ``create_data_lists`` writes them from the standard folder layouts that
``python -m course_sr download`` extracts::

    <root>/DIV2K/DIV2K_train_HR/0001.png          <root>/DIV2K/DIV2K_train_LR_bicubic/X4/0001x4.png
    <root>/DIV2K/DIV2K_valid_HR/0801.png          <root>/DIV2K/DIV2K_valid_LR_bicubic/X4/0801x4.png
    <root>/benchmark/<Set>/HR/<name>.png          <root>/benchmark/<Set>/LR_bicubic/X4/<name>x4.png
    <root>/DIV2K/DIV2K_train_LR_unknown/X4/0401x4.png    (NTIRE 2017 track 2, "unknown" degradation)
    <root>/DIV2K/DIV2K_valid_LR_unknown/X4/0801x4.png

Splits (``SPLITS``):

==================  ================================================  ==============================
split               HR column                                         LR column
==================  ================================================  ==============================
train               DIV2K train HR (0001-0800)                        bicubic x4
valid               DIV2K valid HR (0801-0900)                        bicubic x4
Set5, Set14,        ``benchmark/<Set>/HR``                            bicubic x4
B100, Urban100
unpaired_hr         DIV2K train HR 0001-0400 (CycleSR's clean domain)  bicubic x4 of the same image
unpaired_real_lr    EMPTY: real LR images have no HR counterpart      track-2 unknown x4, 0401-0800
valid_unknown       DIV2K valid HR                                    track-2 unknown x4 (paired)
==================  ================================================  ==============================

``unpaired_real_lr`` keeps the two-column format with an empty HR field (``,DIV2K/.../0401x4.png``)
so one reader serves every list; HR 0001-0400 and real LR 0401-0800 come from different images,
so no pair leaks between CycleSR's two domains. ``read_data_list`` returns ``("", lr)`` for such
rows; ``SRDataset`` refuses them with a message pointing to the unpaired dataset.

File names: HR files are any image file in the HR folder (``.png``, ``.jpg``, ``.bmp``, ``.tif``;
extension case ignored, so ``0001.PNG`` works); the LR partner of ``<stem>.<ext>`` is
``<stem>x<scale>.<any image ext>`` (``.png`` preferred), where ``<stem>`` is everything before the
last dot (``img.v2.png`` -> ``img.v2x4.png``). Missing LR files are made with the kit's MATLAB-exact
``imresize`` when asked (``make_missing_lr=True``, bicubic splits only: the unknown degradation
cannot be made), else the error lists every missing file.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
STANDARD_SPLITS = ("train", "valid") + BENCHMARK_SETS
UNPAIRED_SPLITS = ("unpaired_hr", "unpaired_real_lr", "valid_unknown")
SPLITS = STANDARD_SPLITS + UNPAIRED_SPLITS


@dataclass(frozen=True)
class Layout:
    """Where one split's files live, relative to the data root.

    ``hr_dir`` None: an LR-only (unpaired) split. ``ids``: inclusive range of DIV2K image numbers
    to keep (None: every image in the folder). ``lr_makeable``: bicubic LR can be regenerated
    from HR; the track-2 "unknown" degradation cannot.
    """

    hr_dir: str | None
    lr_dir: str
    ids: tuple[int, int] | None = None
    lr_makeable: bool = True


def layouts(scale: int = 4) -> dict[str, Layout]:
    """The standard layout of every split in ``SPLITS`` at this scale."""
    x = f"X{scale}"
    out = {
        "train": Layout("DIV2K/DIV2K_train_HR", f"DIV2K/DIV2K_train_LR_bicubic/{x}"),
        "valid": Layout("DIV2K/DIV2K_valid_HR", f"DIV2K/DIV2K_valid_LR_bicubic/{x}"),
    }
    for s in BENCHMARK_SETS:
        out[s] = Layout(f"benchmark/{s}/HR", f"benchmark/{s}/LR_bicubic/{x}")
    out["unpaired_hr"] = Layout("DIV2K/DIV2K_train_HR", f"DIV2K/DIV2K_train_LR_bicubic/{x}", (1, 400))
    out["unpaired_real_lr"] = Layout(None, f"DIV2K/DIV2K_train_LR_unknown/{x}", (401, 800), False)
    out["valid_unknown"] = Layout("DIV2K/DIV2K_valid_HR", f"DIV2K/DIV2K_valid_LR_unknown/{x}", None, False)
    return out


# --------------------------------------------------------------------------------------
# Reading and writing the CSV files
# --------------------------------------------------------------------------------------
def list_path(csv_folder, split: str) -> Path:
    """``<csv_folder>/<split>_images.csv``."""
    return Path(csv_folder) / f"{split}_images.csv"


def write_data_list(path, rows) -> Path:
    """Write ``(hr_rel, lr_rel)`` rows in the course format (no header, ``\\n`` line ends).

    Written to a temporary file first and renamed, so a reader never sees half a list.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for hr, lr in rows:
        writer.writerow([hr, lr])
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_data_list(csv_folder, split: str) -> list[tuple[str, str]]:
    """Rows ``(hr_rel, lr_rel)`` of ``<csv_folder>/<split>_images.csv``, in file order.

    ``hr_rel`` is ``""`` in LR-only lists (``unpaired_real_lr``). Blank lines are skipped.

    Raises:
        FileNotFoundError: no such list (the message names the path and how to make one).
        ValueError: the list has no rows, or a row is malformed (the message names the file and
            the line number).
    """
    path = list_path(csv_folder, split)
    if not path.is_file():
        raise FileNotFoundError(
            f"data list not found: {path} (split {split!r}). Make it with "
            f"`python -m course_sr data-lists --data-root DIR --out {csv_folder}`, or use the "
            "embedded sample (config data_root=None)")
    rows: list[tuple[str, str]] = []
    with open(path, newline="", encoding="utf-8") as f:
        for lineno, fields in enumerate(csv.reader(f), start=1):
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}, line {lineno}: expected 2 fields HR_file,LR_file, "
                                 f"got {len(fields)}: {fields!r}")
            hr, lr = (x.strip() for x in fields)
            if not lr:
                raise ValueError(f"{path}, line {lineno}: the LR_file field is empty: {fields!r}")
            rows.append((hr, lr))
    if not rows:
        raise ValueError(f"data list {path} is empty (split {split!r} has no images)")
    return rows


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
    from course_sr.imresize import matlab_lr
    from course_sr.utils import load_image, save_image

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


def create_data_lists(data_root, out_folder="data_lists", splits=None, scale: int = 4,
                      make_missing_lr: bool = False) -> dict[str, Path]:
    """Write ``<out_folder>/<split>_images.csv`` for the standard layouts under ``data_root``.

    Args:
        data_root: folder holding ``DIV2K/`` and/or ``benchmark/`` (rows are relative to it).
        out_folder: where the CSV files go (created).
        splits: names from ``SPLITS``. None: every split whose HR and LR folders hold images
            under data_root (e.g. only the four test sets after ``download --what benchmark``;
            with make_missing_lr, bicubic splits need only their HR). An explicitly named
            split whose HR folder is empty or absent is an error.
        scale: 2, 3, 4 or 8: picks ``LR_bicubic/X<scale>`` and the ``x<scale>`` name suffix.
        make_missing_lr: make absent bicubic LR files with ``imresize`` (MATLAB-exact, HR cropped
            top-left to a multiple of scale) instead of failing.

    Returns:
        ``{split: path of the CSV written}``.

    Raises:
        FileNotFoundError: data_root absent; no split found; a named split's folders absent;
            LR files absent (the message lists every one of them, over all splits).
        ValueError: an unknown split name.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root not found: {root}")
    table = layouts(scale)
    if splits is None:
        chosen = [s for s in SPLITS if _available(root, table[s], make_missing_lr)]
        if not chosen:
            raise FileNotFoundError(
                f"no image folders of the standard layouts under {root} (looked for e.g. "
                f"{root / table['train'].hr_dir} and {root / table['Set5'].hr_dir}); see "
                "`python -m course_sr download`")
    else:
        chosen = [splits] if isinstance(splits, str) else list(splits)
        unknown = [s for s in chosen if s not in table]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
    missing: list[str] = []
    all_rows = {s: _split_rows(root, s, table[s], scale, make_missing_lr, missing) for s in chosen}
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} LR file(s) missing (pass make_missing_lr=True / --make-missing-lr to "
            "make bicubic ones with imresize):\n  " + "\n  ".join(missing))
    empty = [s for s, rows in all_rows.items() if not rows]
    if empty:
        raise FileNotFoundError(f"no images found for split(s) {empty} under {root}")
    return {s: write_data_list(list_path(out_folder, s), rows) for s, rows in all_rows.items()}


def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr data-lists --data-root DIR [--out data_lists] [--splits ...]``."""
    p = argparse.ArgumentParser(prog="python -m course_sr data-lists", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True, help="folder holding DIV2K/ and/or benchmark/")
    p.add_argument("--out", default="data_lists", help="output folder for <split>_images.csv")
    p.add_argument("--splits", nargs="+", default=None, choices=SPLITS, metavar="SPLIT",
                   help=f"default: every split found ({', '.join(SPLITS)})")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--make-missing-lr", action="store_true",
                   help="make absent bicubic LR files with the MATLAB-exact imresize")
    args = p.parse_args(argv)
    try:
        written = create_data_lists(args.data_root, args.out, args.splits, args.scale, args.make_missing_lr)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for split, path in written.items():
        n = sum(1 for _ in open(path, encoding="utf-8"))
        print(f"{split:>16}: {n:5d} rows -> {path}")
    return 0
