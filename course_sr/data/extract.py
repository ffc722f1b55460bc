"""Reading a downloaded archive: every member checked, then extracted atomically.

Extraction writes into a hidden sibling ``.<folder>.partial`` and renames it into place only when
every file is written, with a marker ``.course_sr_complete.json`` (archive name and sha256)
inside. Because the marker moves with the folder in one rename, a folder either has it and is
complete, or does not exist yet. A complete folder is skipped on the next run, without touching
the network.

Before anything is written, every member is checked, and an archive is refused (a
``DownloadError`` naming the archive and the member) for: an absolute path or ``..``; a link or
special file (tar links, devices and fifos; zip entries whose Unix mode says so); a name component
over 255 bytes; a path that is both a file and a folder; or files that together declare more than
the size cap: ``EXPAND_TABLE`` (2) x the table's size, or for a course's own archive (no size in
the table) ``EXPAND_OWN`` (10) x the file's own size (:func:`extraction_cap`). The bytes written
are counted against the same cap, and no member may write more than it declares. A disk that
fills up stops the run with "disk full" and the folder; a failed extraction leaves no partial
folder, and folders completed earlier stay as they are.

:func:`integrity_problem` is the full read of an archive that has no published hash (zip CRCs,
every tar member, the tar end-of-archive block).

Only the standard library and tqdm: nothing to install on Colab.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from course_sr.data.archives import Archive, DownloadError
from course_sr.plumbing.errors import DISK_FULL_ERRNOS

MARKER = ".course_sr_complete.json"
EXPAND_TABLE = 2       # extraction cap: this x the table's size of the archive (see extraction_cap)
EXPAND_OWN = 10        # ... or this x the file's own size for a course's own archive (no size in the table)
NAME_MAX = 255         # bytes in one file name component (ext4 and most file systems)


# --------------------------------------------------------------------------------------
# A whole read (archives without a published hash)
# --------------------------------------------------------------------------------------
def integrity_problem(path: Path) -> str | None:
    """Read every member (zip: CRC-checked) and say what is wrong, or None."""
    try:
        if is_zip(path):
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


def is_zip(path: Path) -> bool:
    """A zip by its name (also as a ``.part`` or ``.bad`` file); anything else is read as a tar."""
    return path.name.lower().removesuffix(".part").removesuffix(".bad").endswith(".zip")


# --------------------------------------------------------------------------------------
# Extract atomically
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


def all_complete(root: Path, a: Archive) -> bool:
    """Every folder ``a`` makes is complete (:func:`_is_complete`; a clash raises ``DownloadError``)."""
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
    if is_zip(path):
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
