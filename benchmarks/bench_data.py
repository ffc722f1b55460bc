"""Training-patch throughput: the course template's dataset against course_sr's SRDataset.

Builds ~20 synthetic DIV2K-sized PNG pairs (HR about 2040x1356, LR x4 made with Pillow's bicubic:
only throughput matters here) in a temporary folder, then measures training patches per second
through a DataLoader with 2 workers, batch 16, HR crop 96 (LR 24), in the same run:

- template: a faithful minimal copy of the course template's way: every item opens and decodes
  the two full PNGs, crops with PIL, flips/rotates, ``to_tensor``;
- kit, cache="memory": ``course_sr.datasets.SRDataset`` (decode once, crop numpy slices);
- kit, cache="disk": the same from a memory-mapped .npy file (conversion time reported apart).

Decoding the cache is a one-off cost per run (reported as ``*_build_s``), not part of the rate.
The template is timed over fewer batches (it is ~100x slower). Last stdout line: one JSON object.

``--compare-loaders`` measures instead the kit's ring loader (``make_train_loader``) against a
stock ``DataLoader`` over the same embedded sample, memory cache and batch sampler, set up as the
kit sets its loader (workers item by item, and whole batches via ``get_batch``), in alternating
rounds of ``--batches`` batches each, every batch read whole by the consumer (as a copy to the
GPU reads it); it checks that all three yield the same batches. Its figures and the decision they
support are in ``course_sr/data/loader.py``'s docstring.

    python benchmarks/bench_data.py [--images 20] [--batches 1000] [--template-batches 6]
    python benchmarks/bench_data.py --compare-loaders [--rounds 5] [--batches 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import to_tensor

from course_sr.config import get_config
from course_sr.data.lists import read_data_list, write_data_list
from course_sr.datasets import SRDataset
from course_sr.training import data_config
from course_sr.data.loader import ResumableBatchSampler, loader_settings, make_train_loader

SCALE, CROP, BATCH, WORKERS = 4, 96, 16, 2


# --------------------------------------------------------------------------------------
# The course template's way (the baseline): decode two whole PNGs per patch
# --------------------------------------------------------------------------------------
class TemplateSRDataset(Dataset):
    """The template's training dataset, reduced to what costs time: per item, open both files,
    decode them whole (``convert('RGB')``), take an aligned random crop, random flip and
    90-degree rotation with PIL, then ``to_tensor``."""

    def __init__(self, rows, hr_folder, lr_folder, crop_size, scale, patch_num):
        self.images = rows
        self.hr_folder, self.lr_folder = hr_folder, lr_folder
        self.crop_size, self.scale, self.patch_num = crop_size, scale, patch_num

    def __len__(self):
        return len(self.images) * self.patch_num

    def __getitem__(self, i):
        hr_file, lr_file = self.images[i % len(self.images)]
        hr = Image.open(os.path.join(self.hr_folder, hr_file)).convert("RGB")
        lr = Image.open(os.path.join(self.lr_folder, lr_file)).convert("RGB")
        p = self.crop_size // self.scale
        x = random.randint(0, lr.width - p)
        y = random.randint(0, lr.height - p)
        lr = lr.crop((x, y, x + p, y + p))
        hr = hr.crop((x * self.scale, y * self.scale, (x + p) * self.scale, (y + p) * self.scale))
        if random.random() < 0.5:
            lr, hr = lr.transpose(Image.FLIP_LEFT_RIGHT), hr.transpose(Image.FLIP_LEFT_RIGHT)
        for _ in range(random.randint(0, 3)):
            lr, hr = lr.transpose(Image.ROTATE_90), hr.transpose(Image.ROTATE_90)
        return to_tensor(lr), to_tensor(hr)


# --------------------------------------------------------------------------------------
# Data and timing
# --------------------------------------------------------------------------------------
def make_images(root: Path, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` photo-like HR PNGs (smooth colour field + fine noise) and their x4 LR, list rows."""
    rng = np.random.default_rng(seed)
    sizes = [(1356, 2040), (1344, 2040), (2040, 1356), (1152, 2040)]
    rows = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        coarse = Image.fromarray(rng.integers(0, 256, (h // 48, w // 48, 3), dtype=np.uint8))
        hr = np.asarray(coarse.resize((w, h), Image.BICUBIC), dtype=np.int16)
        hr = np.clip(hr + rng.integers(-6, 7, hr.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        hr_rel, lr_rel = f"HR/{i:04d}.png", f"LR/{i:04d}x4.png"
        (root / "HR").mkdir(parents=True, exist_ok=True)
        (root / "LR").mkdir(parents=True, exist_ok=True)
        Image.fromarray(hr).save(root / hr_rel)
        Image.fromarray(hr).resize((w // SCALE, h // SCALE), Image.BICUBIC).save(root / lr_rel)
        rows.append((hr_rel, lr_rel))
    return rows


def rate(loader_iter, batches: int, warmup: int, read_whole: bool = False) -> float:
    """Patches per second over ``batches`` batches after ``warmup`` (worker start-up) batches.

    ``read_whole``: copy every batch into a buffer, as a copy to the GPU (or a CPU step) reads
    it: a loader whose batches arrive as untouched shared-memory pages would otherwise pay its
    page faults nowhere in the timing (the loader comparison reads whole batches)."""
    sinks = None
    for _ in range(max(warmup, 1 if read_whole else 0)):
        lr, hr = next(loader_iter)
        sinks = sinks or (torch.empty_like(lr), torch.empty_like(hr))
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        lr, hr = next(loader_iter)
        if read_whole:
            sinks[0].copy_(lr)
            sinks[1].copy_(hr)
        n += hr.shape[0]
    return n / (time.perf_counter() - t0)


def kit_rate(cfg, cache: str, batches: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    ds = SRDataset("bench_train", cfg, train=True, cache=cache)
    build = time.perf_counter() - t0
    print(f"  {ds.describe()}; built in {build:.1f} s", flush=True)
    loader = make_train_loader(ds, cfg)
    it = iter(loader)
    r = rate(it, batches, warmup=20)
    del it, loader
    return r, build


# --------------------------------------------------------------------------------------
# The kit's loader against a stock DataLoader over the same dataset, cache and batch sampler
# --------------------------------------------------------------------------------------
class _WholeBatches(Dataset):
    """Item ``indices`` is the whole batch ``dataset.get_batch(indices)``: lets a stock DataLoader
    (sampler = the batch sampler, ``batch_size=None``) build batches the way the ring's workers
    do, so the comparison can tell the ring's transport from the batch-at-once fetch."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, indices):
        return self.dataset.get_batch(indices)


def stock_loader(ds, cfg, whole_batches: bool = False, rank: int = 0) -> DataLoader:
    """A stock ``DataLoader`` over the kit's batch sampler, set up as the kit sets its own: the
    same sampler, workers, start method, pinning, persistent workers, 4 batches prefetched per
    worker, and the workers' base seed drawn from a generator seeded with ``seed + rank``.
    A worker builds a batch item by item (``dataset[k]``, collated with ``torch.stack``), or with
    ``whole_batches`` at once (``dataset.get_batch``, as the ring's workers do)."""
    seed = int(cfg.seed)
    opts = loader_settings(cfg)
    sampler = ResumableBatchSampler(len(ds), int(cfg.batch_size), seed, rank=rank)
    more = dict(persistent_workers=True, prefetch_factor=4) if opts["num_workers"] > 0 else {}
    generator = torch.Generator().manual_seed(seed + rank)
    if whole_batches:
        return DataLoader(_WholeBatches(ds), sampler=sampler, batch_size=None, generator=generator,
                          **more, **opts)
    return DataLoader(ds, batch_sampler=sampler, generator=generator, **more, **opts)


def copy_rate(loader, batches: int, warmup: int) -> float:
    """:func:`rate` of a fresh iterator over ``loader``, batches read whole; the workers stop
    before the next round starts its own."""
    it = iter(loader)
    r = rate(it, batches, warmup, read_whole=True)
    del it
    return r


def compare_loaders(args) -> dict:
    """The kit's ``make_train_loader`` against stock DataLoaders (:func:`stock_loader`, per item
    and whole batches) on the embedded sample (memory cache, batch 16, crop 96, 2 workers), in
    alternating rounds of one run; the first 40 batches of each are checked equal."""
    cfg = data_config(get_config(None, data_root=None, train_split="sample_train", crop_size=CROP,
                                 scaling_factor=SCALE, batch_size=BATCH, workers=WORKERS, cache="memory"))
    ds = SRDataset(cfg.train_split, cfg)
    pin = loader_settings(cfg)["pin_memory"]
    print(f"  {ds.describe()}; pin_memory={pin}", flush=True)
    make = {"kit": lambda: make_train_loader(ds, cfg), "stock": lambda: stock_loader(ds, cfg),
            "stock_batch": lambda: stock_loader(ds, cfg, whole_batches=True)}
    firsts = {name: [next(it) for it in [iter(build())] for _ in range(40)] for name, build in make.items()}
    same = all(torch.equal(a, b) for name in ("stock", "stock_batch")
               for x, y in zip(firsts["kit"], firsts[name]) for a, b in zip(x, y))
    print(f"  the first 40 batches are identical: {same}", flush=True)
    rounds = {name: [] for name in make}
    for r in range(args.rounds):
        for name, build in make.items():          # kit, stock, stock_batch, kit, ...
            rounds[name].append(copy_rate(build(), args.batches, warmup=20))
            print(f"  round {r + 1} {name}: {rounds[name][-1]:.0f} patches/s", flush=True)
    med = {name: float(np.median(v)) for name, v in rounds.items()}
    result = {f"{name}_patches_per_s": round(med[name], 1) for name in make}
    for name in ("stock", "stock_batch"):
        ratios = [k / s for k, s in zip(rounds["kit"], rounds[name])]
        result[f"ratio_kit_{name}"] = round(float(np.median(ratios)), 3)
        result[f"round_ratios_kit_{name}"] = [round(v, 3) for v in ratios]
    result.update({f"rounds_{name}": [round(v) for v in rounds[name]] for name in make})
    result.update({f"{name}_reaches_5000": med[name] >= 5000 for name in make})
    result.update({"same_batches": same, "data": "embedded sample, memory cache",
                   "batches_per_round": args.batches, "batch": BATCH, "crop": CROP, "workers": WORKERS,
                   "cpus": os.cpu_count(), "pin_memory": pin})
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--batches", type=int, default=1000, help="batches timed for the kit")
    p.add_argument("--template-batches", type=int, default=6, help="batches timed for the template")
    p.add_argument("--compare-loaders", action="store_true",
                   help="only compare the kit's loader with a stock DataLoader (embedded sample, "
                        "alternating rounds of --batches batches)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per loader with --compare-loaders")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.compare_loaders:
        print("kit loader against a stock DataLoader, alternating rounds ...", flush=True)
        result = compare_loaders(args)
        print(f"median ratios kit/stock: {result['ratio_kit_stock']}x per item, "
              f"{result['ratio_kit_stock_batch']}x whole batches (keep the ring only at >= 1.5x)")
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        rows = make_images(root, args.images)
        write_data_list(root / "data_lists" / "bench_train_images.csv", rows)
        print(f"made {len(rows)} synthetic HR/LR PNG pairs in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        for hr_rel, _ in rows[:5]:
            Image.open(root / hr_rel).convert("RGB")
        decode_ms = (time.perf_counter() - t0) / 5 * 1000
        print(f"one HR PNG decodes in {decode_ms:.0f} ms", flush=True)

        cfg = get_config(None, data_root=str(root), csv_folder=str(root / "data_lists"),
                         crop_size=CROP, scaling_factor=SCALE, batch_size=BATCH, workers=WORKERS,
                         patch_num=100, device="cpu", cache_dir=str(root / "cache"))

        print("template (decode per patch) ...", flush=True)
        tds = TemplateSRDataset(read_data_list(cfg.csv_folder, "bench_train"), str(root), str(root),
                                CROP, SCALE, 100)
        tloader = DataLoader(tds, batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                             persistent_workers=True)
        template = rate(iter(tloader), args.template_batches, warmup=1)
        del tloader
        print(f"  template: {template:.1f} patches/s", flush=True)

        print("kit, cache=memory ...", flush=True)
        memory, memory_build = kit_rate(cfg, "memory", args.batches)
        print(f"  kit memory: {memory:.0f} patches/s", flush=True)
        print("kit, cache=disk ...", flush=True)
        disk, disk_build = kit_rate(cfg, "disk", args.batches)
        print(f"  kit disk: {disk:.0f} patches/s", flush=True)

    result = {
        "patches_per_s": round(memory, 1),
        "disk_patches_per_s": round(disk, 1),
        "template_patches_per_s": round(template, 2),
        "ratio": round(memory / template, 1),
        "disk_ratio": round(disk / template, 1),
        "memory_build_s": round(memory_build, 2),
        "disk_build_s": round(disk_build, 2),
        "png_decode_ms": round(decode_ms, 1),
        "images": args.images, "batch": BATCH, "crop": CROP, "workers": WORKERS,
        "cpus": os.cpu_count(),
    }
    print(f"ratio kit/template: {result['ratio']}x (target >= 100x, >= 5000 patches/s)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
