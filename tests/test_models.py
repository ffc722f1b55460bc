"""Shapes, ranges and parameter counts of the SRGAN networks (tiny sizes except the pinned counts)."""
from __future__ import annotations

import urllib.error

import pytest
import torch
from torch import nn

from course_sr.config import get_config
from course_sr.models import (Discriminator, Generator, TruncatedVGG19, build_discriminator, build_generator,
                              count_parameters)
from course_sr.utils import convert_image

TINY = dict(n_channels=8, n_blocks=2, d_n_channels=4, d_n_blocks=4, d_fc_size=16)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_shape_range_and_attributes(scale):
    g = Generator(get_config(scaling_factor=scale, crop_size=96, **TINY))
    lr = torch.rand(2, 3, 6, 5)
    sr = g(lr)
    assert sr.shape == (2, 3, 6 * scale, 5 * scale)
    assert g.scale == scale and g.output_range == "[-1, 1]"
    assert sr.min() >= -1 and sr.max() <= 1            # tanh output
    assert len(g.subpixel_blocks) == {2: 1, 4: 2, 8: 3}[scale]


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_residual_generator_starts_as_its_bicubic_base_and_then_adds_to_it(scale):
    """bicubic_residual: SR = TorchBicubic(LR) + G(LR), linear (not tanh), the correction at zero."""
    import torch.nn.functional as F

    from course_sr.models import TorchBicubic

    g = Generator(get_config(scaling_factor=scale, crop_size=96, bicubic_residual=True, **TINY))
    lr = torch.rand(2, 3, 7, 5)
    base = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    assert torch.equal(TorchBicubic(scale)(lr), base)
    assert torch.allclose(g(lr), base * 2 - 1, atol=1e-6)          # untrained: exactly the base
    with torch.no_grad():
        g.conv_block3[0].bias.fill_(0.7)                           # no tanh squashes the sum
    assert torch.allclose(g(lr), base * 2 - 1 + 0.7, atol=1e-6) and g(lr).max() > 1
    assert not any(isinstance(m, nn.Tanh) for m in g.modules())
    paper = Generator(get_config(scaling_factor=scale, crop_size=96, **TINY))
    assert g.state_dict().keys() == paper.state_dict().keys()      # same weights, base has none
    assert any(isinstance(m, nn.Tanh) for m in paper.modules()) and paper.base is None
    assert not get_config("paper").bicubic_residual and not get_config("colab").bicubic_residual


@pytest.mark.parametrize("scale, expected", [(2, 1_401_749), (4, 1_549_462), (8, 1_697_175)])
def test_generator_parameter_count_paper_sizes(scale, expected):
    # 16 blocks, 64 channels, kernels 9/3; x4 = 1,549,462 as sgrvinod's SRResNet (~1.5M, paper).
    assert count_parameters(Generator(get_config(scaling_factor=scale, crop_size=96))) == expected


def test_discriminator_parameter_count_paper_sizes():
    # 8 convs 64..512 (4.69M) + dense 512*6*6 -> 1024 (18.9M) + dense 1024 -> 1.
    d = Discriminator(get_config())
    assert count_parameters(d) == 23_565_505
    assert count_parameters(d.fc1) == 512 * 36 * 1024 + 1024


@pytest.mark.parametrize("size", [(32, 32), (40, 52), (96, 96)])
def test_discriminator_takes_any_size_and_returns_logits(size):
    d = build_discriminator(get_config(**TINY))
    out = d(torch.rand(3, 3, *size) * 2 - 1)
    assert out.shape == (3,)
    assert out.dtype == torch.float32


def test_discriminator_layout():
    d = Discriminator(get_config())
    convs = [b[0] for b in d.conv_blocks]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 4
    assert [isinstance(b[1], nn.BatchNorm2d) for b in d.conv_blocks] == [False] + [True] * 7


@pytest.mark.parametrize("i, j, channels, down", [(2, 2, 128, 2), (5, 4, 512, 16)])
def test_truncated_vgg_shapes_and_frozen(i, j, channels, down):
    vgg = TruncatedVGG19(i, j, weights="random")
    out = vgg(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert out.shape == (1, channels, 32 // down, 32 // down)
    assert out.min() >= 0                                # ends with the ReLU of conv j
    assert not any(p.requires_grad for p in vgg.parameters())
    nn.Sequential(vgg).train()                           # a parent's .train() must not unfreeze it
    assert not vgg.training


def test_truncated_vgg_layers_match_torchvision_indices():
    from torchvision.models.vgg import cfgs, make_layers

    ours = TruncatedVGG19(5, 4, weights="random").features
    theirs = make_layers(cfgs["E"])[:36]                 # conv5_4 + ReLU is layer 35
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert all(a.shape == b.shape for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))


def test_truncated_vgg_normalises_inside_and_random_weights_ignore_global_rng():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.manual_seed(1)
    inside = TruncatedVGG19(2, 2, weights="random")
    torch.manual_seed(2)
    outside = TruncatedVGG19(2, 2, weights="random", input_range="imagenet-norm")
    expected = outside(convert_image(x, "[-1, 1]", "imagenet-norm"))
    torch.testing.assert_close(inside(x), expected)


def test_truncated_vgg_without_weights_says_what_to_do(monkeypatch):
    from torchvision.models import VGG19_Weights

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(VGG19_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"VGG19 ImageNet weights.*550 MB.*TORCH_HOME.*random"):
        TruncatedVGG19(5, 4, weights="imagenet")


@pytest.mark.parametrize("kwargs, match", [(dict(i=6, j=1), "no conv 1 before max-pool 6"),
                                           (dict(i=2, j=3), "no conv 3 before max-pool 2"),
                                           (dict(weights="vgg16"), "weights must be"),
                                           (dict(input_range="[0, 255]"), "input_range")])
def test_truncated_vgg_rejects_bad_arguments(kwargs, match):
    args = dict(i=2, j=2, weights="random") | kwargs
    with pytest.raises(ValueError, match=match):
        TruncatedVGG19(**args)


def test_build_generator_picks_by_name():
    cfg = get_config("quick")
    assert isinstance(build_generator(cfg), Generator)
    vdsr = build_generator(cfg, "vdsr")
    assert vdsr.output_range == "[0, 1]" and vdsr.scale == cfg.scaling_factor
    with pytest.raises(ValueError, match="unknown generator 'edsr'"):
        build_generator(cfg, "edsr")


def test_count_parameters_trainable_only():
    vgg = TruncatedVGG19(2, 2, weights="random")
    assert count_parameters(vgg) > 0
    assert count_parameters(vgg, trainable_only=True) == 0


# ---------------------------------------------------------------- channels_last, layer by layer
def cuda_generic_pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """What PyTorch's pixel shuffle does on CUDA (its generic path): a reshape-permute-reshape,
    which returns NCHW whatever it was given. (The CPU kernel keeps channels_last.)"""
    n, c, h, w = x.shape
    return x.reshape(n, c // r ** 2, r, r, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // r ** 2, h * r, w * r)


def test_the_emulated_cuda_pixel_shuffle_is_pixel_shuffle_and_drops_channels_last():
    x = torch.rand(2, 16, 5, 3)
    assert torch.equal(cuda_generic_pixel_shuffle(x, 2), torch.nn.functional.pixel_shuffle(x, 2))
    assert not cuda_generic_pixel_shuffle(x.contiguous(memory_format=torch.channels_last), 2).is_contiguous(
        memory_format=torch.channels_last)


def layers_not_channels_last(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the modules whose 4-D output (or a conv's input) is not channels_last."""
    bad = []

    def hook(name):
        def check(module, inputs, output):
            cl = torch.channels_last
            if isinstance(module, nn.Conv2d) and not inputs[0].is_contiguous(memory_format=cl):
                bad.append(f"{name} (input)")
            if torch.is_tensor(output) and output.dim() == 4 and not output.is_contiguous(memory_format=cl):
                bad.append(name)
        return check

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    finally:
        for h in handles:
            h.remove()
    return bad


@pytest.mark.parametrize("pixel_shuffle", ["cpu kernel", "cuda generic path"])
@pytest.mark.parametrize("net", ["generator x4", "generator x8", "discriminator", "vgg54"])
def test_every_layer_output_stays_channels_last(monkeypatch, pixel_shuffle, net):
    if pixel_shuffle == "cuda generic path":
        monkeypatch.setattr(torch.nn.functional, "pixel_shuffle", cuda_generic_pixel_shuffle)
    cfg = get_config(crop_size=96, **TINY)
    model, x = {
        "generator x4": (Generator(cfg), torch.rand(2, 3, 6, 5)),
        "generator x8": (Generator(get_config(scaling_factor=8, crop_size=96, **TINY)), torch.rand(2, 3, 4, 3)),
        "discriminator": (Discriminator(cfg), torch.rand(2, 3, 24, 20) * 2 - 1),
        "vgg54": (TruncatedVGG19(5, 4, weights="random"), torch.rand(2, 3, 32, 32) * 2 - 1),
    }[net]
    assert layers_not_channels_last(model, x) == []


def test_channels_last_gives_the_same_images():
    g = Generator(get_config(crop_size=96, **TINY)).eval()
    lr = torch.rand(2, 3, 6, 5)
    ref = g(lr)
    g.to(memory_format=torch.channels_last)
    torch.testing.assert_close(g(lr.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-5, atol=1e-6)


def test_vgg_normalises_in_float32_under_autocast():
    vgg = TruncatedVGG19(2, 2, weights="random")
    x = (torch.rand(2, 3, 16, 16) * 2 - 1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(vgg(x), vgg(x.float()))      # the same constants for SR (bf16) and HR (fp32)
