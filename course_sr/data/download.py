"""Fetch DIV2K and the SR benchmark sets: resumable, checked, extracted atomically.

    python -m course_sr download --root data --what all       # everything below
    python -m course_sr download --list                        # the archive table, no download

What lands where (the layouts ``data.lists.create_data_lists`` reads)::

    <root>/DIV2K/DIV2K_{train,valid}_HR/0001.png
    <root>/DIV2K/DIV2K_{train,valid}_LR_bicubic/X4/0001x4.png
    <root>/DIV2K/DIV2K_{train,valid}_LR_unknown/X4/0001x4.png     (track 2, for CycleSR)
    <root>/benchmark/{Set5,Set14,B100,Urban100}/HR/<name>.png
    <root>/benchmark/{Set5,Set14,B100,Urban100}/LR_bicubic/X{2,3,4}/<name>x4.png

Other sources, checked and extracted exactly as a download is:

- ``--mirror BASE_URL`` (or ``COURSE_SR_MIRROR``): the same archive names from a course's own
  server, ``BASE_URL/<name>``. They are checked against the table
  (:mod:`course_sr.data.archives`); when the server also has ``BASE_URL/SHA256SUMS``
  (``sha256sum``'s format), an archive listed there with another hash is taken as the course's
  own version of it (a cut of the data, say) and checked against that hash instead, and the run
  says so. Folders made from such an archive are kept by later runs, which do not replace a
  course's data with the published one.
- ``--archive FILE ...``: archives already fetched some other way (a shared drive, a browser).
  The file name must be the table's; nothing is downloaded, the file is left where it is.
- ``--checksums FILE|URL``: a ``SHA256SUMS`` for a course's own archives (``--archive`` or a
  mirror without one).

How it stays safe on a flaky Colab connection:
1. Download streams to ``<root>/.downloads/<archive>.part``; a broken transfer resumes with an
   HTTP ``Range`` request (a server that ignores ``Range`` makes it start over cleanly). A disk
   that fills up stops the run with "disk full" and the file; the next run resumes.
2. The finished file is checked: size and sha256 against the table; where no hash is
   published, size plus a full read of the archive (zip CRCs / every tar member).
3. Extraction checks every member before anything is written and renames each folder into
   place only when it is complete (:mod:`course_sr.data.extract` says how, and what it refuses).

This module is the fetching (resume, retries, checks) and the command; only the standard library
and tqdm: nothing to install on Colab.
"""
from __future__ import annotations

import argparse
import http.client
import math
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Sequence

from tqdm.auto import tqdm

from course_sr.data.archives import (ARCHIVES, GROUPS, Archive, DownloadError, format_table, read_checksums, select,
                                     with_source)
from course_sr.data.extract import all_complete, extract, integrity_problem
from course_sr.data.lists import create_data_lists
from course_sr.plumbing.course import settings
from course_sr.plumbing.errors import DISK_FULL_ERRNOS
from course_sr.utils import file_sha256

DOWNLOADS = ".downloads"


# --------------------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------------------
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
    ``data.lists.create_data_lists`` then writes the course CSVs of every split found under root
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
    pending = [a for a in chosen if not all_complete(root, a)]
    if pending and mirror and checksums is None and not files:   # the mirror's own list, when it has one
        sums_source = mirror.rstrip("/") + "/SHA256SUMS"
        sums = read_checksums(sums_source, optional=True, timeout=timeout)
        if sums:
            chosen = with_source(chosen, None, sums, sums_source)
            pending = [a for a in chosen if not all_complete(root, a)]
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
        digest = file_sha256(path)
        if a.sha256 is not None and digest != a.sha256:
            problem = f"has sha256 {digest}, expected {a.sha256} ({a.checksum_source})"
        elif a.sha256 is None:
            problem = integrity_problem(path)
    if problem:
        if not move_bad:
            raise DownloadError(f"{path}: the archive {problem}: a wrong or truncated file. Nothing was "
                                "extracted.")
        bad = path.with_name(a.name + ".bad")
        path.replace(bad)
        raise DownloadError(f"{a.url}: the downloaded file {problem}. Nothing was extracted; it was "
                            f"moved to {bad} and the next run downloads it again.")
    return digest



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
