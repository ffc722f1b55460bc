"""Networks for super-resolution without paired data: CycleSR and dual regression.

Who is who (code name -> paper name):

- ``ResnetGenerator``   a CycleGAN generator (Zhu et al., ICCV 2017). CycleSR uses two:
  ``G_clean2real`` maps the clean-LR domain (bicubic-downsampled HR) to the real-LR domain
  (unknown blur, noise, compression) and ``G_real2clean`` maps back. Same size in and out.
- ``PatchDiscriminator`` a PatchGAN (Isola et al., CVPR 2017): one logit per overlapping
  patch, not one per image, so it judges texture (noise, blur, JPEG blocks), not layout.
- ``ImagePool``          the history buffer of generated images fed to the discriminators
  (Shrivastava et al., CVPR 2017; used by CycleGAN with 50 images).
- (the SR networks, SRResNet and the design note's VDSR, are in ``course_sr.models``)
- ``DualNet``            the dual (downsampling) network of dual regression (Guo et al., CVPR
  2020, "DRN"): SR output -> LR, closing the loop LR -> SR -> LR.

Every network here takes and returns images in **[0, 1]** (N, 3, H, W) float32; CycleGAN
works in [-1, 1] internally (tanh output), which stays inside ``ResnetGenerator``.
The factories at the bottom pick a class with a visible if/elif (no registry).
"""
from __future__ import annotations

import math
import random
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from course_sr.models import build_generator, norm_layer
from course_sr.utils import convert_image


class ResnetBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), reflection padding (no border artefacts)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        bias = norm != "batch"  # a batch-norm's shift makes a conv bias redundant
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def up_layer(mode: str, c_in: int, c_out: int, bias: bool) -> nn.Module:
    """x2 upsampling: ``transpose`` (CycleGAN's ConvTranspose2d) or ``resize`` (nearest x2 then
    a 3x3 conv, which avoids the checkerboard pattern of uneven transposed-conv overlap)."""
    if mode == "transpose":
        return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)
    if mode == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                             nn.Conv2d(c_in, c_out, 3, bias=bias))
    raise ValueError(f"up_mode must be 'transpose' or 'resize', got {mode!r}")


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: image (N, in_nc, H, W) in [0, 1] -> (N, out_nc, H, W) in [0, 1].

    Encoder (7x7 conv, ``n_down`` stride-2 convs doubling filters), ``n_blocks`` residual
    blocks at 1/2**n_down resolution, decoder (``n_down`` x2 upsamplings, ``up_mode``), 7x7
    conv and tanh. Any H, W works: the input is reflect-padded up to a multiple of
    2**n_down and the output cropped back.

    ``residual=True`` adds the input to the output (the net predicts a correction, whose last
    conv starts at zero: an untrained generator is the identity). The two LR domains share
    content and differ only in blur/noise/compression, so starting from the identity shortens
    training a lot; ``False`` is CycleGAN as published.
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", up_mode: str = "transpose", n_down: int = 2,
                 residual: bool = False, noise_nc: int = 0):
        super().__init__()
        if residual and in_nc != out_nc:
            raise ValueError(f"residual=True needs in_nc == out_nc, got {in_nc} and {out_nc}")
        bias = norm != "batch"
        self.n_down, self.residual, self.noise_nc = n_down, residual, noise_nc
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc + noise_nc, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(n_down):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
        c = ngf * 2 ** n_down
        layers += [ResnetBlock(c, norm) for _ in range(n_blocks)]
        for i in range(n_down):
            c = ngf * 2 ** (n_down - i)
            layers += [up_layer(up_mode, c, c // 2, bias), norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        if residual:  # start as the identity: the correction is zero until training moves it
            nn.init.zeros_(layers[-2].weight)
            nn.init.zeros_(layers[-2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W) in [0, 1]
        h, w = x.shape[-2:]
        m = 2 ** self.n_down
        ph, pw = (-h) % m, (-w) % m
        if min(h, w) < 4:
            raise ValueError(f"ResnetGenerator needs images of at least 4x4 pixels, got {h}x{w}")
        z = convert_image(x, "[0, 1]", "[-1, 1]")  # CycleGAN's range, to match tanh
        z = F.pad(z, (0, pw, 0, ph), mode="reflect") if ph or pw else z
        inp = z
        if self.noise_nc:   # fresh N(0, 1) maps: a source of randomness (a camera's noise is random)
            inp = torch.cat([z, torch.randn(z.shape[0], self.noise_nc, *z.shape[2:], device=z.device, dtype=z.dtype)], 1)
        y = self.model(inp)[..., :h, :w]  # (N, out_nc, H, W) in [-1, 1] (tanh)
        if self.residual:
            y = (z[..., :h, :w] + y).clamp(-1, 1)
        return convert_image(y, "[-1, 1]", "[0, 1]")


# --------------------------------------------------------------------------------------
# PatchGAN discriminator
# --------------------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """PatchGAN: (N, in_nc, H, W) image in [0, 1] -> (N, 1, h, w) logits, one per patch.

    ``n_layers`` stride-2 4x4 convs (the first without norm), then a stride-1 conv and a
    1-channel stride-1 conv. Filters double per layer up to 8*ndf. Receptive field: 16, 34,
    70 pixels for n_layers 1, 2, 3. The input must be at least ``min_size(n_layers)`` pixels.
    """

    def __init__(self, in_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        bias = norm != "batch"
        self.n_layers = n_layers
        layers: list[nn.Module] = [nn.Conv2d(in_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for n in range(1, n_layers):
            c_next = ndf * min(2 ** n, 8)
            layers += [nn.Conv2d(c, c_next, 4, stride=2, padding=1, bias=bias), norm_layer(norm, c_next),
                       nn.LeakyReLU(0.2, True)]
            c = c_next
        c_next = ndf * min(2 ** n_layers, 8)
        layers += [nn.Conv2d(c, c_next, 4, stride=1, padding=1, bias=bias), norm_layer(norm, c_next),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(c_next, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    @staticmethod
    def min_size(n_layers: int) -> int:
        """Smallest input side that leaves a 1x1 logit map (and 2x2 before the last conv)."""
        s = 2  # side before the final 1-channel conv (k4 p1 s1 maps s -> s-1)
        s += 1  # before the stride-1 conv
        return s * 2 ** n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 3, H, W) in [0, 1] -> (N, 1, h, w) raw scores (LSGAN: no sigmoid)
        need = self.min_size(self.n_layers)
        if min(x.shape[-2:]) < need:
            raise ValueError(f"PatchDiscriminator(n_layers={self.n_layers}) needs inputs of at least "
                             f"{need}x{need} pixels, got {tuple(x.shape[-2:])}; use a larger crop_size "
                             "or fewer cyc_n_layers_D")
        return self.model(convert_image(x, "[0, 1]", "[-1, 1]"))


# --------------------------------------------------------------------------------------
# Image pool
# --------------------------------------------------------------------------------------
class ImagePool:
    """A buffer of up to ``size`` previously generated images, fed to a discriminator.

    ``query(images)`` takes a batch (N, C, H, W) and returns a batch of the same shape. Image
    by image: while the pool holds fewer than ``size`` images, the new image is stored and
    returned. Once full, with probability 1/2 the new image is returned as it is, otherwise a
    random stored image is returned and the new one takes its place. ``size == 0`` returns the
    input unchanged. Showing the discriminator older fakes keeps it from chasing only the
    generator's latest mode (less oscillation).

    Images are stored detached, on the device they arrive on. Randomness uses Python's
    ``random`` module, whose state the checkpoint saves, so a resumed run draws the same.
    ``state_dict()`` / ``load_state_dict()`` carry the stored images (a tensor) for exact resume.
    """

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() < 0.5:
                out.append(image)
            else:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": torch.cat(self.images, 0).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: Mapping, device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        imgs = state["images"]
        self.images = [im.unsqueeze(0).to(device) for im in imgs] if imgs.numel() else []


# --------------------------------------------------------------------------------------
# Dual regression: the dual (downsampling) network
# --------------------------------------------------------------------------------------
class DualNet(nn.Module):
    """Dual model of DRN: SR (N, 3, s*h, s*w) in [0, 1] -> LR (N, 3, h, w) in [0, 1].

    One block per factor 2 (``scale`` must be a power of two): a stride-2 3x3 conv and a
    LeakyReLU(0.2), as DRN's dual blocks; a 3x3 conv maps back to RGB. The result is added
    to the ``scale``x``scale`` box average of the input, so the loop loss is meaningful from
    the first step (the net learns how the true degradation differs from box averaging).
    Learning to downsample is far easier than learning to upsample, hence a small net.
    """

    def __init__(self, scale: int = 4, nf: int = 64, in_nc: int = 3, out_nc: int = 3):
        super().__init__()
        n = int(round(math.log2(scale)))
        if 2 ** n != scale:
            raise ValueError(f"DualNet needs a power-of-two scale, got {scale}")
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_nc, nf, 3, padding=1)]
        for _ in range(n):
            layers += [nn.Conv2d(nf, nf, 3, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(nf, out_nc, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, sr: torch.Tensor) -> torch.Tensor:
        # sr: (N, 3, H, W) in [0, 1], H and W multiples of scale
        if sr.shape[-2] % self.scale or sr.shape[-1] % self.scale:
            raise ValueError(f"DualNet(scale={self.scale}) needs H and W divisible by {self.scale}, "
                             f"got {tuple(sr.shape[-2:])}")
        return F.avg_pool2d(sr, self.scale) + self.body(sr)  # (N, 3, H/s, W/s)


# --------------------------------------------------------------------------------------
# Factories (visible if/elif; plug your own network in here)
# --------------------------------------------------------------------------------------
def build_transfer_generator(config: Mapping) -> ResnetGenerator:
    """One CycleGAN generator from ``cyc_ngf``, ``cyc_n_blocks``, ``cyc_norm``, ``cyc_up_mode``,
    ``cyc_residual``."""
    return ResnetGenerator(3, 3, ngf=config["cyc_ngf"], n_blocks=config["cyc_n_blocks"],
                           norm=config["cyc_norm"], up_mode=config["cyc_up_mode"],
                           residual=bool(config.get("cyc_residual", False)),
                           noise_nc=int(config.get("cyc_noise_nc", 0)))


def build_patch_discriminator(config: Mapping) -> PatchDiscriminator:
    """One PatchGAN from ``cyc_ndf``, ``cyc_n_layers_D``, ``cyc_norm``."""
    return PatchDiscriminator(3, ndf=config["cyc_ndf"], n_layers=config["cyc_n_layers_D"], norm=config["cyc_norm"])


def build_sr_network(config: Mapping) -> nn.Module:
    """The SR network CycleSR / dual regression train: ``models.build_generator(config,
    config.sr_net)`` (``vdsr`` -> ``models.VDSR``, ``srresnet`` -> the kit's SRResNet).

    Plug your own network into that factory: it must take LR in [0, 1] and have ``scale``
    and ``output_range`` attributes, and then ``evaluate``/``upscale`` can rebuild it too.
    """
    return build_generator(config, config["sr_net"])


def build_dual_network(config: Mapping) -> DualNet:
    """The dual (SR -> LR) network from ``scaling_factor`` and ``dual_nf``."""
    return DualNet(scale=config["scaling_factor"], nf=config["dual_nf"])
