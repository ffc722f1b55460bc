"""``python -m course_sr <verb> ...``: thin argument parsing over the package's functions.

Each verb lives in the module that owns its idea, as a ``main(argv) -> int`` function; this
table is the whole dispatch (no registry, no auto-import), so "go to definition" works.

One error path for every verb (``course_sr.plumbing.errors``): a :class:`~course_sr.plumbing.errors.UserError`, and
an ``OSError`` about a file the command names (permission denied, read-only file system, disk full,
a path absent or in the way: ``errors.from_os_error``), print ``<verb>: error: <message>`` as one line on stderr and exit with status 2; any
other exception is a bug in the kit and keeps its traceback. ``--debug`` (anywhere on the command
line) or ``COURSE_SR_DEBUG=1`` shows the traceback of a user error too. argparse's own errors
(usage line + ``error:``) also exit with 2.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from course_sr.data import download, lists, sample
from course_sr.plumbing import course, train_cli
from course_sr.plumbing.errors import UserError, from_os_error, one_line
from course_sr.results import demo, evaluate, rating, report, upscale

DEBUG_FLAG = "--debug"
DEBUG_ENV = "COURSE_SR_DEBUG"

VERBS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    # verb            main(argv) -> int           what it does
    "demo":         (demo.main,               "the whole pipeline on the embedded images"),
    "sample":       (sample.main,             "build the embedded sample dataset (no download)"),
    "download":     (download.main,           "fetch DIV2K / benchmark archives, checked and extracted"),
    "data-lists":   (lists.main,              "write data_lists/<split>_images.csv"),
    "train":        (train_cli.main,          "SRResNet -> SRGAN (or CycleSR / dual) from a config"),
    "evaluate":     (evaluate.main,           "PSNR/SSIM tables for bicubic and checkpoints"),
    "upscale":      (upscale.main,            "super-resolve an image or a folder"),
    "rating-pack":  (rating.main_rating_pack, "anonymised images + sheet for human rating (MOS)"),
    "rating-score": (rating.main_rating_score, "mean opinion score per method from filled sheets"),
    "report":       (report.main,             "Markdown experiment report from run directories"),
    "course-url":   (course.main,             "set the course repository's URL (course.py + notebooks)"),
}


def _usage() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: python -m course_sr <verb> [options]   (<verb> --help for its options)", "", "verbs:"]
    lines += [f"  {v:<{width}}  {doc}" for v, (_, doc) in VERBS.items()]
    lines += ["", f"A mistake you can fix is one line, '<verb>: error: ...', exit status 2; {DEBUG_FLAG} (or "
              f"{DEBUG_ENV}=1) shows its traceback."]
    return "\n".join(lines)


def debug_requested(argv: list[str]) -> bool:
    """``--debug`` among the arguments, or ``COURSE_SR_DEBUG`` set to 1/true/yes/on."""
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != DEBUG_FLAG]      # the verbs' parsers never see it
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"unknown verb {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    fn = VERBS[verb][0]
    try:
        return int(fn(rest) or 0)
    except UserError as err:
        if debug:
            raise
        message = str(err)
    except OSError as err:
        mapped = from_os_error(err)
        if mapped is None or debug:
            raise
        message = str(mapped)
    print(f"{verb}: error: {one_line(message)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
