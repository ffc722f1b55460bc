"""MATLAB's ``imresize``, bit for bit, for numpy arrays and torch tensors.

SR papers make their low-resolution (LR) images with MATLAB's ``imresize(hr, 1/4)`` and score
bicubic upscaling with ``imresize(lr, 4)``. Pillow, OpenCV and ``torch.nn.functional.interpolate``
all give different pixels, so a model trained or scored on their output is on a different task.
This module reproduces MATLAB exactly: every LR file of Set5/Set14 in ``../shared/benchmarks`` is
rebuilt here with zero differing pixels (``tests/test_imresize.py``).

    >>> from course_sr.imresize import imresize
    >>> lr = imresize(hr, scalar_scale=1 / 4)          # HxWx3 uint8 -> (H/4)x(W/4)x3 uint8
    >>> up = imresize(lr, output_shape=hr.shape[:2])    # bicubic baseline at HR size

MATLAB's conventions, which is all there is to it:

- **Kernel.** Bicubic is Keys' cubic with ``a = -0.5``; it is 4 pixels wide
  (``method="bilinear"``: the triangle, 2 pixels wide).
- **Geometry.** Output pixel ``x`` (1-based) samples the input at ``u = x/scale + 0.5*(1 - 1/scale)``,
  so pixel *areas* line up (corners at 0.5 match), not pixel centres.
- **Antialiasing.** When shrinking (``scale < 1``) the kernel is stretched by ``1/scale``
  (``h(x) = scale*k(scale*x)``), so a 1/4 resize weighs 16 input pixels (per dimension) into
  each output pixel instead of 4; each row of weights is then normalised to sum to 1.
- **Sizes.** From a scale, the output size is ``ceil(scale*in)``; from an output size,
  ``scale = out/in`` per dimension (so the two can differ in each dimension).
- **Order.** The image is resized one dimension at a time: the dimension with the smaller scale
  first, the height first when the scales are equal.
- **Rounding.** For uint8 images MATLAB rounds (half away from zero) and clips to 0..255 after
  *each* 1-D pass, so the result is not ``round(resize(double(img)))``. Float images are never
  rounded or clipped.
- **Border.** Taps that fall outside the image are mirrored, edge pixel included: (1-based)
  index ``0`` reads pixel ``1``, ``-1`` reads ``2`` (current MATLAB, ``border="symmetric"``);
  ``border="replicate"`` is the older rule that repeats the edge pixel.

Exactness is also about the *order* of floating-point sums: a uint8 value can land exactly on a
rounding tie (``x.5``, common at sharp edges), and then the last bit decides. The exact result
here is the taps added first to last in float64, as a plain loop (MATLAB's resampling code) adds
them. The fast path uses BLAS (another order), so every value within ``1e-8`` of a tie is
recomputed first to last. When every weight is a short binary fraction (scales 2, 4, 8, 1/2,
1/4, 1/8: the usual SR factors) every product and partial sum is exact in float64, no order can
change a bit, and that check is skipped.

Speed: the weights and indices of each (size in, size out, scale, kernel, antialiasing, border)
are computed once and cached. A numpy image (and a CPU tensor) is resized with banded matrix
products, a few dozen small BLAS calls per pass with the rounding done while each band is in
cache: about Pillow's time on a DIV2K image (``benchmarks/bench_imresize.py``). A tensor off the CPU, or one that needs gradients, is
resized in torch on its own device by a tap loop (one gather and multiply-add per kernel tap), so
a whole NCHW batch takes one call and gradients flow for float tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real
from typing import Any, Sequence

import numpy as np

METHODS = ("bicubic", "bilinear")
BORDERS = ("symmetric", "replicate")

# A BLAS sum differs from the first-to-last sum by at most about P*255*2^-52 (about 1e-11 for the
# 34 taps of a 1/8 resize); anything this close to a rounding tie is recomputed in MATLAB's order.
_TIE_TOL = 1e-8
_BAND_TAPS = 1.0  # output rows per band, in units of taps*scale (see _bands)
_BAND_MIN_ROWS = 4


# --------------------------------------------------------------------------------------
# Kernels and weights (shared by the numpy and torch paths)
# --------------------------------------------------------------------------------------
def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as MATLAB writes it (support [-2, 2])."""
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    ) * ((1 < absx) & (absx <= 2))


def _triangle(x: np.ndarray) -> np.ndarray:
    """The bilinear (triangle) kernel, support [-1, 1]."""
    return (x + 1) * ((-1 <= x) & (x < 0)) + (1 - x) * ((0 <= x) & (x <= 1))


@dataclass(frozen=True)
class _Plan:
    """Everything needed to resize one dimension of length ``n_in`` to ``n_out``.

    ``weights``/``indices`` are (n_out, P): output pixel i is sum_k weights[i, k] * x[indices[i, k]]
    (0-based indices, border rule applied, all-zero tap columns removed as MATLAB does).
    ``blocks`` is the same linear map cut into dense bands for BLAS: (start, stop, lo, hi, M) with
    out[start:stop] = M @ x[lo:hi]. ``order_free`` says that every product and partial sum of a
    uint8 image is exact in float64, so the summation order cannot change a rounded result.
    """

    weights: np.ndarray
    indices: np.ndarray
    blocks: tuple
    order_free: bool


@lru_cache(maxsize=128)
def _plan(n_in: int, n_out: int, scale: float, method: str, antialiasing: bool, border: str) -> _Plan:
    kernel, width = (_cubic, 4.0) if method == "bicubic" else (_triangle, 2.0)
    if scale < 1 and antialiasing:
        # Stretch the kernel by 1/scale: a low-pass filter at the new sampling rate.
        def h(x):
            return scale * kernel(scale * x)

        width = width / scale
    else:
        h = kernel
    # MATLAB's formulas, 1-based, kept in the same floating-point order.
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2  # one spare tap: all-zero columns are dropped below
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = h(u[:, None] - indices)
    total = weights[:, 0].copy()  # row sums added first to last, as MATLAB's sum does
    for k in range(1, taps):
        total += weights[:, k]
    weights = weights / total[:, None]
    indices = indices.astype(np.int64) - 1  # to 0-based
    if border == "symmetric":  # mirror: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
        period = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
        indices = period[np.mod(indices, 2 * n_in)]
    else:  # replicate the edge pixel
        indices = np.clip(indices, 0, n_in - 1)
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep]
    weights.flags.writeable = False
    indices.flags.writeable = False
    return _Plan(weights, indices, _bands(weights, indices, scale), _is_order_free(weights))


def _bands(weights: np.ndarray, indices: np.ndarray, scale: float) -> tuple:
    """Cut the (n_out x n_in) resize matrix into dense bands of rows for BLAS.

    Each band is small enough to waste few multiplications on zeros, large enough for BLAS to
    run at speed.
    """
    n_out, taps = weights.shape
    # A band of r output rows reads about r/scale + taps input rows; r = taps*scale keeps that
    # window near 2 taps (measured best on DIV2K-sized images, shrinking and enlarging).
    rows = min(n_out, max(_BAND_MIN_ROWS, round(_BAND_TAPS * taps * scale)))
    bands = []
    for start in range(0, n_out, rows):
        stop = min(n_out, start + rows)
        idx = indices[start:stop]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        band = np.zeros((stop - start, hi - lo))
        r = np.arange(stop - start)
        for k in range(taps):  # add.at: mirrored taps may hit the same pixel twice
            np.add.at(band, (r, idx[:, k] - lo), weights[start:stop, k])
        band.flags.writeable = False
        bands.append((start, stop, lo, hi, band))
    return tuple(bands)


def _is_order_free(weights: np.ndarray) -> bool:
    """True if all weights are multiples of 2^-e with 255 * max row |sum| * 2^e < 2^53.

    Then every product w*v (v in 0..255) and every partial sum is an exactly representable
    double, so BLAS and MATLAB's first-to-last order give the same bits.
    """
    for e in range(60):
        scaled = np.ldexp(weights, e)
        if np.array_equal(scaled, np.trunc(scaled)):
            return bool(255 * np.abs(weights).sum(axis=1).max() * 2.0**e < 2.0**53)
    return False


# --------------------------------------------------------------------------------------
# Argument checks, output sizes and pass order (MATLAB's rules)
# --------------------------------------------------------------------------------------
def _sizes_and_scales(in_hw, scalar_scale, output_shape):
    if (scalar_scale is None) == (output_shape is None):
        raise ValueError(
            "imresize needs exactly one of scalar_scale and output_shape, got "
            f"scalar_scale={scalar_scale!r}, output_shape={output_shape!r}"
        )
    if scalar_scale is not None:
        if (
            isinstance(scalar_scale, bool)
            or not isinstance(scalar_scale, Real)
            or not math.isfinite(scalar_scale)
            or scalar_scale <= 0
        ):
            raise ValueError(f"scalar_scale must be a finite number > 0, got {scalar_scale!r}")
        scale = float(scalar_scale)
        out_hw = tuple(int(math.ceil(scale * n)) for n in in_hw)
        return out_hw, (scale, scale)
    try:
        out_hw = tuple(int(v) for v in output_shape)
        ok = len(out_hw) == 2 and all(o == v and o > 0 for o, v in zip(out_hw, output_shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"output_shape must be two positive integers (height, width), got {output_shape!r}")
    return out_hw, tuple(o / n for o, n in zip(out_hw, in_hw))


def _pass_order(scales) -> list[int]:
    """Dimensions to resize, smaller scale first, height first on a tie; scale 1 is skipped
    (its weights are exactly the identity, so skipping it changes no bit)."""
    return [d for d in sorted(range(2), key=lambda d: scales[d]) if scales[d] != 1.0]


def imresize(
    image: Any,
    scalar_scale: float | None = None,
    output_shape: Sequence[int] | None = None,
    method: str = "bicubic",
    antialiasing: bool = True,
    border: str = "symmetric",
):
    """Resize like MATLAB's ``imresize(image, scale)`` / ``imresize(image, [h w])``.

    Args:
        image: numpy ``HxW`` or ``HxWxC`` array, or torch ``CxHxW`` / ``NxCxHxW`` tensor (``HxW``
            too), uint8 (values 0..255) or floating point (any range, nothing is clipped).
        scalar_scale: one factor for both dimensions (``1/4`` shrinks, ``4`` enlarges); the output
            size is ``ceil(scale * size)``.
        output_shape: ``(height, width)`` instead of a scale; each dimension then has its own
            scale ``out/in``.
        method: ``"bicubic"`` (MATLAB's default) or ``"bilinear"``.
        antialiasing: widen the kernel by ``1/scale`` when shrinking (MATLAB's default, True).
        border: ``"symmetric"`` (current MATLAB) or ``"replicate"`` (older MATLAB).

    Returns:
        The same kind as ``image`` (numpy array or tensor on the same device) with the same dtype,
        batch and channel dimensions; only height and width change. uint8 results are
        rounded and clipped after each 1-D pass as MATLAB does; float results are neither.
        Arithmetic is float64, except for a float32/16 tensor off the CPU: float32 (about 1e-6
        relative).

    Raises:
        ValueError: naming the bad value (dimensions, dtype, scale, shape, method, border).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    if isinstance(image, np.ndarray):
        return _imresize_numpy(image, scalar_scale, output_shape, method, bool(antialiasing), border)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the kit
        torch = None
    if torch is not None and isinstance(image, torch.Tensor):
        return _imresize_torch(image, scalar_scale, output_shape, method, bool(antialiasing), border)
    raise ValueError(f"image must be a numpy array or a torch tensor, got {type(image).__name__}")


# --------------------------------------------------------------------------------------
# numpy: banded BLAS products, rounding fused per band
# --------------------------------------------------------------------------------------
def matlab_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image the standard benchmarks' MATLAB files are: ``hr`` (H, W, C) uint8 cropped
    top-left to a multiple of ``scale``, then ``imresize(hr, 1/scale)`` on the uint8 path.
    Returns (H // scale, W // scale, C) uint8, C-contiguous."""
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    if h == 0 or w == 0:
        raise ValueError(f"image is {hr.shape[1]}x{hr.shape[0]}, smaller than the scale {scale}")
    return np.ascontiguousarray(imresize(hr[:h, :w], scalar_scale=1.0 / scale))


def _check_numpy(image: np.ndarray) -> None:
    if image.ndim not in (2, 3):
        raise ValueError(f"a numpy image must be HxW or HxWxC, got shape {image.shape}")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image dtype must be uint8 or floating point, got {image.dtype}")
    if min(image.shape[:2]) == 0 or (image.ndim == 3 and image.shape[2] == 0):
        raise ValueError(f"image is empty, shape {image.shape}")


def _imresize_numpy(image, scalar_scale, output_shape, method, antialiasing, border):
    _check_numpy(image)
    out_hw, scales = _sizes_and_scales(image.shape[:2], scalar_scale, output_shape)
    out = np.empty(out_hw + image.shape[2:], dtype=image.dtype)
    view = image if image.ndim == 3 else image[:, :, None]
    out_view = out if out.ndim == 3 else out[:, :, None]
    _resize_hwl(view, out_view, out_hw, scales, method, antialiasing, border)
    return out


def _resize_hwl(x: np.ndarray, out: np.ndarray, out_hw, scales, method, antialiasing, border) -> None:
    """Resize ``x`` (any-strided view with axes height, width, channels) into ``out`` (same axes).

    Between passes the data stays float64 (rounded to integers for uint8); the last pass writes
    straight into ``out`` with the cast, so no full-size float copy of the result is kept.
    """
    quantize = out.dtype == np.uint8
    order = _pass_order(scales)
    if not order:  # both scales are 1: MATLAB's result is the image itself
        np.copyto(out, x)
        return
    for i, d in enumerate(order):
        plan = _plan(x.shape[d], out_hw[d], scales[d], method, antialiasing, border)
        x = _numpy_pass(x, d, plan, quantize, out if i == len(order) - 1 else None)


def _numpy_pass(x: np.ndarray, axis: int, plan: _Plan, quantize: bool, out: np.ndarray | None):
    """Resize axis ``axis`` (0 or 1) of the 3-D view ``x``; return the result as a 3-D view.

    The resized axis is brought to the front of a 2-D (n, rest) array so that each band is one
    BLAS call, ``M @ rows``, over long contiguous rows.
    """
    others = [a for a in range(3) if a != axis]
    moved = x.transpose(axis, *others)
    if not _c_contiguous(moved):
        # Copy once, putting the longest remaining axis innermost: long inner loops copy fast.
        if x.shape[others[0]] > x.shape[others[1]]:
            others.reverse()
        moved = np.ascontiguousarray(x.transpose(axis, *others), dtype=np.float64)
    perm = [axis, *others]
    rest_shape = moved.shape[1:]
    src = moved.reshape(moved.shape[0], -1)
    n_out = plan.weights.shape[0]
    if out is None:
        result = np.empty((n_out, src.shape[1]))
        dst = None
    else:
        result = None
        dst = out.transpose(perm)  # the caller's array seen with the same axis order as src
    for start, stop, lo, hi, band in plan.blocks:
        rows = src[lo:hi]
        if rows.dtype != np.float64:
            rows = rows.astype(np.float64)
        y = np.matmul(band, rows, out=None if result is None else result[start:stop])
        if quantize:
            # MATLAB: floor(clip(y, 0, 255) + 0.5), i.e. round half away from zero and saturate;
            # computed as clip(y + 0.5, 0, 255) then floor, which is the same for every y.
            y += 0.5
            if not plan.order_free:
                _redo_near_ties(y, rows, plan, start, stop, lo)
            if dst is None:
                np.clip(y, 0, 255, out=y)
                np.floor(y, out=y)
            else:  # clip straight into the uint8 result; the cast truncates, i.e. floors
                np.clip(y.reshape(dst[start:stop].shape), 0, 255, out=dst[start:stop], casting="unsafe")
        elif dst is not None:
            np.copyto(dst[start:stop], y.reshape(dst[start:stop].shape), casting="unsafe")
    if out is not None:
        return out
    return result.reshape((n_out,) + rest_shape).transpose(np.argsort(perm))


def _c_contiguous(a: np.ndarray) -> bool:
    expected = a.itemsize
    for n, s in zip(reversed(a.shape), reversed(a.strides)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _redo_near_ties(y: np.ndarray, rows: np.ndarray, plan: _Plan, start: int, stop: int, lo: int) -> None:
    """Recompute, adding taps first to last as MATLAB does, the values of ``y`` (sums + 0.5)
    that lie within ``_TIE_TOL`` of an integer, where BLAS's order could flip the rounding."""
    r, c = np.nonzero(np.abs(y - np.rint(y)) < _TIE_TOL)
    if r.size == 0:
        return
    w = plan.weights[start:stop][r]
    idx = plan.indices[start:stop][r] - lo
    acc = np.zeros(r.size)
    for k in range(w.shape[1]):
        acc = acc + w[:, k] * rows[idx[:, k], c]
    y[r, c] = acc + 0.5


# --------------------------------------------------------------------------------------
# torch: tap loop on the tensor's device (batches, GPUs, autograd)
# --------------------------------------------------------------------------------------
def _imresize_torch(image, scalar_scale, output_shape, method, antialiasing, border):
    import torch

    if image.dim() not in (2, 3, 4):
        raise ValueError(f"a tensor image must be CxHxW or NxCxHxW (or HxW), got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.dtype.is_floating_point:
        raise ValueError(f"image dtype must be uint8 or floating point, got {image.dtype}")
    if image.numel() == 0:
        raise ValueError(f"image is empty, shape {tuple(image.shape)}")
    out_hw, scales = _sizes_and_scales(tuple(image.shape[-2:]), scalar_scale, output_shape)
    if image.device.type == "cpu" and not image.requires_grad and image.dtype in (
        torch.uint8,
        torch.float32,
        torch.float64,
    ):
        # The numpy path shares the tensor's memory and is the fastest CPU implementation.
        out = torch.empty(image.shape[:-2] + out_hw, dtype=image.dtype)
        lead = int(np.prod(image.shape[:-2], dtype=np.int64))
        src = image.detach().reshape(lead, *image.shape[-2:]).numpy().transpose(1, 2, 0)
        dst = out.view(lead, *out_hw).numpy().transpose(1, 2, 0)
        _resize_hwl(src, dst, out_hw, scales, method, antialiasing, border)
        return out
    return _resize_torch_taps(image, out_hw, scales, method, antialiasing, border)


def _resize_torch_taps(image, out_hw, scales, method, antialiasing, border):
    """Tap loop in torch: out = sum_k w[:, k] * x.index_select(dim, idx[:, k]), first to last.

    Exactly MATLAB's summation order, so uint8 results need no tie check. Works on any device and
    any leading batch dimensions; differentiable for float tensors.
    """
    import torch

    quantize = image.dtype == torch.uint8
    wide = image.dtype in (torch.uint8, torch.float64) or image.device.type == "cpu"
    work = torch.float64 if wide else torch.float32
    x = image.to(work)
    for d in _pass_order(scales):
        dim = x.dim() - 2 + d
        plan = _plan(x.shape[dim], out_hw[d], scales[d], method, antialiasing, border)
        # (copies: the cached arrays are read-only, which torch.from_numpy does not allow)
        w = torch.from_numpy(plan.weights.copy()).to(device=x.device, dtype=work)
        idx = torch.from_numpy(plan.indices.copy()).to(device=x.device)
        shape = [-1] + [1] * (x.dim() - 1 - dim)  # broadcast weights along the resized dim
        acc = None
        for k in range(w.shape[1]):
            term = x.index_select(dim, idx[:, k]) * w[:, k].view(shape)
            acc = term if acc is None else acc + term
        x = acc
        if quantize:
            x = torch.floor(x.clamp(0, 255) + 0.5)
    return x.to(image.dtype)
