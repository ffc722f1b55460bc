"""Building a blind rating pack: every (image, method) pair, shuffled, under anonymous names.

The SRGAN paper (Ledig et al., CVPR 2017, section 3.3) ranks methods by asking people to score
each super-resolved image from 1 (bad quality) to 5 (excellent quality) without knowing which
method made it. This module writes what the raters get and what the organiser keeps
(``course_sr.results.rating_score`` turns the filled sheets into mean opinion scores).

``make_rating_pack({method: folder}, out_dir)`` writes::

    out_dir/
      README.txt                  what raters do (the paper's 1-5 scale)
      rate.html                   the rating page: open it in a browser, keys 1-5, export a sheet
      images/img_0001.png ...     every (image, method) pair, shuffled, anonymous names
      sheet_template.csv          columns file,score; one row per image, score blank
      ratings_<rater>.csv         per-rater copies (own row order each), when raters are given
      _key/key.csv                file -> method, image   (the organiser keeps this; raters never see it)
      _key/pack.json              the shuffle seed and the inputs: the same call with that seed
                                  rebuilds this very pack

Give raters everything except ``_key/`` (zip the rest). They open ``rate.html`` (no server, no
network; ``course_sr.results.rating_page``), which shows each rater the files in the same order as that
rater's sheet and exports ``ratings_<rater>.csv``; or they fill a sheet by hand. The images are
re-encoded as plain PNGs (pixels only, no metadata), so neither the name nor the file reveals
the method.

The shuffle seed is drawn at random (``secrets``) unless one is given: with a fixed default
anyone holding the public code and the method list could rebuild the key, so the test would not
be blind. The seed drawn is printed by ``rating-pack`` and kept in ``_key/pack.json``, beside the
key, so the organiser can rebuild the same pack with ``--seed``.

The pack is built in a hidden sibling folder ``.<out>.rating-pack.partial`` and moved into place
only when complete (the key last), so a build that fails midway (an unreadable image, a full
disk, a kill) leaves nothing that blocks the retry, and a complete pack is never touched: a
folder that already holds one is refused before anything is written.

The pack's file names and its errors are defined here, once; the scorer reads the key by them.
"""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from course_sr.plumbing.errors import DISK_FULL_ERRNOS, UserError
from course_sr.results.rating_page import PAGE_NAME, RATER_PATTERN, pack_id, rater_order, write_rate_html
from course_sr.utils import list_images

KEY_DIR = "_key"
KEY_NAME = "key.csv"
SEED_NAME = "pack.json"                 # in KEY_DIR: the seed and inputs that rebuild the pack
TEMPLATE_NAME = "sheet_template.csv"
SEED_BITS = 64                          # a drawn seed: 2^64 shuffles to try is no guess


class RatingError(UserError, ValueError):
    """Bad input to a rating pack or to the scorer (an image, a sheet, a key, a name, a seed)."""


class RatingFileError(UserError, FileNotFoundError):
    """A key, sheet or image folder that is not there."""


class PackExistsError(UserError, FileExistsError):
    """The output folder already holds a rating pack (or an unfinished one)."""


class PackWriteError(UserError, OSError):
    """The pack could not be written (disk full, a read-only folder); nothing of it was kept."""

README_TEXT = """\
Image quality rating ({n_files} images)
{underline}

Thank you for helping. The folder images/ holds {n_files} pictures, named img_0001.png and so
on, in random order. Each is an enlarged photograph; several versions of the same photograph
appear under different names. Nothing in the name tells you how a picture was made.

The easy way: open {page} (in this folder, beside images/) in a web browser, type your name,
and press a key from 1 to 5 for each picture. It works offline and keeps your scores if you
close it. When you are done, press "Export ratings" and send the file it saves,
ratings_<your name>.csv, to the organiser. (If you received a zip file, unzip it first.)

Or by hand: for every picture, write ONE whole number from 1 to 5 in the "score" column of
{sheet}, on the row with the picture's name:

    5  excellent quality
    4  good quality
    3  fair quality
    2  poor quality
    1  bad quality

Look at each picture at 100% size (one screen pixel per image pixel), on the same screen, in
the order of your sheet. Judge how natural and detailed it looks; there is no reference to
compare against. Leave a cell empty if you cannot decide; do not write fractions or words.
Please do not open the folder _key/ if you received it: it would spoil the test.

(Scale and procedure as in the mean-opinion-score test of Ledig et al., "Photo-Realistic Single
Image Super-Resolution Using a Generative Adversarial Network", CVPR 2017.)
"""


# --------------------------------------------------------------------------------------
# Building the pack
# --------------------------------------------------------------------------------------
def _read_pixels(path: Path) -> np.ndarray:
    """Pixels of an image file as uint8 HxW, HxWx3 or HxWx4 (mode kept; error names the file)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            return np.asarray(im).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise RatingError(f"cannot read image {path}: {e}") from e


def _write_png(pixels: np.ndarray, path: Path) -> None:
    """A fresh PNG from the pixels alone: no text chunks, no source name, no method."""
    Image.fromarray(pixels).save(path)


def _rater_names(raters: int | Sequence[str] | None) -> list[str]:
    if raters is None:
        return []
    if isinstance(raters, int):
        if raters < 0:
            raise RatingError(f"raters must be >= 0, got {raters}")
        width = max(2, len(str(raters)))
        return [f"rater{i:0{width}d}" for i in range(1, raters + 1)]
    names = [str(r) for r in raters]
    for r in names:
        if not re.fullmatch(RATER_PATTERN, r):
            raise RatingError(f"rater name {r!r} may hold only letters, digits, '-' and '_' (it names a file)")
    if len(set(names)) != len(names):
        raise RatingError(f"rater names repeat: {names}")
    return names


def _write_sheet(path: Path, files: Iterable[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "score"])
        for name in files:
            w.writerow([name, ""])


def make_rating_pack(image_dirs: Mapping[str, str | Path], out_dir: str | Path, seed: int | None = None,
                     raters: int | Sequence[str] | None = None) -> dict:
    """Write a blind rating pack for every (image, method) pair; return a summary dict.

    ``image_dirs`` maps a method name (``"bicubic"``, ``"SRGAN"``, ``"HR"`` ...) to a folder of
    images whose stems name the image (``baby.png``); every folder must hold the same stems,
    so each method is rated on the same pictures. ``seed`` fixes the shuffle (same inputs and
    seed give the same pack); None (the default) draws one from ``secrets``, returned as
    ``"seed"`` and kept in ``_key/pack.json``. ``raters`` adds per-rater sheets: an int N
    (``rater01`` ...) or a list of names; each sheet lists every file in its own random order
    (the order a rater sees pictures in then cannot favour one method), the order ``rate.html``
    shows that rater. ``out_dir`` must not already hold a pack (it may exist, empty or holding
    other files); nothing appears there unless the whole pack is written.

    Returns ``{"out_dir", "images", "methods", "n_files", "sheets", "page", "key", "seed",
    "seed_file", "uneven_sizes"}`` (paths as str). Errors are ``UserError``s naming the file or
    value (``RatingError``, ``RatingFileError``, ``PackExistsError``, ``PackWriteError``).
    """
    if not image_dirs:
        raise RatingError("make_rating_pack needs at least one method (name -> image folder)")
    if seed is None:
        seed = secrets.randbits(SEED_BITS)
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RatingError(f"seed must be a whole number >= 0, got {seed!r}")
    seed = int(seed)
    out = Path(out_dir)
    _refuse_existing_pack(out)
    per_method = {}
    for m, d in image_dirs.items():
        try:
            per_method[str(m)] = {p.stem: p for p in list_images(d)}
        except FileNotFoundError as e:
            raise RatingFileError(str(e)) from e
        except ValueError as e:
            raise RatingError(str(e)) from e
    methods = list(per_method)
    stems = sorted(per_method[methods[0]])
    for m in methods[1:]:
        missing = sorted(set(stems) - set(per_method[m]))
        extra = sorted(set(per_method[m]) - set(stems))
        if missing or extra:
            raise RatingError(f"method {m!r} ({image_dirs[m]}) does not hold the same images as "
                              f"{methods[0]!r} ({image_dirs[methods[0]]}): missing {missing}, extra {extra}")
    rater_names = _rater_names(raters)

    pairs = [(img, m) for img in stems for m in methods]          # fixed order before shuffling
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    width = max(4, len(str(len(pairs))))
    names = [f"img_{i + 1:0{width}d}.png" for i in range(len(pairs))]

    partial = Path(os.path.abspath(out)).with_name(f".{Path(os.path.abspath(out)).name}.rating-pack.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)               # left by a killed build
        (partial / "images").mkdir(parents=True)
        (partial / KEY_DIR).mkdir()
        key_rows = []
        sizes: dict[str, set] = {img: set() for img in stems}
        for name, k in zip(names, order):
            img, m = pairs[k]
            pixels = _read_pixels(per_method[m][img])
            sizes[img].add(pixels.shape[:2])
            _write_png(pixels, partial / "images" / name)
            key_rows.append((k, name, m, img))

        # Each rater's own order comes from the pack id and the name (rating_page.rater_order), so
        # rate.html computes the same order for any name a rater types in.
        pid = pack_id([partial / "images" / name for name in names])
        sheets = [TEMPLATE_NAME]
        _write_sheet(partial / TEMPLATE_NAME, names)
        for r in rater_names:
            sheets.append(f"ratings_{r}.csv")
            _write_sheet(partial / sheets[-1], rater_order(names, pid, r))
        write_rate_html(partial, names, pid)
        readme_sheet = ("your own sheet, ratings_<your name>.csv" if len(sheets) > 1
                        else f"your own copy of {TEMPLATE_NAME}")
        title = "Image quality rating"
        text = README_TEXT.format(n_files=len(names), sheet=readme_sheet, page=PAGE_NAME,
                                  underline="=" * (len(title) + len(f" ({len(names)} images)")))
        (partial / "README.txt").write_text(text, encoding="utf-8")

        # What rebuilds this pack: the seed and the inputs, kept with the key (never given to raters).
        rebuild = {"seed": seed, "methods": {m: str(d) for m, d in image_dirs.items()}, "images": stems,
                   "raters": rater_names, "pack_id": pid, "n_files": len(names),
                   "rebuild": "make_rating_pack(methods, out_dir, seed=seed, raters=raters), or "
                              "rating-pack --method NAME=DIR ... --seed SEED --raters NAMES"}
        (partial / KEY_DIR / SEED_NAME).write_text(json.dumps(rebuild, indent=1) + "\n", encoding="utf-8")
        # The key lists pairs in the caller's order (image, then method): easy for the organiser to
        # read, and the scorer reports methods in the order they were given. Written last: a pack
        # folder with a key is complete.
        with open(partial / KEY_DIR / KEY_NAME, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["file", "method", "image"])
            w.writerows(row[1:] for row in sorted(key_rows))
        _move_into_place(partial, out)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(e, UserError):
            raise
        where = e.filename or out
        if e.errno in DISK_FULL_ERRNOS:
            raise PackWriteError(f"disk full while writing the rating pack {out} ({where}): free some "
                                 "space and run the same command again (nothing of the pack was kept)") from e
        raise PackWriteError(f"cannot write the rating pack {out}: {e.strerror or e} ({where}); "
                             "nothing of the pack was kept") from e
    except BaseException:                                         # incl. KeyboardInterrupt and bad images
        shutil.rmtree(partial, ignore_errors=True)
        raise

    uneven = sorted(img for img, s in sizes.items() if len(s) > 1)
    return {"out_dir": str(out), "images": str(out / "images"), "methods": methods,
            "n_files": len(names), "sheets": [str(out / s) for s in sheets], "page": str(out / PAGE_NAME),
            "key": str(out / KEY_DIR / KEY_NAME), "seed": seed, "seed_file": str(out / KEY_DIR / SEED_NAME),
            "uneven_sizes": uneven}


_PACK_ENTRIES = ("images", KEY_DIR, PAGE_NAME, TEMPLATE_NAME, "README.txt")


def _refuse_existing_pack(out: Path) -> None:
    """Raise ``PackExistsError`` when ``out`` holds a pack, whole or unfinished (before any write)."""
    if (out / KEY_DIR / KEY_NAME).exists():
        raise PackExistsError(f"{out} already holds a rating pack; choose a new folder "
                              "(a second shuffle would not match the first key)")
    if out.exists() and not out.is_dir():
        raise PackExistsError(f"{out} is a file, not a folder: choose a new folder for the rating pack")
    there = [n for n in _PACK_ENTRIES if (out / n).exists()] + sorted(p.name for p in out.glob("ratings_*.csv"))
    if there:
        raise PackExistsError(f"{out} holds {', '.join(there)} but no {KEY_DIR}/{KEY_NAME}: an unfinished "
                              "rating pack (from an older version?) or other files; delete them or choose "
                              "a new folder")


def _move_into_place(partial: Path, out: Path) -> None:
    """Rename the finished pack to ``out`` (one rename when ``out`` is new or empty; otherwise
    entry by entry with the key last, so ``out`` never shows a key before the rest is there)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(partial, out)
        return
    entries = sorted(partial.iterdir(), key=lambda p: p.name == KEY_DIR)
    moved = []
    try:
        for p in entries:
            os.replace(p, out / p.name)
            moved.append(out / p.name)
    except BaseException:
        for p in moved:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        raise
    partial.rmdir()
