"""The experiment report: one Markdown file (HTML optional) from run directories and an evaluation.

    python -m course_sr report --run runs/srgan [--run runs/no_pretrain ...] [--eval outputs/eval] \\
        --out report.md [--html]

or ``write_report(["runs/srgan"], eval_dir="outputs/eval", out="report.md")`` from a notebook.

What it reads:

- each run directory (written by the training loop through :class:`course_sr.plumbing.records.RunRecords`):
  ``checkpoints/last.pt`` (else the newest ``checkpoints/*.pt``), read for its ``config``,
  ``history``, ``method``, ``stage``, ``iteration`` and ``best_psnr`` only
  (``load_checkpoint(verify=False)``: memory-mapped, so a report does not read hundreds of MB
  of weights, and therefore without the checksum check); ``config.yaml`` when the checkpoint
  holds no config;
- the evaluation directory written by ``python -m course_sr evaluate --out DIR``: ``summary.json``
  (``{"<Set>": {"<method>": {"psnr", "ssim", "n"}}}``) and its CSV files;
- the Set5 comparison sheets (``<dir>/Set5/sheets/*.png``) from the evaluation directory, its
  parent (``outputs/``), the runs' parents, or ``sheets=``.

Reading runs and the evaluation: ``course_sr.results.report_inputs``; the tables and the facts in
them: ``course_sr.results.report_tables``; this module assembles the sections and writes the file.

What it writes: ``<out>`` and the images beside it in ``<out stem>_files/``, with the sections
(in order): runs at a glance (with each stage's best validation PSNR), schedule and settings of
each run (what was trained, in words: ``course_sr.results.explain``; an SRGAN run's table leaves out the
CycleSR keys), settings that differ between runs (two or more), training curves (each run with
its latest validation grid from ``samples/``, then the runs overlaid), test-set results against
bicubic with the metric convention and what the numbers mean (gains over bicubic and over the
bicubic base, the colour check, the paper's figures), Set5 comparison sheets, and the student's
own section.

The student's section lies between ``<!-- student:begin`` and ``<!-- student:end -->``; whatever
is written there is kept, verbatim, when the report is regenerated. (If an existing report has
lost its markers, it is first copied to ``<out>.bak`` so nothing typed is ever lost.)
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Sequence

from course_sr.config import DEFAULTS, PRESETS
from course_sr.plumbing.errors import naming, user_errors
from course_sr.plumbing.records import plot_histories, plot_history
from course_sr.results.evaluate import CONVENTION
from course_sr.results.explain import fmt as _fmt
from course_sr.results.explain import results_notes, schedule_lines
from course_sr.results.markdown_html import markdown_to_html
from course_sr.results.report_inputs import (find_sheets, load_run, newest_sample,  # noqa: F401 - public here too
                                             read_summary, unique_run_names)
from course_sr.results.report_tables import (PUBLISHED_BICUBIC_X4, best_per_stage,  # noqa: F401 - public here too
                                             differing_settings, last_value, markdown_table, overlay_keys,
                                             progress_text, results_table, run_settings, same_setting)

STUDENT_BEGIN = "<!-- student:begin (kept when the report is regenerated: write between these markers) -->"
STUDENT_END = "<!-- student:end -->"
_STUDENT_RE = re.compile(r"<!-- student:begin.*?-->\n?(.*?)<!-- student:end -->", re.S)
STUDENT_TEMPLATE = """\
### What I tried

_One bullet per experiment: what you changed, why, and what you expected._

- 

### Observations

_What do the curves, the table and the Set5 sheets show? Which model would you hand in, and why?_

"""


def metric_convention(scale: int) -> str:
    """The evaluation's own statement of its metric convention (one home: course_sr.results.evaluate)."""
    return CONVENTION.format(scale=scale)


# ---------------------------------------------------------------------------------- the report
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _old_student_section(out: Path) -> str | None:
    if not out.is_file():
        return None
    text = out.read_text(encoding="utf-8")
    m = _STUDENT_RE.search(text)
    if m:
        return m.group(1).rstrip("\n")  # the newline before the end marker is ours
    backup = out.with_name(out.name + ".bak")
    shutil.copyfile(out, backup)
    print(f"note: {out} had no student markers; its old text is saved as {backup}", file=sys.stderr)
    return None


def write_report(runs: Sequence[str | os.PathLike], eval_dir: str | os.PathLike | None = None,
                 out: str | os.PathLike = "report.md", html: bool = False, title: str | None = None,
                 sheets: str | os.PathLike | None = None) -> Path:
    """Write the Markdown report (and ``.html`` when ``html``); returns the Markdown path.

    ``runs``: run directories (one or more; two or more add the comparison sections).
    ``eval_dir``: an evaluation directory holding ``summary.json`` (None: the results section
    says how to make one). Images go to ``<out stem>_files/`` beside ``out``.
    """
    if not runs:
        raise ValueError("write_report needs at least one run directory")
    out = Path(out)
    files = out.parent / f"{out.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    paths = [Path(r) for r in runs]
    infos = [load_run(p, n) for p, n in zip(paths, unique_run_names(paths))]
    eval_path = Path(eval_dir) if eval_dir is not None else None
    summary = read_summary(eval_path) if eval_path is not None else None
    student = _old_student_section(out)

    md: list[str] = [f"# {title or 'Super-resolution experiment report'}", "",
                     f"_Generated by `python -m course_sr report` on {_dt.datetime.now():%Y-%m-%d %H:%M} "
                     f"from {len(infos)} run(s)" + (f" and the evaluation in `{_rel(eval_path, out.parent)}`"
                                                   if eval_path else "") + "._", ""]

    # -- runs at a glance
    md += ["## Runs at a glance", "",
           markdown_table(["run", "method", "checkpoint", "stage", "iteration", "best val PSNR of each stage",
                   "last val PSNR", "last val SSIM"],
                  [[r.name, r.method, f"`{_rel(r.checkpoint, out.parent)}`", r.stage,
                    progress_text(r), best_per_stage(r.history),
                    last_value(r.history, "psnr", 2), last_value(r.history, "ssim", 4)] for r in infos]), ""]

    # -- schedule and settings of each run
    md += ["## Schedule and settings", ""]
    for r in infos:
        changed = run_settings(r)
        md += [f"### {r.name}", "", *schedule_lines(r.config), ""]
        preset = r.config.get("preset")
        if preset in PRESETS:
            base = {**DEFAULTS, **PRESETS[preset]}
            own = {k: v for k, v in changed.items() if not same_setting(v, base[k])}
            md += [f"Preset `{preset}`, changed on top of it: "
                   + (", ".join(f"`{k}` = `{_fmt(v)}` (preset `{_fmt(base[k])}`)" for k, v in own.items())
                      or "nothing") + ".", ""]
        md += ["Every setting that differs from the defaults (`course_sr/config.py`)"
               + (", CycleSR keys left out (an SRGAN run never reads them)" if r.method == "srgan" else "")
               + (" and VGG keys (SRGAN-MSE has no VGG)" if r.method == "srgan"
                  and r.config.get("content_loss") == "mse" else "")
               + ":", ""]
        md += [markdown_table(["setting", "value", "default"],
                      [[k, f"`{_fmt(v)}`", f"`{_fmt(DEFAULTS[k])}`"] for k, v in changed.items()])
               if changed else "(all defaults)", ""]

    # -- comparison of settings
    if len(infos) >= 2:
        diff = differing_settings({r.name: r.config for r in infos})
        md += ["## Settings that differ between runs", ""]
        md += [markdown_table(["setting"] + [r.name for r in infos],
                      [[k] + [f"`{_fmt(v)}`" for v in vs] for k, vs in diff.items()])
               if diff else "The runs share every setting.", ""]

    # -- curves
    md += ["## Training curves", "",
           "Every logged value against the iteration (one panel per quantity, one line per stage). "
           "Validation PSNR/SSIM use the metric convention of the results section.", ""]
    for r in infos:
        md += [f"### {r.name}", ""]
        if r.history:
            png = files / f"curves_{_slug(r.name)}.png"
            plot_history(r.history, out_path=png)
            md += [f"![curves of {r.name}]({_rel(png, out.parent)})", ""]
        else:
            md += ["(no history in the checkpoint: nothing was logged yet)", ""]
        grid = newest_sample(r.path)
        if grid is not None:
            dst = files / f"grid_{_slug(r.name)}.png"
            shutil.copyfile(grid, dst)
            md += [f"Latest validation grid (`{grid.name}`):", "",
                   f"![validation grid of {r.name}]({_rel(dst, out.parent)})", ""]
    if len(infos) >= 2:
        keys = overlay_keys(infos)
        md += ["### Runs overlaid", ""]
        if keys:
            png = files / "curves_compared.png"
            plot_histories({r.name: r.history for r in infos}, keys, out_path=png)
            md += [f"![runs overlaid]({_rel(png, out.parent)})", ""]
        else:
            md += ["(the runs share no logged quantity)", ""]

    # -- results
    scale = int(infos[0].config.get("scaling_factor", 4))
    md += ["## Test-set results", ""]
    if summary:
        md += [results_table(summary, scale=scale), "",
               f"Metric convention: {metric_convention(scale)} Best of each set in bold"
               + ("; the published bicubic row is the papers' figure, beside the kit's own."
                  if scale == 4 and any(s in PUBLISHED_BICUBIC_X4 for s in summary) else "."), ""]
        notes = results_notes(summary)
        if notes:
            md += ["### What the numbers mean", "", *notes, ""]
        csvs = sorted(eval_path.rglob("*.csv"))
        if csvs:
            md += ["Per-image and per-set numbers: " + ", ".join(
                f"[{_rel(c, eval_path)}]({_rel(c, out.parent)})" for c in csvs), ""]
    else:
        md += ["No evaluation given. Make one with `python -m course_sr evaluate --method bicubic "
               "--checkpoint SRGAN=RUN/checkpoints/gan_end.pt --sets Set5 Set14 B100 Urban100 valid "
               "--data-root DATA --out EVAL` and pass `--eval EVAL`.", "",
               f"Metric convention: {metric_convention(scale)}", ""]

    # -- Set5 sheets
    md += ["## Set5 comparison sheets", ""]
    found = find_sheets(eval_path, infos, Path(sheets) if sheets is not None else None)
    if found:
        (files / "sheets").mkdir(exist_ok=True)
        for src in found:
            dst = files / "sheets" / src.name
            shutil.copyfile(src, dst)
            md += [f"### {src.stem}", "", f"![{src.stem}]({_rel(dst, out.parent)})", ""]
    else:
        md += ["No sheets found (looked for `Set5/sheets/*.png` beside the evaluation and the runs). "
               "Make them with `python -m course_sr upscale` or `super_resolution.ipynb`.", ""]

    # -- the student's section
    md += ["## Your notes", "", STUDENT_BEGIN,
           STUDENT_TEMPLATE.rstrip("\n") if student is None else student, STUDENT_END, ""]

    text = "\n".join(md)
    with naming(out):                                    # a full disk names the report
        out.write_text(text, encoding="utf-8")
    if html:
        with naming(out.with_suffix(".html")):
            out.with_suffix(".html").write_text(markdown_to_html(text, title or out.stem), encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------- command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_sr report",
        description="Markdown experiment report (schedule, settings, curves, five-set table, Set5 "
                    "sheets, your notes) from run directories and an evaluation directory.")
    parser.add_argument("--run", action="append", required=True, metavar="DIR",
                        help="a run directory (repeat to compare runs)")
    parser.add_argument("--eval", metavar="DIR", help="evaluation directory holding summary.json")
    parser.add_argument("--sheets", metavar="DIR", help="folder of Set5 comparison sheets (default: searched)")
    parser.add_argument("--out", default="report.md", metavar="FILE.md")
    parser.add_argument("--html", action="store_true", help="also write FILE.html beside it")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    with user_errors(FileNotFoundError, ValueError, RuntimeError):   # these name the run, file or value
        path = write_report(args.run, eval_dir=args.eval, out=args.out, html=args.html,
                            title=args.title, sheets=args.sheets)
    print(f"report written: {path}" + (f" (and {path.with_suffix('.html')})" if args.html else ""))
    if args.eval:
        print(results_table(read_summary(args.eval)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
