"""The human evaluation (mean opinion score test) of the SRGAN paper: its two commands, one home.

The SRGAN paper (Ledig et al., CVPR 2017, section 3.3) ranks methods by asking people to score
each super-resolved image from 1 (bad quality) to 5 (excellent quality) without knowing which
method made it, then reports the mean opinion score per method. The kit does the two mechanical
parts of that test so that a class can run it in ten minutes:

- ``rating-pack`` / :func:`make_rating_pack` (``course_sr.results.rating_pack``): a blind pack of
  shuffled, anonymous images, a rating page, sheets, and the key the organiser keeps;
- ``rating-score`` / :func:`score_ratings` (``course_sr.results.rating_score``): the filled
  sheets -> MOS per method with a 95% Student-t interval (the rules are in that module).

This module holds the two commands and is where callers import the test's public names from
(``from course_sr.results.rating import make_rating_pack, score_ratings``), whichever module
defines them.
"""
from __future__ import annotations

import argparse
import json
import re

from course_sr.results.rating_pack import (KEY_DIR, SEED_NAME, PackExistsError, PackWriteError,  # noqa: F401 - public here
                                           RatingError, make_rating_pack)
from course_sr.results.rating_score import (format_scores, json_safe, mean_ci95, read_key,  # noqa: F401 - public here
                                            score_ratings, simulate_ratings)
from course_sr.results.specs import MethodSpecError, split_name_path


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------
def _parse_method(text: str) -> tuple[str, str]:
    """``NAME=DIR`` (argparse type): the NAME=PATH convention of every command (``results.specs``)."""
    try:
        return split_name_path(text, "DIR")
    except MethodSpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


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
        print(json.dumps(json_safe(result)))
    return 0
