"""Human evaluation made practical: a blind rating pack and a mean-opinion-score (MOS) scorer.

The SRGAN paper (Ledig et al., CVPR 2017, section 3.3) ranks methods by asking people to score
each super-resolved image from 1 (bad quality) to 5 (excellent quality) without knowing which
method made it, then reports the mean opinion score per method. This module does the two
mechanical parts of that test so that a class can run it in ten minutes:

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

``score_ratings([sheet.csv, ...], key)`` returns ``{method: {"mos", "ci95", "n", "blank"}}``.

Rules the scorer applies (and the tests pin):

- A score is an integer 1..5 written as digits ("4"; surrounding spaces are fine).
- A *blank* score cell (or a file missing from a sheet) means "not rated": it is skipped and
  counted in ``"blank"``, because raters may legitimately stop early or skip an image.
- Anything else in a score cell ("6", "3.5", "good"), a file the key does not know, a file
  listed twice in one sheet, or a sheet without ``file``/``score`` columns raises ``ValueError``
  naming the sheet and its line, because a typo would otherwise silently shift a mean.
- A sheet with no score at all raises (most often it is the blank template passed by mistake).
- The 95% confidence interval uses Student's t distribution with n-1 degrees of freedom:
  ``mos +- t_{0.975, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation
  (``ddof=1``). Every rating counts as one observation (as the paper's per-method MOS does), so
  the interval ignores that ratings from one rater or of one image are correlated; with
  ``n < 2`` it is ``(nan, nan)``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
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

SCORES = (1, 2, 3, 4, 5)
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


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
def read_key(key_path: str | Path) -> dict[str, tuple[str, str]]:
    """``file -> (method, image)`` from a pack's key (the CSV or the pack folder holding ``_key/``)."""
    path = Path(key_path)
    if path.is_dir():
        path = path / KEY_DIR / KEY_NAME
    if not path.is_file():
        raise RatingFileError(f"rating key not found: {path}")
    key: dict[str, tuple[str, str]] = {}
    try:
        reader = csv.DictReader(_csv_text(path, "rating key"))
        if not reader.fieldnames or not {"file", "method", "image"} <= set(reader.fieldnames):
            raise RatingError(f"{path}: a rating key needs columns file,method,image; got {reader.fieldnames}")
        for row in reader:
            key[(row["file"] or "").strip()] = (row["method"], row["image"])
    except csv.Error as e:
        raise RatingError(f"{path}: not a readable CSV rating key ({e})") from e
    if not key:
        raise RatingError(f"{path}: the rating key is empty")
    return key


def _csv_text(path: Path, what: str) -> io.StringIO:
    """The whole CSV file as text for ``csv`` (UTF-8, a BOM from Excel allowed); errors name it."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RatingError(f"cannot read the {what} {path}: {e.strerror or e}") from e
    try:
        return io.StringIO(data.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as e:
        raise RatingError(f"{path}: the {what} is not UTF-8 text (byte {e.start}); save it as "
                          "'CSV UTF-8' and try again") from e


def _parse_score(text: str | None, where: str) -> int | None:
    """An integer 1..5, None for blank; ValueError naming ``where`` otherwise."""
    s = (text or "").strip()
    if not s:
        return None
    if not re.fullmatch(r"[0-9]+", s) or int(s) not in SCORES:
        raise RatingError(f"{where}: score {s!r} is not a whole number from 1 to 5")
    return int(s)


def read_sheet(sheet: str | Path, key: Mapping[str, tuple[str, str]]) -> dict[str, int]:
    """``{file: score}`` from one filled sheet, checked against the key (blank cells absent)."""
    path = Path(sheet)
    if not path.is_file():
        raise RatingFileError(f"rating sheet not found: {path}")
    scores: dict[str, int] = {}
    seen: set[str] = set()
    try:
        reader = csv.DictReader(_csv_text(path, "rating sheet"))
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "file" not in fields or "score" not in fields:
            raise RatingError(f"{path}: a rating sheet needs columns 'file' and 'score'; got {reader.fieldnames}")
        reader.fieldnames = fields
        for row in reader:
            where = f"{path} line {reader.line_num}"
            name = (row.get("file") or "").strip()
            if not name:
                if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    raise RatingError(f"{where}: row has no file name")
                continue                                                # an empty line
            if name not in key:
                raise RatingError(f"{where}: file {name!r} is not in the rating key "
                                  "(a sheet from another pack?)")
            if name in seen:
                raise RatingError(f"{where}: file {name!r} appears twice in this sheet")
            seen.add(name)
            score = _parse_score(row.get("score"), where)
            if score is not None:
                scores[name] = score
    except csv.Error as e:
        raise RatingError(f"{path}: not a readable CSV rating sheet ({e})") from e
    if not scores:
        raise RatingError(f"{path}: no scores in this sheet (is it the blank template?)")
    return scores


def mean_ci95(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Mean and its 95% Student-t interval (n-1 dof, sample std); ``(nan, nan)`` when n < 2."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, (math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return mean, (math.nan, math.nan)
    # scipy is heavy and not a dependency of ours (it comes with scikit-image): loaded only to score
    from scipy.stats import t

    half = float(t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, (mean - half, mean + half)


def score_ratings(sheets: Sequence[str | Path], key_path: str | Path) -> dict[str, dict]:
    """Mean opinion score per method from filled sheets: ``{method: {"mos", "ci95", "n", "blank"}}``.

    ``mos`` is the mean of every 1..5 score given to that method's images over all sheets,
    ``ci95`` its 95% Student-t confidence interval ``(lo, hi)``, ``n`` the number of scores,
    ``blank`` the number of (sheet, file) cells of that method left unrated. Methods keep the
    key's order. See the module docstring for the validation rules.
    """
    if not sheets:
        raise RatingError("score_ratings needs at least one filled sheet")
    key = read_key(key_path)
    methods = list(dict.fromkeys(m for m, _ in key.values()))
    values: dict[str, list[int]] = {m: [] for m in methods}
    blank = {m: 0 for m in methods}
    for sheet in sheets:
        scores = read_sheet(sheet, key)
        for name, (m, _img) in key.items():
            if name in scores:
                values[m].append(scores[name])
            else:
                blank[m] += 1
    result = {}
    for m in methods:
        mos, ci = mean_ci95(values[m])
        result[m] = {"mos": mos, "ci95": ci, "n": len(values[m]), "blank": blank[m]}
    return result


def simulate_ratings(pack_dir: str | Path, out_dir: str | Path, n_raters: int = 3, seed: int = 0) -> list[Path]:
    """Fill ``n_raters`` copies of a pack's sheet with uniformly random scores 1..5 (``filled_NN.csv``).

    For demonstrations and tests only: it shows the scorer's mechanics on a pack nobody has
    rated yet. Random raters prefer no method, so every method's MOS is near 3 and the 95%
    intervals overlap: exactly what a real test must beat before claiming a winner.
    """
    pack = Path(pack_dir)
    files = list(read_key(pack))
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in range(1, n_raters + 1):
        path = out / f"filled_{r:02d}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["file", "score"])
            for name in sorted(files):
                w.writerow([name, int(rng.integers(1, 6))])
        paths.append(path)
    return paths


def format_scores(result: Mapping[str, Mapping]) -> str:
    """A plain-text table of ``score_ratings`` output, best MOS first, with the convention."""
    width = max([len("method")] + [len(m) for m in result])
    lines = [f"{'method':<{width}}  {'MOS':>5}  {'95% CI':>13}  {'n':>5}  {'blank':>5}"]
    def best_first(item):
        mos = item[1]["mos"]
        return (math.isnan(mos), -mos if not math.isnan(mos) else 0.0)

    for m, r in sorted(result.items(), key=best_first):
        lo, hi = r["ci95"]
        ci = "n/a" if math.isnan(lo) else f"{lo:.2f} - {hi:.2f}"
        lines.append(f"{m:<{width}}  {r['mos']:>5.2f}  {ci:>13}  {r['n']:>5}  {r['blank']:>5}")
    lines.append("MOS: mean of 1-5 scores (1 bad ... 5 excellent); 95% CI: Student t, n-1 dof, "
                 "every rating one observation; blank cells skipped.")
    return "\n".join(lines)


def _json_safe(result: Mapping[str, Mapping]) -> dict:
    """NaN is not JSON: write null instead."""
    def f(v):
        return None if isinstance(v, float) and math.isnan(v) else v
    return {m: {"mos": f(r["mos"]), "ci95": [f(v) for v in r["ci95"]], "n": r["n"], "blank": r["blank"]}
            for m, r in result.items()}


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------
def _parse_method(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--method expects NAME=FOLDER, got {text!r}")
    return name, folder


def _seed(text: str) -> int:
    """A shuffle seed: a whole number >= 0 (argparse type)."""
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def main_rating_pack(argv: list[str] | None = None) -> int:
    """``python -m course_sr rating-pack --method NAME=DIR ... --out DIR [--seed N] [--raters N|NAMES]``."""
    p = argparse.ArgumentParser(prog="python -m course_sr rating-pack",
                                description="Anonymised, shuffled images + rating sheets + hidden key (MOS test).")
    p.add_argument("--method", action="append", type=_parse_method, required=True, metavar="NAME=DIR",
                   help="a method and its folder of images (repeat; same image names in every folder)")
    p.add_argument("--out", required=True, help="new folder for the pack")
    p.add_argument("--seed", type=_seed, default=None,
                   help="shuffle seed, a whole number >= 0 (default: drawn at random, printed and kept in "
                        f"{KEY_DIR}/{SEED_NAME}; give it to rebuild the same pack)")
    p.add_argument("--raters", nargs="+", default=None,
                   help="a number N (rater01..) or rater names: one sheet each, own order")
    args = p.parse_args(argv)
    dirs = dict(args.method)
    if len(dirs) != len(args.method):
        p.error("a method name is given twice")
    raters = args.raters
    if raters is not None and len(raters) == 1 and raters[0].isdigit():
        raters = int(raters[0])
    # Bad input raises a UserError: ``python -m course_sr`` prints it as one line, exit 2.
    info = make_rating_pack(dirs, args.out, seed=args.seed, raters=raters)
    print(f"rating pack: {info['n_files']} images ({len(info['methods'])} methods) in {info['images']}")
    print(f"  page:  {info['page']}   <- raters open this in a browser")
    for s in info["sheets"]:
        print(f"  sheet: {s}")
    print(f"  key:   {info['key']}   <- keep this; give raters everything else")
    print(f"  seed:  {info['seed']}   (in {info['seed_file']}; --seed {info['seed']} rebuilds this pack)")
    if info["uneven_sizes"]:
        print(f"  warning: image sizes differ between methods for {info['uneven_sizes']}: "
              "raters may tell methods apart by size")
    return 0


def main_rating_score(argv: list[str] | None = None) -> int:
    """``python -m course_sr rating-score --key KEY --sheets CSV ... [--json]``."""
    p = argparse.ArgumentParser(prog="python -m course_sr rating-score",
                                description="Mean opinion score per method with a 95% confidence interval.")
    p.add_argument("--key", required=True, help="the pack's _key/key.csv (or the pack folder)")
    p.add_argument("--sheets", nargs="+", required=True, help="filled rating sheets (CSV)")
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    args = p.parse_args(argv)
    result = score_ratings(args.sheets, args.key)        # a UserError: one line from __main__
    print(format_scores(result))
    if args.json:
        print(json.dumps(_json_safe(result)))
    return 0
