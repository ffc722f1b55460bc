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

Where a split's list lives (:func:`find_data_list`, the one rule for ``train``, ``evaluate``,
``data-lists``, ``download --data-lists`` and the notebooks; called where paths are resolved)::

    1. <csv_folder>/<split>_images.csv          when a csv_folder is given (config or --csv-folder)
    2. <data_root>/data_lists/<split>_images.csv  the data root's own lists (what `data-lists` writes)
    3. the course's canonical list              the repository's data_lists/, shipped inside the
                                                package as course_sr/course_lists/ (so a pip-installed
                                                kit has it); only for a standard split at x4, and only
                                                when the data root holds that split's standard folder

So a student who downloads into a data root needs no list at all (3), a partial or course-made
data root runs ``python -m course_sr data-lists --data-root D`` once (2, which takes precedence),
and nothing depends on the working directory. ``create_data_lists`` writes into
``<data_root>/data_lists`` by default and refuses to change the canonical lists unless told to
(``replace_canonical=True``, ``--replace-canonical``): rewriting them from a partial data root
would silently cut the course's 800 training images to what that root holds.

Layouts the folder scan accepts (the same in ``data-lists`` and ``evaluate``): the standard ones
above; for a benchmark set or any other set name, ``<root>/benchmark/<Set>/`` or ``<root>/<Set>/``
holding ``HR/`` and ``LR_bicubic/X<scale>/`` (folder names matched case-insensitively, so
``--data-root ../shared/benchmarks`` works).
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from course_sr.plumbing.errors import UserError, naming, user_errors

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
STANDARD_SPLITS = ("train", "valid") + BENCHMARK_SETS
UNPAIRED_SPLITS = ("unpaired_hr", "unpaired_real_lr", "valid_unknown")
SPLITS = STANDARD_SPLITS + UNPAIRED_SPLITS
LISTS_FOLDER = "data_lists"            # <data_root>/data_lists: a data root's own lists
# The `python -m course_sr download --what` group(s) that bring each split's files.
DOWNLOAD_GROUPS = {"train": "div2k", "valid": "div2k", **{s: "benchmark" for s in BENCHMARK_SETS},
                   "unpaired_hr": "div2k", "unpaired_real_lr": "unknown", "valid_unknown": "div2k unknown"}


class MissingDataError(UserError, FileNotFoundError):
    """Data a run or command needs is not where the rules say. The message (one line) names the
    list or folder and the command that makes it; commands print it without a traceback."""


class DataListError(UserError, ValueError):
    """A data list that cannot be read: not UTF-8, a malformed row, no rows (the message names the
    file and, for a row, its line number)."""


def check_scale(scale, option: str = "scale") -> int:
    """``scale`` as an int >= 2, or a :class:`UserError` naming the value (``--scale 0`` would
    otherwise fail later as a division by zero or a missing ``X0`` folder)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise UserError(f"{option} {scale!r}: must be a whole number >= 2, the SR factor (the course uses 4)")
    return scale


def _open_text(path: Path):
    """``path`` opened for reading as UTF-8 CSV text."""
    return open(path, newline="", encoding="utf-8")


def _not_utf8(path: Path, err: UnicodeDecodeError) -> DataListError:
    """The error for a list that is not UTF-8, naming the file and the first bad line."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as whole:                 # ``err`` counts within one read block
        line = data.count(b"\n", 0, whole.start) + 1
        where = f", line {line} (byte {data[whole.start:whole.start + 1]!r})"
    return DataListError(f"{path} is not UTF-8 text{where}: save the list as UTF-8 CSV (rows HR_file,LR_file), "
                         "or write it again with `python -m course_sr data-lists`")


class CanonicalListError(UserError, ValueError):
    """``create_data_lists`` would change the course's canonical lists (see the module docstring)."""


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


def find_dir(parent, name: str) -> Path | None:
    """``parent/name``, or a folder differing only in case (``set5`` -> ``Set5``); None if neither."""
    parent = Path(parent)
    if (parent / name).is_dir():
        return parent / name
    if parent.is_dir():
        for p in sorted(parent.iterdir()):
            if p.is_dir() and p.name.lower() == name.lower():
                return p
    return None


def find_layout(data_root, split: str, scale: int = 4) -> Layout | None:
    """The folders of ``split`` under ``data_root``, as the scan finds them (module docstring).

    DIV2K splits: their standard layout. A benchmark set, or any other name: the first of
    ``<root>/benchmark/<split>/`` and ``<root>/<split>/`` (case-insensitive) that holds ``HR/``,
    with ``LR_bicubic/X<scale>/`` beside it. None when the split has no folder there.
    """
    root = Path(data_root)
    standard = layouts(scale)
    if split in standard and split not in BENCHMARK_SETS:
        return standard[split]
    for parent in (root / "benchmark", root):
        folder = find_dir(parent, split)
        if folder is not None and (folder / "HR").is_dir():
            rel = folder.relative_to(root).as_posix()
            return Layout(f"{rel}/HR", f"{rel}/LR_bicubic/X{scale}")
    return standard.get(split)


# --------------------------------------------------------------------------------------
# Where a split's list lives: the one rule
# --------------------------------------------------------------------------------------
def canonical_dir() -> Path | None:
    """The course's canonical lists: ``course_sr/course_lists/`` in an installed kit (the
    repository's ``data_lists/``, shipped by ``pyproject.toml``), or the checkout's ``data_lists/``
    itself (editable install, repository). None when neither is there."""
    import course_sr                      # the package's folder, wherever this module sits in it

    package = Path(course_sr.__file__).resolve().parent
    for folder in (package / "course_lists", package.parent / LISTS_FOLDER):
        if (folder / "train_images.csv").is_file():
            return folder
    return None


def lists_folder(data_root) -> Path:
    """``<data_root>/data_lists``: where a data root's own lists live (and ``data-lists`` writes)."""
    return Path(data_root) / LISTS_FOLDER


def _fetch_hint(data_root, split: str) -> str:
    groups = DOWNLOAD_GROUPS.get(split)
    if groups is None:
        return ""
    return f"`python -m course_sr download --root {data_root} --what {groups}`"


def find_data_list(split: str, data_root, csv_folder=None, scale: int = 4) -> Path:
    """The CSV file of ``split``, by the rule of the module docstring (explicit ``csv_folder``,
    then ``<data_root>/data_lists``, then the course's canonical list).

    Raises:
        MissingDataError: no list applies; the message names what was looked for and the
            command that makes it (``download`` for absent data, ``data-lists`` for a list).
    """
    if csv_folder is not None:
        path = list_path(csv_folder, split)
        if path.is_file():
            return path
        where = f" --data-root {data_root}" if data_root is not None else " --data-root DIR"
        raise MissingDataError(
            f"data list not found: {path} (split {split!r}, csv_folder {csv_folder}). Make it with "
            f"`python -m course_sr data-lists{where} --out {csv_folder}`, or leave csv_folder unset "
            "to use <data_root>/data_lists or the course's lists")
    if data_root is None:
        raise ValueError(f"split {split!r}: neither a data root nor a csv_folder is given")
    own = list_path(lists_folder(data_root), split)
    if own.is_file():
        return own
    layout = layouts(scale).get(split) if int(scale) == 4 else None
    canon = canonical_dir()
    if layout is not None and canon is not None and list_path(canon, split).is_file():
        folder = Path(data_root) / (layout.hr_dir or layout.lr_dir)
        if folder.is_dir():
            return list_path(canon, split)
        raise MissingDataError(
            f"split {split!r}: no data in {data_root}: {folder} does not exist (and there is no list "
            f"{own}). Fetch it with {_fetch_hint(data_root, split)}; for data of your own, write its "
            f"lists with `python -m course_sr data-lists --data-root {data_root}`")
    what = "" if split in SPLITS else (" (not one of the course's splits: write the CSV yourself, rows "
                                       "HR_file,LR_file relative to the data root)")
    raise MissingDataError(f"no data list for split {split!r}: {own} does not exist{what}. Make it with "
                           f"`python -m course_sr data-lists --data-root {data_root}`")


def missing_fix(split: str, path, data_root=None) -> str:
    """The sentence that tells how to get the files a list names (its data root's or the course's)."""
    canon = canonical_dir()
    root = data_root if data_root is not None else "DIR"
    fetch = _fetch_hint(root, split)
    if path is not None and canon is not None and Path(path).parent.resolve() == canon.resolve():
        return (f"That is the course's list of the whole set; a data root holding only part of it needs "
                f"lists of its own: `python -m course_sr data-lists --data-root {root}`"
                + (f"; for the whole set: {fetch}" if fetch else ""))
    return ((f"Fetch the files ({fetch}) or " if fetch else "Put the files there or ")
            + f"rewrite the list from what is there: `python -m course_sr data-lists --data-root {root}`")


def check_listed_files(split: str, path, files, data_root=None) -> None:
    """Raise one ``MissingDataError`` when some of ``files`` (the paths a list names) are absent:
    how many, the first three, and the command that fixes it (:func:`missing_fix`), on one line
    (1,600 missing files of the course's list must not print 1,600 lines)."""
    missing = [str(f) for f in files if not os.path.isfile(f)]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise MissingDataError(f"split {split!r}: {len(missing)} of the {len(files)} files listed in {path} "
                               f"are missing: {shown}. {missing_fix(split, path, data_root)}")


def check_splits(config, splits) -> dict[str, Path]:
    """Check, before anything is decoded, that every split of ``splits`` has a list (the one rule)
    and that every file it names exists; ``{split: list path}``. ``config``: a data config (its
    ``data_root``, ``csv_folder``, ``HR_data_folder``, ``LR_data_folder``, ``scaling_factor``).

    Raises ``MissingDataError`` (one line, the command that fixes it) for the first split short of data.
    """
    get = config.get
    root, scale = get("data_root"), int(get("scaling_factor", 4))
    hr_root = get("HR_data_folder") or root
    lr_root = get("LR_data_folder") or root
    found = {}
    for split in dict.fromkeys(s for s in splits if s):
        path = find_data_list(split, root, get("csv_folder"), scale)
        rows = read_data_list(path.parent, split)
        files = [os.path.join(hr_root, h) for h, _ in rows if h] + [os.path.join(lr_root, l) for _, l in rows]
        check_listed_files(split, path, files, root)
        found[split] = path
    return found


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
    try:
        with naming(path):
            tmp.write_text(buf.getvalue(), encoding="utf-8")
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)                     # a full disk leaves no half-written temporary
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
        raise MissingDataError(
            f"data list not found: {path} (split {split!r}). Make it with "
            f"`python -m course_sr data-lists --data-root DIR --out {csv_folder}`, or use the "
            "embedded sample (config data_root=None)")
    rows: list[tuple[str, str]] = []
    try:
        with _open_text(path) as f:
            for lineno, fields in enumerate(csv.reader(f), start=1):
                if not fields or all(not x.strip() for x in fields):
                    continue
                if len(fields) != 2:
                    raise DataListError(f"{path}, line {lineno}: expected 2 fields HR_file,LR_file, "
                                        f"got {len(fields)}: {fields!r}")
                hr, lr = (x.strip() for x in fields)
                if not lr:
                    raise DataListError(f"{path}, line {lineno}: the LR_file field is empty: {fields!r}")
                rows.append((hr, lr))
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from err
    if not rows:
        raise DataListError(f"data list {path} is empty (split {split!r} has no images)")
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


def _row_count(path: Path) -> int:
    try:
        with _open_text(path) as f:
            return sum(1 for line in f if line.strip())
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from err


def create_data_lists(data_root, out_folder=None, splits=None, scale: int = 4,
                      make_missing_lr: bool = False, replace_canonical: bool = False) -> dict[str, Path]:
    """Write ``<out_folder>/<split>_images.csv`` for the folders found under ``data_root``.

    Args:
        data_root: folder holding ``DIV2K/`` and/or ``benchmark/`` (or ``<Set>/`` folders; rows are
            relative to it). Layouts: the module docstring.
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
                changed.append(f"{s} ({_row_count(old)} rows -> {len(rows)})")
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
    before = {f.name: _row_count(f) for f in out.glob("*_images.csv")} if out.is_dir() else {}
    with user_errors(FileNotFoundError, ValueError):    # built-in errors below name the file or value
        written = create_data_lists(args.data_root, out, args.splits, args.scale, args.make_missing_lr,
                                    replace_canonical=args.replace_canonical)
    for split, path in written.items():
        n = _row_count(path)
        old = before.get(path.name)
        note = "" if old is None or old == n else f"  (replaced a list of {old} rows)"
        print(f"{split:>16}: {n:5d} rows -> {path}{note}")
    return 0
