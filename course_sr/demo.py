"""``make demo`` / ``python -m course_sr demo``: the whole course pipeline on the embedded images.

No download, CPU, a few minutes. Each step is one call into the package, the same calls the
notebooks make, so reading this file is a map of the kit:

1. the embedded sample (:mod:`course_sr.sample`): scikit-image photos as HR, MATLAB-exact LR;
2. the bicubic baseline (:func:`course_sr.evaluate.evaluate`);
3. training (:func:`course_sr.runner.run`, preset ``quick``): SRResNet stage on pixel MSE, then
   the SRGAN stage (tiny networks and a random-weight VGG: it shows the pipeline, not quality);
4. evaluation of both stages against bicubic (table + CSV + JSON);
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
import shutil
import time
from pathlib import Path


def run_demo(out: str | Path = "outputs", preset: str = "quick", fresh: bool = False) -> dict:
    """Run the pipeline into ``out``; returns ``{"results": evaluate's dict, "report": path}``.

    A finished run in ``out/run`` is reused (``resume="auto"``); ``fresh=True`` starts over.
    """
    from .config import get_config
    from .evaluate import evaluate, format_table, image_pairs
    from .report import write_report
    from .runner import plot_history, run
    from .sample import ensure_sample
    from .upscale import super_resolve_set

    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def step(msg: str) -> None:
        print(f"\n[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    step("1/6 embedded sample (scikit-image photos; LR = MATLAB-exact imresize x1/4)")
    root = ensure_sample()
    csv_folder = root / "data_lists"
    test_split = "sample_test"
    print(f"data root: {root}")

    step("2/6 bicubic baseline on the test split")
    print(format_table(evaluate(["bicubic"], [test_split], data_root=root, csv_folder=csv_folder)))

    step(f"3/6 training, preset {preset!r}: SRResNet stage (pixel MSE), then SRGAN stage")
    cfg = get_config(preset)
    result = run(cfg, out / "run", resume="auto")
    ckpts = out / "run" / "checkpoints"
    stage_ckpts = {"SRResNet": ckpts / "pretrain_end.pt", "SRGAN": ckpts / "gan_end.pt"}
    missing = [str(p) for p in stage_ckpts.values() if not p.is_file()]
    if missing:
        raise RuntimeError(f"training finished without its stage checkpoints: {missing}")
    print(f"iteration {result['iteration']}, checkpoints in {ckpts}")

    step("4/6 evaluation: bicubic vs SRResNet vs SRGAN")
    methods = ["bicubic"] + [f"{p}={name}" for name, p in stage_ckpts.items()]
    results = evaluate(methods, [test_split], data_root=root, csv_folder=csv_folder, out_dir=out / "eval")
    print(format_table(results))

    step("5/6 SR images + comparison sheets (the sample's test split stands in for Set5)")
    images = image_pairs(test_split, root, csv_folder)
    sr = super_resolve_set({"bicubic": "bicubic", **{k: str(v) for k, v in stage_ckpts.items()}},
                           images, out / "Set5", progress=False)
    print(f"{len(sr['sheets'])} comparison sheets in {out / 'Set5' / 'sheets'}")

    step("6/6 curves and the experiment report")
    plot_history(result, out_path=out / "curves.png")          # the run's history, no re-read
    report = write_report([out / "run"], eval_dir=out / "eval", out=out / "report.md",
                          sheets=out / "Set5" / "sheets", title="course_sr demo (quick preset)")
    step(f"done: report {report}, curves {out / 'curves.png'}, images {out / 'Set5'}")
    return {"results": results, "report": report}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_sr demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs", help="output folder (default: outputs)")
    p.add_argument("--preset", default="quick", help="training preset (default: quick)")
    p.add_argument("--fresh", action="store_true", help="delete --out first instead of reusing a run")
    args = p.parse_args(argv)
    run_demo(args.out, preset=args.preset, fresh=args.fresh)
    return 0
