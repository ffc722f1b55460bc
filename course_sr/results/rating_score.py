"""Scoring filled rating sheets: the mean opinion score (MOS) per method, with a 95% interval.

``score_ratings([sheet.csv, ...], key)`` returns ``{method: {"mos", "ci95", "n", "blank"}}``
from the sheets raters filled for a pack of ``course_sr.results.rating_pack`` (whose key says
which method made each anonymous file).

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

import csv
import io
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from course_sr.results.rating_pack import KEY_DIR, KEY_NAME, RatingError, RatingFileError

SCORES = (1, 2, 3, 4, 5)


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


def json_safe(result: Mapping[str, Mapping]) -> dict:
    """NaN is not JSON: write null instead."""
    def f(v):
        return None if isinstance(v, float) and math.isnan(v) else v
    return {m: {"mos": f(r["mos"]), "ci95": [f(v) for v in r["ci95"]], "n": r["n"], "blank": r["blank"]}
            for m, r in result.items()}
