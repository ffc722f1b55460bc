"""The experiment report: one Markdown file (HTML optional) from run directories and an evaluation.

    python -m course_sr report --run runs/srgan [--run runs/no_pretrain ...] [--eval outputs/eval] \\
        --out report.md [--html]

or ``write_report(["runs/srgan"], eval_dir="outputs/eval", out="report.md")`` from a notebook.

What it reads:

- each run directory (written by the runner through :class:`course_sr.plumbing.records.RunRecords`):
  ``checkpoints/last.pt`` (else the newest ``checkpoints/*.pt``), read for its ``config``,
  ``history``, ``method``, ``stage``, ``iteration`` and ``best_psnr`` only
  (``load_checkpoint(verify=False)``: memory-mapped, so a report does not read hundreds of MB
  of weights, and therefore without the checksum check); ``config.yaml`` when the checkpoint
  holds no config;
- the evaluation directory written by ``python -m course_sr evaluate --out DIR``: ``summary.json``
  (``{"<Set>": {"<method>": {"psnr", "ssim", "n"}}}``) and its CSV files;
- the Set5 comparison sheets (``<dir>/Set5/sheets/*.png``) from the evaluation directory, its
  parent (``outputs/``), the runs' parents, or ``sheets=``.

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
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from course_sr.config import CYCLESR_KEYS, DEFAULTS, PRESETS, VGG_KEYS, non_defaults
from course_sr.plumbing.checkpoint import load_checkpoint
from course_sr.plumbing.errors import naming, user_errors
from course_sr.results.evaluate import CONVENTION
from course_sr.results.explain import fmt as _fmt
from course_sr.results.explain import results_notes, schedule_lines  # noqa: F401 - schedule_lines: public here too
from course_sr.results.markdown_html import markdown_to_html
from course_sr.plumbing.records import history_series, plot_histories, plot_history

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

# Test sets in the course's order; sets not listed follow in the order the summary gives them.
SET_ORDER = ("Set5", "Set14", "B100", "Urban100", "valid")
# Bicubic x4 as SR papers publish it (Y channel of MATLAB rgb2ycbcr, 4 px shaved per border).
PUBLISHED_BICUBIC_X4 = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)}


def metric_convention(scale: int) -> str:
    """The evaluation's own statement of its metric convention (one home: course_sr.results.evaluate)."""
    return CONVENTION.format(scale=scale)


# ---------------------------------------------------------------------------------- reading runs
@dataclass
class RunInfo:
    """What the report needs from one run directory."""
    path: Path
    name: str
    checkpoint: Path
    config: dict[str, Any]
    history: dict[str, list]
    method: str
    stage: str
    iteration: int | None
    best_psnr: float | None
    extra: dict[str, Any] = field(default_factory=dict)


def find_checkpoint(run_dir: str | os.PathLike) -> Path:
    """``checkpoints/last.pt`` of a run, else its newest ``checkpoints/*.pt``.

    Raises FileNotFoundError naming the directory when it is missing or holds no checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        return last
    found = sorted((run_dir / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"run directory {run_dir} has no checkpoint (looked for {last} and "
            f"{run_dir / 'checkpoints' / '*.pt'}); is it a directory written by `python -m course_sr train`?")
    return found[-1]


def load_run(run_dir: str | os.PathLike, name: str | None = None) -> RunInfo:
    """Read a run directory: its checkpoint (config, history, progress) and ``config.yaml``."""
    run_dir = Path(run_dir)
    ckpt_path = find_checkpoint(run_dir)
    state = load_checkpoint(ckpt_path, verify=False)     # metadata only: memory-mapped, not verified
    config = state.get("config")
    if not config:
        yaml_path = run_dir / "config.yaml"
        if not yaml_path.is_file():
            raise FileNotFoundError(f"run directory {run_dir}: checkpoint {ckpt_path} holds no config "
                                    f"and {yaml_path} is missing")
        config = yaml.safe_load(yaml_path.read_text()) or {}
    best = state.get("best_psnr")
    best = float(best) if isinstance(best, (int, float)) and best == best and abs(best) != float("inf") else None
    iteration = state.get("iteration")
    return RunInfo(path=run_dir, name=name or run_dir.name, checkpoint=ckpt_path, config=dict(config),
                   history=dict(state.get("history") or {}),
                   method=str(state.get("method") or config.get("method", "?")),
                   stage=str(state.get("stage") or "?"),
                   iteration=int(iteration) if isinstance(iteration, (int, float)) else None,
                   best_psnr=best)


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """Directory names, made unique with their parents' names when two runs share one."""
    names = [p.name for p in paths]
    for i, p in enumerate(paths):
        if names.count(p.name) > 1:
            names[i] = f"{p.parent.name}/{p.name}"
    return names


# ---------------------------------------------------------------------------------- settings
def _same(a: Any, b: Any) -> bool:
    """Equal settings, a tuple and a list of the same items included (YAML has no tuples)."""
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return norm(a) == norm(b)


def differing_settings(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """``{key: [value in run 1, value in run 2, ...]}`` for every key whose values differ."""
    keys: list[str] = []
    for cfg in configs.values():
        keys += [k for k in cfg if k not in keys]
    out = {}
    for k in keys:
        values = [cfg.get(k, DEFAULTS.get(k)) for cfg in configs.values()]
        if not all(_same(v, values[0]) for v in values[1:]):
            out[k] = values
    return out


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- results
def read_summary(eval_dir: str | os.PathLike) -> dict[str, dict[str, dict]]:
    """``summary.json`` of an evaluation directory; FileNotFoundError/ValueError name the file."""
    path = Path(eval_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"evaluation directory {eval_dir} has no summary.json "
                                "(write one with `python -m course_sr evaluate ... --out DIR`)")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(summary, dict) or not all(isinstance(v, dict) for v in summary.values()):
        raise ValueError(f"{path} must map set -> method -> {{psnr, ssim, n}}")
    return summary


def _ordered_sets(summary: Mapping[str, Any]) -> list[str]:
    return [s for s in SET_ORDER if s in summary] + [s for s in summary if s not in SET_ORDER]


def results_table(summary: Mapping[str, Mapping[str, Mapping[str, float]]], scale: int = 4) -> str:
    """Markdown table: one row per method, one column per set, cells ``PSNR / SSIM``.

    The best PSNR and SSIM of each set are in bold; the published bicubic x4 row is added
    under the kit's rows when ``scale == 4``.
    """
    sets = _ordered_sets(summary)
    methods: list[str] = []
    for s in sets:
        methods += [m for m in summary[s] if m not in methods]
    best = {s: (max((r.get("psnr", float("-inf")) for r in summary[s].values()), default=None),
                max((r.get("ssim", float("-inf")) for r in summary[s].values()), default=None))
            for s in sets}
    header = ["method"] + [f"{s} ({max((int(r.get('n', 0)) for r in summary[s].values()), default=0)})"
                           for s in sets]
    rows = []
    for m in methods:
        row = [m]
        for s in sets:
            r = summary[s].get(m)
            if r is None:
                row.append("-")
                continue
            p = f"{r['psnr']:.2f}"
            q = f"{r['ssim']:.4f}"
            row.append(f"{'**' + p + '**' if r['psnr'] == best[s][0] and len(summary[s]) > 1 else p} / "
                       f"{'**' + q + '**' if r['ssim'] == best[s][1] and len(summary[s]) > 1 else q}")
        rows.append(row)
    if scale == 4 and any(s in PUBLISHED_BICUBIC_X4 for s in sets):
        rows.append(["_bicubic, published_"] + [
            f"_{PUBLISHED_BICUBIC_X4[s][0]:.2f} / {PUBLISHED_BICUBIC_X4[s][1]:.4f}_"
            if s in PUBLISHED_BICUBIC_X4 else "" for s in sets])
    return _table(header, rows)


def find_sheets(eval_dir: Path | None, runs: Sequence[RunInfo], sheets: Path | None = None) -> list[Path]:
    """Set5 comparison sheets: ``sheets`` if given, else the first ``.../Set5/sheets`` found."""
    if sheets is not None:
        if not Path(sheets).is_dir():
            raise FileNotFoundError(f"sheets folder {sheets} does not exist")
        return sorted(Path(sheets).glob("*.png"))
    candidates = []
    if eval_dir is not None:
        candidates += [eval_dir / "Set5" / "sheets", eval_dir / "sheets", eval_dir.parent / "Set5" / "sheets"]
    for run in runs:
        candidates += [run.path / "Set5" / "sheets", run.path.parent / "Set5" / "sheets"]
    for c in candidates:
        found = sorted(c.glob("*.png"))
        if found:
            return found
    return []


# ---------------------------------------------------------------------------------- the report
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _progress(run: RunInfo) -> str:
    if run.iteration is None:
        return "-"
    total = planned_iterations(run.config)
    return f"{run.iteration} of {total}" if total else str(run.iteration)


def _last(history: Mapping[str, list], pattern: str, digits: int) -> str:
    """Last value of the first series whose name contains ``pattern`` (val_ preferred)."""
    names = sorted({k.rsplit("/", 1)[-1] for k in history if pattern in k.rsplit("/", 1)[-1]},
                   key=lambda n: (not n.startswith("val"), n))
    if not names:
        return "-"
    steps, values = history_series(history, names[0])
    return f"{values[-1]:.{digits}f} (it {steps[-1]})" if values else "-"


def best_per_stage(history: Mapping[str, list], digits: int = 2) -> str:
    """Each stage's best validation PSNR and its iteration, ``"pretrain 28.91 (it 1000); gan ..."``
    (in the order the stages ran), or ``"-"`` when nothing was validated."""
    parts = []
    for key in sorted((k for k in history if k.rsplit("/", 1)[-1] == "val_psnr" and history[k]),
                      key=lambda k: history[k][0][0]):
        step, value = max(history[key], key=lambda e: (e[1], -e[0]))
        parts.append(f"{key.rsplit('/', 1)[0] if '/' in key else 'val'} {value:.{digits}f} (it {int(step)})")
    return "; ".join(parts) or "-"


def run_settings(run: RunInfo) -> dict[str, Any]:
    """The settings of a run that differ from the defaults, less those its method never reads
    (an SRGAN run's CycleSR keys, which presets such as ``quick`` also set; an SRGAN-MSE run's
    VGG keys)."""
    changed = non_defaults(run.config)
    if run.method == "srgan":
        unused = CYCLESR_KEYS | (VGG_KEYS if run.config.get("content_loss") == "mse" else frozenset())
        changed = {k: v for k, v in changed.items() if k not in unused}
    return changed


def planned_iterations(cfg: Mapping[str, Any]) -> int | None:
    """Iterations a run's schedule plans in all (SRGAN: both stages), None when not known here."""
    if cfg.get("method", "srgan") == "srgan":
        return int(cfg.get("pretrain_iters", 0)) + int(cfg.get("gan_iters", 0))
    return None


def newest_sample(run_dir: Path) -> Path | None:
    """The latest validation grid ``samples/<stage>_<iteration>.png`` of a run (by iteration)."""
    def iteration(p: Path):
        m = re.search(r"_(\d+)$", p.stem)
        return (int(m.group(1)) if m else -1, p.stat().st_mtime)

    found = sorted((run_dir / "samples").glob("*.png"), key=iteration)
    return found[-1] if found else None


def _overlay_keys(runs: Sequence[RunInfo], limit: int = 6) -> list[str]:
    """Bare names logged by two or more runs: PSNR/SSIM first, then losses."""
    counts: dict[str, int] = {}
    for run in runs:
        for name in {k.rsplit("/", 1)[-1] for k in run.history}:
            counts[name] = counts.get(name, 0) + 1
    shared = [n for n, c in counts.items() if c >= 2]
    rank = lambda n: (0 if "psnr" in n else 1 if "ssim" in n else 2 if "loss" in n else 3, n)  # noqa: E731
    return sorted(shared, key=rank)[:limit]


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
    infos = [load_run(p, n) for p, n in zip(paths, _unique_names(paths))]
    eval_path = Path(eval_dir) if eval_dir is not None else None
    summary = read_summary(eval_path) if eval_path is not None else None
    student = _old_student_section(out)

    md: list[str] = [f"# {title or 'Super-resolution experiment report'}", "",
                     f"_Generated by `python -m course_sr report` on {_dt.datetime.now():%Y-%m-%d %H:%M} "
                     f"from {len(infos)} run(s)" + (f" and the evaluation in `{_rel(eval_path, out.parent)}`"
                                                   if eval_path else "") + "._", ""]

    # -- runs at a glance
    md += ["## Runs at a glance", "",
           _table(["run", "method", "checkpoint", "stage", "iteration", "best val PSNR of each stage",
                   "last val PSNR", "last val SSIM"],
                  [[r.name, r.method, f"`{_rel(r.checkpoint, out.parent)}`", r.stage,
                    _progress(r), best_per_stage(r.history),
                    _last(r.history, "psnr", 2), _last(r.history, "ssim", 4)] for r in infos]), ""]

    # -- schedule and settings of each run
    md += ["## Schedule and settings", ""]
    for r in infos:
        changed = run_settings(r)
        md += [f"### {r.name}", "", *schedule_lines(r.config), ""]
        preset = r.config.get("preset")
        if preset in PRESETS:
            base = {**DEFAULTS, **PRESETS[preset]}
            own = {k: v for k, v in changed.items() if not _same(v, base[k])}
            md += [f"Preset `{preset}`, changed on top of it: "
                   + (", ".join(f"`{k}` = `{_fmt(v)}` (preset `{_fmt(base[k])}`)" for k, v in own.items())
                      or "nothing") + ".", ""]
        md += ["Every setting that differs from the defaults (`course_sr/config.py`)"
               + (", CycleSR keys left out (an SRGAN run never reads them)" if r.method == "srgan" else "")
               + (" and VGG keys (SRGAN-MSE has no VGG)" if r.method == "srgan"
                  and r.config.get("content_loss") == "mse" else "")
               + ":", ""]
        md += [_table(["setting", "value", "default"],
                      [[k, f"`{_fmt(v)}`", f"`{_fmt(DEFAULTS[k])}`"] for k, v in changed.items()])
               if changed else "(all defaults)", ""]

    # -- comparison of settings
    if len(infos) >= 2:
        diff = differing_settings({r.name: r.config for r in infos})
        md += ["## Settings that differ between runs", ""]
        md += [_table(["setting"] + [r.name for r in infos],
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
        keys = _overlay_keys(infos)
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
               "--checkpoint RUN/checkpoints/gan_end.pt=SRGAN --sets Set5 Set14 B100 Urban100 valid "
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
