"""Fetch DIV2K and the SR benchmark sets: resumable, checked, extracted atomically.

    python -m course_sr download --root data --what all       # everything below
    python -m course_sr download --list                        # the archive table, no download

What lands where (the layouts ``data_lists.create_data_lists`` reads)::

    <root>/DIV2K/DIV2K_{train,valid}_HR/0001.png
    <root>/DIV2K/DIV2K_{train,valid}_LR_bicubic/X4/0001x4.png
    <root>/DIV2K/DIV2K_{train,valid}_LR_unknown/X4/0001x4.png     (track 2, for CycleSR)
    <root>/benchmark/{Set5,Set14,B100,Urban100}/HR/<name>.png
    <root>/benchmark/{Set5,Set14,B100,Urban100}/LR_bicubic/X{2,3,4}/<name>x4.png

Other sources, checked and extracted exactly as a download is:

- ``--mirror BASE_URL`` (or ``COURSE_SR_MIRROR``): the same archive names from a course's own
  server, ``BASE_URL/<name>``. They are checked against the table below; when the server also
  has ``BASE_URL/SHA256SUMS`` (``sha256sum``'s format), an archive listed there with another
  hash is taken as the course's own version of it (a cut of the data, say) and checked against
  that hash instead, and the run says so. Folders made from such an archive are kept by later
  runs, which do not replace a course's data with the published one.
- ``--archive FILE ...``: archives already fetched some other way (a shared drive, a browser).
  The file name must be the table's; nothing is downloaded, the file is left where it is.
- ``--checksums FILE|URL``: a ``SHA256SUMS`` for a course's own archives (``--archive`` or a
  mirror without one).

How it stays safe on a flaky Colab connection:
1. Download streams to ``<root>/.downloads/<archive>.part``; a broken transfer resumes with an
   HTTP ``Range`` request (a server that ignores ``Range`` makes it start over cleanly).
2. The finished file is checked: size and sha256 against the table below; where no hash is
   published, size plus a full read of the archive (zip CRCs / every tar member).
3. Extraction writes into a hidden sibling ``.<folder>.partial`` and renames it into place only
   when every file is written, with a marker ``.course_sr_complete.json`` (archive name and
   sha256) inside. Because the marker moves with the folder in one rename, a folder either has
   it and is complete, or does not exist yet. A complete folder is skipped on the next run,
   without touching the network.
4. Before anything is written, every member is checked, and an archive is refused (a
   ``DownloadError`` naming the archive and the member) for: an absolute path or ``..``; a link
   or special file (tar links, devices and fifos; zip entries whose Unix mode says so);
   a name component over 255 bytes; a path that is both a file and a folder; or files that
   together declare more than the size cap: ``EXPAND_TABLE`` (2) x the table's size, or for a
   course's own archive (no size in the table) ``EXPAND_OWN`` (10) x the file's own size
   (``extraction_cap``). The bytes written are counted against the same cap, and no member may
   write more than it declares. A disk that fills up (while downloading or extracting) stops
   the run with "disk full" and the file or folder; a failed extraction leaves no partial
   folder, and folders completed earlier stay as they are.

Only the standard library and tqdm: nothing to install on Colab.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from course_sr.data.lists import BENCHMARK_SETS
from course_sr.plumbing.errors import DISK_FULL_ERRNOS, UserError

MARKER = ".course_sr_complete.json"
DOWNLOADS = ".downloads"
EXPAND_TABLE = 2       # extraction cap: this x the table's size of the archive (see extraction_cap)
EXPAND_OWN = 10        # ... or this x the file's own size for a course's own archive (no size in the table)
NAME_MAX = 255         # bytes in one file name component (ext4 and most file systems)


class DownloadError(UserError, RuntimeError):
    """A download, check or extraction failed; the message names the URL or file and what to do.

    Deliberately not an ``OSError``: the retry loop retries network ``OSError``s only.
    """


@dataclass(frozen=True)
class Archive:
    """One archive of the table.

    ``folders`` maps a folder inside the archive to a folder under ``root``; files outside
    every mapped folder are ignored, and each mapped folder must hold at least one file.
    ``size`` (bytes) and ``sha256`` are None where no source publishes them;
    ``checksum_source`` says where the numbers come from.
    """

    name: str                          # file name, also the key in .downloads/
    group: str                         # div2k | unknown | benchmark  (what --what selects)
    url: str
    size: int | None
    sha256: str | None
    checksum_source: str
    folders: tuple[tuple[str, str], ...]
    published: bool = True             # False: a course's own archive, checked against its SHA256SUMS


_DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
# TensorFlow Datasets records sizes and sha256 for every DIV2K archive in its checksum file
# (tensorflow/datasets: tensorflow_datasets/datasets/div2k/checksums.tsv, earlier
# url_checksums/div2k.txt; both list the same values). ETH itself publishes no hashes.
_TFDS = "TensorFlow Datasets, tensorflow_datasets/datasets/div2k/checksums.tsv"


def _div2k(name: str, group: str, size: int, sha256: str, inner: str) -> Archive:
    return Archive(name, group, _DIV2K_URL + name, size, sha256, _TFDS, ((inner, f"DIV2K/{inner}"),))


ARCHIVES: tuple[Archive, ...] = (
    _div2k("DIV2K_train_HR.zip", "div2k", 3530603713,
           "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", "DIV2K_train_HR"),
    _div2k("DIV2K_valid_HR.zip", "div2k", 448993893,
           "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", "DIV2K_valid_HR"),
    _div2k("DIV2K_train_LR_bicubic_X4.zip", "div2k", 246914039,
           "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a",
           "DIV2K_train_LR_bicubic/X4"),
    _div2k("DIV2K_valid_LR_bicubic_X4.zip", "div2k", 31505881,
           "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553",
           "DIV2K_valid_LR_bicubic/X4"),
    # NTIRE 2017 track 2 ("unknown" degradation) x4 LR: the real-LR domain of CycleSR.
    _div2k("DIV2K_train_LR_unknown_X4.zip", "unknown", 208956781,
           "d131c7aad51e0abbdc4433362ce899e5e75f40b9847ead70ee995188e8fd0adb",
           "DIV2K_train_LR_unknown/X4"),
    _div2k("DIV2K_valid_LR_unknown_X4.zip", "unknown", 26695095,
           "e3897555a98de1157c20974fb6093105fbc1ff5e9caf7bd348f58f6da140fbef",
           "DIV2K_valid_LR_unknown/X4"),
    # The EDSR authors' benchmark archive (Lim et al. 2017): Set5, Set14, B100, Urban100 with
    # MATLAB-bicubic LR at x2/x3/x4, already in the <Set>/HR, <Set>/LR_bicubic/X4 layout.
    # SNU publishes no hash. The size and sha256 below are those another public project
    # recorded for its copy and checks in its tests (a third-party record, not the publisher's);
    # the full tar read of step 2 is not needed when the hash matches.
    Archive(
        "benchmark.tar", "benchmark", "https://cv.snu.ac.kr/research/EDSR/benchmark.tar",
        # SNU publishes no hash, so none is pinned (a third party's record could block every
        # student if wrong): size (a whole number of 10 KiB tar records) + a full tar read.
        250112000, None,
        "no published hash: size + full archive read",
        tuple((f"benchmark/{s}", f"benchmark/{s}") for s in BENCHMARK_SETS),
    ),
)

GROUPS = ("div2k", "unknown", "benchmark")


def format_table(archives: Sequence[Archive] = ARCHIVES) -> str:
    """The archive table as text: what will be fetched, how big, and how it is checked."""
    rows = []
    for a in archives:
        size = f"{a.size / 2**20:,.0f} MiB" if a.size else "size ?"
        check = f"sha256 {a.sha256[:12]}..." if a.sha256 else "size + full archive read"
        rows.append(f"{a.group:<9} {a.name:<31} {size:>10}  {check}\n{'':<10}{a.url}\n"
                    f"{'':<10}checksums: {a.checksum_source}")
    return "\n".join(rows)


def select(what: str | Iterable[str], archives: Sequence[Archive] = ARCHIVES) -> list[Archive]:
    """Archives of the groups named by ``what``: div2k | unknown | benchmark | all (or a list)."""
    names = [what] if isinstance(what, str) else list(what)
    names = [{"div2k-unknown": "unknown"}.get(n, n) for n in names]
    bad = [n for n in names if n not in (*GROUPS, "all")]
    if bad:
        raise ValueError(f"unknown --what {bad}; choose from {', '.join((*GROUPS, 'all'))}")
    groups = set(GROUPS) if "all" in names else set(names)
    return [a for a in archives if a.group in groups]


# --------------------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------------------
def read_checksums(source: str | Path, *, optional: bool = False, timeout: float = 60.0) -> dict[str, str] | None:
    """``{archive name: sha256}`` from a ``SHA256SUMS`` file or URL (lines ``<hex>  [*]<name>``).

    ``optional``: a URL that answers 404 gives None (a mirror need not have one). Errors name the
    source and line.
    """
    text_source = str(source)
    if re.match(r"https?://", text_source):
        try:
            with urllib.request.urlopen(urllib.request.Request(text_source, headers={"User-Agent": "course_sr-download"}),
                                        timeout=timeout) as r:
                text = r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            if optional and e.code == 404:
                return None
            raise DownloadError(f"{text_source}: HTTP {e.code} {e.reason}") from e
        except (OSError, http.client.HTTPException, UnicodeDecodeError) as e:
            raise DownloadError(f"cannot read the checksums {text_source}: {type(e).__name__}: {e}") from e
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DownloadError(f"cannot read the checksums {source}: {e}") from e
    sums = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*([0-9a-fA-F]{64})\s+\*?(\S.*?)\s*", line)
        if not m:
            raise DownloadError(f"{text_source}, line {lineno}: expected '<sha256>  <file name>', got {line!r}")
        sums[Path(m.group(2)).name] = m.group(1).lower()
    return sums


def with_source(archives: Sequence[Archive], mirror: str | None = None, sums: dict[str, str] | None = None,
                sums_source: str = "") -> list[Archive]:
    """The table entries fetched from ``mirror`` (``<mirror>/<name>``) and, for names in ``sums``
    whose hash differs from the table's, checked against that hash (a course's own archive)."""
    out = []
    for a in archives:
        changes = {}
        if mirror:
            changes["url"] = mirror.rstrip("/") + "/" + a.name
        own = (sums or {}).get(a.name)
        if own is not None and own != a.sha256:
            changes.update(sha256=own, size=None, published=False,
                           checksum_source=f"{sums_source} (the course's own archive, not the published one)")
        out.append(replace(a, **changes) if changes else a)
    return out


def download(
    root: str | Path,
    what: str | Iterable[str] = "all",
    *,
    keep_archives: bool = False,
    data_lists: str | Path | bool | None = None,
    archives: Sequence[Archive] | None = None,
    mirror: str | None = None,
    checksums: str | Path | None = None,
    files: Sequence[str | Path] | None = None,
    retries: int = 5,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> dict[str, str]:
    """Download, check and extract the archives of ``what`` under ``root``.

    Returns ``{archive name: "skipped" | "extracted"}`` ("skipped": every folder it makes is
    already complete). ``archives`` replaces the table (tests point it at a local server).
    ``mirror``: fetch ``<mirror>/<name>`` instead of the publishers' URLs (its ``SHA256SUMS`` is
    read when it has one). ``checksums``: a ``SHA256SUMS`` file or URL for a course's own
    archives. ``files``: archives already on disk (names as in the table): checked and extracted
    in place, nothing downloaded, ``what`` ignored. ``data_lists``: when given, the folder where
    ``data_lists.create_data_lists`` then writes the course CSVs of every split found under root
    (True: ``<root>/data_lists``, where training and evaluation look first). Raises
    ``DownloadError`` with the URL or file.
    """
    if retries < 0 or not timeout > 0:
        raise DownloadError(f"retries must be >= 0 and timeout > 0 seconds, got retries={retries}, "
                            f"timeout={timeout}")
    root = Path(root)
    table = list(ARCHIVES if archives is None else archives)
    sums, sums_source = None, ""
    if checksums is not None:
        sums, sums_source = read_checksums(checksums, timeout=timeout), str(checksums)
    table = with_source(table, mirror, sums, sums_source)
    given: dict[str, Path] = {}
    if files:
        by_name = {a.name: a for a in table}
        for f in files:
            path = Path(f)
            if path.name not in by_name:
                raise DownloadError(f"{path}: not an archive of the table (the file name must be one of "
                                    f"{', '.join(by_name)}; see --list)")
            if not path.is_file():
                raise DownloadError(f"{path}: no such file")
            given[path.name] = path
        chosen = [by_name[n] for n in given]
    else:
        chosen = select(what, table)
    root.mkdir(parents=True, exist_ok=True)
    # Look at every target before any network traffic: a clash found after a 3.5 GB
    # download would waste the student's afternoon.
    pending = [a for a in chosen if not _all_complete(root, a)]
    if pending and mirror and checksums is None and not files:   # the mirror's own list, when it has one
        sums_source = mirror.rstrip("/") + "/SHA256SUMS"
        sums = read_checksums(sums_source, optional=True, timeout=timeout)
        if sums:
            chosen = with_source(chosen, None, sums, sums_source)
            pending = [a for a in chosen if not _all_complete(root, a)]
    needed = sum((a.size or 0) * (1 if a.name in given else 2) for a in pending)   # archive + its files
    free = shutil.disk_usage(root).free
    if needed > free:
        raise DownloadError(f"{root} has {free / 2**30:.1f} GiB free but the archives need about "
                            f"{needed / 2**30:.1f} GiB (archive + extracted files)")
    status = {}
    for a in chosen:
        if a not in pending:
            print(f"{a.name}: already extracted, skipping")
            status[a.name] = "skipped"
            continue
        if not a.published:
            print(f"{a.name}: checked against {a.checksum_source}")
        if a.name in given:
            path = given[a.name]
            digest = verify(a, path, move_bad=False)
        else:
            path, digest = fetch(a, root / DOWNLOADS, retries=retries, retry_wait=retry_wait,
                                 timeout=timeout, progress=progress)
        extract(a, path, root, digest, progress=progress)
        if not keep_archives and a.name not in given:
            path.unlink()
        status[a.name] = "extracted"
    if data_lists is not None and data_lists is not False:
        from course_sr.data.lists import create_data_lists   # looked up at call time (tests replace it)

        out = root / "data_lists" if data_lists is True else Path(data_lists)
        try:
            create_data_lists(root, out_folder=out, splits=None)
        except (FileNotFoundError, ValueError) as e:
            raise DownloadError(f"the archives are in place, but the data lists were not written: {e}") from e
    return status


# --------------------------------------------------------------------------------------
# 1. Download with resume
# --------------------------------------------------------------------------------------
def fetch(a: Archive, folder: Path, *, retries: int = 5, retry_wait: float = 2.0,
          timeout: float = 60.0, progress: bool = True) -> tuple[Path, str]:
    """Download ``a`` into ``folder`` (resuming ``<name>.part``), verify it, return (path, sha256).

    A kept archive from an earlier run is verified again rather than downloaded.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final, part = folder / a.name, folder / (a.name + ".part")
    if not final.exists():
        _stream(a.url, part, a.size, retries=retries, retry_wait=retry_wait,
                timeout=timeout, progress=progress, desc=a.name)
        digest = verify(a, part)
        part.replace(final)
    else:
        digest = verify(a, final)
    return final, digest


def _stream(url: str, part: Path, size: int | None, *, retries: int, retry_wait: float,
            timeout: float, progress: bool, desc: str) -> None:
    """Fill ``part`` with the bytes at ``url``, resuming and retrying up to ``retries`` times."""
    failures = 0
    while True:
        try:
            if _request(url, part, size, timeout=timeout, progress=progress, desc=desc):
                return
            reason = "the connection closed before the end of the file"
        except urllib.error.HTTPError as e:
            if e.code not in (408, 429, 500, 502, 503, 504):   # not worth retrying
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
            reason = f"HTTP {e.code} {e.reason}"
        except (OSError, http.client.HTTPException) as e:     # timeouts, resets, DNS, ...
            reason = f"{type(e).__name__}: {e}"
        failures += 1
        have = part.stat().st_size if part.exists() else 0
        if failures > retries:
            raise DownloadError(f"downloading {url} failed ({reason}); {part} holds {have} bytes "
                                f"after {retries} retries: run the same command again to resume")
        print(f"{desc}: {reason}; retry {failures}/{retries} from byte {have}", file=sys.stderr)
        time.sleep(retry_wait * failures)


def _request(url: str, part: Path, size: int | None, *, timeout: float, progress: bool,
             desc: str) -> bool:
    """One HTTP request appending to ``part``. True when ``part`` holds the whole file."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:            # not our file: start again
        part.unlink()
        have = 0
    if size is not None and have == size:           # finished earlier, killed before the rename
        return True
    headers = {"User-Agent": "course_sr-download"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:                   # range past the end: is the file done?
            total = _content_range(e.headers.get("Content-Range", ""))[2]
            e.close()
            if total == have:
                return True
            part.unlink()                            # stale or foreign .part: start over
            return False
        raise
    with response:
        total = None
        if response.status == 206:
            start, _, total = _content_range(response.headers.get("Content-Range", ""))
            if start != have:                        # not the range we asked for: start over
                part.unlink()
                return False
            mode = "ab"
        elif response.status == 200:
            if have:
                print(f"{desc}: the server ignores Range requests; starting again from byte 0",
                      file=sys.stderr)
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(f"{url}: unexpected HTTP {response.status}")
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url} is {total} bytes but the table expects {size}: the file "
                                "changed upstream or the URL is wrong")
        try:
            with open(part, mode) as out, tqdm(total=total or size, initial=have, unit="B",
                                                unit_scale=True, unit_divisor=1024, desc=desc,
                                                disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        except OSError as e:                         # the disk, not the network: no retry helps
            if e.errno not in DISK_FULL_ERRNOS:
                raise
            got = part.stat().st_size if part.exists() else 0
            raise DownloadError(f"disk full while downloading {url} into {part} ({got:,} bytes so far): "
                                "free some space and run the same command again to resume") from e
    want = total if total is not None else size
    return want is None or part.stat().st_size == want


def _content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 199, 1000); ``bytes */1000`` -> (None, None, 1000)."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None, None
    start, end, total = (None if g in (None, "*") else int(g) for g in m.groups())
    return start, end, total


# --------------------------------------------------------------------------------------
# 2. Verify
# --------------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def verify(a: Archive, path: Path, move_bad: bool = True) -> str:
    """Check size and sha256 (or, with no hash, read the whole archive); return the sha256.

    A downloaded file that fails is moved to ``<name>.bad`` (kept for a look, replaced next time)
    so the next run downloads afresh instead of resuming a wrong file; a file the user gave
    (``move_bad=False``) stays where it is.
    """
    problem = None
    got = path.stat().st_size
    digest = ""
    if a.size is not None and got != a.size:
        problem = f"is {got} bytes, expected {a.size}"
    else:
        digest = sha256_of(path)
        if a.sha256 is not None and digest != a.sha256:
            problem = f"has sha256 {digest}, expected {a.sha256} ({a.checksum_source})"
        elif a.sha256 is None:
            problem = _integrity_problem(path)
    if problem:
        if not move_bad:
            raise DownloadError(f"{path}: the archive {problem}: a wrong or truncated file. Nothing was "
                                "extracted.")
        bad = path.with_name(a.name + ".bad")
        path.replace(bad)
        raise DownloadError(f"{a.url}: the downloaded file {problem}. Nothing was extracted; it was "
                            f"moved to {bad} and the next run downloads it again.")
    return digest


def _integrity_problem(path: Path) -> str | None:
    """Read every member (zip: CRC-checked) and say what is wrong, or None."""
    try:
        if _is_zip(path):
            with zipfile.ZipFile(path) as z:
                broken = z.testzip()
            return None if broken is None else f"is corrupt (bad CRC in member {broken!r})"
        with tarfile.open(path) as t:
            for m in t:
                if m.isfile():
                    with t.extractfile(m) as f:
                        while f.read(1 << 22):
                            pass
            end = t.offset
        # tarfile stops quietly at a damaged or cut header after the first, so a plain .tar
        # must also end where its members end, with the zero end-of-archive block.
        if path.name.lower().removesuffix(".part").endswith(".tar"):
            with open(path, "rb") as f:
                f.seek(end)
                tail = f.read(tarfile.BLOCKSIZE)
            if len(tail) < tarfile.BLOCKSIZE or tail.strip(b"\0"):
                return f"is truncated or damaged at byte {end} (no end-of-archive block there)"
        return None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as e:
        return f"is not a readable archive ({type(e).__name__}: {e})"


def _is_zip(path: Path) -> bool:
    return path.name.lower().removesuffix(".part").removesuffix(".bad").endswith(".zip")


# --------------------------------------------------------------------------------------
# 3. Extract atomically
# --------------------------------------------------------------------------------------
def _marker(root: Path, target: str) -> dict | None:
    try:
        return json.loads((root / target / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(root: Path, a: Archive, target: str) -> bool:
    """Complete: the folder holds our marker, made from the expected archive (when hashed)."""
    info = _marker(root, target)
    if info is not None:
        # A folder from a course's own archive (checked against the course's SHA256SUMS) is kept:
        # a later plain run must not replace the course's data with the published archive.
        if a.sha256 is None or info.get("sha256") == a.sha256 or info.get("published") is False:
            return True
        raise DownloadError(f"{root / target} was extracted from an archive with sha256 "
                            f"{info.get('sha256')}, not {a.sha256}: delete it to replace it")
    if (root / target).exists():
        raise DownloadError(f"{root / target} exists but has no {MARKER}, so it was not made "
                            f"(completely) by this downloader: delete it to let {a.name} "
                            "replace it, or leave this archive out of --what")
    return False


def _all_complete(root: Path, a: Archive) -> bool:
    return all([_is_complete(root, a, target) for _, target in a.folders])


def _safe_parts(name: str) -> list[str]:
    """Path components of an archive member; absolute paths and '..' raise ``DownloadError``."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise DownloadError(f"unsafe member {name!r}: absolute path")
    parts = [p for p in re.split(r"[\\/]", name) if p not in ("", ".")]
    if ".." in parts:
        raise DownloadError(f"unsafe member {name!r}: '..' leaves the extraction folder")
    return parts


@dataclass
class _Member:
    name: str                                # as the archive spells it (for messages)
    parts: list[str]
    is_dir: bool
    size: int                                # bytes the archive declares for it (0 for folders)
    open: Callable[[], object] | None        # returns a binary file object; None for folders


def _zip_kind(info: zipfile.ZipInfo) -> str | None:
    """What a zip entry is when its Unix mode says it is neither a file nor a folder, else None.

    Zips made on Unix keep ``st_mode`` in the top 16 bits of ``external_attr``; zipfile would
    write a symbolic link's target out as a small regular file. Zips from Windows leave those
    bits 0 (DOS attributes only): plain files and folders.
    """
    fmt = stat.S_IFMT(info.external_attr >> 16)
    if fmt in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    return "a symbolic link" if fmt == stat.S_IFLNK else "a special file"


@contextmanager
def _members(path: Path) -> Iterator[list[_Member]]:
    """Every member of a zip or tar, all checked (path traversal, links) before any is returned."""
    if _is_zip(path):
        with zipfile.ZipFile(path) as z:
            items = []
            for info in z.infolist():
                parts = _safe_parts(info.filename)
                kind = _zip_kind(info)
                if kind:
                    raise DownloadError(f"unsafe member {info.filename!r} of {path}: {kind}; links and "
                                        "special files are not extracted")
                items.append(_Member(info.filename, parts, info.is_dir(), 0 if info.is_dir() else info.file_size,
                                     None if info.is_dir() else (lambda info=info: z.open(info))))
            yield items
    else:
        with tarfile.open(path) as t:
            items = []
            for m in t.getmembers():
                parts = _safe_parts(m.name)
                if not (m.isfile() or m.isdir()):    # symlinks, hard links, devices, fifos
                    raise DownloadError(f"unsafe member {m.name!r} of {path}: links and special files "
                                        "are not extracted")
                items.append(_Member(m.name, parts, m.isdir(), m.size if m.isfile() else 0,
                                     None if m.isdir() else (lambda m=m: t.extractfile(m))))
            yield items


def _copy_member(member: _Member, dest: Path) -> None:
    """Write one file, never more than the size its archive declares (its own function so tests
    can interrupt an extraction here)."""
    left = member.size
    with member.open() as src, open(dest, "wb") as out:
        while block := src.read(min(1 << 20, left + 1)):
            if len(block) > left:
                raise DownloadError(f"member {member.name!r} holds more bytes than the {member.size} "
                                    "its archive declares: a damaged or hostile archive")
            out.write(block)
            left -= len(block)


def extraction_cap(a: Archive, path: Path) -> tuple[int, str]:
    """The most bytes extraction may write for ``a`` (read from ``path``), and how it was set.

    A table archive may expand to ``EXPAND_TABLE`` x the size the table gives: its PNGs are
    already compressed and do not shrink in a zip, and a tar stores files as they are, so its
    files come to about the archive's size. A course's own archive (no size in the table) may
    expand to ``EXPAND_OWN`` x its own size: room for uncompressed images deflated 2-3x. Either
    stops a small archive that declares (or writes) gigabytes of zeros.
    """
    if a.size is not None:
        return EXPAND_TABLE * a.size, f"{EXPAND_TABLE} x the {a.size:,} bytes the table expects"
    own = path.stat().st_size
    return EXPAND_OWN * own, f"{EXPAND_OWN} x the archive's own {own:,} bytes"


def _plan(a: Archive, path: Path, members: Sequence[_Member], todo, partial) -> list[tuple[_Member, Path, str]]:
    """``(member, destination, target)`` for every mapped member, refusing what cannot be written whole
    (names over 255 bytes, a file where a folder must go, or a total over the size cap) before
    anything is written."""
    plan, files, dirs = [], set(), set()
    for m in members:
        for inner, target in todo:
            if m.parts[:len(inner)] != inner or len(m.parts) == len(inner):
                continue
            rel = tuple(m.parts[len(inner):])
            long = [p for p in rel if len(os.fsencode(p)) > NAME_MAX]
            if long:
                raise DownloadError(f"member {m.name!r} of {path}: the name {long[0][:40]!r}... is "
                                    f"{len(os.fsencode(long[0]))} bytes, more than the {NAME_MAX} a file "
                                    "system allows; nothing was extracted")
            parents = {(target, rel[:i]) for i in range(1, len(rel))}
            here = (target, rel)
            clash = next((p for p in parents if p in files), None) or (
                here if (m.is_dir and here in files) or (not m.is_dir and here in dirs) else None)
            if clash:
                raise DownloadError(f"member {m.name!r} of {path}: {'/'.join([*inner, *clash[1]])} is both a "
                                    "file and a folder in this archive; nothing was extracted")
            dirs |= parents
            (dirs if m.is_dir else files).add(here)
            plan.append((m, partial[target].joinpath(*rel), target))
    declared = sum(m.size for m, _, _ in plan)
    cap, why = extraction_cap(a, path)
    if declared > cap:
        raise DownloadError(f"{path}: its files would take {declared:,} bytes, over the cap of {cap:,} "
                            f"({why}): not the expected archive (or a zip bomb); nothing was extracted")
    return plan


def extract(a: Archive, path: Path, root: Path, digest: str, *, progress: bool = True) -> None:
    """Extract the mapped folders of ``a`` from ``path``, each renamed into place when complete.

    Every layout problem is a ``DownloadError`` naming the member, raised before anything is
    written where it can be seen beforehand; a failure midway (disk full, a kill) removes the
    partial folders, and folders completed by earlier runs are never touched.
    """
    todo = [(inner.split("/"), target) for inner, target in a.folders
            if not _is_complete(root, a, target)]
    partial = {target: (root / target).with_name(f".{Path(target).name}.partial")
               for _, target in todo}
    files = dict.fromkeys(partial, 0)
    current = ""                                     # the member being written, for messages
    try:
        for p in partial.values():                   # left by a killed run: start clean
            shutil.rmtree(p, ignore_errors=True)
            p.mkdir(parents=True)
        with _members(path) as members:
            plan = _plan(a, path, members, todo, partial)
            cap, why = extraction_cap(a, path)
            written = 0
            for m, dest, target in tqdm(plan, desc=f"extract {a.name}", unit="file", disable=not progress):
                current = m.name
                if m.is_dir:
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                _copy_member(m, dest)
                written += dest.stat().st_size
                if written > cap:
                    raise DownloadError(f"{path}: extraction wrote {written:,} bytes, over the cap of "
                                        f"{cap:,} ({why}): not the expected archive; nothing was extracted")
                files[target] += 1
        current = ""
        empty = [inner for inner, target in todo if not files[target]]
        if empty:
            raise DownloadError(f"{path} holds no files under {', '.join('/'.join(e) for e in empty)}"
                                "/: the archive layout is not the one this table expects")
        for inner, target in todo:
            info = {"archive": a.name, "url": a.url, "sha256": digest, "files": files[target],
                    "from": "/".join(inner), "published": a.published, "checked_against": a.checksum_source}
            (partial[target] / MARKER).write_text(json.dumps(info, indent=1) + "\n")
            os.replace(partial[target], root / target)   # atomic: folder and marker together
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as e:
        _remove(partial.values(), root)
        raise DownloadError(f"{path} ({a.url}) is corrupt: {type(e).__name__}: {e}") from e
    except OSError as e:
        _remove(partial.values(), root)
        targets = ", ".join(str(root / t) for _, t in todo)
        if e.errno in DISK_FULL_ERRNOS:
            raise DownloadError(f"disk full while extracting {a.name} into {targets}: free some space and "
                                "run the same command again (nothing was extracted)") from e
        what = f"member {current!r} of {path}" if current else f"{a.name} into {targets}"
        raise DownloadError(f"cannot extract {what}: {e.strerror or e} ({e.filename or targets}); "
                            "nothing was extracted") from e
    except BaseException:                            # incl. KeyboardInterrupt: leave no partials
        _remove(partial.values(), root)
        raise


def _remove(folders: Iterable[Path], root: Path) -> None:
    """Delete partial folders, and the parents they needed that are now empty (up to root)."""
    for p in folders:
        shutil.rmtree(p, ignore_errors=True)
        for parent in p.parents:
            if parent == root or root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:                          # not empty: someone else's files
                break


# --------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------
def _count(text: str) -> int:
    """A whole number >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _seconds(text: str) -> float:
    """A number of seconds > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_sr download",
        description="Fetch DIV2K / track-2 unknown-x4 / benchmark archives, checked and extracted.")
    parser.add_argument("--root", default="data", help="data root (default: data)")
    parser.add_argument("--what", nargs="+", default=["all"], choices=[*GROUPS, "div2k-unknown", "all"],
                        help="div2k: HR + bicubic x4 (~4.0 GiB); unknown: track-2 x4 LR for "
                             "CycleSR (~0.2 GiB); benchmark: Set5/Set14/B100/Urban100 (~0.2 GiB); "
                             "all (default)")
    from course_sr.plumbing.course import settings

    parser.add_argument("--mirror", metavar="BASE_URL", default=settings().mirror,
                        help="fetch BASE_URL/<archive name> from a course's own server (default: "
                             "$COURSE_SR_MIRROR, else the publishers'); BASE_URL/SHA256SUMS is used when there")
    parser.add_argument("--archive", nargs="+", metavar="FILE", default=None,
                        help="archives already fetched some other way (the table's file names): checked "
                             "and extracted, nothing downloaded")
    parser.add_argument("--checksums", metavar="FILE|URL", default=None,
                        help="a SHA256SUMS for a course's own archives (instead of the table's hashes)")
    parser.add_argument("--keep-archives", action="store_true",
                        help="keep the verified archives in <root>/.downloads")
    parser.add_argument("--data-lists", metavar="DIR", nargs="?", const=True, default=None,
                        help="afterwards, write the course CSV lists of the splits found under root "
                             "(default DIR: <root>/data_lists)")
    parser.add_argument("--retries", type=_count, default=5,
                        help="times to retry (and resume) a broken transfer, 0 or more (default 5)")
    parser.add_argument("--timeout", type=_seconds, default=60.0, help="seconds per network read (> 0)")
    parser.add_argument("--list", action="store_true", help="print the archive table and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(format_table(select(args.what)))
        return 0
    # A DownloadError is a UserError: ``python -m course_sr`` prints it as one line, exit 2.
    status = download(args.root, args.what, keep_archives=args.keep_archives, data_lists=args.data_lists,
                      mirror=args.mirror, checksums=args.checksums, files=args.archive,
                      retries=args.retries, timeout=args.timeout)
    for name, state in status.items():
        print(f"{name}: {state}")
    return 0
