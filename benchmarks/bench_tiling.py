"""Which tile makes CPU inference fastest, and are the tiles exact? ``inference.super_resolve``.

The paper-size SRResNet (16 blocks, 64 channels, x4; random weights: neither the speed nor the
equality of tiles depends on training) super-resolves synthetic photo-like LR images on the CPU,
in the same run and in alternating rounds (odd rounds run the configurations in reverse order),
once per configuration:

- ``whole``: one forward pass over the whole image;
- ``tile T``: cores of T x T LR px, each run with ``overlap`` px of context (the network's
  ``inference.receptive_field``, 40 LR px: the kit's default, which makes tiles exact);
- ``old default``: the rule before this benchmark: 512 x 512 LR px per pass on CPU, so
  ``tile 480`` with ``overlap 16`` above that (whole below it: DIV2K-valid's 510 x 339 ran whole);
- ``kit default``: ``super_resolve(model, lr)`` with nothing chosen: ``inference.tile_grid``, the
  grid that computes the fewest pixels with passes of at most ``inference.CPU_MAX_PIXELS``.

For each: seconds per image (wall clock and this process's CPU time; the minimum over rounds,
the least disturbed by other work on the machine), the ratio against the old default, the LR
pixels computed per LR pixel of the image (the overlap's extra work), and the largest absolute
difference from the whole-image output (SR in [0, 1], float32). Last stdout line: one JSON object.

    python benchmarks/bench_tiling.py            # 340x226 LR, tiles 128 and 256: ~6 CPU-minutes
    python benchmarks/bench_tiling.py --sizes 510x339 --tiles 128 256 --rounds 1   # README
    python benchmarks/bench_tiling.py --sizes 640x480 --tiles --rounds 1   # the old 480 px tiles

The README figures come from the second (about 6 min of wall clock on the shared 2-core machine;
it ran with ``CPU_MAX_PIXELS`` at 384 x 384, so its "kit default" row is that budget's 2 passes).
The third is slow by design (a pass above the slow-down costs ~10x per pixel): not run yet.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

from course_sr.results import inference
from course_sr.config import get_config
from course_sr.models import Generator, count_parameters

SCALE = 4
OLD_CPU_MAX_PIXELS, OLD_OVERLAP = 512 * 512, 16


def make_lr(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Photo-like LR image: smooth random colour field + fine grain, ``(3, H, W)`` float in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (max(2, height // 12), max(2, width // 12), 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    image = np.clip(smooth + rng.integers(-10, 11, smooth.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def configurations(h: int, w: int, tiles: list[int], overlap: int) -> list[dict]:
    """(name, tile, overlap, cores) to run on an h x w image; tiles covering the image are skipped."""
    old_tile = None if h * w <= OLD_CPU_MAX_PIXELS else math.isqrt(OLD_CPU_MAX_PIXELS) - 2 * OLD_OVERLAP
    kit = inference.tile_grid(h, w, 1, inference.pixel_budget(torch.device("cpu"), SCALE), overlap)
    configs = [dict(name="whole", tile=None, overlap=0, cores=None),
               dict(name="old default" + (f" (tile {old_tile}, overlap {OLD_OVERLAP})" if old_tile else " (whole)"),
                    tile=old_tile, overlap=OLD_OVERLAP, cores=old_tile and (old_tile, old_tile), baseline=True),
               dict(name="kit default" + (f" ({kit[0]} x {kit[1]} cores)" if kit else " (whole)"),
                    tile=None, overlap=overlap, cores=kit, kit=True)]
    configs += [dict(name=f"tile {t}", tile=t, overlap=overlap, cores=(t, t)) for t in tiles if t < max(h, w)]
    for c in configs:
        c["computed"] = h * w if c["cores"] is None else inference.computed_pixels(h, w, c["cores"], c["overlap"])
    return configs


def run(model, lr: torch.Tensor, config: dict) -> tuple[torch.Tensor, float, float]:
    """One configuration once: (SR, wall s, CPU s). ``whole`` passes a tile as large as the image."""
    h, w = lr.shape[-2:]
    kwargs = {} if config.get("kit") else dict(tile=config["tile"] or max(h, w), overlap=config["overlap"])
    wall, cpu = time.perf_counter(), time.process_time()
    sr = inference.super_resolve(model, lr, **kwargs)
    return sr, time.perf_counter() - wall, time.process_time() - cpu


def bench_size(model, h: int, w: int, tiles: list[int], rounds: int, overlap: int) -> dict:
    lr = make_lr(h, w)
    configs = configurations(h, w, tiles, overlap)              # "whole" first: the reference
    wall_s = {c["name"]: [] for c in configs}
    cpu_s = {c["name"]: [] for c in configs}
    diffs, whole = {}, None
    for r in range(rounds):
        for c in (configs if r % 2 == 0 else configs[::-1]):
            sr, wall, cpu = run(model, lr, c)
            wall_s[c["name"]].append(wall)
            cpu_s[c["name"]].append(cpu)
            whole = sr if whole is None else whole
            diffs.setdefault(c["name"], float((sr - whole).abs().max()))
            print(f"  {w}x{h} round {r + 1}: {c['name']:<36s} {wall:8.1f} s wall {cpu:8.1f} s CPU", flush=True)
    base = next(c["name"] for c in configs if c.get("baseline"))
    rows = []
    for c in configs:
        name = c["name"]
        rows.append({
            "config": name, "cores": c["cores"], "overlap": c["overlap"],
            "computed_per_pixel": round(c["computed"] / (h * w), 3),
            "s": round(min(wall_s[name]), 2), "cpu_s": round(min(cpu_s[name]), 2),
            "ratio_vs_old_default": round(min(wall_s[name]) / min(wall_s[base]), 3),
            "cpu_ratio_vs_old_default": round(min(cpu_s[name]) / min(cpu_s[base]), 3),
            "max_abs_diff_vs_whole": diffs[name],
        })
    return {"lr": f"{w}x{h}", "lr_pixels": h * w, "rows": rows,
            "all_wall_s": {k: [round(v, 2) for v in vs] for k, vs in wall_s.items()}}


def print_table(result: dict) -> None:
    print(f"\nLR {result['lr']} ({result['lr_pixels']:,} px), SRResNet x4; seconds per image (min over rounds)")
    print(f"{'configuration':<38s}{'px run':>8s}{'wall s':>9s}{'CPU s':>9s}{'wall/old':>10s}{'CPU/old':>9s}"
          f"{'max |diff| vs whole':>21s}")
    for row in result["rows"]:
        print(f"{row['config']:<38s}{row['computed_per_pixel']:8.2f}{row['s']:9.1f}{row['cpu_s']:9.1f}"
              f"{row['ratio_vs_old_default']:10.3f}{row['cpu_ratio_vs_old_default']:9.3f}"
              f"{row['max_abs_diff_vs_whole']:21.2e}")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT in LR px, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[(340, 226)],
                   help="LR sizes WIDTHxHEIGHT (DIV2K-valid x4: 510x339)")
    p.add_argument("--tiles", type=int, nargs="*", default=[128, 256],
                   help="tile cores (LR px) to compare; tiles covering the image are skipped")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (odd ones reversed)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--n-blocks", type=int, default=16, help="SRResNet residual blocks (paper: 16)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Generator(get_config(None, n_blocks=args.n_blocks, scaling_factor=SCALE)).eval()
    overlap = inference.receptive_field(model)
    print(f"SRResNet x4, {args.n_blocks} blocks, {count_parameters(model):,} parameters (random weights); "
          f"receptive field {overlap} LR px (the default overlap); kit CPU budget "
          f"{math.isqrt(inference.CPU_MAX_PIXELS)}^2 LR px per pass; {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs", flush=True)
    inference.super_resolve(model, make_lr(32, 32))                  # warm-up: allocator, oneDNN kernels
    results = []
    for w, h in args.sizes:
        result = bench_size(model, h, w, sorted(set(args.tiles)), args.rounds, overlap)
        print_table(result)
        results.append(result)
    summary = {
        "network": f"SRResNet x4, {args.n_blocks} blocks, 64 channels", "device": "cpu",
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "rounds": args.rounds,
        "receptive_field": overlap, "cpu_max_pixels": inference.CPU_MAX_PIXELS, "sizes": results,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
