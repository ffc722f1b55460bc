"""The course's list files: their format, where a split's list is found, reading, writing, checking.

Format (the course template's): ``<csv_folder>/<split>_images.csv``, no header, one image pair per
row, ``HR_file,LR_file``, paths relative to the data root (``config.HR_data_folder`` /
``config.LR_data_folder``), forward slashes, rows sorted, UTF-8.

``unpaired_real_lr`` keeps the two-column format with an empty HR field (``,DIV2K/.../0401x4.png``)
so one reader serves every list. ``read_data_list`` returns ``("", lr)`` for such rows;
``SRDataset`` refuses them with a message pointing to the unpaired dataset.

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
and nothing depends on the working directory. Making lists from image folders is
:mod:`course_sr.data.lists`.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from course_sr.data.splits import DOWNLOAD_GROUPS, SPLITS, layouts
from course_sr.plumbing.errors import UserError, naming
from course_sr.utils import config_get

LISTS_FOLDER = "data_lists"            # <data_root>/data_lists: a data root's own lists
PACKAGE = Path(__file__).resolve().parents[1]      # the course_sr folder, wherever it is installed


class MissingDataError(UserError, FileNotFoundError):
    """Data a run or command needs is not where the rules say. The message (one line) names the
    list or folder and the command that makes it; commands print it without a traceback."""


class DataListError(UserError, ValueError):
    """A data list that cannot be read: not UTF-8, a malformed row, no rows (the message names the
    file and, for a row, its line number)."""


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


# --------------------------------------------------------------------------------------
# Where a split's list lives: the one rule
# --------------------------------------------------------------------------------------
def canonical_dir() -> Path | None:
    """The course's canonical lists: ``course_sr/course_lists/`` in an installed kit (the
    repository's ``data_lists/``, shipped by ``pyproject.toml``), or the checkout's ``data_lists/``
    itself (editable install, repository). None when neither is there."""
    for folder in (PACKAGE / "course_lists", PACKAGE.parent / LISTS_FOLDER):
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
    root, scale = config_get(config, "data_root"), int(config_get(config, "scaling_factor", 4))
    hr_root = config_get(config, "HR_data_folder") or root
    lr_root = config_get(config, "LR_data_folder") or root
    found = {}
    for split in dict.fromkeys(s for s in splits if s):
        path = find_data_list(split, root, config_get(config, "csv_folder"), scale)
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


def row_count(path: Path) -> int:
    """The number of non-blank lines of a list (a list that is not UTF-8 raises :func:`read_data_list`'s error)."""
    try:
        with _open_text(path) as f:
            return sum(1 for line in f if line.strip())
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from err


