"""Super-resolve an LR image with any SR network of the kit, within memory.

``super_resolve(model, lr)`` runs the whole image in one forward pass when it fits, and otherwise
in overlapping tiles whose borders are thrown away, so the seams do not show.

The tile rule (``tile=None``):

- Budget of LR pixels per forward pass (batch included): ``max_pixels`` when given; on CUDA,
  half of the free GPU memory divided by ``BYTES_PER_LR_PIXEL`` (32 KiB: about 2.3 x the peak
  memory of SRResNet at x4 in float32, measured at 14 KiB per LR pixel on CPU); on CPU, ``CPU_MAX_PIXELS`` (512 x 512).
- ``N x H x W`` within budget -> one pass. Otherwise square tiles of side
  ``sqrt(budget / N) - 2 * overlap`` (at least ``MIN_TILE``).
- On a 15 GB Colab GPU (about 14 GB free) the budget is about 220k LR pixels, so every Set5,
  Set14, B100, Urban100 and DIV2K-valid image at x4 runs whole (the largest, DIV2K-valid's
  510 x 339 = 173k LR pixels, needs about 2.4 GB). If CUDA still runs out of memory, the tile side
  is halved and the image retried (down to ``MIN_TILE``).

Tiling: the LR image is cut into a grid of ``tile x tile`` cores. Each core is run with
``overlap`` extra LR pixels of real image on every side (fewer at the image border), and only the
core's part of the output is kept. When the network's receptive field reaches no further than
``overlap`` LR pixels, the result equals whole-image inference (up to float rounding; tested).
SRResNet's receptive field is wider (about 40 LR pixels), so its tiles are not bit-equal to the
whole image, but far inside 1/255: with ``overlap=16`` a (randomly initialised) SRResNet differed
by at most 0.0004/255, with ``overlap=8`` by 0.43/255. Raise ``overlap`` to shrink the difference.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from course_sr.utils import convert_image

BYTES_PER_LR_PIXEL = 32 * 1024
CPU_MAX_PIXELS = 512 * 512
MIN_TILE = 32
OUTPUT_RANGES = ("[-1, 1]", "[0, 1]")


def pixel_budget(device: torch.device) -> int:
    """LR pixels one forward pass may hold (batch included): the tile rule of the module docstring."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return max(MIN_TILE * MIN_TILE, int(0.5 * free / BYTES_PER_LR_PIXEL))
    return CPU_MAX_PIXELS


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
        raise ValueError(f"super_resolve: half must be False, True, 'fp16' or 'bf16', got {half!r}")
    if choices[half] is not None and device.type != "cuda":
        warnings.warn(f"super_resolve: half precision is for CUDA only; running float32 on {device}")
        return None
    return choices[half]


def super_resolve(model, lr: torch.Tensor, tile: int | None = None, overlap: int = 16, device=None,
                  half=False, max_pixels: int | None = None) -> torch.Tensor:
    """Super-resolve ``lr`` with ``model``; whole image when it fits, else blended tiles.

    Args:
        model: an SR network with attributes ``scale`` (int) and ``output_range``
            (``'[-1, 1]'`` or ``'[0, 1]'``), taking LR in [0, 1]. Run in eval mode under
            ``torch.inference_mode`` (its previous train/eval mode is restored afterwards).
        lr: float tensor in [0, 1], ``(C, H, W)`` or ``(N, C, H, W)``, on any device.
        tile: LR side of the tiles' cores; ``None`` chooses by the tile rule (module docstring).
            An image no larger than ``tile`` in both sides runs whole.
        overlap: LR pixels of context added around each core (kept >= the receptive-field radius
            for exact equality with whole-image inference).
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
    if overlap < 0 or (tile is not None and tile < 1):
        raise ValueError(f"super_resolve: need tile >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    if device is not None:
        device = torch.device(device)
        model.to(device)
    else:
        param = next(model.parameters(), None)
        device = param.device if param is not None else lr.device
    dtype = _autocast_dtype(half, device)

    batch = lr if lr.ndim == 4 else lr.unsqueeze(0)
    n, _, h, w = batch.shape
    if tile is None:
        budget = max_pixels or pixel_budget(device)
        if n * h * w > budget:
            tile = max(MIN_TILE, math.isqrt(budget // n) - 2 * overlap)

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            while True:
                try:
                    sr = _tiled(model, batch, tile, overlap, device, dtype, scale, out_range)
                    break
                except torch.cuda.OutOfMemoryError:
                    # The estimate was too optimistic for this network: halve the tiles and retry.
                    tile = (tile or max(h, w)) // 2
                    if tile < MIN_TILE:
                        raise
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    warnings.warn(f"super_resolve: out of memory; retrying with {tile} px tiles")
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


def _tiled(model, lr, tile, overlap, device, dtype, scale, out_range) -> torch.Tensor:
    """Whole image when ``tile`` is None or covers it, else cores + overlap, cores kept."""
    n, _, h, w = lr.shape
    if tile is None or (h <= tile and w <= tile):
        return _forward(model, lr, device, dtype, scale, out_range)
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
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
                        half: bool = False) -> np.ndarray:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` -> uint8 ``(H*s, W*s, 3)``: :func:`super_resolve` with
    its output rounded to 8 bits, as a saved image has it (and as SR papers score it). A gray
    image goes through the network as RGB (networks take 3 channels)."""
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
    lr = convert_image(torch.from_numpy(np.array(rgb)).permute(2, 0, 1), "[0, 255]", "[0, 1]")  # copy: writable
    sr = super_resolve(model, lr, tile=tile, device=device, half=half)          # (3, sH, sW) in [0, 1]
    sr = convert_image(sr.detach().float().cpu(), "[0, 1]", "[0, 255]").round().clamp(0, 255)
    return sr.to(torch.uint8).permute(1, 2, 0).numpy()
