"""The rating page of a pack (``rate.html``) and the per-rater order it shares with the CSV sheets.

A rater opens ``rate.html`` from the pack folder in any browser (no server, no network): it
shows the pack's images one at a time at 100% and records 1-5 scores from the keyboard, then
exports ``ratings_<rater>.csv`` in the sheet format that ``rating-score`` reads. The page is a
template shipped with the package (``course_sr/results/rate.html``); :func:`write_rate_html`
fills in the pack's file list and id, nothing else (the page never sees the key).

Each rater sees the files in an order of their own, the same order as their CSV sheet. A rater
may type any name into the page, so the order must be computable there too: one small
deterministic shuffle, written twice (here and in the template's JavaScript) and pinned to give
the same permutation by ``tests/test_rating_page.py``:

- seed: 32-bit FNV-1a of the UTF-8 bytes of ``"<pack id>\\n<rater>"``;
- generator: a Weyl sequence ``state += 0x9E3779B9`` (mod 2^32) passed through MurmurHash3's
  32-bit finaliser (``fmix32``), one 32-bit draw ``z`` per call;
- shuffle: Fisher-Yates from the last position down, swap position ``i`` with
  ``j = (z * (i + 1)) >> 32`` (exact in both languages: ``z * (i + 1) < 2^53``).

The pack id is a hash of the anonymous images (names and bytes), which raters hold anyway: it
tells packs apart (``localStorage`` keys, order) without revealing the seed or the key.
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Sequence

MASK32 = 0xFFFFFFFF
PAGE_NAME = "rate.html"
PLACEHOLDER = "__PACK_DATA__"           # in the template, where the pack's JSON goes
RATER_PATTERN = r"[A-Za-z0-9_-]+"          # a rater's name becomes part of a file name

# The 1-5 scale. Ledig et al. 2017 (SRGAN, section 3.3) name the ends: "1 (bad quality) to
# 5 (excellent quality)"; 2-4 take the ITU-T P.910 absolute-category-rating labels.
SCALE_LABELS = {5: "excellent", 4: "good", 3: "fair", 2: "poor", 1: "bad"}


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a hash of ``text``'s UTF-8 bytes."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & MASK32
    return h


def _draws(seed: int):
    """Endless 32-bit draws: Weyl sequence through MurmurHash3's fmix32."""
    state = seed & MASK32
    while True:
        state = (state + 0x9E3779B9) & MASK32
        z = state
        z = ((z ^ (z >> 16)) * 0x85EBCA6B) & MASK32
        z = ((z ^ (z >> 13)) * 0xC2B2AE35) & MASK32
        yield z ^ (z >> 16)


def rater_order(items: Sequence[str], pack_id: str, rater: str) -> list[str]:
    """``items`` in ``rater``'s own order for pack ``pack_id`` (what rate.html computes too)."""
    out = list(items)
    draws = _draws(fnv1a32(f"{pack_id}\n{rater}"))
    for i in range(len(out) - 1, 0, -1):
        j = (next(draws) * (i + 1)) >> 32
        out[i], out[j] = out[j], out[i]
    return out


def pack_id(image_files: Sequence[Path]) -> str:
    """16 hex digits naming a pack by its anonymous images (file names and bytes, in order)."""
    h = hashlib.sha256()
    for path in image_files:
        h.update(Path(path).name.encode("utf-8") + b"\0")
        h.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return h.hexdigest()[:16]


def page_template() -> str:
    """The page's HTML/JS template, shipped as package data."""
    return (resources.files("course_sr.results") / PAGE_NAME).read_text(encoding="utf-8")


def write_rate_html(pack_dir: str | Path, files: Sequence[str], pid: str) -> Path:
    """Write ``<pack_dir>/rate.html`` for the pack's ``files`` (names under ``images/``)."""
    data = {"pack": pid, "files": list(files), "images": "images/", "rater_pattern": RATER_PATTERN,
            "labels": {str(k): v for k, v in SCALE_LABELS.items()}}
    # "<" escaped so that no file name can close the <script> element the data sits in.
    blob = json.dumps(data, indent=1).replace("<", "\\u003c")
    template = page_template()
    if template.count(PLACEHOLDER) != 1:
        raise RuntimeError(f"the rate.html template must hold {PLACEHOLDER!r} exactly once")
    html = template.replace(PLACEHOLDER, blob)
    path = Path(pack_dir) / PAGE_NAME
    path.write_text(html, encoding="utf-8")
    return path
