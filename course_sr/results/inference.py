"""Super-resolve an LR image with any SR network of the kit, within memory.

``super_resolve(model, lr)`` runs the whole image in one forward pass when it fits, and otherwise
in overlapping tiles whose borders are thrown away. With the default overlap, the network's
receptive field, the tiles equal the whole image up to float rounding.

The tile rule (``tile=None``):

- Budget of LR pixels per forward pass (batch included): ``max_pixels`` when given; on CUDA,
  half of the free GPU memory divided by ``BYTES_PER_LR_PIXEL`` (32 KiB: about 2.3 x the peak
  memory of SRResNet at x4 in float32, measured at 14 KiB per LR pixel on CPU); on CPU,
  ``CPU_MAX_PIXELS`` (416 x 416 at x4, and the same HR area at x2 and x8).
- ``N x H x W`` within budget -> one pass. Otherwise :func:`tile_grid`: of the grids of equal
  cores (``th x tw``, each at least ``MIN_TILE``) whose passes, context included, fit the budget,
  the one that computes the fewest LR pixels (the overlap is computed twice). On CPU at x4 with
  the paper SRResNet (overlap 40): 1000 x 750 -> 375 x 250 cores, 1.37 x the image's pixels;
  DIV2K-train's 2040 x 1356 -> 272 x 408 cores, 1.43 x.
- On a 15 GB Colab GPU (about 14 GB free) the budget is about 220k LR pixels, so every Set5,
  Set14, B100, Urban100 and DIV2K-valid image at x4 runs whole (the largest, DIV2K-valid's
  510 x 339 = 173k LR pixels, needs about 2.4 GB). If CUDA still runs out of memory, the tile side
  is halved and the image retried (down to ``MIN_TILE``). The CUDA rule is not timed (no GPU
  was lent for ``benchmarks/bench_tiling.py``); the GPU's memory bounds it.

Why 416 x 416 on CPU (``benchmarks/bench_tiling.py``: paper SRResNet, x4, float32, 2 CPU
threads; the machine was shared with other jobs, so CPU seconds and ratios, not wall clock):

- A pass costs about the same per LR pixel up to roughly 200k LR pixels, then about 10 x more:
  the last layer (a 9 x 9 conv, 64 -> 3 channels, at 4x) runs oneDNN's im2col + GEMM path, whose
  blocking turns slow between 1800^2 (38 us per HR pixel) and 1900^2 HR pixels (not finished
  after 6 min). The old budget, 512 x 512 (480 px tiles), sat just above that jump.
- Below it, fewer computed pixels win: CPU time follows the pixels run, overlap included.
  DIV2K-valid's 510 x 339 (measured on the shared 2-core CPU, one alternating round, same run):
  whole 55.1-61.9 CPU s (the old default and the new one: it fits 416 x 416); 2 passes of
  339 x 255 cores (a 384 x 384 budget: 1.16 x the pixels) 65.4 s, 1.19 x; 256 px tiles
  (1.43 x) 76.7 s, 1.39 x; 128 px tiles (2.17 x) 117.0 s, 2.12 x. Tiles with overlap 40 differed
  from the whole image by at most 1.19e-7 (one float32 ulp at 1.0).
- 416 x 416 is the pass size of DIV2K-valid's largest image, the largest of the course, measured
  fast: it runs whole, and larger images get passes no larger than it (:func:`tile_grid`).
- Where that jump sits depends on the CPU (oneDNN picks its blocking from the cache sizes);
  pass ``max_pixels=`` or ``tile=`` to move it.

Tiling: the LR image is cut into a grid of ``tile x tile`` cores (``th x tw`` from :func:`tile_grid`). Each core is run with
``overlap`` extra LR pixels of real image on every side (fewer at the image border), and only the
core's part of the output is kept. When the network's receptive field reaches no further than
``overlap`` LR pixels, the result equals whole-image inference up to float rounding (tested: at
most 1 float32 ulp). ``overlap=None`` (the default) uses :func:`receptive_field`, measured on the
network itself: 40 LR px for the paper's SRResNet, 7 for VDSR (20 layers, x4), 12 and 3 for the
quick presets' SRResNet and VDSR. A smaller overlap leaves visible-in-numbers seams: the paper
SRResNet (random weights) differed from the whole image by up to 1.3e-6 with the old overlap 16.
"""
from __future__ import annotations

import math
import numbers
import warnings
import weakref

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from course_sr.plumbing.errors import UserError
from course_sr.utils import convert_image, to_uint8

BYTES_PER_LR_PIXEL = 32 * 1024
CPU_MAX_PIXELS = 416 * 416         # LR px per pass at x4 (same HR area at x2, x8): measured, module docstring
MIN_TILE = 32
FALLBACK_OVERLAP = 64              # when the receptive field is unbounded or cannot be probed
PROBE_RADII = (64, 256)            # strip half-lengths (LR px) tried by receptive_field
OUTPUT_RANGES = ("[-1, 1]", "[0, 1]")


class TilingError(UserError, ValueError):
    """A ``tile``, ``overlap``, ``max_pixels`` or ``half`` value a user gave (``--tile`` of
    ``evaluate`` and ``upscale``, a notebook's call) that ``super_resolve`` cannot run with; one
    line naming the value. Also a ValueError, so existing ``except ValueError`` clauses catch it."""


def pixel_budget(device: torch.device, scale: int = 4) -> int:
    """LR pixels one forward pass may hold (batch included): the tile rule of the module docstring."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return max(MIN_TILE * MIN_TILE, int(0.5 * free / BYTES_PER_LR_PIXEL))
    return max(MIN_TILE * MIN_TILE, CPU_MAX_PIXELS * 16 // (scale * scale))   # same HR area at any scale


def computed_pixels(h: int, w: int, core: tuple[int, int], overlap: int) -> int:
    """LR pixels the network runs over when an ``h x w`` image is cut into ``core = (th, tw)``
    cores, each with up to ``overlap`` px of context (clipped at the image border)."""
    def span(n, t):
        return sum(min(n, y0 + t + overlap) - max(0, y0 - overlap) for y0 in range(0, n, t))

    return span(h, core[0]) * span(w, core[1])


def tile_grid(h: int, w: int, n: int, budget: int, overlap: int) -> tuple[int, int] | None:
    """Cores ``(th, tw)`` for an ``n x h x w`` batch: ``None`` (whole image) when it fits in
    ``budget`` LR px, else the grid that computes the fewest pixels (the overlap is computed
    twice) among those whose every pass, context included, holds at most ``budget`` px. Cores
    are at least ``MIN_TILE`` px (or the whole side); when no grid fits, ``MIN_TILE`` squares.
    Overlap 40: DIV2K-valid's 510 x 339 runs whole under ``CPU_MAX_PIXELS``; a 384 x 384 budget
    gives 1 x 2 cores of 339 x 255."""
    if n * h * w <= budget:
        return None

    def sides(length):             # equal splits (the smallest passes for their tile count), MIN_TILE
        return sorted({-(-length // k) for k in range(1, max(1, length // MIN_TILE) + 1)} | {min(length, MIN_TILE)})

    best = None
    for th in sides(h):
        for tw in sides(w):
            if n * min(h, th + 2 * overlap) * min(w, tw + 2 * overlap) > budget or (th, tw) == (h, w):
                continue
            cost = (computed_pixels(h, w, (th, tw), overlap), -th * tw)   # fewest pixels, then fewest tiles
            if best is None or cost < best[0]:
                best = (cost, (th, tw))
    return best[1] if best else (min(h, MIN_TILE), min(w, MIN_TILE))


# --------------------------------------------------------------------------------------
# Receptive field: the overlap that makes tiles exact
# --------------------------------------------------------------------------------------
_RECEPTIVE_FIELDS: "weakref.WeakKeyDictionary[nn.Module, dict[int, int | None]]" = weakref.WeakKeyDictionary()


def receptive_field(model: nn.Module, channels: int = 3) -> int | None:
    """LR pixels of context an output pixel can depend on, beyond its own LR pixel: the smallest
    ``overlap`` for which tiles equal the whole image (module docstring). ``None`` when unbounded
    (a global operation such as InstanceNorm or attention pooling: no overlap makes tiles exact).

    Measured on the network itself, not on its weights: one NaN LR pixel is put in the middle of a
    zero strip (1 px thick) along each axis and the network is run on a float32 copy of its
    weights on the CPU. A NaN reaches every output that depends on it whatever the weights are
    (``0 * nan`` is nan; convolutions, ReLU, PReLU, tanh, BatchNorm in eval mode, pixel shuffle
    and interpolation all pass it on), so the NaN footprint in the output is the dependency cone
    for every weight value the network could be trained to (a convolution algorithm that mixes
    neighbours, like Winograd, could only widen it: a safe overestimate). The strip grows
    (``PROBE_RADII``) until the footprint stays inside it. Paper SRResNet x4: 40 (a 9x9 and 34 3x3
    convs at LR, one 3x3 at 2x, a 9x9 at 4x); VDSR (20 layers, x4): 7 (20 3x3 convs at 4x,
    after a bicubic x4 that reaches 2 LR px). Tests check these against a count by hand and a
    gradient probe. ``channels``: the network's input channels. Cached per model object (it
    does not change when the weights do). Raises ValueError, naming the network, when it cannot
    run on such a strip.
    """
    cache = _RECEPTIVE_FIELDS.setdefault(model, {})
    if channels not in cache:
        scale, _ = _model_contract(model)
        state = {name: t.detach().to("cpu", torch.float32 if t.is_floating_point() else t.dtype)
                 for name, t in [*model.named_parameters(), *model.named_buffers()]}
        was_training = model.training
        model.eval()                                  # BatchNorm: running statistics, per pixel
        try:
            with torch.no_grad():
                for radius in PROBE_RADII:
                    reach = [_nan_reach(model, state, channels, scale, radius, vertical)
                             for vertical in (False, True)]
                    if None not in reach:
                        cache[channels] = max(reach)
                        break
                else:
                    cache[channels] = None
        finally:
            model.train(was_training)
    return cache[channels]


def _nan_reach(model, state, channels: int, scale: int, radius: int, vertical: bool) -> int | None:
    """LR reach of one NaN pixel along one axis, or None when it touches the strip's ends."""
    length = 2 * radius + 1
    strip = torch.zeros(1, channels, 1, length)
    strip[..., radius] = math.nan                     # (1, C, 1, 2r+1), NaN in the middle
    try:
        out = functional_call(model, state, (strip.transpose(2, 3) if vertical else strip,))
    except Exception as err:                          # any network-specific failure, reported once
        raise ValueError(f"receptive_field: cannot probe {type(model).__name__} on a 1 x {length} LR strip "
                         f"({type(err).__name__}: {err}); pass overlap= explicitly") from err
    out = out.transpose(2, 3) if vertical else out
    if out.ndim != 4 or out.shape[-1] != length * scale:
        raise ValueError(f"receptive_field: {type(model).__name__} (scale {scale}) turned a 1 x {length} LR "
                         f"strip into {tuple(out.shape)}; pass overlap= explicitly")
    hit = out.isnan().flatten(0, 2).any(0).nonzero().flatten()   # output columns the NaN reached
    if hit.numel() == 0:
        return 0
    first, last = int(hit[0]), int(hit[-1])
    if first == 0 or last == length * scale - 1:
        return None                                   # may reach further: probe a wider strip
    # Output column X lies in LR column X // scale; the NaN at LR column `radius` reaches LR
    # columns up to `last // scale` (so a core's left edge needs that much context) and down to
    # `first // scale` (its right edge).
    return max(last // scale - radius, radius - first // scale)


def default_overlap(model: nn.Module, channels: int = 3) -> int:
    """``receptive_field(model)``, or ``FALLBACK_OVERLAP`` with a warning when it is unbounded or
    cannot be probed (tiles then differ from the whole image)."""
    try:
        rf = receptive_field(model, channels)
    except ValueError as err:
        warnings.warn(f"super_resolve: {err}; tiling with overlap={FALLBACK_OVERLAP}, which may leave seams")
        return FALLBACK_OVERLAP
    if rf is None:
        warnings.warn(f"super_resolve: {type(model).__name__} has an unbounded receptive field (a global "
                      f"operation such as InstanceNorm), so tiles differ from the whole image; tiling with "
                      f"overlap={FALLBACK_OVERLAP} (pass a tile larger than the image to run it whole)")
        return FALLBACK_OVERLAP
    return rf


def _check_tiling(tile, overlap, max_pixels) -> None:
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if tile is not None and not (is_int(tile) and tile >= 1):
        raise TilingError(f"super_resolve: tile must be a whole number of LR pixels >= 1 "
                          f"(or None: automatic), got tile={tile!r}")
    if overlap is not None and not (is_int(overlap) and overlap >= 0):
        raise TilingError(f"super_resolve: overlap must be a whole number of LR pixels >= 0 "
                          f"(or None: the network's receptive field), got overlap={overlap!r}")
    if tile is not None and overlap is not None and overlap >= tile:
        raise TilingError(f"super_resolve: overlap={overlap} must be smaller than tile={tile} (each tile "
                          "would compute more context than output); raise tile or lower overlap")
    if max_pixels is not None and not (is_int(max_pixels) and max_pixels >= 1):
        raise TilingError(f"super_resolve: max_pixels must be a whole number >= 1, got max_pixels={max_pixels!r}")


def _check_input(lr) -> None:
    if not torch.is_tensor(lr):
        raise TypeError(f"super_resolve: lr must be a torch tensor, got {type(lr).__name__}")
    if lr.ndim not in (3, 4):
        raise ValueError(f"super_resolve: lr must be (C, H, W) or (N, C, H, W), got shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise TypeError(f"super_resolve: lr must be float in [0, 1], got {lr.dtype} "
                        "(use convert_image(lr, '[0, 255]', '[0, 1]'))")
    if min(lr.shape) < 1:
        raise ValueError(f"super_resolve: lr has an empty dimension: shape {tuple(lr.shape)}")
    lo, hi = (v.item() for v in torch.aminmax(lr))          # one pass
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("super_resolve: lr contains NaN or infinite values")
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"super_resolve: lr must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                         "(convert with convert_image first)")


def _model_contract(model) -> tuple[int, str]:
    scale, out_range = getattr(model, "scale", None), getattr(model, "output_range", None)
    if scale is None or out_range not in OUTPUT_RANGES:
        raise ValueError(f"super_resolve: {type(model).__name__} must have attributes `scale` (int) and "
                         f"`output_range` in {OUTPUT_RANGES}; got scale={scale!r}, output_range={out_range!r}")
    return int(scale), out_range


def _autocast_dtype(half, device: torch.device):
    choices = {False: None, None: None, True: torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16}
    if half not in choices:
        raise TilingError(f"super_resolve: half must be False, True, 'fp16' or 'bf16', got {half!r}")
    if choices[half] is not None and device.type != "cuda":
        warnings.warn(f"super_resolve: half precision is for CUDA only; running float32 on {device}")
        return None
    return choices[half]


def super_resolve(model, lr: torch.Tensor, tile: int | None = None, overlap: int | None = None, device=None,
                  half=False, max_pixels: int | None = None) -> torch.Tensor:
    """Super-resolve ``lr`` with ``model``; whole image when it fits, else blended tiles.

    Args:
        model: an SR network with attributes ``scale`` (int) and ``output_range``
            (``'[-1, 1]'`` or ``'[0, 1]'``), taking LR in [0, 1]. Run in eval mode under
            ``torch.inference_mode`` (its previous train/eval mode is restored afterwards).
        lr: float tensor in [0, 1], ``(C, H, W)`` or ``(N, C, H, W)``, on any device.
        tile: LR side of the tiles' cores; ``None`` chooses by the tile rule (module docstring).
            An image no larger than ``tile`` in both sides runs whole.
        overlap: LR pixels of context added around each core; ``None`` (default) means the
            network's :func:`receptive_field`, so that tiles equal the whole image. Must be
            smaller than ``tile`` when both are given.
        device: where the model runs; ``None`` means the model's own device. A given device
            moves the model there (``model.to(device)``).
        half: ``True``/``'fp16'`` or ``'bf16'`` for autocast on CUDA (ignored, with a warning, on CPU).
        max_pixels: LR pixel budget per forward pass, overriding the automatic one.

    Returns:
        SR float32 tensor in [0, 1] (clamped), ``(C', H*scale, W*scale)`` or
        ``(N, C', H*scale, W*scale)`` as the input was batched or not, on ``lr``'s device.
    """
    _check_input(lr)
    scale, out_range = _model_contract(model)
    _check_tiling(tile, overlap, max_pixels)
    if device is not None:
        device = torch.device(device)
        model.to(device)
    else:
        param = next(model.parameters(), None)
        device = param.device if param is not None else lr.device
    dtype = _autocast_dtype(half, device)

    batch = lr if lr.ndim == 4 else lr.unsqueeze(0)
    n, _, h, w = batch.shape
    core = None if tile is None else (tile, tile)           # (th, tw) LR px, None: whole image
    if tile is None:
        budget = max_pixels or pixel_budget(device, scale)
        if n * h * w > budget:
            overlap = default_overlap(model, lr.shape[-3]) if overlap is None else overlap
            core = tile_grid(h, w, n, budget, overlap)
    elif overlap is None and (h > tile or w > tile):
        overlap = default_overlap(model, lr.shape[-3])     # probed only when tiles are cut

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            while True:
                try:
                    sr = _tiled(model, batch, core, overlap, device, dtype, scale, out_range)
                    break
                except torch.cuda.OutOfMemoryError:
                    # The estimate was too optimistic for this network: halve the tiles and retry.
                    core = tuple(min(t, side) // 2 for t, side in zip(core or (h, w), (h, w)))
                    if max(core) < MIN_TILE:
                        raise
                    overlap = default_overlap(model, lr.shape[-3]) if overlap is None else overlap
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    warnings.warn(f"super_resolve: out of memory; retrying with {core[0]} x {core[1]} px tiles")
    finally:
        model.train(was_training)
    return sr if lr.ndim == 4 else sr[0]


def _forward(model, x, device, dtype, scale: int, out_range: str) -> torch.Tensor:
    """One pass: LR batch [0, 1] -> SR batch [0, 1] float32 on ``x``'s device, shape checked."""
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        out = model(x.to(device))
    n, _, h, w = x.shape
    if out.ndim != 4 or out.shape[0] != n or out.shape[2:] != (h * scale, w * scale):
        raise ValueError(f"super_resolve: {type(model).__name__} (scale {scale}) turned LR {tuple(x.shape)} "
                         f"into {tuple(out.shape)}; expected (N, C, {h * scale}, {w * scale})")
    return convert_image(out.float(), out_range, "[0, 1]").clamp_(0, 1).to(x.device)


def _tiled(model, lr, core, overlap, device, dtype, scale, out_range) -> torch.Tensor:
    """Whole image when ``core`` is None or covers it, else ``(th, tw)`` cores + overlap, cores kept."""
    n, _, h, w = lr.shape
    if core is None or (h <= core[0] and w <= core[1]):
        return _forward(model, lr, device, dtype, scale, out_range)
    th, tw = max(1, core[0]), max(1, core[1])
    out = None
    for y0 in range(0, h, th):
        for x0 in range(0, w, tw):
            y1, x1 = min(y0 + th, h), min(x0 + tw, w)
            # the core [y0:y1, x0:x1] plus up to `overlap` px of real context on each side
            cy0, cx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            cy1, cx1 = min(h, y1 + overlap), min(w, x1 + overlap)
            sr = _forward(model, lr[:, :, cy0:cy1, cx0:cx1], device, dtype, scale, out_range)
            if out is None:
                out = lr.new_empty((n, sr.shape[1], h * scale, w * scale), dtype=torch.float32)
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = sr[
                :, :, (y0 - cy0) * scale:(y1 - cy0) * scale, (x0 - cx0) * scale:(x1 - cx0) * scale]
    return out


def super_resolve_uint8(model, image: np.ndarray, tile: int | None = None, device=None,
                        half: bool = False, overlap: int | None = None) -> np.ndarray:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` -> uint8 ``(H*s, W*s, 3)``: :func:`super_resolve` with
    its output rounded to 8 bits, as a saved image has it (and as SR papers score it). A gray
    image goes through the network as RGB (networks take 3 channels)."""
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
    lr = convert_image(torch.from_numpy(np.array(rgb)).permute(2, 0, 1), "[0, 255]", "[0, 1]")  # copy: writable
    sr = super_resolve(model, lr, tile=tile, overlap=overlap, device=device, half=half)  # (3, sH, sW) in [0, 1]
    return to_uint8(sr, "[0, 1]")
