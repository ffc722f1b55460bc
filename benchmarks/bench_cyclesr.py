"""Does training without pairs help on degraded images? bicubic vs. an SR network trained on
bicubic LR vs. CycleSR vs. dual regression, at a size this CPU machine runs in a few minutes.

The setting (all in ``course_sr.cyclesr.compare_methods``, which the notebook calls too):

- data and networks: the ``cyclesr-quick`` preset. The sample's 6 training photos are split in
  two disjoint halves: photos 1-3 are the clean domain (HR + bicubic LR), photos 4-6 are degraded
  with the synthetic "camera" (``--degradation``, default: the kit's ``default`` spec) and ONLY
  their LR is used: the unpaired real-LR domain. No method ever sees an HR image of the real
  domain. ``--same-photos``: the real domain is made from the SAME 6 photos as the clean one
  (still never paired: independent random crops) -- a diagnostic of how much the content
  difference between 3 photos and 3 others costs the CycleGAN.
  SR network: VDSR, 5 layers of 16 filters (it starts as bicubic, so short runs are meaningful).
- test: the sample's 4 test photos (and Set5/Set14 when ``../shared/benchmarks`` exists) with
  HR degraded by one fixed draw (``--test-degradation``, default ``fixed``), scored against the
  HR: Y-PSNR / SSIM, 4 pixels shaved. Also their ordinary bicubic LR ("clean").
- methods, each trained for the SAME number of SR-network updates (``--iters``) on the same
  batches, with the same SR network (``--sr-net``) and optimiser: trained on bicubic LR (the
  usual way), CycleSR (plus ``--warmup`` CycleGAN-only iterations first, whose time counts in its
  column), dual regression, and an oracle trained on the true degradation (an upper bound that a
  real unpaired setting cannot have). Bicubic needs no training.

    python benchmarks/bench_cyclesr.py [--iters 1500] [--warmup 1000] [--threads 1]

Last stdout line: one JSON object with every number of the table and the budget.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from course_sr.config import get_config
from course_sr.cyclesr import COMPARED, comparison_sets, compare_methods, format_comparison
from course_sr.runner import data_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"

def shared_sets(cfg, spec) -> dict:
    """Set5 and Set14 with a fixed degradation, when the dev checkout's ../shared exists."""
    from course_sr.datasets import to_tensor
    from course_sr.unpaired import degrade_images

    out = {}
    for name in ("Set5", "Set14"):
        folder = SHARED / name / "HR"
        if folder.is_dir():
            pairs = degrade_images(sorted(folder.glob("*.png")), spec, int(cfg.scaling_factor))
            out[f"{name} degraded"] = [(to_tensor(lr), to_tensor(hr)) for _, lr, hr in pairs]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=1500, help="SR-network updates per method")
    p.add_argument("--warmup", type=int, default=1000, help="CycleGAN-only iterations before CycleSR's joint phase")
    p.add_argument("--methods", nargs="+", default=list(COMPARED), choices=COMPARED)
    p.add_argument("--degradation", default="default", help="synthetic real-LR spec (preset name or JSON)")
    p.add_argument("--test-degradation", default="fixed", help="test-set spec (preset name or JSON)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="config overrides")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: this shared 2-core machine)")
    p.add_argument("--same-photos", action="store_true",
                   help="real-LR domain from the same photos as the clean one (diagnostic, see above)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    def spec(v):
        return json.loads(v) if v.strip().startswith("{") else v

    overrides = {"cyc_warmup_iters": args.warmup, "degradation": spec(args.degradation),
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
    comparison = compare_methods(cfg, args.iters, args.methods, sets=sets, log=lambda m: print(m, flush=True))
    total = time.perf_counter() - t0
    print()
    print(format_comparison(comparison["results"], comparison["labels"]))
    budget = {**comparison["budget"], "degradation": args.degradation, "test_degradation": args.test_degradation,
              "same_photos": args.same_photos, "threads": args.threads, "total_s": round(total, 1)}
    print(f"\nbudget: {json.dumps(budget)}")
    res = comparison["results"]
    summary = {"bench": "cyclesr", "budget": budget,
               "results": {m: {k: (round(v, 1) if k == "train_s" else {kk: round(vv, 4) for kk, vv in v.items()})
                               for k, v in r.items()} for m, r in res.items()}}
    if "paired" in res:
        summary["gain_db_vs_bicubic_trained"] = {
            m: {k: round(r[k]["psnr"] - res["paired"][k]["psnr"], 3) for k in r if k != "train_s" and "degraded" in k}
            for m, r in res.items() if m not in ("paired", "bicubic")}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
