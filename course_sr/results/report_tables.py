"""The experiment report's Markdown tables, and the facts about runs and results they show.

Pure functions of what ``course_sr.results.report_inputs`` read (a run's config and history, an
evaluation summary), so each can be checked on made-up values: the settings that differ from the
defaults or between runs, a run's progress and best validation PSNR per stage, the curves two
runs share, and the test-set table (``PSNR / SSIM`` cells, best of each set in bold, the
published bicubic x4 figures beside the kit's own).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from course_sr.config import CYCLESR_KEYS, DEFAULTS, VGG_KEYS, non_defaults
from course_sr.plumbing.records import history_series
from course_sr.results.report_inputs import RunInfo

# Test sets in the course's order; sets not listed follow in the order the summary gives them.
SET_ORDER = ("Set5", "Set14", "B100", "Urban100", "valid")
# Bicubic x4 as SR papers publish it (Y channel of MATLAB rgb2ycbcr, 4 px shaved per border).
PUBLISHED_BICUBIC_X4 = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown pipe table; a ``|`` in a cell is escaped and a newline becomes a space, so any
    value (a path, a tuple setting) stays in its cell."""
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def same_setting(a: Any, b: Any) -> bool:
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
        if not all(same_setting(v, values[0]) for v in values[1:]):
            out[k] = values
    return out


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


def progress_text(run: RunInfo) -> str:
    """``"1200 of 2000"`` (iterations done of planned), the bare count when the plan is not known,
    ``"-"`` when the checkpoint names no iteration."""
    if run.iteration is None:
        return "-"
    total = planned_iterations(run.config)
    return f"{run.iteration} of {total}" if total else str(run.iteration)


def last_value(history: Mapping[str, list], pattern: str, digits: int) -> str:
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


def overlay_keys(runs: Sequence[RunInfo], limit: int = 6) -> list[str]:
    """Bare names logged by two or more runs: PSNR/SSIM first, then losses."""
    counts: dict[str, int] = {}
    for run in runs:
        for name in {k.rsplit("/", 1)[-1] for k in run.history}:
            counts[name] = counts.get(name, 0) + 1
    shared = [n for n, c in counts.items() if c >= 2]
    rank = lambda n: (0 if "psnr" in n else 1 if "ssim" in n else 2 if "loss" in n else 3, n)  # noqa: E731
    return sorted(shared, key=rank)[:limit]


# ---------------------------------------------------------------------------------- results
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
    return markdown_table(header, rows)
