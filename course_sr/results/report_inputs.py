"""What an experiment report is made from: run directories and an evaluation directory, read.

- a run directory (written by the training loop through :class:`course_sr.plumbing.records.RunRecords`):
  :func:`load_run` reads ``checkpoints/last.pt`` (else the newest ``checkpoints/*.pt``,
  :func:`find_checkpoint`) for its metadata only, with ``load_checkpoint(verify=False)``
  (memory-mapped: a report does not read hundreds of MB of weights; so the checksum is not
  checked), and ``config.yaml`` when the checkpoint holds no config; :func:`newest_sample` finds
  its latest validation grid;
- an evaluation directory (``python -m course_sr evaluate --out DIR``): :func:`read_summary`
  reads its ``summary.json``; :func:`find_sheets` finds the Set5 comparison sheets beside it or
  beside the runs.

Errors are FileNotFoundError / ValueError (``CheckpointError``) naming the run, file or value.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from course_sr.plumbing.checkpoint import load_checkpoint


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


def unique_run_names(paths: Sequence[Path]) -> list[str]:
    """Directory names, made unique with their parents' names when two runs share one."""
    names = [p.name for p in paths]
    for i, p in enumerate(paths):
        if names.count(p.name) > 1:
            names[i] = f"{p.parent.name}/{p.name}"
    return names


def newest_sample(run_dir: Path) -> Path | None:
    """The latest validation grid ``samples/<stage>_<iteration>.png`` of a run (by iteration)."""
    def iteration(p: Path):
        m = re.search(r"_(\d+)$", p.stem)
        return (int(m.group(1)) if m else -1, p.stat().st_mtime)

    found = sorted((run_dir / "samples").glob("*.png"), key=iteration)
    return found[-1] if found else None


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
