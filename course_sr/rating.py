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

Give raters everything except ``_key/`` (zip the rest). They open ``rate.html`` (no server, no
network; ``course_sr.rating_page``), which shows each rater the files in the same order as that
rater's sheet and exports ``ratings_<rater>.csv``; or they fill a sheet by hand. The images are
re-encoded as plain PNGs (pixels only, no metadata), so neither the name nor the file reveals
the method.

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
import json
import math
import re
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from course_sr.rating_page import PAGE_NAME, RATER_PATTERN, pack_id, rater_order, write_rate_html
from course_sr.utils import list_images

SCORES = (1, 2, 3, 4, 5)
KEY_DIR = "_key"
KEY_NAME = "key.csv"
TEMPLATE_NAME = "sheet_template.csv"

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
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def _rater_names(raters: int | Sequence[str] | None) -> list[str]:
    if raters is None:
        return []
    if isinstance(raters, int):
        if raters < 0:
            raise ValueError(f"raters must be >= 0, got {raters}")
        width = max(2, len(str(raters)))
        return [f"rater{i:0{width}d}" for i in range(1, raters + 1)]
    names = [str(r) for r in raters]
    for r in names:
        if not re.fullmatch(RATER_PATTERN, r):
            raise ValueError(f"rater name {r!r} may hold only letters, digits, '-' and '_' (it names a file)")
    if len(set(names)) != len(names):
        raise ValueError(f"rater names repeat: {names}")
    return names


def _write_sheet(path: Path, files: Iterable[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "score"])
        for name in files:
            w.writerow([name, ""])


def make_rating_pack(image_dirs: Mapping[str, str | Path], out_dir: str | Path, seed: int = 0,
                     raters: int | Sequence[str] | None = None) -> dict:
    """Write a blind rating pack for every (image, method) pair; return a summary dict.

    ``image_dirs`` maps a method name (``"bicubic"``, ``"SRGAN"``, ``"HR"`` ...) to a folder of
    images whose stems name the image (``baby.png``); every folder must hold the same stems,
    so each method is rated on the same pictures. ``seed`` fixes the shuffle (same inputs and
    seed give the same pack). ``raters`` adds per-rater sheets: an int N (``rater01`` ...) or a
    list of names; each sheet lists every file in its own random order (the order a rater sees
    pictures in then cannot favour one method), the order ``rate.html`` shows that rater.
    ``out_dir`` must not already hold a pack.

    Returns ``{"out_dir", "images", "methods", "n_files", "sheets", "page", "key",
    "uneven_sizes"}`` (paths as str).
    """
    if not image_dirs:
        raise ValueError("make_rating_pack needs at least one method (name -> image folder)")
    out = Path(out_dir)
    if (out / KEY_DIR / KEY_NAME).exists() or (out / "images").exists():
        raise FileExistsError(f"{out} already holds a rating pack; choose a new folder "
                              "(a second shuffle would not match the first key)")
    per_method = {str(m): {p.stem: p for p in list_images(d)} for m, d in image_dirs.items()}
    methods = list(per_method)
    stems = sorted(per_method[methods[0]])
    for m in methods[1:]:
        missing = sorted(set(stems) - set(per_method[m]))
        extra = sorted(set(per_method[m]) - set(stems))
        if missing or extra:
            raise ValueError(f"method {m!r} ({image_dirs[m]}) does not hold the same images as "
                             f"{methods[0]!r} ({image_dirs[methods[0]]}): missing {missing}, extra {extra}")

    pairs = [(img, m) for img in stems for m in methods]          # fixed order before shuffling
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    width = max(4, len(str(len(pairs))))
    names = [f"img_{i + 1:0{width}d}.png" for i in range(len(pairs))]

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / KEY_DIR).mkdir(parents=True, exist_ok=True)
    key_rows = []
    sizes: dict[str, set] = {img: set() for img in stems}
    for name, k in zip(names, order):
        img, m = pairs[k]
        pixels = _read_pixels(per_method[m][img])
        sizes[img].add(pixels.shape[:2])
        # A fresh image from the pixels alone: no text chunks, no source name, no method.
        Image.fromarray(pixels).save(out / "images" / name)
        key_rows.append((k, name, m, img))

    # The key lists pairs in the caller's order (image, then method): easy for the organiser to
    # read, and the scorer reports methods in the order they were given.
    with open(out / KEY_DIR / KEY_NAME, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "method", "image"])
        w.writerows(row[1:] for row in sorted(key_rows))

    # Each rater's own order comes from the pack id and the name (rating_page.rater_order), so
    # rate.html computes the same order for any name a rater types in.
    pid = pack_id([out / "images" / name for name in names])
    sheets = [out / TEMPLATE_NAME]
    _write_sheet(sheets[0], names)
    for r in _rater_names(raters):
        path = out / f"ratings_{r}.csv"
        _write_sheet(path, rater_order(names, pid, r))
        sheets.append(path)
    page = write_rate_html(out, names, pid)

    readme_sheet = ("your own sheet, ratings_<your name>.csv" if len(sheets) > 1
                    else f"your own copy of {TEMPLATE_NAME}")
    title = "Image quality rating"
    text = README_TEXT.format(n_files=len(names), sheet=readme_sheet, page=PAGE_NAME,
                              underline="=" * (len(title) + len(f" ({len(names)} images)")))
    (out / "README.txt").write_text(text)

    uneven = sorted(img for img, s in sizes.items() if len(s) > 1)
    return {"out_dir": str(out), "images": str(out / "images"), "methods": methods,
            "n_files": len(names), "sheets": [str(s) for s in sheets], "page": str(page),
            "key": str(out / KEY_DIR / KEY_NAME), "uneven_sizes": uneven}


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
def read_key(key_path: str | Path) -> dict[str, tuple[str, str]]:
    """``file -> (method, image)`` from a pack's key (the CSV or the pack folder holding ``_key/``)."""
    path = Path(key_path)
    if path.is_dir():
        path = path / KEY_DIR / KEY_NAME
    if not path.is_file():
        raise FileNotFoundError(f"rating key not found: {path}")
    key: dict[str, tuple[str, str]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file", "method", "image"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a rating key needs columns file,method,image; got {reader.fieldnames}")
        for row in reader:
            key[row["file"].strip()] = (row["method"], row["image"])
    if not key:
        raise ValueError(f"{path}: the rating key is empty")
    return key


def _parse_score(text: str | None, where: str) -> int | None:
    """An integer 1..5, None for blank; ValueError naming ``where`` otherwise."""
    s = (text or "").strip()
    if not s:
        return None
    if not re.fullmatch(r"[0-9]+", s) or int(s) not in SCORES:
        raise ValueError(f"{where}: score {s!r} is not a whole number from 1 to 5")
    return int(s)


def read_sheet(sheet: str | Path, key: Mapping[str, tuple[str, str]]) -> dict[str, int]:
    """``{file: score}`` from one filled sheet, checked against the key (blank cells absent)."""
    path = Path(sheet)
    if not path.is_file():
        raise FileNotFoundError(f"rating sheet not found: {path}")
    scores: dict[str, int] = {}
    seen: set[str] = set()
    with open(path, newline="", encoding="utf-8-sig") as f:            # utf-8-sig: Excel's BOM
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "file" not in fields or "score" not in fields:
            raise ValueError(f"{path}: a rating sheet needs columns 'file' and 'score'; got {reader.fieldnames}")
        reader.fieldnames = fields
        for row in reader:
            where = f"{path} line {reader.line_num}"
            name = (row.get("file") or "").strip()
            if not name:
                if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    raise ValueError(f"{where}: row has no file name")
                continue                                                # an empty line
            if name not in key:
                raise ValueError(f"{where}: file {name!r} is not in the rating key "
                                 "(a sheet from another pack?)")
            if name in seen:
                raise ValueError(f"{where}: file {name!r} appears twice in this sheet")
            seen.add(name)
            score = _parse_score(row.get("score"), where)
            if score is not None:
                scores[name] = score
    if not scores:
        raise ValueError(f"{path}: no scores in this sheet (is it the blank template?)")
    return scores


def mean_ci95(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Mean and its 95% Student-t interval (n-1 dof, sample std); ``(nan, nan)`` when n < 2."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, (math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return mean, (math.nan, math.nan)
    from scipy.stats import t                                       # scipy comes with scikit-image

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
        raise ValueError("score_ratings needs at least one filled sheet")
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


def main_rating_pack(argv: list[str] | None = None) -> int:
    """``python -m course_sr rating-pack --method NAME=DIR ... --out DIR [--seed N] [--raters N|NAMES]``."""
    p = argparse.ArgumentParser(prog="python -m course_sr rating-pack",
                                description="Anonymised, shuffled images + rating sheets + hidden key (MOS test).")
    p.add_argument("--method", action="append", type=_parse_method, required=True, metavar="NAME=DIR",
                   help="a method and its folder of images (repeat; same image names in every folder)")
    p.add_argument("--out", required=True, help="new folder for the pack")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    p.add_argument("--raters", nargs="+", default=None,
                   help="a number N (rater01..) or rater names: one sheet each, own order")
    args = p.parse_args(argv)
    dirs = dict(args.method)
    if len(dirs) != len(args.method):
        p.error("a method name is given twice")
    raters = args.raters
    if raters is not None and len(raters) == 1 and raters[0].isdigit():
        raters = int(raters[0])
    try:
        info = make_rating_pack(dirs, args.out, seed=args.seed, raters=raters)
    except (OSError, ValueError) as e:                  # bad input: one clear line, no traceback
        print(f"rating-pack: error: {e}", file=sys.stderr)
        return 2
    print(f"rating pack: {info['n_files']} images ({len(info['methods'])} methods) in {info['images']}")
    print(f"  page:  {info['page']}   <- raters open this in a browser")
    for s in info["sheets"]:
        print(f"  sheet: {s}")
    print(f"  key:   {info['key']}   <- keep this; give raters everything else")
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
    try:
        result = score_ratings(args.sheets, args.key)
    except (OSError, ValueError) as e:
        print(f"rating-score: error: {e}", file=sys.stderr)
        return 2
    print(format_scores(result))
    if args.json:
        print(json.dumps(_json_safe(result)))
    return 0
