"""CycleSR / dual-regression networks: shapes, ranges, options that must change the network."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from course_sr.config import get_config
from course_sr.models import VDSR
from course_sr.unpaired.nets import (DualNet, ImagePool, PatchDiscriminator, ResnetGenerator,
                                    build_dual_network, build_patch_discriminator, build_sr_network,
                                    build_transfer_generator)

TINY = dict(cyc_ngf=4, cyc_ndf=4, cyc_n_blocks=1, cyc_n_layers_D=2, SR_nb=3, SR_nf=4, dual_nf=4,
            n_channels=4, n_blocks=1)


@pytest.mark.parametrize("up_mode", ["transpose", "resize"])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("size", [(16, 16), (13, 10)])
def test_resnet_generator_keeps_size_and_range(up_mode, norm, size):
    g = ResnetGenerator(ngf=4, n_blocks=2, norm=norm, up_mode=up_mode)
    y = g(torch.rand(2, 3, *size)).detach()
    assert y.shape == (2, 3, *size)
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_up_mode_and_blocks_change_the_network():
    def kinds(g):
        return [type(m).__name__ for m in g.modules()]

    assert kinds(ResnetGenerator(ngf=4, up_mode="transpose")).count("ConvTranspose2d") == 2
    assert kinds(ResnetGenerator(ngf=4, up_mode="resize")).count("ConvTranspose2d") == 0
    assert kinds(ResnetGenerator(ngf=4, n_blocks=5)).count("ResnetBlock") == 5
    with pytest.raises(ValueError, match="up_mode"):
        ResnetGenerator(up_mode="bilinear")
    with pytest.raises(ValueError, match="norm"):
        ResnetGenerator(norm="layer")


def test_residual_generator_starts_as_the_identity():
    """As built (no weights touched here): a residual generator returns its input, a plain one
    does not, and one step of training moves the residual one off the identity (the zeroed last
    conv still gets a gradient)."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    g = ResnetGenerator(ngf=4, n_blocks=1, residual=True)
    torch.testing.assert_close(g(x), x)
    plain = ResnetGenerator(ngf=4, n_blocks=1, residual=False)
    assert (plain(x) - x).abs().max() > 1e-2
    opt = torch.optim.SGD(g.parameters(), lr=0.1)
    (g(x) - 0.5).pow(2).mean().backward()
    opt.step()
    assert (g(x) - x).abs().max() > 1e-4


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patch_discriminator_uses_n_layers(n_layers):
    d = PatchDiscriminator(ndf=4, n_layers=n_layers)
    strided = [m for m in d.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == n_layers
    side = PatchDiscriminator.min_size(n_layers)
    assert d(torch.rand(2, 3, side, side)).shape == (2, 1, 1, 1)
    assert d(torch.rand(1, 3, 4 * side, 4 * side)).shape[1] == 1
    with pytest.raises(ValueError, match="at least"):
        d(torch.rand(1, 3, side - 1, side - 1))


def test_image_pool_fills_then_swaps_half_the_time():
    random.seed(0)
    pool = ImagePool(3)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)            # filling: returns what it stores
    assert len(pool.images) == 3
    returned_old = 0
    for i in range(200):
        new = torch.full((1, 1, 1, 1), 100.0 + i)
        out = pool.query(new)
        assert out.shape == new.shape
        returned_old += int(out.item() != new.item())
    assert 60 < returned_old < 140                           # p = 1/2 of answering from history
    assert len(pool.images) == 3


def test_image_pool_size_zero_and_state_roundtrip():
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    assert ImagePool(0).query(x) is x
    random.seed(1)
    pool = ImagePool(2)
    pool.query(torch.rand(2, 3, 4, 4))
    state = pool.state_dict()
    other = ImagePool(5)
    other.load_state_dict(state)
    assert other.size == 2 and all(torch.equal(a, b) for a, b in zip(pool.images, other.images))
    random.seed(2)
    a = pool.query(torch.ones(2, 3, 4, 4))
    random.seed(2)
    b = other.query(torch.ones(2, 3, 4, 4))
    assert torch.equal(a, b)
    assert not pool.query(x).requires_grad                   # stored and returned detached


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_vdsr_is_vegas_layout_with_its_trunk_at_lr_size(norm, scale):
    """Feature conv, SR_nb + 1 trunk convs (at LR size), log2(s) PixelShuffle convs, HR_conv0/1."""
    cfg = get_config(**{**TINY, "SR_nb": 4}, SR_norm_type=norm, scaling_factor=scale)
    net = VDSR(cfg)
    assert net.scale == scale and net.output_range == "[0, 1]"
    ups = scale.bit_length() - 1
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 1 + 5 + ups + 2
    assert sum(isinstance(m, nn.PixelShuffle) for m in net.modules()) == ups
    seen = []
    net.trunk.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    assert net(torch.rand(2, 3, 6, 5)).shape == (2, 3, 6 * scale, 5 * scale)
    assert seen == [(2, cfg.SR_nf, 6, 5)]                # 16x less work than at HR size (x4)
    with pytest.raises(ValueError, match="power of two"):
        VDSR(get_config(**TINY, scaling_factor=4)).__class__({**cfg, "scaling_factor": 3})


def test_vdsr_starts_as_its_bicubic_base_only_with_bicubic_residual():
    lr = torch.rand(1, 3, 5, 5)
    up = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(VDSR(get_config(**TINY, bicubic_residual=True))(lr), up)     # as built
    assert (VDSR(get_config(**TINY))(lr) - up).abs().max() > 1e-3                          # Vega's: from scratch


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_dual_net_downsamples_by_scale(scale):
    net = DualNet(scale=scale, nf=4)
    assert net(torch.rand(2, 3, 8 * scale, 4 * scale)).shape == (2, 3, 8, 4)
    assert sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in net.modules()) == {2: 1, 4: 2, 8: 3}[scale]
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 3, 8 * scale + 1, 8 * scale))
    with pytest.raises(ValueError, match="power-of-two"):
        DualNet(scale=3)


@pytest.mark.parametrize("sr_net, out_range", [("vdsr", "[0, 1]"), ("srresnet", "[-1, 1]")])
def test_factories_follow_the_config(sr_net, out_range):
    cfg = get_config(**TINY, sr_net=sr_net, cyc_up_mode="resize", cyc_residual=True)
    sr = build_sr_network(cfg)
    assert sr.output_range == out_range and sr.scale == 4
    assert sr(torch.rand(1, 3, 4, 4)).shape == (1, 3, 16, 16)
    g = build_transfer_generator(cfg)
    assert g.residual and not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert build_patch_discriminator(cfg).n_layers == 2
    assert build_dual_network(cfg).scale == 4
    with pytest.raises(ValueError, match="sr_net='edsr'"):     # refused by the config first ...
        get_config(**TINY, sr_net="edsr")
    bad = get_config(**TINY)
    bad.sr_net = "edsr"                                        # ... and by the factory, if edited after
    with pytest.raises(ValueError, match="unknown"):
        build_sr_network(bad)


def test_noise_input_makes_the_generator_random():
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=4, n_blocks=1, noise_nc=1)
    assert g.model[1].in_channels == 4
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert not torch.equal(g(x), g(x))
        torch.manual_seed(1)
        a = g(x)
        torch.manual_seed(1)
        assert torch.equal(a, g(x))                       # the randomness is torch's: seeded, resumable
