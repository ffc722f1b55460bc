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

    python benchmarks/bench_data.py [--images 20] [--batches 1000] [--template-batches 6]
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
from course_sr.data.loader import make_train_loader

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


def rate(loader_iter, batches: int, warmup: int) -> float:
    """Patches per second over ``batches`` batches after ``warmup`` (worker start-up) batches."""
    for _ in range(warmup):
        next(loader_iter)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        lr, hr = next(loader_iter)
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--batches", type=int, default=1000, help="batches timed for the kit")
    p.add_argument("--template-batches", type=int, default=6, help="batches timed for the template")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
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
