"""The config's value checks, at the boundary: a bad value fails when the config is made,
naming the key and what it must be, not in iteration 5,000 as a ZeroDivisionError.

:data:`CHECKS` maps a key of ``course_sr.config.DEFAULTS`` to ``(check, what the value must be)``;
keys not listed take any value their users accept. ``course_sr.config`` re-exports the errors.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

from course_sr.plumbing.errors import UserError


# --------------------------------------------------------------------------------------
class ConfigError(UserError, ValueError):
    """A config value out of range, a preset that does not exist, an unreadable config file."""


class ConfigFileNotFound(UserError, FileNotFoundError):
    """A config file path that does not exist."""


class ConfigKeyError(UserError, KeyError):
    """A config key that does not exist (the message suggests the close ones)."""


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# key -> (check, what the value must be). Keys not listed take any value their users accept.
_Check = tuple[Callable[[Any], bool], str]
_POSITIVE_INT: _Check = (lambda v: _whole(v) and v > 0, "a whole number > 0")
_COUNT: _Check = (lambda v: _whole(v) and v >= 0, "a whole number >= 0")
_POSITIVE: _Check = (lambda v: _real(v) and v > 0, "a number > 0")
_NON_NEGATIVE: _Check = (lambda v: _real(v) and v >= 0, "a number >= 0")
_FLAG: _Check = (lambda v: v in (True, False), "true or false")      # 1 and 0 count as True and False


def _choice(*options) -> _Check:
    return (lambda v: v in options, "one of " + ", ".join(map(repr, options)))


CHECKS: dict[str, _Check] = {
    **{k: _POSITIVE_INT for k in (
        "batch_size", "crop_size", "patch_num", "log_every", "val_every", "ckpt_every", "print_freq",
        "iters_per_epoch", "large_kernel_size", "small_kernel_size", "n_channels", "d_kernel_size",
        "d_n_channels", "d_n_blocks", "d_fc_size", "d_steps", "g_steps", "cyc_ngf", "cyc_ndf", "SR_nf",
        "dual_nf")},
    **{k: _COUNT for k in (
        "pretrain_iters", "gan_iters", "val_images", "val_crop", "workers", "n_blocks", "n_epoch",
        "n_epoch_decay", "cyc_warmup_iters", "cyc_sr_iters", "cyc_n_blocks", "cyc_n_layers_D", "cyc_noise_nc", "pool_size",
        "SR_nb", "vgg_i", "vgg_j")},
    **{k: _POSITIVE for k in ("lr_pretrain", "lr_g", "lr_d", "cyc_lr", "SR_lr", "lr_decay_gamma", "grad_clip")},
    **{k: _NON_NEGATIVE for k in (
        "beta", "content_weight", "pixel_weight", "lambda_cycle", "lambda_identity", "SR_lam", "cycleSR_lam",
        "dual_lambda", "dual_unpaired_weight", "vgg_rescale")},
    **{k: _FLAG for k in ("allow_random_vgg", "bicubic_residual", "amp", "channels_last", "cudnn_benchmark",
                          "compile", "tensorboard", "cyc_residual", "sync_bn")},
    "scaling_factor": _choice(2, 4, 8),
    "lr_decay_at": (lambda v: _real(v) and 0 <= v <= 1, "a fraction from 0 to 1"),
    "cpu_threads": (lambda v: v is None or (_whole(v) and v > 0), "a whole number > 0, or null (torch's default)"),
    "cache_max_gb": (lambda v: v is None or (_real(v) and v > 0), "a number > 0, or null (no limit)"),
    "seed": (_whole, "a whole number"),
    "adam_betas": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_real(b) and 0 <= b < 1 for b in v),
                   "two numbers from 0 to 1 (below 1), e.g. [0.9, 0.999]"),
    # The name only: whether this machine has the device is checked where it is used
    # (distributed.resolve_device), since a config may be written on one machine and run on another.
    "device": (lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|(cuda|mps|xpu)(:\d+)?", v) is not None,
               "auto, cpu, cuda or cuda:N"),
    "method": _choice("srgan", "cyclesr", "dual", "paired"),
    "generator": _choice("srresnet", "vdsr"),
    "vgg_weights": _choice("imagenet", "random"),
    "content_loss": _choice("vgg", "mse"),
    "cache": _choice("memory", "disk", "none"),
    "cyc_norm": _choice("instance", "batch", "none"),
    "cyc_up_mode": _choice("transpose", "resize"),
    "sr_net": _choice("vdsr", "srresnet"),
    "SR_norm_type": _choice("batch", "instance", "none"),
    "SR_loss": _choice("mse", "l1"),
}


_WHOLE_KEYS = frozenset(k for k, rule in CHECKS.items() if rule in (_POSITIVE_INT, _COUNT)) | {"seed"}


def check_value(key: str, value: Any) -> Any:
    """``value`` checked against ``CHECKS[key]``: a :class:`ConfigError` naming ``key`` and ``value``
    when it is out of range. Returns it, with a whole number written as a float made an int
    (``--set pretrain_iters=1e5`` means 100000)."""
    if key in _WHOLE_KEYS and isinstance(value, float) and value.is_integer():
        value = int(value)
    rule = CHECKS.get(key)
    if rule is not None and not rule[0](value):
        raise ConfigError(f"config {key}={value!r}: must be {rule[1]}")
    return value
