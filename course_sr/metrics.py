"""PSNR and SSIM exactly the way super-resolution papers report them.

The convention (SRCNN, VDSR, EDSR, SRGAN tables; the MATLAB evaluation scripts they share):

1. Round the SR output to uint8 first (the caller does this: ``course_sr.results.evaluate`` does).
2. Luma only: Y of MATLAB's ``rgb2ycbcr`` on double input, i.e. for R, G, B in [0, 1]
   ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (Y in [16, 235]), kept as float64, NOT rounded.
3. Shave ``scale`` pixels from each border of both images (the border of an upscaled image is
   guesswork, so papers ignore it).
4. PSNR = ``10 log10(255^2 / MSE)``; SSIM of Wang et al. 2004 as in their ``ssim_index.m``:
   11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range L = 255, 'valid'
   filtering (no padding), no downsampling; the mean of the SSIM map.
5. A set's score is the mean of its per-image scores.

With the kit's MATLAB-exact ``imresize`` (x4 upscaling of the MATLAB-made LR files, uint8) this
reproduces the published bicubic x4 baselines, Set5 28.42 dB / 0.8104 and Set14 26.00 dB / 0.7027:
the kit gets Set5 28.4290 / 0.8111 and Set14 25.9940 / 0.7029 (pinned in ``tests/test_metrics.py``).
The papers' own pipelines differ in small ways (some resized the Y channel alone, in double), hence
the last-digit gaps. Alternatives checked against the same files: Y rounded to integers (MATLAB
``rgb2ycbcr`` on uint8) gives 28.4164 / 0.8101 and 25.9903 / 0.7023 (also within tolerance);
scoring Set14's gray ``bridge.png`` through ``rgb2ycbcr`` gives Set14 26.0884 / 0.7048 (outside).

Grayscale rule: a single-channel image (``H x W``; e.g. Set14's ``bridge.png``, read with
``load_image(path, keep_gray=True)``) already IS luminance and is used directly, without
``rgb2ycbcr`` (which would squeeze it into [16, 235] and move PSNR by about 1.3 dB). When one
image is gray and the other RGB (a network's RGB output for a gray input), the RGB one is reduced
to full-range luma ``(65.481 R + 128.553 G + 24.966 B) / 219`` (= 0.299 R + 0.587 G + 0.114 B)
on the same 0..255 scale. An RGB file whose channels happen to be equal (Set14's ``man.png``) is
RGB and goes through ``rgb2ycbcr`` like any other.

Inputs: uint8 numpy arrays ``(H, W, 3)`` / ``(H, W)``; PIL images; torch tensors ``(C, H, W)``
or ``(1, C, H, W)``; float arrays. Float data needs its range declared with ``input_range``
(``'[0, 1]'``, ``'[-1, 1]'`` or ``'[0, 255]'``; converted with ``convert_image``) and is used
as given, not rounded. All arithmetic is float64.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from course_sr.plumbing.errors import UserError
from course_sr.utils import LUMA_601, YCBCR_Y_OFFSET, YCBCR_Y_WEIGHTS, pil_to_array, convert_image

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0


def to_array(img, input_range: str | None = None) -> np.ndarray:
    """Any supported image -> float64 array on the 0..255 scale, ``(H, W, 3)`` or ``(H, W)``."""
    if isinstance(img, Image.Image):
        return pil_to_array(img, keep_gray=True).astype(np.float64)
    if torch.is_tensor(img):
        t = img.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"metrics take one image at a time, got a batch of shape {tuple(t.shape)} "
                                 "(papers average per-image scores)")
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"expected a (C, H, W) tensor with C = 1 or 3, got shape {tuple(img.shape)}")
        if t.dtype == torch.uint8:
            input_range = input_range or "[0, 255]"
        if input_range is None:
            raise ValueError("a float tensor needs its range declared: input_range='[0, 1]', '[-1, 1]' or '[0, 255]'")
        t = convert_image(t.double() if t.is_floating_point() else t, input_range, "[0, 255]").double()
        array = t.numpy().transpose(1, 2, 0)
        return array[:, :, 0] if array.shape[2] == 1 else array
    array = np.asarray(img)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {array.shape}")
    if array.dtype == np.uint8:
        if input_range not in (None, "[0, 255]"):
            raise ValueError(f"uint8 arrays are [0, 255], not {input_range}")
        return array.astype(np.float64)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"expected uint8 or float pixels, got {array.dtype}")
    if input_range is None:
        raise ValueError("a float array needs its range declared: input_range='[0, 1]', '[-1, 1]' or '[0, 255]'")
    chw = torch.from_numpy(np.atleast_3d(array.astype(np.float64)).transpose(2, 0, 1).copy())
    out = convert_image(chw, input_range, "[0, 255]").numpy().transpose(1, 2, 0)
    return out[:, :, 0] if array.ndim == 2 else out


def rgb_to_y(img, input_range: str | None = None) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` (double input): float64 ``(H, W)`` in [16, 235], not rounded.

    ``img``: RGB ``(H, W, 3)`` on the 0..255 scale (or anything :func:`to_array` takes).
    A single-channel image is returned unchanged (it is luminance already; see module docstring).
    """
    return _y(to_array(img, input_range))


def _y(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array
    return array @ (np.asarray(YCBCR_Y_WEIGHTS) / 255.0) + YCBCR_Y_OFFSET


def _luma_pair(sr: np.ndarray, hr: np.ndarray):
    """Y of both float arrays, with the grayscale rule of the module docstring."""
    if sr.ndim == hr.ndim:
        return _y(sr), _y(hr)
    return [a if a.ndim == 2 else a @ LUMA_601 for a in (sr, hr)]      # full range: 0.299, 0.587, 0.114


class ImageSizeError(UserError, ValueError):
    """An image too small to score (nothing left after the shave, or less than SSIM's window)."""


def _prepare(sr, hr, scale: int, y_channel: bool, input_range, name=None):
    """Both images as float64 arrays, Y (or RGB) and shaved; checks the shapes agree.

    ``name`` (the HR file, when the caller has one) starts every error message, so that a
    set-wide evaluation says which image is at fault.
    """
    where = f"{name}: " if name is not None else ""
    sr, hr = to_array(sr, input_range), to_array(hr, input_range)
    if sr.shape[:2] != hr.shape[:2]:
        raise ValueError(f"{where}SR and HR sizes differ: SR {sr.shape[:2]} vs HR {hr.shape[:2]} "
                         "(crop HR top-left to a multiple of the scale first)")
    if y_channel:
        sr, hr = _luma_pair(sr, hr)
    elif sr.ndim != hr.ndim:
        raise ValueError(f"{where}y_channel=False compares channels, but one image is gray: {sr.shape} vs {hr.shape}")
    scale = int(scale)
    if scale < 0 or min(sr.shape[:2]) <= 2 * scale:
        raise ImageSizeError(f"{where}cannot shave {scale} px per border from an image of size {sr.shape[:2]} "
                             f"(scoring needs more than {2 * scale} px per side)")
    if scale:
        sr, hr = sr[scale:-scale, scale:-scale], hr[scale:-scale, scale:-scale]
    return sr, hr


def _psnr(sr: np.ndarray, hr: np.ndarray) -> float:
    mse = float(np.mean((sr - hr) ** 2))     # over all pixels (and channels in RGB mode)
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


def _gaussian_window() -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', 11, 1.5)`` (the 2-D window is its outer product)."""
    x = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2
    w = np.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(w' * w, x, 'valid')`` for a symmetric 1-D ``w``, done separably:
    every output pixel is the dot product of its ``len(w)`` window with ``w``, down then across."""
    rows = sliding_window_view(x, len(w), axis=0) @ w          # (H - 10, W)
    return sliding_window_view(rows, len(w), axis=1) @ w       # (H - 10, W - 10)


def _ssim_gray(a: np.ndarray, b: np.ndarray, where: str = "") -> float:
    """Mean SSIM of two single-channel float64 images on the 0..255 scale (Wang et al. 2004)."""
    if min(a.shape) < SSIM_WINDOW:
        raise ImageSizeError(f"{where}SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after shaving, "
                             f"got {a.shape}")
    w = _gaussian_window()
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    mu_a, mu_b = _filter_valid(a, w), _filter_valid(b, w)
    var_a = _filter_valid(a * a, w) - mu_a**2
    var_b = _filter_valid(b * b, w) - mu_b**2
    cov = _filter_valid(a * b, w) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def _ssim(sr: np.ndarray, hr: np.ndarray, name=None) -> float:
    where = f"{name}: " if name is not None else ""
    if sr.ndim == 2:
        return _ssim_gray(sr, hr, where)
    return float(np.mean([_ssim_gray(sr[:, :, c], hr[:, :, c], where) for c in range(sr.shape[2])]))


def psnr(sr, hr, scale: int, y_channel: bool = True, input_range: str | None = None, name=None) -> float:
    """PSNR in dB of ``sr`` against ``hr`` (same size), paper convention (module docstring).

    ``y_channel=False``: on RGB, from the MSE over all three channels. Identical images give
    ``inf``. ``name`` (e.g. the HR file) is named by any error about the images.
    """
    return _psnr(*_prepare(sr, hr, scale, y_channel, input_range, name))


def ssim(sr, hr, scale: int, y_channel: bool = True, input_range: str | None = None, name=None) -> float:
    """SSIM of ``sr`` against ``hr`` (same size), paper convention (module docstring).

    ``y_channel=False``: the mean of the three per-channel SSIMs. ``name``: as in :func:`psnr`.
    """
    return _ssim(*_prepare(sr, hr, scale, y_channel, input_range, name), name)


def mean_y_shift(sr, hr, scale: int, input_range: str | None = None, name=None) -> float:
    """Mean Y of ``sr`` minus mean Y of ``hr`` (levels of 255), with the Y and shave of :func:`psnr`.

    A colour or brightness cast moves it (the quick preset's old tiny SRResNet: +9 to +22 levels);
    detail and texture average out (bicubic x4 on Set5: at most 0.02). Not a paper metric: the
    kit's check that a network keeps the image's colours.
    """
    a, b = _prepare(sr, hr, scale, True, input_range, name)
    return float(a.mean() - b.mean())


def psnr_ssim(sr, hr, scale: int, y_channel: bool = True, input_range: str | None = None,
              name=None) -> tuple[float, float]:
    """``(psnr, ssim)`` in one pass over the conversions (what ``course_sr.results.evaluate`` calls, with
    ``name`` the HR file, so that an image too small to score is named)."""
    a, b = _prepare(sr, hr, scale, y_channel, input_range, name)
    return _psnr(a, b), _ssim(a, b, name)
