"""How fast is the kit's MATLAB-exact imresize on a DIV2K-sized image?

Times, in one run, on a deterministic 2040x1356 RGB uint8 image (DIV2K's common size):

- ``down``: x1/4 (2040x1356 -> 510x339), the LR images of the course;
- ``up``:   x4 of that LR back to 2040x1356, the bicubic baseline;

for three implementations:

- the kit: ``course_sr.imresize.imresize`` (cached weights, banded BLAS, MATLAB-exact);
- a plain reference written below: MATLAB's weights computed on every call, put in a dense
  (out x in) matrix, one matrix product per dimension, rounding after each pass. Loop-free
  numpy, exact as well (its result is checked against the kit's: 0 differing pixels);
- Pillow's ``Image.resize(BICUBIC)``: the usual quick alternative. It is NOT MATLAB's imresize
  (other kernel support and geometry, fixed-point arithmetic), so its pixels differ.

Each time is the median of several repeats. BLAS is limited to one thread (set before numpy is
imported) because Pillow uses one: the ratios compare like with like. With CUDA, a batch of 16
such images is also resized on the GPU in one call, next to torch's own bicubic interpolate
(antialiased, not MATLAB-exact).

Ratios are kit time / other time: below 1 the kit is faster. The last stdout line is one JSON
object with every figure.

    python benchmarks/bench_imresize.py          # about 10-20 s on 2 CPU cores
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from course_sr.imresize import imresize  # noqa: E402

WIDTH, HEIGHT, SCALE = 2040, 1356, 4
REPEATS = 7


def make_image(seed: int = 0) -> np.ndarray:
    """Smooth random shapes plus fine grain: photo-like statistics, no file needed."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (HEIGHT // 24, WIDTH // 24, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((WIDTH, HEIGHT), Image.BICUBIC), dtype=np.int16)
    grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def reference_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """Plain MATLAB imresize for uint8 HxWx3: dense weight matrices, nothing cached."""

    def cubic(x):
        a = np.abs(x)
        return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))

    def matrix(n_in: int, n_out: int) -> np.ndarray:
        stretch = min(scale, 1.0)  # antialiasing: widen the kernel when shrinking
        u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate
        j = np.arange(1, n_in + 1)
        dense = np.zeros((n_out, n_in))
        # every input pixel within reach, with the mirrored pixels folded back onto the image
        for shift in (-2 * n_in, 0, 2 * n_in):
            dense += stretch * cubic(stretch * (u[:, None] - (j[None, :] + shift)))
            dense += stretch * cubic(stretch * (u[:, None] - (1 - j[None, :] + shift)))
        return dense / dense.sum(axis=1, keepdims=True)

    x = image.astype(np.float64)
    for axis in (0, 1):  # equal scales: height first
        n_out = math.ceil(x.shape[axis] * scale)
        x = np.moveaxis(np.tensordot(matrix(x.shape[axis], n_out), np.moveaxis(x, axis, 0), axes=1), 0, axis)
        x = np.floor(np.clip(x, 0, 255) + 0.5)
    return x.astype(np.uint8)


def median_time(fn, repeats: int = REPEATS, sync=lambda: None) -> float:
    fn()  # warm-up: caches, allocator, BLAS threads
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> dict:
    torch.set_num_threads(1)
    hr = make_image()
    lr = imresize(hr, 1 / SCALE)
    hr_pil, lr_pil = Image.fromarray(hr), Image.fromarray(lr)

    up = imresize(lr, SCALE)
    exact = {
        "down": int(np.count_nonzero(reference_imresize(hr, 1 / SCALE) != lr)),
        "up": int(np.count_nonzero(reference_imresize(lr, SCALE) != up)),
    }
    pillow_mean_abs_diff = float(np.abs(np.asarray(hr_pil.resize(lr_pil.size, Image.BICUBIC), float) - lr).mean())

    res = {
        "image": f"{WIDTH}x{HEIGHT}x3 uint8",
        "threads": 1,
        "repeats": REPEATS,
        "down_x4_s": median_time(lambda: imresize(hr, 1 / SCALE)),
        "up_x4_s": median_time(lambda: imresize(lr, SCALE)),
        "pillow_down_s": median_time(lambda: hr_pil.resize(lr_pil.size, Image.BICUBIC)),
        "pillow_up_s": median_time(lambda: lr_pil.resize(hr_pil.size, Image.BICUBIC)),
        "reference_down_s": median_time(lambda: reference_imresize(hr, 1 / SCALE), repeats=3),
        "reference_up_s": median_time(lambda: reference_imresize(lr, SCALE), repeats=3),
    }
    for kind in ("down", "up"):
        res[f"ratio_vs_pillow_{kind}"] = res[f"{kind}_x4_s"] / res[f"pillow_{kind}_s"]
        res[f"ratio_vs_reference_{kind}"] = res[f"{kind}_x4_s"] / res[f"reference_{kind}_s"]
    res["pixels_differing_from_reference"] = exact["down"] + exact["up"]
    res["pillow_down_mean_abs_diff_from_matlab"] = pillow_mean_abs_diff

    if torch.cuda.is_available():
        res.update(gpu_figures(hr, lr, up))

    print(f"imresize on {res['image']}, median of {REPEATS} (reference: 3), 1 CPU thread")
    print(f"{'':30s}{'x1/4 (s)':>10s}{'x4 (s)':>10s}")
    print(f"{'kit (MATLAB-exact)':30s}{res['down_x4_s']:10.4f}{res['up_x4_s']:10.4f}")
    print(f"{'plain reference':30s}{res['reference_down_s']:10.4f}{res['reference_up_s']:10.4f}")
    print(f"{'Pillow BICUBIC (not MATLAB)':30s}{res['pillow_down_s']:10.4f}{res['pillow_up_s']:10.4f}")
    print(
        f"kit / Pillow: {res['ratio_vs_pillow_down']:.2f} (x1/4), {res['ratio_vs_pillow_up']:.2f} (x4)   "
        f"kit / reference: {res['ratio_vs_reference_down']:.3f}, {res['ratio_vs_reference_up']:.3f}"
    )
    print(
        f"pixels differing from the reference: {res['pixels_differing_from_reference']}; "
        f"Pillow's x1/4 differs from MATLAB by {pillow_mean_abs_diff:.2f} grey levels on average"
    )
    if "gpu_down_batch16_s" in res:
        print(
            f"GPU ({res['gpu']}), batch of 16 in one call: x1/4 {res['gpu_down_batch16_s']:.4f} s, "
            f"x4 {res['gpu_up_batch16_s']:.4f} s; torch interpolate bicubic: "
            f"{res['gpu_interpolate_down_batch16_s']:.4f} s, {res['gpu_interpolate_up_batch16_s']:.4f} s; "
            f"equal to the CPU result: {res['gpu_equals_cpu']}"
        )
    print(json.dumps(res))
    return res


def gpu_figures(hr: np.ndarray, lr: np.ndarray, up: np.ndarray) -> dict:
    """GPU batch timings; ``up`` = the CPU ``imresize(lr, SCALE)`` the batch must equal."""
    import torch.nn.functional as F

    device = torch.device("cuda")
    sync = torch.cuda.synchronize
    hr_batch = torch.from_numpy(hr).permute(2, 0, 1).contiguous().to(device).expand(16, -1, -1, -1).contiguous()
    lr_batch = torch.from_numpy(lr).permute(2, 0, 1).contiguous().to(device).expand(16, -1, -1, -1).contiguous()
    equal = bool(
        torch.equal(imresize(hr_batch, 1 / SCALE)[0].permute(1, 2, 0).cpu(), torch.from_numpy(lr))
        and torch.equal(imresize(lr_batch, SCALE)[-1].permute(1, 2, 0).cpu(), torch.from_numpy(up))
    )
    hr_float, lr_float = hr_batch.float() / 255, lr_batch.float() / 255
    return {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_down_batch16_s": median_time(lambda: imresize(hr_batch, 1 / SCALE), sync=sync),
        "gpu_up_batch16_s": median_time(lambda: imresize(lr_batch, SCALE), sync=sync),
        "gpu_float32_down_batch16_s": median_time(lambda: imresize(hr_float, 1 / SCALE), sync=sync),
        "gpu_interpolate_down_batch16_s": median_time(
            lambda: F.interpolate(hr_float, size=lr.shape[:2], mode="bicubic", antialias=True), sync=sync
        ),
        "gpu_interpolate_up_batch16_s": median_time(
            lambda: F.interpolate(lr_float, size=hr.shape[:2], mode="bicubic", antialias=False), sync=sync
        ),
        "gpu_equals_cpu": equal,
    }


if __name__ == "__main__":
    main()
