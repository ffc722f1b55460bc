"""super_resolve: shapes, ranges, eval mode, tiles equal to the whole image, bad input."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_sr.inference import super_resolve


class TinySR(nn.Module):
    """conv 3x3 -> BN -> ReLU -> conv 3x3 -> PixelShuffle: receptive-field radius 2 LR px."""

    def __init__(self, scale=2, output_range="[-1, 1]"):
        super().__init__()
        self.scale, self.output_range = scale, output_range
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.calls = []

    def forward(self, x):                      # x: (N, 3, h, w) in [0, 1]
        self.calls.append(tuple(x.shape))
        y = self.body(x)                        # (N, 3, h*s, w*s)
        return torch.tanh(y) if self.output_range == "[-1, 1]" else y


def _lr(*shape, seed=1):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(3, 9, 11), (2, 3, 9, 11)])
@pytest.mark.parametrize("output_range", ["[-1, 1]", "[0, 1]"])
def test_shapes_range_and_batch(shape, output_range):
    model = TinySR(2, output_range).eval()
    sr = super_resolve(model, _lr(*shape))
    assert sr.shape == shape[:-2] + (18, 22) and sr.dtype == torch.float32
    assert 0 <= sr.min() and sr.max() <= 1
    with torch.no_grad():
        raw = model(_lr(*shape) if len(shape) == 4 else _lr(*shape)[None])
    ref = (raw + 1) / 2 if output_range == "[-1, 1]" else raw
    torch.testing.assert_close(sr, ref.clamp(0, 1).reshape(sr.shape))


def test_runs_in_eval_mode_and_restores_mode():
    model = TinySR()                            # train mode: BN would use batch statistics
    model.body[1].running_mean.fill_(0.3)       # make eval mode visibly different
    sr = super_resolve(model, _lr(1, 3, 8, 8))
    assert model.training
    model.eval()
    with torch.no_grad():
        ref = ((model(_lr(1, 3, 8, 8)) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(sr, ref)


@pytest.mark.parametrize("tile, overlap", [(8, 4), (5, 2), (16, 3)])
def test_tiles_equal_whole_image(tile, overlap):
    model = TinySR(scale=3).eval()
    lr = _lr(2, 3, 21, 30)
    whole = super_resolve(model, lr)
    model.calls.clear()
    tiled = super_resolve(model, lr, tile=tile, overlap=overlap)
    assert len(model.calls) == -(-21 // tile) * -(-30 // tile) > 1
    assert (tiled - whole).abs().max() <= 1e-5          # far inside the 1/255 requirement


def test_too_little_overlap_shows_seams():
    # the test above can fail: with overlap < receptive field the tiles differ from the whole
    model = TinySR(scale=2).eval()
    lr = _lr(1, 3, 16, 16)
    diff = (super_resolve(model, lr, tile=8, overlap=0) - super_resolve(model, lr)).abs().max()
    assert diff > 1e-3


def test_automatic_tiles_from_pixel_budget():
    model = TinySR(scale=2).eval()
    lr = _lr(1, 3, 70, 90)
    whole = super_resolve(model, lr)
    model.calls.clear()
    tiled = super_resolve(model, lr, max_pixels=60 * 60, overlap=4)   # 70x90 > budget -> tiles
    assert len(model.calls) > 1
    assert all(h * w <= 60 * 60 for _, _, h, w in model.calls)
    assert (tiled - whole).abs().max() <= 1e-5


def test_out_of_memory_retries_with_smaller_tiles():
    class Picky(TinySR):
        def forward(self, x):
            if x.shape[-1] * x.shape[-2] > 48 * 48:
                raise torch.OutOfMemoryError("fake: too big")
            return super().forward(x)

    model = Picky().eval()
    lr = _lr(1, 3, 80, 80)
    with pytest.warns(UserWarning, match="out of memory"):
        sr = super_resolve(model, lr, overlap=4)
    assert sr.shape == (1, 3, 160, 160)


def test_half_on_cpu_warns_and_runs_float32():
    with pytest.warns(UserWarning, match="CUDA only"):
        sr = super_resolve(TinySR().eval(), _lr(3, 6, 6), half=True)
    assert sr.dtype == torch.float32


class NoContract(nn.Module):
    def forward(self, x):
        return x


class WrongScale(TinySR):
    def forward(self, x):
        return super().forward(x)[:, :, :-1]


@pytest.mark.parametrize("model, lr, kwargs, error, match", [
    (TinySR(), torch.rand(8, 8), {}, ValueError, r"\(C, H, W\)"),
    (TinySR(), torch.rand(1, 1, 3, 8, 8), {}, ValueError, r"\(C, H, W\)"),
    (TinySR(), torch.zeros(3, 0, 8), {}, ValueError, "empty"),
    (TinySR(), torch.zeros(3, 8, 8, dtype=torch.uint8), {}, TypeError, "float"),
    (TinySR(), torch.full((3, 8, 8), 200.0), {}, ValueError, r"\[0, 1\]"),
    (TinySR(), [[0.0]], {}, TypeError, "tensor"),
    (NoContract(), torch.rand(3, 8, 8), {}, ValueError, "output_range"),
    (WrongScale(), torch.rand(3, 8, 8), {}, ValueError, "expected"),
    (TinySR(), torch.rand(3, 8, 8), {"overlap": -1}, ValueError, "overlap"),
    (TinySR(), torch.rand(3, 8, 8), {"half": "int8"}, ValueError, "half"),
])
def test_bad_input(model, lr, kwargs, error, match):
    with pytest.raises(error, match=match):
        super_resolve(model.eval(), lr, **kwargs)
