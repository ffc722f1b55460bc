"""A seeded degradation synthesiser: HR image -> "real-looking" LR image with known ground truth.

Real low-resolution photos are not bicubic downsamplings: the lens and sensor blur them, the
sensor adds noise and the camera or website compresses them. This module makes such LR
images from HR images with the classical degradation model

    y = JPEG_q( round( (x * k) downarrow_s + n ) ),      n ~ N(0, sigma_n^2)

so that the embedded sample, the tests and students without DIV2K track-2 data get a "real"
LR domain whose HR ground truth is known (a *paired* evaluation of unpaired methods).

Steps, in order (each one optional except the downsampling):

1. **blur** with a Gaussian kernel ``k``, isotropic or anisotropic (std ``sigma`` along its first
   axis, ``sigma2`` along the second, rotated by ``theta``), in HR pixels;
2. **x``scale`` downsampling**, ``down="stride"`` (default): keep one blurred pixel per
   ``scale x scale`` block. The kernel has an even size and is centred on the block's centre,
   which is where MATLAB's bicubic puts each LR pixel, so a network trained on these LR images
   produces SR images aligned with the HR (no half-pixel shift that PSNR would punish).
   ``down="bicubic"``: blur at HR size, then the kit's MATLAB-exact ``imresize`` (its own
   antialiasing kernel adds a little more blur);
3. **noise**: white Gaussian, std ``noise`` on the 0-255 scale, then rounding to uint8;
4. **JPEG** at ``quality`` (PIL, 4:2:0 chroma subsampling, PIL's default).

Every range ``(lo, hi)`` is sampled uniformly per call from ``numpy.random.default_rng(seed)``;
``lo == hi`` fixes the value. So the same ``(image, spec, seed)`` always gives the same LR
(bit-exact on one machine; the blur runs in float64).

Named specs (``degradation="default"`` in the config names one):

- ``default``  the kit's synthetic low-light "camera": anisotropic blur with std 1.5-2.5 HR pixels,
  noise std 10-20, JPEG quality 70-90, drawn per image. Used to synthesise the real-LR training
  domain. The noise is what a bicubic-trained network handles worst (it sharpens it), and what
  a small CycleGAN learns to imitate first (blur alone is too subtle for it in a short run).
- ``fixed``    one point inside ``default`` (std 2.0 x 1.6 at 45 degrees, noise 15, quality 80), for
  test sets: "Set5 with a fixed degradation". The noise pattern still follows the seed.
- ``sensor``   ``default`` without the JPEG step: anisotropic blur std 1.5-2.5, noise std 10-20.
  What the kit's CPU-sized CycleSR runs use (``cyclesr-quick``, ``dual-quick``, the benchmark):
  JPEG at quality 70-90 removes most of the fine-grained noise (a Haar noise estimate of the sample's
  real LR: 4.5 with JPEG, 14 without, 2.2 for clean LR), and what it leaves is too subtle for a
  small discriminator on 16 px patches: measured, it stays near chance for 1000 iterations and
  CycleSR learns nothing (``bench_cyclesr.py --degradation default --test-degradation fixed``,
  seed 0: +0.01 / -0.03 / +0.05 dB over the bicubic-trained VDSR on sample / Set5 / Set14,
  against +0.33 / +0.33 / +0.20 with ``sensor``, mean of 3 seeds). Real cameras compress: the
  full-size ``cyclesr`` preset is meant for ``default`` and real data, on a GPU.
- ``sensor-fixed``  ``fixed`` without the JPEG step: the test sets of ``sensor``.
- ``clean``    no blur, no noise, no JPEG, bicubic downsampling: the clean-LR domain itself.
"""
from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from course_sr.imresize import imresize

Range = tuple[float, float]


@dataclass(frozen=True)
class Degradation:
    """A degradation spec: every random quantity is a ``(lo, hi)`` range sampled uniformly.

    Fields:
        scale: downsampling factor (2, 4 or 8).
        sigma: Gaussian std along the kernel's first axis, HR pixels. ``(0, 0)`` = no blur
            (only with ``down="bicubic"``: striding without blur would just drop pixels).
        sigma2: std along the second axis; None = isotropic (``sigma2 = sigma``).
        theta: rotation of the first axis, radians.
        kernel_size: kernel side in HR pixels; ``kernel_size - scale`` must be even (the kernel is
            centred on each ``scale x scale`` block); 20 covers +-3 std for std up to 3.3.
        down: ``"stride"`` (blur then keep one pixel per block) or ``"bicubic"`` (blur then
            ``imresize``).
        noise: Gaussian noise std on the 0-255 scale; ``(0, 0)`` = none.
        jpeg: JPEG quality range (1-95), or None for no compression.
    """

    scale: int = 4
    sigma: Range = (0.0, 0.0)
    sigma2: Range | None = None
    theta: Range = (0.0, math.pi)
    kernel_size: int = 20
    down: str = "stride"
    noise: Range = (0.0, 0.0)
    jpeg: Range | None = None

    def __post_init__(self):
        def as_range(name, v):
            lo, hi = (float(v), float(v)) if np.isscalar(v) else (float(v[0]), float(v[1]))
            if lo > hi or lo < 0 and name != "theta":
                raise ValueError(f"degradation {name}={v!r}: need 0 <= lo <= hi")
            object.__setattr__(self, name, (lo, hi))

        for name in ("sigma", "theta", "noise"):
            as_range(name, getattr(self, name))
        for name in ("sigma2", "jpeg"):
            if getattr(self, name) is not None:
                as_range(name, getattr(self, name))
        if self.scale not in (2, 4, 8):
            raise ValueError(f"degradation scale must be 2, 4 or 8, got {self.scale!r}")
        if self.down not in ("stride", "bicubic"):
            raise ValueError(f"degradation down must be 'stride' or 'bicubic', got {self.down!r}")
        if self.down == "stride":
            if self.sigma[0] <= 0:
                raise ValueError("degradation down='stride' needs sigma > 0 (striding without blur only drops "
                                 f"pixels); got sigma={self.sigma}")
            if self.kernel_size < self.scale or (self.kernel_size - self.scale) % 2:
                raise ValueError(f"degradation kernel_size={self.kernel_size} must be >= scale={self.scale} "
                                 "and differ from it by an even number (kernel centred on each block)")
        if self.jpeg is not None and not (1 <= self.jpeg[0] and self.jpeg[1] <= 95):
            raise ValueError(f"degradation jpeg quality must lie in 1..95, got {self.jpeg}")


_DEFAULT = Degradation(sigma=(1.5, 2.5), sigma2=(1.5, 2.5), noise=(10.0, 20.0), jpeg=(70, 90))
_FIXED = Degradation(sigma=2.0, sigma2=1.6, theta=math.pi / 4, noise=15.0, jpeg=80)
PRESETS: dict[str, Degradation] = {
    "default": _DEFAULT,
    "fixed": _FIXED,
    "sensor": dataclasses.replace(_DEFAULT, jpeg=None),
    "sensor-fixed": dataclasses.replace(_FIXED, jpeg=None),
    "clean": Degradation(sigma=0.0, down="bicubic"),
}


def _preset(name: str) -> Degradation:
    """``PRESETS[name]``, or one clear error naming the presets (also for ``{"preset": ...}``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown degradation preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def get_degradation(spec: "str | Mapping[str, Any] | Degradation | None",
                    scale: int | None = None) -> Degradation | None:
    """Resolve a config value to a ``Degradation`` (None stays None: no synthetic degradation).

    ``spec`` is a preset name (a key of ``PRESETS``: ``"default"``, ``"fixed"``, ``"sensor"``,
    ``"sensor-fixed"``, ``"clean"``), a ``Degradation``, or a mapping of fields (YAML-friendly: lists for ranges, numbers for fixed values) that may
    name ``preset`` to start from, e.g. ``{"preset": "fixed", "noise": 10}``. ``scale``
    overrides the spec's scale (the config's ``scaling_factor``).
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        out = _preset(spec)
    elif isinstance(spec, Degradation):
        out = spec
    elif isinstance(spec, Mapping):
        fields = dict(spec)
        base = _preset(fields.pop("preset")) if "preset" in fields else Degradation(sigma=1.0)
        unknown = set(fields) - {f.name for f in dataclasses.fields(Degradation)}
        if unknown:
            raise KeyError(f"unknown degradation field(s) {sorted(unknown)}")
        out = dataclasses.replace(base, **fields)
    else:
        raise TypeError(f"degradation spec must be a preset name, a mapping or a Degradation, got {type(spec).__name__}")
    return out if scale is None or scale == out.scale else dataclasses.replace(out, scale=int(scale))


def gaussian_kernel(size: int, sigma: float, sigma2: float, theta: float) -> np.ndarray:
    """A (size, size) float64 Gaussian kernel summing to 1, centred on the grid's centre.

    Std ``sigma`` along the direction at angle ``theta`` (radians, from the x axis), ``sigma2``
    across it. With an even ``size`` the centre falls between pixels (what striding needs).
    """
    c = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(c, c)
    u = np.cos(theta) * xx + np.sin(theta) * yy     # along the first axis
    v = -np.sin(theta) * xx + np.cos(theta) * yy    # across
    k = np.exp(-0.5 * ((u / sigma) ** 2 + (v / sigma2) ** 2))
    return k / k.sum()


def _draw(rng: np.random.Generator, r: Range) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def sample_params(spec: Degradation, seed: "int | tuple[int, ...]") -> dict[str, Any]:
    """The random choices of one degradation: ``sigma``, ``sigma2``, ``theta``, ``noise``,
    ``quality`` (None: no JPEG) and ``noise_seed``. Drawn in a fixed order from
    ``default_rng(seed)``, so they do not depend on the image."""
    rng = np.random.default_rng(seed)
    sigma = _draw(rng, spec.sigma)
    sigma2 = sigma if spec.sigma2 is None else _draw(rng, spec.sigma2)
    theta = _draw(rng, spec.theta)
    noise = _draw(rng, spec.noise)
    quality = None if spec.jpeg is None else int(round(_draw(rng, spec.jpeg)))
    return dict(sigma=sigma, sigma2=sigma2, theta=theta, noise=noise, quality=quality,
                noise_seed=int(rng.integers(2 ** 63)))


def _blur(x: torch.Tensor, kernel: np.ndarray, stride: int) -> torch.Tensor:
    """Depthwise correlation of (1, C, H, W) float64 with the kernel, reflect-padded so that
    the output is (1, C, H/stride, W/stride) and each output pixel is centred on its block."""
    size = kernel.shape[0]
    pad = (size - stride) // 2
    w = torch.from_numpy(kernel).to(x.dtype).expand(x.shape[1], 1, size, size)
    x = F.pad(x, (pad, size - stride - pad) * 2, mode="reflect")
    return F.conv2d(x, w, stride=stride, groups=x.shape[1])


def degrade(hr: np.ndarray, spec: "str | Mapping | Degradation" = "fixed",
            seed: "int | tuple[int, ...]" = 0, return_params: bool = False):
    """Degrade one HR image: uint8 (H, W, 3) -> uint8 (H // s, W // s, 3) LR image.

    The HR image is first cropped top-left to a multiple of ``s = spec.scale`` (the kit's test
    convention, so the LR pairs with ``hr[:s*h, :s*w]``). ``seed`` (an int or a tuple of ints,
    e.g. ``(config.seed, image_index)``) fixes every random choice: the same image, spec and
    seed give the same LR. With ``return_params=True`` returns ``(lr, params)`` where params
    are the drawn values (see ``sample_params``).
    """
    spec = get_degradation(spec)
    if not (isinstance(hr, np.ndarray) and hr.dtype == np.uint8 and hr.ndim == 3 and hr.shape[2] == 3):
        raise TypeError(f"degrade expects a uint8 (H, W, 3) array, got "
                        f"{getattr(hr, 'dtype', type(hr).__name__)} {getattr(hr, 'shape', '')}")
    s = spec.scale
    h, w = hr.shape[0] // s, hr.shape[1] // s
    if min(h, w) < 2 or min(hr.shape[:2]) <= spec.kernel_size // 2:
        raise ValueError(f"degrade: image of {hr.shape[0]}x{hr.shape[1]} pixels is too small for "
                         f"scale {s} and kernel_size {spec.kernel_size}")
    p = sample_params(spec, seed)
    x = torch.from_numpy(np.ascontiguousarray(hr[: s * h, : s * w])).permute(2, 0, 1)[None].double() / 255.0

    if spec.down == "stride":                              # 1+2. blur and keep one pixel per block
        y = _blur(x, gaussian_kernel(spec.kernel_size, p["sigma"], p["sigma2"], p["theta"]), s)
        y = y[0].permute(1, 2, 0).numpy()                  # (h, w, 3) float64 in ~[0, 1]
    else:                                                  # 1. blur at HR size (odd kernel), 2. imresize
        if p["sigma"] > 0:
            x = _blur(x, gaussian_kernel(spec.kernel_size + 1, p["sigma"], p["sigma2"], p["theta"]), 1)
        y = imresize(x[0].permute(1, 2, 0).numpy(), output_shape=(h, w))

    if p["noise"] > 0:                                     # 3. sensor noise, on the 0-255 scale
        y = y + np.random.default_rng(p["noise_seed"]).normal(0.0, p["noise"] / 255.0, y.shape)
    lr = np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)

    if p["quality"] is not None:                           # 4. JPEG round trip in memory
        buf = io.BytesIO()
        Image.fromarray(lr).save(buf, format="JPEG", quality=p["quality"])
        lr = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()
    return (lr, p) if return_params else lr
