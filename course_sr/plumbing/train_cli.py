"""``python -m course_sr train``: the training loop (``course_sr.training.run``) from a shell.

    python -m course_sr train --config quick|colab|paper|PATH --out DIR [--max-iters N]
                              [--resume CKPT|auto] [--overwrite] [--set key=value ...]

``--set`` values are read as numbers when they look like one, else as YAML (booleans, null,
lists, strings). ``COURSE_SR_MAX_ITERS`` cuts every stage (a rehearsal of real mode). A user's
mistake is one line and exit status 2 (``course_sr.__main__``).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from course_sr.config import get_config
from course_sr.plumbing.checkpoint import load_checkpoint
from course_sr.plumbing.course import ENV, cut_schedule, settings
from course_sr.plumbing.distributed import cleanup, current
from course_sr.plumbing.errors import UserError, user_errors
from course_sr.training import run


def _parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:             # not a number: booleans, null, lists, strings as YAML reads them
            out[key.strip()] = yaml.safe_load(value)
    return out


def _iterations(text: str) -> int:
    """argparse type of --max-iters: a positive whole number."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of iterations, got {text!r} "
                                         "(leave it out to run the schedule to its end)")
    return n


def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr train --config quick|PATH --out DIR [--max-iters N] [--resume CKPT|auto]
    [--overwrite]``. A user's mistake (a :class:`~course_sr.plumbing.errors.UserError`, or argparse's) is
    one line on stderr and exit status 2."""
    p = argparse.ArgumentParser(prog="python -m course_sr train", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="a preset (quick, colab, paper, ...) or a YAML/JSON file; "
                                    "optional with --resume (the checkpoint's config is used)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--max-iters", type=_iterations, default=None,
                   help="stop after N more iterations, N >= 1 (writes last.pt)")
    p.add_argument("--resume", default=None, help="checkpoint to continue from, or 'auto' (<out>/checkpoints/last.pt "
                                                   "when it exists, else a fresh start)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds checkpoints (deletes them); without it such a "
                        "start is refused")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. --set gan_iters=1000")
    args = p.parse_args(argv)
    overrides = _parse_set(args.set)
    if args.config is None and args.resume is None:
        p.error("--config is required unless --resume is given")
    if args.overwrite and args.resume is not None:
        p.error("--overwrite starts the run afresh and --resume continues it: give one of them")
    # A user's mistake (missing data or list, a cache too large for the RAM, a bad setting, a
    # checkpoint that is corrupt or does not fit) is a UserError, which __main__ prints as one line
    # (exit 2; --debug shows the traceback). The data checks below predate UserError and raise
    # built-in errors naming the file or value: user_errors treats those as the user's too.
    with user_errors(FileNotFoundError, ValueError, KeyError):
        if args.config is None:
            path = Path(args.resume) if args.resume != "auto" else Path(args.out) / "checkpoints" / "last.pt"
            if args.resume == "auto" and not path.is_file():
                raise UserError(f"--resume auto without --config needs {path}, which does not exist: give --config "
                                "to start a run there")
            ckpt = load_checkpoint(path, verify=False)       # its config only: run() verifies what it resumes
            config = get_config(None, **{**{k: v for k, v in ckpt["config"].items() if k != "preset"}, **overrides})
        else:
            config = get_config(args.config, **overrides)
        rehearsal = settings().max_iters
        if rehearsal is not None:
            config = cut_schedule(config, rehearsal)
            print(f"{ENV['max_iters']}={rehearsal}: every stage cut to {rehearsal} iterations "
                  "(a rehearsal of real mode: its numbers mean nothing)")
        try:
            result = run(config, args.out, max_iters=args.max_iters, resume=args.resume, overwrite=args.overwrite)
            rank = current().rank
        finally:
            cleanup()                   # leave torchrun's process group (no-op otherwise)
    if rank != 0:
        return 0
    print(f"iteration {result['iteration']} ({'finished' if result['finished'] else 'stopped'}); "
          f"last checkpoint: {result['last']}")
    return 0
