"""super_resolve: shapes, ranges, eval mode, tiles equal to the whole image, receptive fields,
bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_sr.results import inference
from course_sr.config import get_config
from course_sr.models import VDSR
from course_sr.plumbing.errors import UserError
from course_sr.results.inference import TilingError, receptive_field, super_resolve
from course_sr.models import Generator, build_generator
from course_sr.utils import to_uint8


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


@pytest.mark.parametrize("h, w, n, budget, overlap", [
    (339, 510, 1, 384 * 384, 40), (480, 640, 1, 384 * 384, 40), (750, 1000, 2, 384 * 384, 40),
    (70, 90, 1, 60 * 60, 4), (1356, 2040, 1, 200_000, 12), (33, 500, 1, 2000, 3)])
def test_tile_grid_is_the_cheapest_grid_within_the_budget(h, w, n, budget, overlap):
    th, tw = inference.tile_grid(h, w, n, budget, overlap)
    # every pass, context included, fits the budget
    assert n * min(h, th + 2 * overlap) * min(w, tw + 2 * overlap) <= budget
    cost = inference.computed_pixels(h, w, (th, tw), overlap)
    # no other grid of cores at least MIN_TILE that fits computes fewer pixels
    for oh in range(inference.MIN_TILE, h + 1):
        for ow in range(inference.MIN_TILE, w + 1, 7):
            if n * min(h, oh + 2 * overlap) * min(w, ow + 2 * overlap) <= budget and (oh, ow) != (h, w):
                assert inference.computed_pixels(h, w, (oh, ow), overlap) >= cost


def test_tile_grid_for_div2k_valid_and_small_images():
    assert inference.tile_grid(339, 510, 1, inference.CPU_MAX_PIXELS, 40) is None        # whole
    assert inference.tile_grid(339, 510, 1, 384 * 384, 40) == (339, 255)                # 2 passes
    assert inference.tile_grid(750, 1000, 1, inference.CPU_MAX_PIXELS, 40) == (375, 250)
    assert inference.tile_grid(128, 128, 1, inference.CPU_MAX_PIXELS, 40) is None        # whole


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
    (TinySR(), torch.rand(3, 8, 8), {"overlap": -1}, TilingError, "overlap=-1"),
    (TinySR(), torch.rand(3, 8, 8), {"overlap": 2.5}, TilingError, "overlap=2.5"),
    (TinySR(), torch.rand(3, 8, 8), {"tile": 0}, TilingError, "tile=0"),
    (TinySR(), torch.rand(3, 8, 8), {"tile": -4}, TilingError, "tile=-4"),
    (TinySR(), torch.rand(3, 8, 8), {"tile": 4, "overlap": 4}, TilingError, "overlap=4 must be smaller than tile=4"),
    (TinySR(), torch.rand(3, 8, 8), {"tile": 4, "overlap": 9}, TilingError, "overlap=9 must be smaller than tile=4"),
    (TinySR(), torch.rand(3, 8, 8), {"max_pixels": 0}, TilingError, "max_pixels=0"),
    (TinySR(), torch.full((3, 8, 8), math.nan), {}, ValueError, "NaN"),
    (TinySR(), torch.rand(3, 8, 8), {"half": "int8"}, TilingError, "half"),
])
def test_bad_input(model, lr, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        super_resolve(model.eval(), lr, **kwargs)
    assert "\n" not in str(info.value)                    # one line
    if error is TilingError:                              # a user's value: shown as one line by the CLI
        assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------
# Receptive field: the default overlap that makes tiles equal the whole image
# --------------------------------------------------------------------------------------
def conv(k):
    """Backward step through a "same" k x k conv: output interval -> input interval."""
    return lambda a, b: (a - k // 2, b + k // 2)


def shuffle2(a, b):
    """Backward through PixelShuffle(2): an output row at 2x comes from row // 2."""
    return a // 2, b // 2


def bicubic(s):
    """Backward through bicubic x s (align_corners=False): taps floor(src) - 1 .. floor(src) + 2."""
    return lambda a, b: (math.floor((a + 0.5) / s - 0.5) - 1, math.floor((b + 0.5) / s - 0.5) + 2)


def reach(steps_from_output, scale):
    """The receptive field by hand: walk each output phase of LR pixel 0 back to the LR input."""
    worst = 0
    for x in range(scale):
        a, b = x, x
        for step in steps_from_output:
            a, b = step(a, b)
        worst = max(worst, -a, b)
    return worst


def srresnet_steps(large=9, small=3, n_blocks=16, scale=4, **_):
    ups = int(math.log2(scale))
    return [conv(large)] + [f for _ in range(ups) for f in (shuffle2, conv(small))] + \
        [conv(small)] * (2 * n_blocks + 1) + [conv(large)]


def vdsr_steps(n_blocks=20, scale=4):
    """Vega's VDSR from its output back: HR_conv1, HR_conv0, (shuffle, conv) per x2, the trunk's
    n_blocks + 1 convs, the feature conv."""
    ups = int(math.log2(scale))
    return [conv(3), conv(3)] + [f for _ in range(ups) for f in (shuffle2, conv(3))] + [conv(3)] * (n_blocks + 2)


SRRESNETS = [dict(), dict(scale=2), dict(scale=8), dict(n_blocks=2), dict(n_blocks=5, small=5, large=7),
             dict(n_blocks=1, small=1, large=3, scale=2)]


def small_srresnet(large=9, small=3, n_blocks=16, scale=4, channels=4):
    return Generator(get_config(None, large_kernel_size=large, small_kernel_size=small, n_blocks=n_blocks,
                                scaling_factor=scale, n_channels=channels))


@pytest.mark.parametrize("sizes", SRRESNETS, ids=str)
def test_receptive_field_of_srresnet(sizes):
    # the channels do not change the receptive field; the kernels, blocks and scale do
    assert receptive_field(small_srresnet(**sizes)) == reach(srresnet_steps(**sizes), sizes.get("scale", 4))


def test_receptive_field_of_the_paper_srresnet_is_40():
    assert receptive_field(Generator(get_config())) == reach(srresnet_steps(), 4) == 40


@pytest.mark.parametrize("n_layers, scale", [(20, 4), (5, 4), (3, 2), (2, 8)])
def test_receptive_field_of_vdsr(n_layers, scale):
    vdsr = VDSR(get_config(None, SR_nb=n_layers, SR_nf=4, scaling_factor=scale))
    assert receptive_field(vdsr) == reach(vdsr_steps(n_layers, scale), scale)
    # weight-independent: with bicubic_residual its last conv starts at zero, yet its reach counts
    based = VDSR(get_config(None, SR_nb=n_layers, SR_nf=4, scaling_factor=scale, bicubic_residual=True))
    assert receptive_field(based) == receptive_field(vdsr)


@pytest.mark.parametrize("preset", ["quick", "cyclesr-quick"])
def test_receptive_field_of_the_quick_networks(preset):
    cfg = get_config(preset)
    assert receptive_field(build_generator(cfg, "srresnet")) == reach(
        srresnet_steps(cfg.large_kernel_size, cfg.small_kernel_size, cfg.n_blocks, cfg.scaling_factor), 4)
    assert receptive_field(build_generator(cfg, "vdsr")) == reach(vdsr_steps(cfg.SR_nb, cfg.scaling_factor), 4)


def gradient_reach(model, size=41):
    """The receptive field measured by autograd (float64): which LR pixels the outputs of the
    central LR pixel depend on, whatever the route."""
    model = model.double().eval()
    lr = torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(3),
                    requires_grad=True)
    s, c = model.scale, size // 2
    model(lr)[:, :, c * s:(c + 1) * s, c * s:(c + 1) * s].sum().backward()
    rows, cols = (lr.grad[0].abs().sum(0) > 0).nonzero().unbind(1)
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1   # the probe was wide enough
    return max(c - rows.min(), rows.max() - c, c - cols.min(), cols.max() - c).item()


@pytest.mark.parametrize("make, size", [
    (lambda: small_srresnet(n_blocks=2), 41),
    (lambda: small_srresnet(n_blocks=3, small=5, large=7, scale=2), 61),
    (lambda: VDSR(get_config(None, SR_nb=6, SR_nf=8)), 31),
    (lambda: TinySR(scale=3), 11),
], ids=["srresnet", "srresnet-k5", "vdsr", "tiny"])
def test_receptive_field_matches_a_gradient_probe(make, size):
    model = make()
    assert receptive_field(model) == gradient_reach(model, size)


def test_receptive_field_is_cached_per_model_and_restores_mode():
    model = TinySR()                                       # train mode
    assert receptive_field(model) == 2
    assert model.training
    calls = len(model.calls)
    assert receptive_field(model) == 2 and len(model.calls) == calls   # no second probe


def test_unbounded_receptive_field_warns_when_tiling():
    vdsr = VDSR(get_config(None, SR_nb=3, SR_nf=4, SR_norm_type="instance"))   # per-image statistics
    assert receptive_field(vdsr) is None
    with pytest.warns(UserWarning, match="unbounded receptive field"):
        super_resolve(vdsr, _lr(3, 20, 20), tile=8)


def test_a_network_that_cannot_be_probed_falls_back_only_when_tiling():
    class NoStrips(TinySR):
        def forward(self, x):
            if min(x.shape[-2:]) < 2:
                raise RuntimeError("needs 2 px")
            return super().forward(x)

    model = NoStrips().eval()
    super_resolve(model, _lr(3, 20, 20))                   # fits in one pass: nothing probed, no warning
    with pytest.warns(UserWarning, match=f"overlap={inference.FALLBACK_OVERLAP}"):
        super_resolve(model, _lr(3, 20, 20), tile=8)
    with pytest.raises(ValueError, match="cannot probe NoStrips"):
        receptive_field(model)


def count_forwards(model):
    calls = []
    model.register_forward_pre_hook(lambda _m, args: calls.append(tuple(args[0].shape)))
    return calls


def equality_net(name):
    """(network, an overlap too short for it): paper kernels and depth, few channels (cheap)."""
    torch.manual_seed(0)
    if name == "srresnet":                                 # receptive field 40; 16 was the old default
        return Generator(get_config(None, n_channels=4)).eval(), 16
    vdsr = VDSR(get_config(None, SR_nf=4, bicubic_residual=True)).eval()   # 20 blocks at LR size: reach 24
    for m in vdsr.modules():                               # keep the signal alive through 20 layers,
        if isinstance(m, nn.Conv2d):                       # so that far pixels visibly matter
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    nn.init.normal_(vdsr.hr_convs[-1].weight, std=0.01)    # a small correction to bicubic: not clamped
    return vdsr, 16


@pytest.mark.parametrize("name", ["srresnet", "vdsr"])
def test_default_tiles_equal_the_whole_image(name):
    model, too_short = equality_net(name)
    side = math.isqrt(inference.pixel_budget(torch.device("cpu"), model.scale))
    lr = _lr(3, side + 9, side + 5, seed=4)               # more LR px than one CPU pass holds
    whole = super_resolve(model, lr, tile=max(lr.shape))
    receptive_field(model)                                 # probed (on strips) and cached before counting
    calls = count_forwards(model)
    tiled = super_resolve(model, lr)                       # the default tile and overlap
    budget = inference.pixel_budget(torch.device("cpu"), model.scale)
    assert len(calls) > 1 and all(h * w <= budget for _, _, h, w in calls)
    assert ((whole > 0.02) & (whole < 0.98)).float().mean() > 0.5   # not saturated by the clamp
    assert (tiled - whole).abs().max() <= 1e-6             # float32 rounding only
    # the comparison can fail: an overlap below the receptive field shows
    assert (super_resolve(model, lr, overlap=too_short) - whole).abs().max() > 1e-6


def test_to_uint8_rounds_and_clips_once_as_super_resolve_uint8_does():
    """The one float -> uint8 step (course_sr.utils.to_uint8): nearest level, halves to even,
    clipped to [0, 255]; super_resolve_uint8 is super_resolve followed by exactly that step."""
    levels = torch.tensor([-0.2, 0.0, 0.5, 1.5, 2.49, 254.5, 255.0, 300.0]) / 255
    x = levels.view(1, 1, 8).expand(3, 1, 8)
    out = to_uint8(x, "[0, 1]")
    assert out.dtype == np.uint8 and out.shape == (1, 8, 3)
    assert out[0, :, 0].tolist() == [0, 0, 0, 2, 2, 254, 255, 255]
    assert np.array_equal(to_uint8(x * 255, "[0, 255]"), out)
    lr = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    net = TinySR(scale=2)
    sr = super_resolve(net, torch.from_numpy(lr).permute(2, 0, 1).float() / 255)
    assert np.array_equal(inference.super_resolve_uint8(net, lr), to_uint8(sr, "[0, 1]"))
