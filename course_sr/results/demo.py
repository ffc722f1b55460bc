"""``make demo`` / ``python -m course_sr demo``: the whole course pipeline on the embedded images.

No download, CPU, a few minutes (``--benchmarks DIR`` also scores a real Set5). Each step is one call into the package, the same calls the
notebooks make, so reading this file is a map of the kit:

1. the embedded sample (:mod:`course_sr.data.sample`): scikit-image photos as HR, MATLAB-exact LR;
2. the baselines (:func:`course_sr.results.evaluate.evaluate`): MATLAB bicubic and, for a
   ``bicubic_residual`` preset, the PyTorch bicubic base its network adds to;
3. training (:func:`course_sr.training.run`, preset ``quick``): a tiny SRResNet on pixel MSE
   (with the bicubic residual), then the SRGAN-MSE stage (pixel MSE + 10^-3 x adversarial: no
   ImageNet VGG is needed); what is trained is printed first (``course_sr.results.explain``);
4. evaluation of both stages against the baselines (table + CSV + JSON) and what the numbers
   mean (gains over bicubic and over the base, the colour check, the paper's figures);
5. SR images of the test split at full resolution + comparison sheets (the sample's test split
   stands in for Set5, the course's human-evaluation set);
6. loss/PSNR curves and the Markdown experiment report.

Outputs (``--out``, default ``outputs/``)::

    run/                  the training run (config.yaml, log.txt, checkpoints/, samples/)
    eval/                 summary.json, per_set.csv, per_image.csv, table.txt
    Set5/<method>/*.png   SR images; Set5/sheets/*.png comparison sheets
    curves.png            losses and validation PSNR
    report.md             the experiment report (report_files/ beside it)
"""
from __future__ import annotations

import argparse
import re
import shutil
import time
from pathlib import Path

from course_sr.config import get_config, to_plain
from course_sr.data.lists import MissingDataError
from course_sr.data.sample import ensure_sample
from course_sr.plumbing.checkpoint import load_checkpoint
from course_sr.plumbing.records import plot_history
from course_sr.results.evaluate import evaluate, format_table, image_pairs
from course_sr.results.explain import results_notes, schedule_lines
from course_sr.results.report import write_report
from course_sr.results.upscale import super_resolve_set
from course_sr.training import run


def _plain(line: str) -> str:
    """A Markdown bullet of ``course_sr.results.explain`` as console text."""
    return re.sub(r"\*\*|`", "", line)


def train_or_reuse(cfg, run_dir: str | Path) -> dict:
    """``run(cfg, run_dir, resume="auto")``, but a run of other settings in ``run_dir`` (an older kit
    or another preset) is removed first instead of resumed: for disposable runs only (the demo's, the
    quick runs the notebooks share), never for a student's real run. Returns ``run``'s result."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file() and load_checkpoint(last).get("config") != to_plain(cfg):
        print(f"{run_dir} holds a run of other settings (an older kit or preset): starting it afresh")
        shutil.rmtree(run_dir)
    return run(cfg, run_dir, resume="auto")


def run_demo(out: str | Path = "outputs", preset: str = "quick", fresh: bool = False,
             benchmarks: str | Path | None = None) -> dict:
    """Run the pipeline into ``out``; returns ``{"results": evaluate's dict, "report": path}``.

    A finished run in ``out/run`` is reused (``resume="auto"``) when it has the preset's settings,
    else started afresh; ``fresh=True`` starts everything over.
    ``benchmarks``: a folder holding ``Set5/`` (``HR/`` and ``LR_bicubic/X4/``, e.g. ``data/benchmark``
    after ``python -m course_sr download``); Set5 is then scored beside the sample's test split.
    """
    # Settings first: a bad preset or --benchmarks folder stops before anything is written or deleted.
    cfg = get_config(preset)
    if benchmarks is not None and not (Path(benchmarks) / "Set5" / "HR").is_dir():
        raise MissingDataError(f"--benchmarks {benchmarks}: no Set5/HR folder there (give the folder holding "
                               "Set5/, e.g. data/benchmark after `python -m course_sr download --what benchmark`)")
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def step(msg: str) -> None:
        print(f"\n[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    step("1/6 embedded sample (scikit-image photos; LR = MATLAB-exact imresize x1/4)")
    root = ensure_sample()
    test_split = "sample_test"
    roots = {test_split: root}
    if benchmarks is not None:
        roots["Set5"] = Path(benchmarks)
    print(f"data root: {root}" + (f"; Set5 from {roots['Set5']}" if "Set5" in roots else ""))

    # The bicubic base a bicubic_residual network adds to is scored too: its gain is measured from there.
    baselines = ["bicubic"] + (["torch-bicubic"] if cfg.bicubic_residual else [])
    step(f"2/6 baselines: {' and '.join(baselines)} on {', '.join(roots)}")
    print(format_table(evaluate(baselines, list(roots), data_root=roots)))

    step(f"3/6 training, preset {preset!r}: SRResNet stage, then the SRGAN stage. What is trained:")
    for line in schedule_lines(cfg):
        print(_plain(line))
    wall, cpu = time.perf_counter(), time.process_time()
    result = train_or_reuse(cfg, out / "run")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ckpts = out / "run" / "checkpoints"
    stage_ckpts = {"SRResNet": ckpts / "pretrain_end.pt", "SRGAN": ckpts / "gan_end.pt"}
    missing = [str(p) for p in stage_ckpts.values() if not p.is_file()]
    if missing:
        raise RuntimeError(f"training finished without its stage checkpoints: {missing}")
    print(f"iteration {result['iteration']}, checkpoints in {ckpts}; training took {wall:.0f} s "
          f"({cpu:.0f} s of CPU time in this process)")

    step("4/6 evaluation: " + " vs ".join([*baselines, *stage_ckpts]))
    methods = baselines + [f"{name}={p}" for name, p in stage_ckpts.items()]        # NAME=PATH
    results = evaluate(methods, list(roots), data_root=roots, out_dir=out / "eval")
    print(format_table(results))
    print("\nWhat the numbers mean:")
    for line in results_notes(results):
        print(_plain(line))

    step("5/6 SR images + comparison sheets (the sample's test split stands in for Set5)")
    images = image_pairs(test_split, root)
    sr = super_resolve_set({"bicubic": "bicubic", **{k: str(v) for k, v in stage_ckpts.items()}},
                           images, out / "Set5", progress=False)
    print(f"{len(sr['sheets'])} comparison sheets in {out / 'Set5' / 'sheets'}")

    step("6/6 curves and the experiment report")
    plot_history(result, out_path=out / "curves.png")          # the run's history, no re-read
    report = write_report([out / "run"], eval_dir=out / "eval", out=out / "report.md",
                          sheets=out / "Set5" / "sheets", title=f"course_sr demo ({preset} preset)")
    step(f"done: report {report}, curves {out / 'curves.png'}, images {out / 'Set5'}")
    return {"results": results, "report": report, "train_s": wall, "train_cpu_s": cpu}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_sr demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs", help="output folder (default: outputs)")
    p.add_argument("--preset", default="quick", help="training preset (default: quick)")
    p.add_argument("--fresh", action="store_true", help="delete --out first instead of reusing a run")
    p.add_argument("--benchmarks", default=None, metavar="DIR",
                   help="a folder holding Set5/ (HR, LR_bicubic/X4) to score beside the sample, e.g. data/benchmark")
    args = p.parse_args(argv)
    run_demo(args.out, preset=args.preset, fresh=args.fresh, benchmarks=args.benchmarks)
    return 0
