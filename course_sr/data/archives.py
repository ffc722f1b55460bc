"""The archive table: what ``python -m course_sr download`` fetches, from where, and how it is checked.

Each :class:`Archive` names its file, its URL, its size and sha256 where a source publishes them
(and which source), and the folders it fills under the data root. ``--mirror`` and
``--checksums`` change the table, never the code that uses it (:func:`with_source`): a course's
own server gives other URLs; a course's own ``SHA256SUMS`` (``sha256sum``'s format, read by
:func:`read_checksums`) gives other hashes, and an archive checked against one is marked
``published=False``.

Only the standard library: nothing to install on Colab.
"""
from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from course_sr.data.splits import BENCHMARK_SETS
from course_sr.plumbing.errors import UserError


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
# Other sources: a course's mirror and its SHA256SUMS
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
