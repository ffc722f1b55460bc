"""Does training without pairs help on degraded images? bicubic vs. an SR network trained on
bicubic LR vs. CycleSR vs. dual regression, at a size this CPU machine runs in a few minutes.

The setting (all in ``course_sr.unpaired.compare.compare_methods``, which the notebook calls too):

- data and networks: the ``cyclesr-quick`` preset. Each of the sample's 6 training photos is cut
  in two: the left halves are the clean domain (HR + bicubic LR), the right halves are degraded
  with the synthetic camera (``--degradation``, default ``sensor``: anisotropic blur + noise) and
  ONLY their LR is used: the unpaired real-LR domain. No method ever sees an HR pixel of the real
  domain. (``course_sr/sample.py`` says why halves; ``course_sr/degradations.py`` why no JPEG at
  this size.) ``--same-photos``: the real domain is made from the SAME images as the clean one
  (still never paired: independent random crops), a diagnostic.
  SR network: Vega's VDSR (LR trunk, PixelShuffle), 5 blocks of 16 filters, added to PyTorch's
  bicubic (``bicubic_residual``: it starts as bicubic, so short runs are meaningful).
- test: the sample's 4 test photos (and Set5/Set14 when ``../shared/benchmarks`` exists) with
  HR degraded by one fixed draw (``--test-degradation``, default ``sensor-fixed``), scored against
  the HR: Y-PSNR / SSIM, 4 pixels shaved. Also their ordinary bicubic LR ("clean").
- methods, each trained for the SAME number of SR-network updates (``--iters``) on the same
  batches, with the same SR network and optimiser: trained on bicubic LR (the usual way), CycleSR
  (plus ``--warmup`` CycleGAN-only iterations first, whose time counts in its column; then Vega's
  SR-only phase on bicubic LR, ``--sr-iters`` of its updates, default warmup / 5 as Vega's 1
  epoch to 5), dual regression (DRN's L1 losses), and an oracle trained on the true degradation
  (an upper bound that a real unpaired setting cannot have). Bicubic needs no training.
- ``--seeds``: the whole comparison once per seed (network init and batches); the table and
  ``results`` are the means over seeds, ``gain_db_vs_bicubic_trained`` the mean PSNR gain over the
  network trained on bicubic LR with its per-seed values and minimum beside it.

    python benchmarks/bench_cyclesr.py [--iters 800] [--warmup 1000] [--sr-iters N] [--seeds 0 1 2] [--threads 1]

About 5 minutes per seed on one thread of the 2-core CPU machine (904 s for seeds 0 1 2).
Last stdout line: one JSON object with every number of the table and the budget.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from course_sr.config import get_config
from course_sr.unpaired.compare import COMPARED, comparison_sets, compare_methods, format_comparison
from course_sr.training import data_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"

def shared_sets(cfg, spec) -> dict:
    """Set5 and Set14 with a fixed degradation, when the dev checkout's ../shared exists."""
    from course_sr.unpaired.data import degrade_images, tensor_pairs

    out = {}
    for name in ("Set5", "Set14"):
        folder = SHARED / name / "HR"
        if folder.is_dir():
            pairs = degrade_images(sorted(folder.glob("*.png")), spec, int(cfg.scaling_factor))
            out[f"{name} degraded"] = tensor_pairs(pairs)
    return out


def mean_results(runs: list[dict]) -> dict:
    """``{method: {set: {"psnr", "ssim"}, "train_s"}}`` averaged over the runs (one per seed)."""
    out = {}
    for m, r in runs[0].items():
        out[m] = {k: (float(np.mean([run[m][k] for run in runs])) if k == "train_s" else
                      {q: float(np.mean([run[m][k][q] for run in runs])) for q in v})
                  for k, v in r.items()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=800, help="SR-network updates per method")
    p.add_argument("--warmup", type=int, default=1000, help="CycleGAN-only iterations before CycleSR's joint phase")
    p.add_argument("--sr-iters", type=int, default=None,
                   help="CycleSR's SR-only updates on bicubic LR after the warm-up, counted in --iters (default warmup // 5)")
    p.add_argument("--methods", nargs="+", default=list(COMPARED), choices=COMPARED)
    p.add_argument("--degradation", default="sensor", help="synthetic real-LR spec (preset name or JSON)")
    p.add_argument("--test-degradation", default="sensor-fixed", help="test-set spec (preset name or JSON)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="repeat the comparison with each seed")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="config overrides")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: this shared 2-core machine)")
    p.add_argument("--same-photos", action="store_true",
                   help="real-LR domain from the same photos as the clean one (diagnostic, see above)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    def spec(v):
        return json.loads(v) if v.strip().startswith("{") else v

    sr_iters = args.warmup // 5 if args.sr_iters is None else args.sr_iters
    overrides = {"cyc_warmup_iters": args.warmup, "cyc_sr_iters": sr_iters, "degradation": spec(args.degradation),
                 "test_degradation": spec(args.test_degradation)}
    for item in args.set:
        k, v = item.split("=", 1)
        overrides[k] = json.loads(v)
    cfg = data_config(get_config("cyclesr-quick", **overrides))
    if args.same_photos:   # a second list naming the same photos: UnpairedDataset then degrades all 6
        import shutil
        import tempfile

        lists = Path(tempfile.mkdtemp(prefix="bench_cyclesr_"))
        for split in (cfg.train_split, cfg.val_split):
            shutil.copy(Path(cfg.csv_folder) / f"{split}_images.csv", lists)
        shutil.copy(Path(cfg.csv_folder) / f"{cfg.train_split}_images.csv", lists / "same_photos_images.csv")
        cfg.update(csv_folder=str(lists), real_lr_split="same_photos")
    sets = {**comparison_sets(cfg), **shared_sets(cfg, cfg.test_degradation)}
    t0 = time.perf_counter()
    runs = []
    for seed in args.seeds:
        print(f"--- seed {seed}", flush=True)
        cfg.seed = seed
        runs.append(compare_methods(cfg, args.iters, args.methods, sets=sets, log=lambda m: print(m, flush=True)))
    total = time.perf_counter() - t0
    results = mean_results([r["results"] for r in runs])
    print(f"\nmean over seeds {args.seeds}:")
    print(format_comparison(results, runs[0]["labels"]))
    budget = {**runs[0]["budget"], "degradation": args.degradation, "test_degradation": args.test_degradation,
              "same_photos": args.same_photos, "threads": args.threads, "seeds": args.seeds,
              "total_s": round(total, 1)}
    print(f"\nbudget: {json.dumps(budget)}")
    summary = {"bench": "cyclesr", "budget": budget,
               "results": {m: {k: (round(v, 1) if k == "train_s" else {kk: round(vv, 4) for kk, vv in v.items()})
                               for k, v in r.items()} for m, r in results.items()}}
    if "paired" in results:
        gains = {m: {k: [run["results"][m][k]["psnr"] - run["results"]["paired"][k]["psnr"] for run in runs]
                     for k in results[m] if "degraded" in k}
                 for m in results if m not in ("paired", "bicubic")}
        summary["gain_db_vs_bicubic_trained"] = {m: {k: round(float(np.mean(g)), 3) for k, g in v.items()}
                                                 for m, v in gains.items()}
        summary["gain_db_per_seed"] = {m: {k: [round(x, 3) for x in g] for k, g in v.items()} for m, v in gains.items()}
        summary["gain_db_min"] = {m: {k: round(min(g), 3) for k, g in v.items()} for m, v in gains.items()}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
