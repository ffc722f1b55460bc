"""One documented configuration for every experiment in the kit.

The course passes one flat ``EasyDict`` around (``SRDataset(split, config)``,
``Generator(config)``, ...). Every key lives here once, with its default and the reason
for it. Experiments are *presets*: small named overrides of these defaults
(``get_config("quick")``), never copies.

    >>> from course_sr.config import get_config
    >>> cfg = get_config("quick", batch_size=8)      # preset + your overrides
    >>> cfg.n_blocks, cfg.batch_size
    (2, 8)

``get_config`` also accepts a path to a YAML or JSON file holding overrides, which may name a
``preset`` to start from. Unknown keys are rejected, so a typo cannot silently do nothing.
"""
from __future__ import annotations

import copy
import difflib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from easydict import EasyDict

from course_sr.plumbing.config_checks import (CHECKS, ConfigError, ConfigFileNotFound,  # noqa: F401 (re-exported)
                                              ConfigKeyError, check_value)

QUICK_ENV = "COURSE_SR_QUICK"


def is_quick() -> bool:
    """True when ``COURSE_SR_QUICK=1``: embedded images, tiny networks, CPU, about a minute."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------------------
# Defaults: the SRGAN paper (Ledig et al., CVPR 2017) at DIV2K scale, 4x.
# --------------------------------------------------------------------------------------
DEFAULTS: dict[str, Any] = dict(
    # ---- run ----
    method="srgan",            # srgan (SRResNet stage then SRGAN stage) | cyclesr | dual
    seed=0,                    # python/numpy/torch seeds; resume restores RNG states exactly
    device="auto",             # auto (cuda if available) | cpu | cuda | cuda:1 ...
    cpu_threads=None,          # torch threads while training on CPU (None: torch's default, one per core)

    # ---- data (course format: data_lists/<split>_images.csv, rows HR_file,LR_file) ----
    data_root="data",          # holds DIV2K/ and benchmark/ (see `python -m course_sr download`)
    csv_folder=None,           # where <split>_images.csv live; None: <data_root>/data_lists, else the
                               # course's own lists (course_sr.data.lists.find_data_list)
    HR_data_folder=None,       # template name; None means data_root (rows are relative to it)
    LR_data_folder=None,       # template name; None means data_root
    train_split="train",       # DIV2K 0001-0800
    val_split="valid",         # small fixed validation set (DIV2K 0801-0900 here)
    val_images=5,              # validate on the first N images of val_split (fast, fixed)
    val_crop=256,              # ... centre-cropped to this HR size (0 = whole image)
    scaling_factor=4,          # 2, 4 or 8
    crop_size=96,              # HR patch side (LR side = crop_size / scaling_factor); paper: 96
    patch_num=100,             # random patches drawn per training image per epoch (template)
    cache="memory",            # memory (decode once, shared uint8) | disk (mmap .npy per split) | none
    cache_dir=None,            # for cache=disk; None means <data_root>/.cache_npy
    cache_max_gb=None,         # refuse a memory/disk cache larger than this (DIV2K train x4: ~7 GB)
    workers=2,                 # DataLoader workers (Colab has 2 CPUs)
    batch_size=16,             # paper: 16

    # ---- generator: SRResNet (paper sizes) ----
    generator="srresnet",      # srresnet | vdsr (CycleSR's SR net); see models.build_generator
    large_kernel_size=9,       # first and last conv
    small_kernel_size=3,       # every other conv
    n_channels=64,             # feature maps in the residual trunk
    n_blocks=16,               # residual blocks (paper: B = 16)
    bicubic_residual=False,    # True: SR = bicubic(LR) + G(LR), a departure from the paper for tiny
                               # nets and budgets (models.Generator: what it is and the dB it buys)

    # ---- discriminator (paper) ----
    d_kernel_size=3,
    d_n_channels=64,           # first conv; doubles every second block up to 8x
    d_n_blocks=8,              # conv layers
    d_fc_size=1024,            # dense layer width

    # ---- VGG content loss ----
    vgg_i=5,                   # phi_{i,j}: j-th conv (after ReLU) before the i-th max-pool
    vgg_j=4,                   # VGG54 (paper's best); VGG22 = (2, 2)
    vgg_weights="imagenet",    # imagenet (torchvision download) | random (tests and quick mode only)
    allow_random_vgg=False,    # must be True to train an SRGAN stage with random VGG weights
    vgg_rescale=1.0,           # features x this before the MSE. 1.0: the torchvision-VGG19 reference
                               # (sgrvinod's tutorial, beta 1e-3). The paper's 1/12.75 is an option,
                               # not the default: it was tuned for the paper's Caffe VGG on 0-255
                               # input, and on torchvision's VGG (ImageNet-normalised input) it
                               # divides the content loss by 162, so beta x l_Gen outweighs it.

    # ---- stage 1: SRResNet on pixel MSE ----
    pretrain_iters=1_000_000,  # paper: 10^6 updates; use the `colab` preset for a day's budget
    lr_pretrain=1e-4,          # Adam, paper

    # ---- stage 2: SRGAN from the stage-1 generator ----
    gan_iters=200_000,         # paper: 10^5 at 1e-4 then 10^5 at 1e-5
    lr_g=1e-4,
    lr_d=1e-4,
    lr_decay_at=0.5,           # fraction of gan_iters where both lrs drop by lr_decay_gamma
    lr_decay_gamma=0.1,
    adam_betas=(0.9, 0.999),
    beta=1e-3,                 # template name: weight of the adversarial term -log D(G(LR))
    content_loss="vgg",        # vgg: l_VGG/i.j (the paper's SRGAN) | mse: pixel MSE, the paper's
                               # SRGAN-MSE variant (needs no ImageNet weights: the quick preset)
    content_weight=1.0,        # content loss weight
    pixel_weight=0.0,          # optional pixel MSE term. The Colab reproduction in the seeds uses
                               # pixel 1.0 + content 0.006 + beta 1e-3 with vgg_rescale=1.0: that
                               # 0.006 ~ (1/12.75)^2 IS the paper's rescale, written as a weight
                               # (with vgg_rescale=1/12.75 too it would count twice).
    d_steps=1,                 # discriminator steps per generator step (G1D2 ablation: 2)
    g_steps=1,
    init_from=None,            # stage-1 checkpoint the GAN stage starts from (None: this run's)

    # ---- speed (CUDA only; CPU training stays float32 NCHW) ----
    amp=True,                  # autocast: bf16 from compute capability 8.0 (A100, L4), else fp16 with
                               # a grad scaler per optimiser (T4, V100); see solver.amp_dtype
    channels_last=False,       # NHWC networks and batches on CUDA; off until benchmarks/gpu_check.py
                               # has measured it against NCHW on a GPU
    cudnn_benchmark=True,      # cuDNN autotuning during the training steps only (not validation/eval)
    compile=False,             # torch.compile the generator (the first steps compile: minutes)

    # ---- logging, validation, checkpoints ----
    log_every=100,             # iterations between history entries / progress bar updates
    val_every=5000,            # iterations between validations (PSNR/SSIM + sample grid)
    ckpt_every=5000,           # iterations between `last` checkpoints (+ at each stage end). Only
                               # last.pt holds optimiser state (GAN stage at paper sizes: 288 MiB,
                               # with both Adam states); best.pt and *_end.pt hold weights (96 MiB)
    print_freq=100,            # template name, used by solver.train()
    tensorboard=True,          # write event files when tensorboard is installed

    # ---- CycleSR (unpaired; see course_sr/cyclesr.py and shared seeds' design note) ----
    cyc_ngf=64,                # CycleGAN generator filters
    cyc_ndf=64,                # PatchGAN discriminator filters
    cyc_n_blocks=9,            # ResNet blocks in each CycleGAN generator
    cyc_n_layers_D=3,          # PatchGAN conv layers
    cyc_norm="instance",       # instance | batch | none
    cyc_up_mode="transpose",   # transpose | resize (resize-conv: no checkerboard)
    cyc_residual=False,        # True: generators predict a correction added to their input
    cyc_noise_nc=0,            # random N(0, 1) input maps of the generators (0: CycleGAN as published)
    lambda_cycle=10.0,         # cycle L1 weight
    lambda_identity=0.5,       # identity L1, relative to lambda_cycle
    pool_size=50,              # image pool for the discriminators
    sr_net="vdsr",             # vdsr (Vega's: LR trunk, PixelShuffle) | srresnet: the SR network
    SR_nb=20,                  # VDSR conv blocks in the LR trunk
    SR_nf=64,                  # VDSR filters
    SR_norm_type="batch",      # batch | instance | none
    SR_loss="mse",             # mse | l1 on [0, 1] images (MSE ~1e-3, so SR_lam 1000 ~ the GAN terms)
    SR_lam=1000.0,             # SR loss weight
    cycleSR_lam=1000.0,        # SR loss weight inside the transfer generator's update
    grad_clip=50.0,            # gradient-norm clip
    cyc_lr=2e-4,               # CycleGAN Adam lr
    SR_lr=1e-4,                # SR network Adam lr
    n_epoch=100,               # epochs at constant lr
    n_epoch_decay=100,         # epochs of linear decay to zero
    iters_per_epoch=1000,      # iterations that make one "epoch" for the schedule above
    cyc_warmup_iters=0,        # CycleGAN-only warm-up before joint training (Vega: 5 epochs)
    cyc_sr_iters=0,            # then the SR network alone on bicubic LR, weight 1 (Vega: 1 epoch)
    real_lr_split="real_lr",   # data list of the unpaired real-LR domain
    degradation=None,          # None: real LR from real_lr_split | "default" or a spec: synthesise it
                               # from HR images (course_sr/degradations.py)
    test_degradation="fixed",  # validation LR made from HR with this spec when degradation is set

    # ---- dual regression (closed loop) ----
    dual_lambda=0.1,           # weight of the dual (SR -> LR) loss
    dual_nf=64,                # dual network filters (it only downsamples: small is enough)
    dual_unpaired_weight=1.0,  # weight of the loop loss on unpaired real LR

    # ---- distributed ----
    sync_bn=False,             # SyncBatchNorm for G and D under torchrun
)


# Keys only the unpaired methods (cyclesr, dual) read: an SRGAN run's report leaves them out.
CYCLESR_KEYS = frozenset(k for k in DEFAULTS if k.startswith(("cyc_", "SR_", "dual_")) or k in (
    "lambda_cycle", "lambda_identity", "pool_size", "sr_net", "cycleSR_lam", "grad_clip", "n_epoch",
    "n_epoch_decay", "iters_per_epoch", "real_lr_split", "degradation", "test_degradation"))
# Keys only the VGG content loss reads: an SRGAN-MSE run (content_loss="mse") never uses them.
VGG_KEYS = frozenset(("vgg_i", "vgg_j", "vgg_weights", "allow_random_vgg", "vgg_rescale"))


# --------------------------------------------------------------------------------------
# Presets: named overrides, each saying what it is for and what it costs.
# --------------------------------------------------------------------------------------
_QUICK_TINY_NETS = dict(
    n_channels=16, n_blocks=2, d_n_channels=8, d_n_blocks=4, d_fc_size=32,
    vgg_i=2, vgg_j=2, vgg_weights="random", allow_random_vgg=True,
    cyc_ngf=8, cyc_ndf=8, cyc_n_blocks=2, cyc_n_layers_D=2, SR_nb=3, SR_nf=16, pool_size=4, dual_nf=8,
)
_QUICK_DATA = dict(
    data_root=None,            # None: the embedded sample (course_sr.data.sample), built on first use
    csv_folder=None,           # None: the sample's own lists
    train_split="sample_train", val_split="sample_test", val_images=2, val_crop=96,
    crop_size=32, patch_num=8, batch_size=4, workers=0, device="cpu",
)

_CYCLESR_QUICK = {
    **_QUICK_DATA, **_QUICK_TINY_NETS,
    "crop_size": 64, "batch_size": 8, "patch_num": 64,   # 16 px LR patches: a 2-layer PatchGAN needs 12
    "train_split": "sample_unpaired_clean", "real_lr_split": "sample_unpaired_real",
    "degradation": "sensor", "test_degradation": "sensor-fixed",   # blur + noise (see degradations.py: why no JPEG)
    "sr_net": "vdsr", "SR_nb": 5, "SR_nf": 16, "SR_lr": 5e-4, "lr_pretrain": 5e-4,
    "bicubic_residual": True,   # the VDSR starts as PyTorch's bicubic: a CPU budget cannot learn upsampling
    "cyc_ndf": 16, "cyc_residual": True, "cyc_lr": 1e-3, "cycleSR_lam": 100.0, "pool_size": 8,
}

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's schedule (10^6 SRResNet + 2x10^5 SRGAN updates): days on one GPU.
    "paper": dict(),
    # A Colab budget: 10^5 SRResNet + 5x10^4 SRGAN updates (a tenth / a quarter of the paper's).
    # Time on a T4: to be measured (benchmarks/gpu_check.py projects it); PSNR: to be measured.
    # Checkpoints every 5,000 iterations (the default): last.pt (288 MiB in the GAN stage) goes to
    # Drive, and a disconnect loses at most 5,000 iterations.
    "colab": dict(pretrain_iters=100_000, gan_iters=50_000, val_every=2_500, ckpt_every=5_000),
    # Embedded images, tiny networks, one CPU thread: the whole pipeline in about a minute, and
    # real SR (both stages beat MATLAB bicubic and keep the colours; tests/test_quick_results.py
    # pins by how much). Measured on the sample's test split / Set5, MATLAB bicubic 28.05 / 28.43:
    # - bicubic_residual (not the paper's SRResNet, see models.Generator): a 31k-parameter net cannot
    #   learn the upsampling itself in a CPU minute. This preset without it: 26.23 / 24.95 dB, mean Y
    #   off by 8-9 levels (the old preset, 150 steps: 22.6 / 21.4 dB, up to 22 levels); with it
    #   28.86-28.99 / 29.54-29.73 dB (3 seeds), +0.7 / +0.9 over its own bicubic base.
    # - large_kernel_size 3 (paper 9): the 9x9 16->3 conv at HR size was over half of each step;
    #   3x3 needs 35 instead of 80 ms of CPU per step and scored as well or better at 500-1000 steps.
    # - lr 1e-3, batch 16, 32 px crops, 600 steps: 1000 would add about 0.1 dB for 20 s more.
    # - content_loss "mse": stage 2 is the paper's SRGAN-MSE (quick mode has no ImageNet VGG, and a
    #   random VGG is no content loss), 100 steps at the paper's lr: SRResNet's colours and PSNR.
    #   (At lr 1e-3 the adversarial term cost 0.2-1.1 dB, and one of two seeds fell below bicubic.)
    # - cpu_threads 1: tiny convs gain nothing from a second thread; on a busy 2-core machine two
    #   threads cost 6x the CPU time (227 against 35 ms per step).
    "quick": dict(_QUICK_DATA, **_QUICK_TINY_NETS, large_kernel_size=3, bicubic_residual=True, cpu_threads=1,
                  content_loss="mse", pretrain_iters=600, gan_iters=100, batch_size=16, lr_pretrain=1e-3,
                  log_every=20, val_every=100, ckpt_every=200, print_freq=20),
    # CycleSR on the embedded images with a synthetic "real" camera:
    # the left halves of the sample's 6 train photos are clean, the right halves degraded with the
    # "sensor" camera = the unpaired real LR (sample.py: why halves and not 3 photos against 3).
    # CPU, about 1 s per 10 iterations. VDSR (starts as bicubic) and a small residual CycleGAN;
    # two changes from the design note, both from measurements on this data: cyc_lr 1e-3 (at 2e-4
    # the discriminator is still guessing after 1000 iterations) and cycleSR_lam 100 (at 1000, with
    # the MSE SR loss, the SR term dominates G's loss and pulls G(x) back to clean LR as soon as the
    # joint phase starts, undoing the noise it had learned to add).
    "cyclesr-quick": dict(**_CYCLESR_QUICK, method="cyclesr", n_epoch=1, n_epoch_decay=1, iters_per_epoch=15,
                          cyc_warmup_iters=5, cyc_sr_iters=1, log_every=5, val_every=15, ckpt_every=10),
    # The same SR network alone on the bicubic LR of the same HR patches: CycleSR's baseline.
    "paired-quick": dict(**_CYCLESR_QUICK, method="paired", n_epoch=1, n_epoch_decay=1, iters_per_epoch=15,
                         log_every=5, val_every=15, ckpt_every=10),
    # Dual regression on the same data and SR network; CPU.
    "dual-quick": dict(**_CYCLESR_QUICK, method="dual", pretrain_iters=30, log_every=5, val_every=15,
                       ckpt_every=10),
    # Full-size CycleSR as Vega trains it (examples/data_augmentation/cyclesr/cyclesr.yml; DIV2K HR
    # 0001-0400 vs track-2 "unknown" x4 LR 0401-0800): batch 64 of 480 px HR / 120 px LR patches;
    # 100 epochs at constant lr + 100 decaying; epochs 1-5 CycleGAN only, epoch 6 SR only, joint
    # from epoch 7. Vega's epoch is one pass over its HR sub-images: 480 px crops at stride 240 of
    # a 2040x1356 DIV2K image are 8 x 5 = 40, x 400 images = ~16,000, / 64 = 250 iterations (our
    # estimate: the crop script is not in Vega's config). So 50,000 iterations: 1,250 warm-up,
    # 250 SR-only, 48,500 joint. Differences from Vega, each for a reason: the kit's G/F, S, D
    # order in an iteration (the design note's; Vega steps D first) and its random 480 px crops of
    # whole images instead of pre-cut sub-images. Memory on a 16 GB T4 at batch 64: to be measured
    # (halve batch_size if CUDA runs out); time per iteration: to be measured.
    "cyclesr": dict(method="cyclesr", train_split="unpaired_hr", real_lr_split="unpaired_real_lr",
                    val_split="valid_unknown", batch_size=64, crop_size=480, n_epoch=100, n_epoch_decay=100,
                    iters_per_epoch=250, cyc_warmup_iters=1_250, cyc_sr_iters=250),
    # The same VDSR on the bicubic LR of the same HR patches: the like-for-like baseline. CycleSR's S
    # trains from iteration 1,250 (after the warm-up): 48,750 updates, lr constant to 25,000, then
    # decaying; 95 + 100 epochs of 250 give this network exactly those updates and that schedule.
    "paired": dict(method="paired", train_split="unpaired_hr", real_lr_split="unpaired_real_lr",
                   val_split="valid_unknown", batch_size=64, crop_size=480, n_epoch=95, n_epoch_decay=100,
                   iters_per_epoch=250),
    # Dual regression (DRN's L1 losses) on the same data and VDSR, as many SR updates (lr constant).
    "dual": dict(method="dual", train_split="unpaired_hr", real_lr_split="unpaired_real_lr",
                 val_split="valid_unknown", batch_size=64, crop_size=480, pretrain_iters=48_750),
}


def check_key(key: str, source: str = "overrides") -> None:
    """Raise :class:`ConfigKeyError` for a key the config does not have, suggesting close ones."""
    if key in DEFAULTS or key == "preset":
        return
    close = difflib.get_close_matches(key, DEFAULTS, n=3, cutoff=0.6)
    close += [k for k in DEFAULTS if k.lower() == str(key).lower() and k not in close]
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else \
        " (every key is documented in course_sr/config.py)"
    raise ConfigKeyError(f"unknown config key {key!r} (from {source}){hint}")


def default_config() -> EasyDict:
    """The defaults above as a fresh EasyDict (mutating it never touches DEFAULTS)."""
    return EasyDict(copy.deepcopy(DEFAULTS))


def _read_overrides(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else (yaml.safe_load(text) or {})
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text (byte {err.start}); save it as "
                          "UTF-8") from err
    except (ValueError, yaml.YAMLError) as err:      # json.JSONDecodeError is a ValueError
        detail = " ".join(str(err).split())
        raise ConfigError(f"cannot read config file {path}: {detail}") from err
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return dict(data)


def get_config(name_or_path: str | os.PathLike | None = None, /, **overrides: Any) -> EasyDict:
    """Build a config: defaults, then a preset or a YAML/JSON file, then keyword overrides.

    ``name_or_path`` is a preset name (see ``PRESETS``), a path to a ``.yaml``/``.yml``/
    ``.json`` file of overrides (it may name ``preset: quick`` to start from one), or None
    for the defaults. Unknown keys raise :class:`ConfigKeyError` (a ``KeyError``) naming the key
    and the close ones; a bad preset or value :class:`ConfigError` (a ``ValueError``), see
    :func:`finalize`.
    """
    cfg = default_config()
    layers: list[tuple[str, Mapping[str, Any]]] = []
    presets = ", ".join(sorted(PRESETS))
    if name_or_path is not None:
        key = str(name_or_path)
        if key in PRESETS:
            layers.append((f"preset {key!r}", PRESETS[key]))
        elif Path(key).suffix.lower() in {".yaml", ".yml", ".json"}:
            path = Path(key)
            if not path.is_file():
                raise ConfigFileNotFound(f"config file not found: {path}")
            data = _read_overrides(path)
            base = data.pop("preset", None)
            if base is not None:
                if base not in PRESETS:
                    raise ConfigKeyError(f"{path}: unknown preset {base!r}; choose one of {presets}")
                layers.append((f"preset {base!r}", PRESETS[base]))
            layers.append((str(path), data))
        else:
            close = difflib.get_close_matches(key, PRESETS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigKeyError(f"unknown config {key!r}: not a preset ({presets}) and not a "
                                 f".yaml/.yml/.json file{hint}")
    layers.append(("overrides", overrides))
    for source, layer in layers:
        for k, v in layer.items():
            check_key(k, source)
            cfg[k] = copy.deepcopy(v)
    if name_or_path is not None and str(name_or_path) in PRESETS:
        cfg.preset = str(name_or_path)
    return finalize(cfg)


def finalize(cfg: EasyDict) -> EasyDict:
    """Fill derived values (data folders default to data_root) and check every value (``CHECKS``).

    Raises :class:`ConfigError` naming the key and the value (``batch_size=0``, ``scaling_factor=3``,
    ``ckpt_every=0``, an unknown ``device``), so a bad value stops before any work is done.

    Keys a config lacks (one saved by an older kit, in a checkpoint) get their defaults.
    """
    for k, v in DEFAULTS.items():
        if k not in cfg:
            cfg[k] = copy.deepcopy(v)
    if cfg.HR_data_folder is None and cfg.data_root is not None:
        cfg.HR_data_folder = cfg.data_root
    if cfg.LR_data_folder is None and cfg.data_root is not None:
        cfg.LR_data_folder = cfg.data_root
    for key in CHECKS:
        cfg[key] = check_value(key, cfg[key])
    if cfg.crop_size % cfg.scaling_factor:
        raise ConfigError(f"config crop_size={cfg.crop_size} is not a multiple of scaling_factor="
                          f"{cfg.scaling_factor}")
    return cfg


def non_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The keys whose values differ from DEFAULTS (printed at the start of a run and saved)."""
    out = {}
    for k, v in cfg.items():
        if k not in DEFAULTS:
            continue
        d = DEFAULTS[k]
        if isinstance(d, tuple):
            d = list(d)
        vv = list(v) if isinstance(v, tuple) else v
        if vv != d:
            out[k] = v
    return out


def to_plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON/YAML-safe dict copy (tuples to lists), e.g. for checkpoints (weights_only=True)."""
    def plain(v):
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        return v
    return plain(dict(cfg))
