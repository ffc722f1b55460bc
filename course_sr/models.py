"""The SRGAN networks (Ledig et al., CVPR 2017): SRResNet generator, discriminator, VGG loss net.

Names in the code and in the paper (Fig. 4 and Sec. 2-3):

=====================  =========================================================
code                   paper
=====================  =========================================================
``Generator``          G, "SRResNet" (and the generator of SRGAN)
``Discriminator``      D
``TruncatedVGG19``     phi_{i,j}: VGG19 feature map of the j-th conv (after its ReLU)
                       before the i-th max-pool; VGG54 = (5, 4), VGG22 = (2, 2)
``n_blocks``           B (16 residual blocks)
=====================  =========================================================

Ranges (the kit's contract, see ``course_sr.utils.convert_image``): every SR network takes LR
images in ``[0, 1]`` and says what it returns in ``output_range``; the SRResNet ends with tanh,
so it returns ``[-1, 1]`` (the paper's HR range; with ``bicubic_residual`` the sum is not
squashed, and inference clamps). The discriminator and the VGG take images in ``[-1, 1]``.

    >>> from course_sr.config import get_config
    >>> g = Generator(get_config())
    >>> count_parameters(g), g.scale, g.output_range
    (1549462, 4, '[-1, 1]')
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from easydict import EasyDict

from course_sr.plumbing.checkpoint import CheckpointError, checkpoint_info, load_checkpoint
from course_sr.utils import convert_image


# --------------------------------------------------------------------------------------
# Building blocks (explicit sizes)
# --------------------------------------------------------------------------------------
class ConvBlock(nn.Sequential):
    """Conv2d ("same" padding) -> optional BatchNorm -> optional activation.

    ``activation``: None, ``"prelu"`` (generator), ``"leakyrelu"`` (discriminator, slope 0.2)
    or ``"tanh"`` (generator output). Shapes: ``(N, in_channels, H, W)`` ->
    ``(N, out_channels, H / stride, W / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 batch_norm: bool = False, activation: str | None = None):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                             padding=kernel_size // 2)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if activation == "prelu":
            layers.append(nn.PReLU())          # one learned slope per layer, as the paper
        elif activation == "leakyrelu":
            layers.append(nn.LeakyReLU(0.2))
        elif activation == "tanh":
            layers.append(nn.Tanh())
        elif activation is not None:
            raise ValueError(f"ConvBlock: unknown activation {activation!r} "
                             "(expected None, 'prelu', 'leakyrelu' or 'tanh')")
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """conv3-BN-PReLU-conv3-BN plus the identity: ``(N, C, H, W)`` -> ``(N, C, H, W)``."""

    def __init__(self, kernel_size: int = 3, n_channels: int = 64):
        super().__init__()
        self.conv_block1 = ConvBlock(n_channels, n_channels, kernel_size, batch_norm=True, activation="prelu")
        self.conv_block2 = ConvBlock(n_channels, n_channels, kernel_size, batch_norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block2(self.conv_block1(x))


class PixelShuffle(nn.PixelShuffle):
    """``nn.PixelShuffle`` whose output keeps its input's memory format.

    On CUDA, PyTorch's pixel shuffle is a reshape-permute-reshape that returns NCHW whatever it
    is given (the CPU kernel keeps channels_last), so a channels_last SRResNet would run its
    largest convolutions, at 2x and 4x the LR size, on NCHW tensors. No parameters: the
    state-dict keys are those of ``nn.PixelShuffle``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            y = y.contiguous(memory_format=torch.channels_last)   # a no-op when already so
        return y


class SubPixelConvBlock(nn.Sequential):
    """x2 upsampling: conv to 4x channels, PixelShuffle(2), PReLU.

    ``(N, C, H, W)`` -> ``(N, C, 2H, 2W)``. The shuffle rearranges the 4C channels into a 2x2
    neighbourhood: a learned upsampling without the checkerboard of transposed convolutions.
    """

    def __init__(self, kernel_size: int = 3, n_channels: int = 64, scaling_factor: int = 2):
        super().__init__(
            nn.Conv2d(n_channels, n_channels * scaling_factor ** 2, kernel_size, padding=kernel_size // 2),
            PixelShuffle(scaling_factor),
            nn.PReLU(),
        )


class TorchBicubic(nn.Module):
    """PyTorch's bicubic upscale as an SR network: ``(N, 3, h, w)`` in [0, 1] -> ``(N, 3, s*h, s*w)``.

    ``F.interpolate(mode="bicubic", align_corners=False)``: Keys' cubic with a = -0.75 and no
    antialiasing, sharper than MATLAB's a = -0.5 (Set5 x4: 28.63 dB against MATLAB's 28.43;
    sample_test 28.19 against 28.05). It is the base a ``bicubic_residual`` SRResNet adds its
    output to, and the ``torch-bicubic`` method of ``course_sr.results.evaluate``. No weights; the output
    is not clamped (``inference.super_resolve`` clamps).
    """

    output_range = "[0, 1]"
    arch = "torch-bicubic"

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int(scale)

    def forward(self, lr_imgs: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lr_imgs, scale_factor=self.scale, mode="bicubic", align_corners=False)


# --------------------------------------------------------------------------------------
# Generator: SRResNet
# --------------------------------------------------------------------------------------
class Generator(nn.Module):
    """SRResNet (the paper's G): ``(N, 3, h, w)`` LR in [0, 1] -> ``(N, 3, s*h, s*w)`` in [-1, 1].

    Sizes from ``config``: ``large_kernel_size`` (9), ``small_kernel_size`` (3), ``n_channels``
    (64), ``n_blocks`` (B = 16), ``scaling_factor`` (s = 2, 4 or 8: log2(s) x2 upsampling
    blocks). At the defaults it has 1,549,462 parameters.

    Attributes: ``scale`` (s) and ``output_range = "[-1, 1]"`` (tanh output, so that the HR
    targets of the SRGAN stage, also in [-1, 1], are reachable).

    ``bicubic_residual`` (config key, default False; NOT the paper's SRResNet): the network
    predicts only a correction to a bicubic upscale, ``SR = bicubic(LR) + G(LR)``, VDSR's global
    residual (Kim et al., CVPR 2016). The bicubic is :class:`TorchBicubic` (PyTorch's, a = -0.75),
    the last conv is linear (no tanh on the sum) and starts at zero, so an untrained network IS
    that upscale (Set5 x4 28.63 dB, MATLAB bicubic 28.43). What it buys, measured with the quick
    preset's 31k-parameter net (2 blocks, 16 channels, 3x3 outer convs, 600 steps of batch 16 on
    32 px crops, 3 seeds): 28.86-28.99 dB on the sample's test split and 29.54-29.73 dB on Set5,
    where the same preset without it stays below bicubic (26.23 / 24.95 dB, the worst image's mean
    Y off by 8-9 levels; the old quick preset, 150 steps: 22.6 / 21.4 dB, up to 22 levels). A tiny
    net on a tiny budget then spends its steps on the detail bicubic lacks instead of re-learning
    colours and the upsampling itself. Off in the ``paper`` and ``colab`` presets: at the paper's size and budget
    SRResNet learns the upsampling anyway.
    """

    output_range = "[-1, 1]"
    arch = "srresnet"

    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        large, small = int(config["large_kernel_size"]), int(config["small_kernel_size"])
        n_channels, n_blocks = int(config["n_channels"]), int(config["n_blocks"])
        scale = int(config["scaling_factor"])
        if scale not in (2, 4, 8):
            raise ValueError(f"Generator: scaling_factor must be 2, 4 or 8, got {scale}")
        self.scale = scale

        self.conv_block1 = ConvBlock(3, n_channels, large, activation="prelu")
        self.residual_blocks = nn.Sequential(*[ResidualBlock(small, n_channels) for _ in range(n_blocks)])
        self.conv_block2 = ConvBlock(n_channels, n_channels, small, batch_norm=True)
        self.subpixel_blocks = nn.Sequential(
            *[SubPixelConvBlock(small, n_channels, 2) for _ in range(int(math.log2(scale)))])
        residual = bool(config.get("bicubic_residual", False))
        self.conv_block3 = ConvBlock(n_channels, 3, large, activation=None if residual else "tanh")
        self.base = TorchBicubic(scale) if residual else None
        if residual:                    # the correction starts at zero: untrained G = bicubic
            nn.init.zeros_(self.conv_block3[0].weight)
            nn.init.zeros_(self.conv_block3[0].bias)

    def forward(self, lr_imgs: torch.Tensor) -> torch.Tensor:
        x = self.conv_block1(lr_imgs)                  # (N, C, h, w)
        x = x + self.conv_block2(self.residual_blocks(x))  # long skip over the B blocks
        x = self.subpixel_blocks(x)                    # (N, C, s*h, s*w)
        x = self.conv_block3(x)                        # (N, 3, s*h, s*w), in [-1, 1] (tanh)
        if self.base is not None:                      # bicubic_residual: + the bicubic upscale
            x = x + convert_image(self.base(lr_imgs), "[0, 1]", "[-1, 1]")
        return x

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Generator":
        """The SRResNet stored in a course_sr checkpoint, in eval mode on ``device``.

        Raises ValueError (naming the file) when the checkpoint holds another architecture;
        use :func:`load_generator` for any SR network.
        """
        model, info = load_generator(path, device)
        if not isinstance(model, cls):
            raise ValueError(f"{path} holds a {info['arch']!r} network, not an SRResNet Generator; "
                             "use course_sr.models.load_generator(path) to load it")
        return model


# --------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------
class Discriminator(nn.Module):
    """The paper's D: ``(N, 3, H, W)`` image in [-1, 1] -> ``(N,)`` logits (real > 0 > fake).

    ``d_n_blocks`` conv layers (8) of ``d_kernel_size`` (3): channels start at ``d_n_channels``
    (64) and double every second layer (64, 64, 128, 128, ..., 512); strides alternate 1, 2;
    BatchNorm after every layer but the first; LeakyReLU(0.2). Then an adaptive average pool to
    6 x 6 (the paper's 96 x 96 crops give 6 x 6 there, and any other size still works), a dense
    layer of ``d_fc_size`` (1024), LeakyReLU and a dense layer to one logit (the sigmoid of
    the paper is inside the BCE-with-logits loss, which is numerically safer).
    At the defaults it has 23,565,505 parameters, 80% of them in the first dense layer.
    """

    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        kernel_size, n_channels = int(config["d_kernel_size"]), int(config["d_n_channels"])
        n_blocks, fc_size = int(config["d_n_blocks"]), int(config["d_fc_size"])
        blocks, in_channels, out_channels = [], 3, n_channels
        for i in range(n_blocks):
            if i % 2 == 0 and i > 0:
                out_channels = in_channels * 2        # double at every stride-1 layer after the first
            blocks.append(ConvBlock(in_channels, out_channels, kernel_size, stride=1 + i % 2,
                                    batch_norm=i > 0, activation="leakyrelu"))
            in_channels = out_channels
        self.conv_blocks = nn.Sequential(*blocks)
        self.adaptive_pool = nn.AdaptiveAvgPool2d((6, 6))
        self.fc1 = nn.Linear(out_channels * 6 * 6, fc_size)
        self.leaky_relu = nn.LeakyReLU(0.2)
        self.fc2 = nn.Linear(fc_size, 1)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        x = self.adaptive_pool(self.conv_blocks(imgs))  # (N, 512, 6, 6)
        x = self.leaky_relu(self.fc1(x.flatten(1)))     # (N, 1024)
        return self.fc2(x).squeeze(1)                   # (N,) logits


# --------------------------------------------------------------------------------------
# Truncated VGG19 for the content loss
# --------------------------------------------------------------------------------------
# torchvision's VGG19 "features" layout ('E'): numbers are conv widths, "M" a max-pool. We
# build only the layers we need with torchvision's layer indices, so its weights load as is.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

VGG_WEIGHTS_HELP = (
    "The VGG content loss needs torchvision's VGG19 ImageNet weights "
    "(VGG19_Weights.IMAGENET1K_V1, vgg19-dcbb9e9d.pth, about 550 MB), downloaded once into "
    "{hub}/checkpoints. Run once with network access (e.g. on Colab), or copy the file there "
    "(set TORCH_HOME to choose another cache folder). vgg_weights='random' exists only for "
    "tests and the quick mode: a random VGG gives no perceptual loss worth the name."
)


def _vgg_layers(i: int, j: int) -> nn.Sequential:
    """VGG19 features up to the ReLU of the j-th conv after the (i-1)-th max-pool."""
    layers: list[nn.Module] = []
    in_channels, pools, convs = 3, 0, 0
    for item in _VGG19_LAYOUT:
        if item == "M":
            pools, convs = pools + 1, 0
            layers.append(nn.MaxPool2d(2, 2))
            continue
        convs += 1
        layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.ReLU(inplace=True)]
        in_channels = item
        if pools == i - 1 and convs == j:
            return nn.Sequential(*layers)
    raise ValueError(f"VGG19 has no conv {j} before max-pool {i} (blocks have 2, 2, 4, 4, 4 convs)")


class TruncatedVGG19(nn.Module):
    """phi_{i,j}: VGG19 features of the j-th conv (after ReLU) before the i-th max-pool; frozen.

    Input: ``(N, 3, H, W)`` images in ``input_range`` (default ``"[-1, 1]"``, the range of the
    generator output and HR targets; ``"[0, 1]"`` and ``"imagenet-norm"`` (already normalised)
    also accepted). The ImageNet normalisation VGG19 was trained with happens INSIDE, through
    ``convert_image``, so callers never normalise. Output: ``(N, C_ij, H / 2^(i-1), W / 2^(i-1))``
    feature maps (VGG54: 512 channels at 1/16 of the size).

    ``weights="imagenet"`` loads torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (downloaded once,
    ~550 MB; a clear RuntimeError says what to do when that fails). ``weights="random"`` is a
    fixed random network (seeded by ``seed``, independent of the global RNG) for tests and the
    quick mode only. The module is frozen: no parameter requires grad, and it stays in eval
    mode even when ``.train()`` is called on a parent.
    """

    def __init__(self, i: int = 5, j: int = 4, weights: str = "imagenet", input_range: str = "[-1, 1]",
                 seed: int = 0):
        super().__init__()
        if input_range not in ("[-1, 1]", "[0, 1]", "imagenet-norm"):
            raise ValueError(f"TruncatedVGG19: input_range must be '[-1, 1]', '[0, 1]' or 'imagenet-norm', "
                             f"got {input_range!r}")
        self.i, self.j, self.weights, self.input_range = int(i), int(j), weights, input_range
        self.features = _vgg_layers(self.i, self.j)
        if weights == "imagenet":
            self._load_imagenet()
        elif weights == "random":
            gen = torch.Generator().manual_seed(int(seed))
            for m in self.features:
                if isinstance(m, nn.Conv2d):    # torchvision's VGG init, from a private generator
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                    nn.init.zeros_(m.bias)
        else:
            raise ValueError(f"TruncatedVGG19: weights must be 'imagenet' or 'random', got {weights!r}")
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def _load_imagenet(self) -> None:
        from torchvision.models import VGG19_Weights

        try:
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as err:  # URLError, SSL/OSError, hash mismatch: all mean "no weights"
            raise RuntimeError("could not load the VGG19 ImageNet weights (" + f"{type(err).__name__}: {err}). "
                               + VGG_WEIGHTS_HELP.format(hub=torch.hub.get_dir())) from err
        ours = {k: state[f"features.{k}"] for k in self.features.state_dict()}
        self.features.load_state_dict(ours)

    def train(self, mode: bool = True) -> "TruncatedVGG19":
        return super().train(False)         # frozen loss network: always eval mode

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        if self.input_range != "imagenet-norm":
            imgs = convert_image(imgs, self.input_range, "imagenet-norm")
        return self.features(imgs)


# --------------------------------------------------------------------------------------
# VDSR (the design note's SR network)
# --------------------------------------------------------------------------------------
def norm_layer(kind: str, channels: int) -> nn.Module:
    """``instance`` (CycleGAN: no affine, no running stats), ``batch`` or ``none``."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


# --------------------------------------------------------------------------------------
# CycleGAN generator: c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-3
# --------------------------------------------------------------------------------------


class VDSR(nn.Module):
    """VDSR as Vega's CycleSR trains it: LR (N, 3, h, w) in [0, 1] -> SR (N, 3, s*h, s*w) in [0, 1].

    The trunk runs at LR size: a 3x3 feature conv (3 -> ``SR_nf``), then ``SR_nb`` conv-norm-ReLU
    blocks and one conv-norm, added to the features (an identity shortcut), then log2(s)
    PixelShuffle x2 steps (conv ``SR_nf`` -> 4 ``SR_nf``, shuffle, ReLU), ``HR_conv0`` (conv, ReLU)
    and ``HR_conv1`` (conv -> 3) at HR size. (VDSR proper, Kim et al. 2016, and the kit's earlier
    VDSR ran every conv at HR size after a bicubic upscale: 16x the compute at x4.)

    ``bicubic_residual`` (config key, as for the SRResNet; not Vega's): the output is added to
    PyTorch's bicubic upscale (:class:`TorchBicubic`) and ``HR_conv1`` starts at zero, so an
    untrained VDSR is exactly its bicubic base: what a CPU budget of a few hundred updates needs,
    since learning the upsampling itself takes far longer. Sizes from ``config`` like
    ``Generator(config)``: ``SR_nb`` (Vega: 20), ``SR_nf`` (64), ``SR_norm_type`` (batch |
    instance | none), ``scaling_factor`` (a power of two). ``output_range = "[0, 1]"``: the output
    is not clamped during training (``inference.super_resolve`` clamps).
    """

    output_range = "[0, 1]"
    arch = "vdsr"

    def __init__(self, config: Mapping):
        super().__init__()
        n_blocks, nf = int(config["SR_nb"]), int(config["SR_nf"])
        norm, self.scale = str(config["SR_norm_type"]), int(config["scaling_factor"])
        n_up = int(round(math.log2(self.scale)))
        if 2 ** n_up != self.scale:
            raise ValueError(f"VDSR upsamples by 2 per step: scaling_factor must be a power of two, got {self.scale}")
        bias = norm != "batch"
        trunk: list[nn.Module] = []
        for _ in range(n_blocks):
            trunk += [nn.Conv2d(nf, nf, 3, padding=1, bias=bias), norm_layer(norm, nf), nn.ReLU(True)]
        trunk += [nn.Conv2d(nf, nf, 3, padding=1, bias=bias), norm_layer(norm, nf)]
        self.features = nn.Conv2d(3, nf, 3, padding=1)
        self.trunk = nn.Sequential(*trunk)
        self.upsample = nn.Sequential(*[m for _ in range(n_up)
                                        for m in (nn.Conv2d(nf, 4 * nf, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(True))])
        self.hr_convs = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), nn.ReLU(True), nn.Conv2d(nf, 3, 3, padding=1))
        self.base = TorchBicubic(self.scale) if config.get("bicubic_residual", False) else None
        if self.base is not None:          # start as the bicubic base: the correction is zero
            nn.init.zeros_(self.hr_convs[-1].weight)
            nn.init.zeros_(self.hr_convs[-1].bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.features(lr)                          # (N, nf, h, w)
        x = x + self.trunk(x)                          # the shortcut around the LR trunk
        x = self.hr_convs(self.upsample(x))            # (N, 3, s*h, s*w)
        return x if self.base is None else x + self.base(lr)


# --------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------
def build_generator(config: Mapping[str, Any], name: str | None = None) -> nn.Module:
    """The SR network named ``name`` (default ``config["generator"]``): ``srresnet`` or ``vdsr``.

    Every SR network takes LR in [0, 1] and has ``scale`` and ``output_range`` attributes.
    """
    name = str(name or config["generator"]).lower()
    if name == "srresnet":
        return Generator(config)
    elif name == "vdsr":
        return VDSR(config)
    raise ValueError(f"unknown generator {name!r}: expected 'srresnet' or 'vdsr'")


def build_discriminator(config: Mapping[str, Any]) -> Discriminator:
    """The paper's discriminator with the ``d_*`` sizes of ``config``."""
    return Discriminator(config)


def build_vgg(config: Mapping[str, Any]) -> TruncatedVGG19:
    """The content-loss network phi_{vgg_i, vgg_j} with ``config["vgg_weights"]``."""
    return TruncatedVGG19(config["vgg_i"], config["vgg_j"], weights=config["vgg_weights"],
                          seed=int(config.get("seed", 0)))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """The SR network of a checkpoint, ready for inference: ``(model.eval(), info)``.

    ``info`` has ``scale``, ``arch``, ``output_range``, ``method``, ``stage``, ``iteration``,
    ``name`` (the file's stem) and ``path``. The network is rebuilt from the checkpoint's own
    config (:func:`build_generator`), so no notebook variable is needed.
    """
    ckpt = load_checkpoint(path)
    info = checkpoint_info(ckpt, path)
    models = ckpt.get("models", {})
    if "generator" not in models:
        raise CheckpointError(f"{path} holds no generator weights (models: {sorted(models)})")
    model = build_generator(EasyDict(ckpt["config"]), info["arch"])
    try:
        model.load_state_dict(models["generator"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the generator weights do not fit a {info['arch']!r} built from the "
                         f"checkpoint's config: {str(err).splitlines()[0]}") from err
    info["output_range"] = model.output_range
    return model.to(device).eval(), info
