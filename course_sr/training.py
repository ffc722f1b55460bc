"""One schedule runner: SRResNet (stage 1) then SRGAN (stage 2) from a config, resumable exactly.

    >>> from course_sr.config import get_config
    >>> result = run(get_config("quick"), "runs/quick")         # doctest: +SKIP

or, the same from a shell (the notebook and the command call this same function)::

    python -m course_sr train --config quick --out runs/quick [--max-iters N] [--resume CKPT|auto]
                              [--overwrite] [--set key=value ...]

The schedule is counted in iterations (one batch each), not epochs: stage ``pretrain`` runs
``pretrain_iters`` steps of :func:`~course_sr.solver.pretrain_step`, then stage ``gan`` runs
``gan_iters`` steps of :func:`~course_sr.solver.gan_step` starting from the stage-1 generator
(or from ``config.init_from``, a stage-1 checkpoint, in which case this run skips stage 1).
``iteration`` counts both stages together; the history and checkpoints use it.

Run directory::

    config.yaml  log.txt  events/                  (course_sr.plumbing.records.RunRecords)
    checkpoints/last.pt                            every ckpt_every iterations and at the end
    checkpoints/best.pt                            best validation PSNR *of the current stage*
    checkpoints/pretrain_end.pt, gan_end.pt        at each stage end (evaluate these two)
    samples/<stage>_<iteration>.png                LR (bicubic) | SR | HR of the validation images

Only ``last.pt`` holds optimiser, scheduler and grad-scaler state; ``best.pt`` and
``*_end.pt`` hold the weights (plus history and RNG, so ``pretrain_end.pt`` still starts
stage 2 exactly), a third of the size in the GAN stage.

A run directory is never overwritten by accident: a fresh start (no ``resume``) where
``checkpoints/`` already holds ``*.pt`` files is refused with one line naming ``--resume auto``,
``--overwrite`` (which deletes the old checkpoints and sample grids first) and a new ``--out``.
``--resume auto`` (the notebooks' ``resume="auto"``) continues from ``checkpoints/last.pt`` when
it exists and starts afresh otherwise. Stray ``.*.tmp`` files of saves killed mid-write are
removed at the start (the log says how many). Each stage-end file is written before the
``last.pt`` that records the stage as done, so a kill at any point leaves ``*_end.pt`` in place
once ``last.pt`` is past the stage; a resume from a ``last.pt`` at a stage end whose end file is
missing (a run of an older kit) writes it. Every checkpoint carries a checksum, verified on load.

What a resume may change: the network sizes, ``method`` and ``seed`` are fixed by the checkpoint
(a different value is refused, naming the file and ``n_blocks 2 vs 4``; ``config.yaml`` is only
rewritten once the checkpoint has loaded). Inside a stage, the optimiser hyper-parameters of the
config (``lr_pretrain``, ``lr_g``, ``lr_d``, ``adam_betas``, and the GAN stage's lr schedule:
``lr_decay_at``, ``lr_decay_gamma``, ``gan_iters``) are applied to the restored optimisers and
schedulers, and the log says so ("applied to the restored optimisers ..."), so "lower the
learning rate, then resume" after a NaN does what it says. ``pretrain_iters`` cannot move the
end of stage 1 once the run is past it. Everything else (batch size, intervals, data, ...)
takes effect from the resumed iteration, as the log's "in effect from iteration k" line says.

Resuming (``resume=path`` or ``resume="auto"`` for ``<out_dir>/checkpoints/last.pt`` when it
exists) restores weights, optimisers, schedulers, grad scalers (one per optimiser), history and
every RNG (each rank its own), and the data stream restarts at the same batch
(``make_train_loader(start_position=...)``): on CPU a run stopped after k iterations and resumed
is bit-identical to one that never stopped. On CUDA it continues from the same state but not
bit-identically: cuDNN autotuning (``cudnn_benchmark``) times the convolution algorithms again
in the new process and may pick others, which round differently, and some CUDA backward kernels
accumulate with atomics in no fixed order.

Several GPUs: the same function under ``torchrun`` (see ``course_sr.plumbing.distributed``)::

    torchrun --nproc_per_node=N -m course_sr train --config colab --out runs/x [--set sync_bn=true]

N processes, one GPU each, with DistributedDataParallel. ``batch_size`` is PER PROCESS (the log
states it and the total, N x batch_size); each process reads its share of every global batch;
only rank 0 validates, logs and writes checkpoints. Checkpoints hold the plain networks' state
dicts and the number of samples used, so a run written by N processes resumes on M (1 included)
where its data stream stopped; it continues as if never split when M x batch_size equals
N x batch_size (``--set batch_size=...``). ``sync_bn=True`` gives BatchNorm (G and D) the
statistics of the whole global batch; without it each process normalises its own share
(cheaper, but not the single-GPU run with N x batch_size).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from easydict import EasyDict
from tqdm import tqdm

from course_sr.plumbing.checkpoint import (CheckpointError, NonFiniteError, capture_rng_state, first_non_finite,
                         load_checkpoint, rank_rng_state, remove_stray_tmp, restore_rng_state, save_checkpoint,
                         scaler_states)
from course_sr.plumbing.errors import READ_ONLY_ERRNOS, UserError, user_errors
from course_sr.config import finalize, get_config, to_plain
from course_sr.data.lists import check_splits
from course_sr.plumbing.distributed import (DistInfo, all_reduce_mean, barrier, broadcast_object, current,  # noqa: F401
                          gather_object, init_distributed, resolve_device, wrap_model)  # resolve_device: public here
from course_sr.models import build_discriminator, build_generator, build_vgg, count_parameters
from course_sr.solver import (ContentLoss, Precision, content_loss_name, cudnn_benchmark, gan_step, loss_balance,
                     make_gan_optimizers, make_pretrain_optimizer, pixel_loss, pretrain_step)
from course_sr.utils import convert_image, seed_everything

STAGES = ("pretrain", "gan")
BALANCE_BATCHES = 10          # stage 2's first batches, over which the loss balance is logged
RESUME_ONLY = ("optimizers", "schedulers", "scalers")   # in last.pt only: best.pt / *_end.pt hold weights

# Settings a resume cannot change: the network sizes (the weights would not fit) and the seed
# (every random stream is restored from the checkpoint, so a new seed would only be logged).
ARCH_KEYS = {
    "srgan": ("scaling_factor", "generator", "large_kernel_size", "small_kernel_size", "n_channels", "n_blocks",
              "bicubic_residual", "d_kernel_size", "d_n_channels", "d_n_blocks", "d_fc_size"),
    "cyclesr": ("scaling_factor", "sr_net", "SR_nb", "SR_nf", "SR_norm_type", "cyc_ngf", "cyc_ndf", "cyc_n_blocks",
                "cyc_n_layers_D", "cyc_norm", "cyc_up_mode", "cyc_residual", "cyc_noise_nc"),
    "dual": ("scaling_factor", "sr_net", "SR_nb", "SR_nf", "SR_norm_type", "dual_nf"),
}
FIXED_ON_RESUME = ("method", "seed")


class RunExistsError(UserError, FileExistsError):
    """A fresh run was asked for in a run directory that already holds checkpoints."""


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], keys) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for each of ``keys`` that differs; a key an older checkpoint's config
    lacks counts as its default (the kit's behaviour before the key existed)."""
    from course_sr.config import DEFAULTS

    def value(cfg, k):
        return cfg.get(k, DEFAULTS.get(k))

    return {k: (value(old, k), value(new, k)) for k in keys if value(old, k) != value(new, k)}


def _say_differences(diff: Mapping[str, tuple[Any, Any]]) -> str:
    """``n_blocks 2 vs 4, seed 0 vs 1`` (the checkpoint's value first)."""
    return ", ".join(f"{k} {a!r} vs {b!r}" if isinstance(a, str) or isinstance(b, str) else f"{k} {a} vs {b}"
                     for k, (a, b) in diff.items())


def check_resumable(ckpt: Mapping[str, Any], config: Mapping[str, Any], path: Any) -> None:
    """Refuse (:class:`CheckpointError`, naming ``path`` and each differing setting as
    ``n_blocks 2 vs 4``, the checkpoint's value first) a resume whose config changes what a
    checkpoint fixes: the method, the seed, and the network sizes (:data:`ARCH_KEYS`)."""
    old, method = ckpt.get("config", {}), config.get("method", "srgan")
    sizes = ARCH_KEYS.get(method, ())
    if method != "srgan" and config.get("sr_net") == "srresnet":        # CycleSR/dual with an SRResNet
        sizes = sizes + ("large_kernel_size", "small_kernel_size", "n_channels", "n_blocks", "bicubic_residual")
    written_by = ckpt.get("method", old.get("method", method))
    if written_by != method:
        raise CheckpointError(f"{path} is a {written_by!r} checkpoint, but config.method is {method!r}: resume it "
                              f"with its own method, or start a new run (--overwrite, or a new --out)")
    diff = {**_differences(old, config, FIXED_ON_RESUME), **_differences(old, config, sizes)}
    if diff:
        raise CheckpointError(
            f"checkpoint {path} does not fit this config: {_say_differences(diff)} (checkpoint vs config); "
            "network sizes, method and seed cannot change on resume: set them back, or start a new run "
            "(--overwrite, or a new --out)")


def mismatch_error(err: Exception, ckpt: Mapping[str, Any], config: Mapping[str, Any], path: Any) -> CheckpointError:
    """The one-line error for weights that do not load (``load_state_dict``'s RuntimeError):
    the file and the settings that differ, instead of PyTorch's "Missing key(s) in state_dict"."""
    diff = _differences(ckpt.get("config", {}), config, sorted(set(config) | set(ckpt.get("config", {}))))
    diff.pop("preset", None)
    said = _say_differences(diff) if diff else "no setting differs (a checkpoint written by another version?)"
    return CheckpointError(f"the weights in checkpoint {path} do not fit the networks of this config "
                           f"({str(err).splitlines()[0][:120]}); settings that differ (checkpoint vs config): {said}")


def restore_optimizer(optimizer: torch.optim.Optimizer, state: Mapping[str, Any], scheduler: Any = None,
                      scheduler_state: Mapping[str, Any] | None = None, name: str = "") -> list[str]:
    """Load an optimiser's (and its lr scheduler's) saved state, then re-apply the hyper-parameters
    of ``optimizer``/``scheduler`` as built from the current config (lr, betas, ...; the scheduler's
    base lrs, milestones and gamma). So a resume inside a stage with a new ``lr_pretrain`` really
    trains on at that lr (from this iteration; the Adam moments do not depend on it) instead of the
    checkpoint's. Returns one ``"<name> lr 0.001 -> 1e-05"`` line per value changed ([] when the
    config is the checkpoint's, in which case the restored state is left exactly as saved)."""
    fresh = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    fresh_sched = dict(scheduler.state_dict()) if scheduler is not None else {}
    optimizer.load_state_dict(state)
    if scheduler is not None:
        scheduler.load_state_dict(scheduler_state)
    changed: list[str] = []
    sched_keys = [k for k in ("base_lrs", "milestones", "gamma", "step_size", "lr_lambdas") if k in fresh_sched]
    sched_diff = [k for k in sched_keys if scheduler.state_dict().get(k) != fresh_sched[k]]
    for k in sched_diff:
        changed.append(f"{name} scheduler {k} {_plain(scheduler.state_dict().get(k))} -> {_plain(fresh_sched[k])}")
        setattr(scheduler, k, copy.deepcopy(fresh_sched[k]))
    closed = scheduler._get_closed_form_lr() if sched_diff and hasattr(scheduler, "_get_closed_form_lr") else None
    for i, (group, want) in enumerate(zip(optimizer.param_groups, fresh)):
        for k, v in want.items():
            if k == "lr" and scheduler is not None:
                v = closed[i] if closed is not None else group["lr"]     # the lr the schedule gives now
            if group.get(k) != v:
                if k != "initial_lr":                                # the scheduler's copy of base_lrs
                    changed.append(f"{name} {k} {_plain(group.get(k))} -> {_plain(v)}")
                group[k] = v
    if closed is not None:
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
    return changed


def _plain(v: Any) -> Any:
    return dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, tuple) else v


# --------------------------------------------------------------------------------------
# Small helpers (public: the CycleSR runner uses them too)
# --------------------------------------------------------------------------------------
def data_config(config: Mapping[str, Any], **overrides: Any) -> EasyDict:
    """A copy of ``config`` (with ``overrides``, e.g. ``cache="none"`` for a look at the data)
    whose data paths are filled in: the embedded sample when ``data_root`` is None. Lists are
    found per split by ``course_sr.data.lists.find_data_list`` (csv_folder None: the data root's
    own, else the course's)."""
    from course_sr.data.sample import resolve_data

    return resolve_data(EasyDict({**copy.deepcopy(dict(config)), **overrides}))


def centre_crop_pair(lr: torch.Tensor, hr: torch.Tensor, hr_size: int, scale: int):
    """Aligned centre crops: ``hr`` (3, H, W) to at most ``hr_size`` (a multiple of ``scale``),
    ``lr`` (3, H/s, W/s) to ``hr_size / scale``. ``hr_size`` 0 keeps the whole images."""
    if not hr_size:
        return lr, hr
    c = hr_size // scale
    h, w = lr.shape[-2:]
    ch, cw = min(c, h), min(c, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    lr = lr[..., top:top + ch, left:left + cw]
    hr = hr[..., top * scale:(top + ch) * scale, left * scale:(left + cw) * scale]
    return lr, hr


def to_uint8(img: torch.Tensor, source: str) -> np.ndarray:
    """(3, H, W) float tensor in ``source`` range -> (H, W, 3) uint8 (rounded, clipped)."""
    x = convert_image(img.detach().float().cpu(), source, "[0, 255]").round().clamp(0, 255)
    return x.to(torch.uint8).permute(1, 2, 0).numpy()


def label_columns(grid: np.ndarray, widths, labels, height: int = 14) -> np.ndarray:
    """``grid`` (H, W, 3) uint8 with a white strip on top naming its columns (``widths`` px each;
    a label wider than its column is cut to its first word)."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (grid.shape[1], height), (255, 255, 255))
    draw, x = ImageDraw.Draw(strip), 0
    for width, text in zip(widths, labels):
        if draw.textlength(text) > width:
            text = text.split()[0]
        draw.text((x + max(0, (width - draw.textlength(text)) / 2), 1), text, fill=(0, 0, 0))
        x += width
    return np.concatenate([np.asarray(strip), grid], axis=0)


@torch.no_grad()
def validate(net: torch.nn.Module, images, device=None, lr_view: str = "bicubic") -> tuple[dict[str, float], np.ndarray]:
    """Mean Y-channel PSNR/SSIM (``scale`` pixels shaved, ``metrics.psnr_ssim``) of ``net`` on
    ``images`` ([(lr, hr)] in [0, 1]) and a grid ``LR | SR | HR``, one row per image (uint8 HxWx3)
    under a strip that labels the three columns (``LR (bicubic)`` or ``LR (nearest)``, SR, HR).

    ``net`` is any SR network of the kit (``scale``, ``output_range``), run in eval mode through
    ``inference.super_resolve`` (its mode is restored). ``lr_view``: the LR column enlarged by
    ``"bicubic"`` (what a plain upscaler gives) or ``"nearest"`` (the pixels as they are).
    """
    from course_sr.results.inference import super_resolve
    from course_sr.metrics import psnr_ssim

    if lr_view not in ("bicubic", "nearest"):
        raise ValueError(f"lr_view must be 'bicubic' or 'nearest', got {lr_view!r}")
    s, rows, scores = int(net.scale), [], []
    for lr, hr in images:
        sr = super_resolve(net, lr, device=device).cpu()                 # (3, H, W) in [0, 1], clamped
        sr_u8, hr_u8 = to_uint8(sr, "[0, 1]"), to_uint8(hr, "[0, 1]")
        scores.append(psnr_ssim(sr_u8, hr_u8, s))
        if lr_view == "nearest":
            left = to_uint8(lr, "[0, 1]").repeat(s, 0).repeat(s, 1)
        else:
            up = F.interpolate(lr.unsqueeze(0), scale_factor=s, mode="bicubic", align_corners=False)[0]
            left = to_uint8(up.clamp(0, 1), "[0, 1]")
        rows.append(np.concatenate([left, sr_u8, hr_u8], axis=1))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    grid = label_columns(grid, [rows[0].shape[1] // 3] * 3, (f"LR ({lr_view})", "SR", "HR"))
    psnr, ssim = (float(np.mean(v)) for v in zip(*scores))
    return {"val_psnr": psnr, "val_ssim": ssim}, grid


class WindowMeans:
    """Sums of logged tensors since the last report, kept on the device (no sync per step)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0

    def add(self, values: Mapping[str, torch.Tensor]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums[k] + v.float() if k in self.sums else v.float().clone()
        self.n += 1

    def _reduced(self) -> dict[str, torch.Tensor]:
        # Under DDP: the mean over processes (every rank calls this at the same iterations), so
        # the log shows the global batch and a NaN on any rank stops all of them together.
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        values = all_reduce_mean(torch.stack([self.sums[k] for k in keys]))
        return dict(zip(keys, values))

    def check(self, where: str) -> dict[str, torch.Tensor]:
        """Raise NonFiniteError naming the first NaN/inf value since the last report; else
        return the (process-reduced) sums."""
        sums = self._reduced()
        for k, v in sums.items():
            if not bool(torch.isfinite(v)):
                raise NonFiniteError(f"{k} became {float(v)} {where}")
        return sums

    def pop(self, where: str) -> dict[str, float]:
        sums = self.check(where)
        out = {k: float(sums[k]) / self.n for k in self.sums}   # in the order the step returned them
        self.sums, self.n = {}, 0
        return out

    # In checkpoints, so a run resumed between two reports logs the same means.
    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.detach().cpu() for k, v in self.sums.items()}, "n": self.n}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.n = int(state["n"])


# --------------------------------------------------------------------------------------
# The SRGAN schedule
# --------------------------------------------------------------------------------------
class SRGANTraining:
    """Everything one SRGAN run holds (networks, optimisers, data, records) and its stages.

    ``run()`` below is the way in; this class exists so the state a checkpoint must capture
    lives in one place (:meth:`state_dict` / :meth:`load_state_dict`).
    """

    def __init__(self, config: EasyDict, out_dir: Path, records, info: DistInfo):
        self.cfg, self.out_dir, self.records, self.info = config, out_dir, records, info
        self.device = device = info.device
        self.rank, self.world = info.rank, info.world_size
        self.is_main = info.is_main                    # only rank 0 validates, logs, saves
        self.ckpt_dir = out_dir / "checkpoints"
        cuda = device.type == "cuda"
        self.channels_last = bool(config.channels_last) and cuda
        # cuDNN autotuning, for the training steps only (see solver.cudnn_benchmark); the flag
        # is set on every device (only cuDNN reads it), so the scoping is tested on CPU too.
        self.cudnn_benchmark = bool(config.cudnn_benchmark)
        self.precision = Precision(device, enabled=bool(config.amp))

        # Stage bounds in global iterations. init_from: stage 1 was done by another run.
        n_pre = 0 if config.init_from else int(config.pretrain_iters)
        self.bounds = {"pretrain": (0, n_pre), "gan": (n_pre, n_pre + int(config.gan_iters))}
        self.total = n_pre + int(config.gan_iters)
        self.iteration, self.stage, self.best_psnr = 0, STAGES[0], float("-inf")
        self.samples_seen = 0                          # training items consumed, all processes
        self.window = WindowMeans()

        seed_everything(config.seed)
        self.generator = self._to_device(build_generator(config)).train()
        # What the steps call: DDP around it under torchrun (identity otherwise; sync_bn turns its
        # BatchNorms into synchronised ones in place), then torch.compile (config.compile; the
        # first steps compile). All share the parameters; checkpoints save the plain module.
        self.g_forward = wrap_model(self.generator, info, sync_bn=bool(config.sync_bn))
        if config.compile:
            self.g_forward = torch.compile(self.g_forward)
        self.d_forward = None
        self.discriminator = self.vgg = self.content_loss = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}

    def init_generator_from(self, path: str | os.PathLike) -> None:
        """Start from the generator of another run's checkpoint (``config.init_from``)."""
        from course_sr.plumbing.checkpoint import load_generator

        init, info = load_generator(path)
        self.generator.load_state_dict(init.state_dict())
        self.records.log(f"generator initialised from {path} ({info['stage']} stage, iteration "
                         f"{info['iteration']}); stage 1 (pretrain) is skipped in this run")

    def _to_device(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    # ---------------------------------------------------------------- stages
    def prepare_vgg(self) -> None:
        """Build the content-loss VGG now (called at the start of a run that will reach stage 2,
        so a missing download or a refused setting fails before hours of stage 1, not after)."""
        cfg = self.cfg
        if cfg.content_loss == "mse":      # SRGAN-MSE: the content loss is the pixel MSE, no VGG
            return
        if cfg.vgg_weights == "random" and not cfg.allow_random_vgg:
            raise ValueError("vgg_weights='random' gives a meaningless content loss: the SRGAN stage "
                             "needs the ImageNet VGG19 (vgg_weights='imagenet'). For tests or the quick "
                             "mode only, set allow_random_vgg=True.")
        if self.vgg is None:
            self.vgg = self._to_device(build_vgg(cfg))

    def setup_stage(self, stage: str) -> None:
        """Build the optimisers of ``stage`` (and D and the VGG for the GAN stage)."""
        cfg = self.cfg
        self.stage = stage
        if stage == "pretrain":
            self.optimizers = {"g": make_pretrain_optimizer(self.generator, cfg)}
            self.schedulers = {}
        else:
            self.prepare_vgg()
            # D's initial weights come from their own seed, so a run resumed at the stage boundary
            # builds exactly the same D as one that never stopped (and stage-1 checkpoints need
            # not carry an unused D).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(cfg.seed) + 1)
                self.discriminator = self._to_device(build_discriminator(cfg)).train()
            self.d_forward = wrap_model(self.discriminator, self.info, sync_bn=bool(cfg.sync_bn))
            self.content_loss = pixel_loss if cfg.content_loss == "mse" else ContentLoss(self.vgg, cfg.vgg_rescale)
            opt_g, opt_d, sched_g, sched_d = make_gan_optimizers(self.generator, self.discriminator, cfg)
            self.optimizers, self.schedulers = {"g": opt_g, "d": opt_d}, {"g": sched_g, "d": sched_d}
        self.best_psnr = float("-inf")                 # "best" is per stage (GAN PSNR < SRResNet PSNR)
        self.window = WindowMeans()                    # losses since the last history entry

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration of the current stage on a batch from the loader (both in [0, 1])."""
        cfg = self.cfg
        lr = lr.to(self.device, non_blocking=True)                                   # [0, 1]
        hr = convert_image(hr.to(self.device, non_blocking=True), "[0, 1]", "[-1, 1]")  # [-1, 1]
        if self.channels_last:
            lr, hr = lr.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
        with cudnn_benchmark(self.cudnn_benchmark):
            if self.stage == "pretrain":
                out = pretrain_step(lr, hr, self.g_forward, self.optimizers["g"], self.precision)
            else:
                out = gan_step(lr, hr, self.g_forward, self.d_forward, self.optimizers["g"], self.optimizers["d"],
                               self.content_loss, self.precision, beta=cfg.beta, content_weight=cfg.content_weight,
                               pixel_weight=cfg.pixel_weight, g_steps=int(cfg.g_steps), d_steps=int(cfg.d_steps),
                               judge=self.discriminator)
        self.samples_seen += lr.shape[0] * self.world
        self.lr_used = self.lr_now()                 # what this iteration used (logged)
        for s in self.schedulers.values():
            s.step()
        return out

    def lr_now(self) -> float:
        """The generator's learning rate for the next step."""
        return float(self.optimizers["g"].param_groups[0]["lr"])

    # ---------------------------------------------------------------- checkpoints
    def model_states(self) -> dict[str, dict[str, torch.Tensor]]:
        models = {"generator": self.generator.state_dict()}
        if self.discriminator is not None:
            models["discriminator"] = self.discriminator.state_dict()
        return models

    def state_dict(self, rng_ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The full state (what ``last.pt`` holds). ``rng_ranks``: every rank's RNG state, in
        rank order (:meth:`save` gathers them); None: this process's only."""
        rng_ranks = rng_ranks or [capture_rng_state(self.device)]
        state = {"method": "srgan", "stage": self.stage, "iteration": self.iteration,
                 "samples_seen": self.samples_seen, "world_size": self.world,
                 "config": to_plain(self.cfg), "arch": {"generator": str(self.cfg.generator)},
                 "models": self.model_states(),
                 "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                 "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                 "scalers": self.precision.state_dict(self.optimizers),
                 "history": self.records.state_dict(), "rng": rng_ranks[0],
                 "best_psnr": self.best_psnr, "window": self.window.state_dict()}
        if len(rng_ranks) > 1:
            state["rng_ranks"] = rng_ranks
        return state

    def load_state_dict(self, state: Mapping[str, Any], same_stage: bool = True, source: Any = "the checkpoint") -> None:
        """Restore from a checkpoint. The networks always; the optimisers, their grad scalers,
        the schedulers and best PSNR only when the checkpoint was written inside the current
        stage (at a stage boundary the new stage starts with fresh ones, as an unbroken run does).
        Inside a stage that needs ``last.pt``: ``best.pt`` and ``*_end.pt`` hold weights only."""
        try:
            self.generator.load_state_dict(state["models"]["generator"])
            if self.discriminator is not None and "discriminator" in state["models"]:
                self.discriminator.load_state_dict(state["models"]["discriminator"])
        except RuntimeError as err:
            raise mismatch_error(err, state, to_plain(self.cfg), source) from err
        if not same_stage:
            return
        if "optimizers" not in state:
            raise CheckpointError(f"{source} holds weights only (no optimiser state: best.pt and *_end.pt are "
                                  f"for evaluation), so it cannot continue stage {self.stage} at iteration "
                                  f"{state.get('iteration')}; resume from checkpoints/last.pt instead")
        applied = []
        for k, o in self.optimizers.items():
            applied += restore_optimizer(o, state["optimizers"][k], self.schedulers.get(k),
                                         state["schedulers"].get(k), name=f"optimizer {k}")
        if applied:
            self.records.log(f"applied to the restored optimisers of stage {self.stage} (from iteration "
                             f"{self.iteration} on; the checkpoint's values before): " + ", ".join(applied))
        self.precision.load_state_dict(scaler_states(state, self.optimizers), self.optimizers)
        self.best_psnr = float(state.get("best_psnr", float("-inf")))
        if "window" in state:
            self.window.load_state_dict(state["window"], self.device)

    def save(self, *names: str) -> list[Path]:
        """Write ``checkpoints/<name>.pt`` for each name; returns the paths (rank 0) or [] (others).

        Collective: under torchrun every rank calls it at the same iteration. First every rank
        checks its own weights and all learn the result, so a NaN/inf found on any rank stops
        every rank with the same NonFiniteError (one rank stopping alone would leave the others
        waiting forever in their next all-reduce) and nothing is written. Then rank 0 gathers
        every rank's RNG state and writes. ``last`` gets the full state; other names (``best``,
        ``<stage>_end``) the weights only (no optimiser, scheduler or scaler state: in the GAN
        stage that is D's Adam, two thirds of the bytes).
        """
        bad = [(r, b) for r, b in enumerate(gather_object(first_non_finite(self.model_states()))) if b]
        if bad:
            rank, key = bad[0]
            on = f" on rank {rank}" if self.world > 1 else ""
            raise NonFiniteError(f"{key} has NaN/inf values{on} at iteration {self.iteration}: not saving "
                                 f"{', '.join(n + '.pt' for n in names)}")
        rng_ranks = gather_object(capture_rng_state(self.device))
        if not self.is_main:
            return []
        full = self.state_dict(rng_ranks)
        light = {k: v for k, v in full.items() if k not in RESUME_ONLY}
        return [save_checkpoint(full if name == "last" else light, self.ckpt_dir / f"{name}.pt") for name in names]

    # ---------------------------------------------------------------- validation
    def validation_set(self, data_cfg: EasyDict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``val_images`` of ``val_split``, centre-cropped to ``val_crop``: (lr, hr) in [0, 1]."""
        from course_sr.datasets import SRDataset

        ds = SRDataset(self.cfg.val_split, data_cfg)
        n = min(int(self.cfg.val_images), len(ds))
        return [centre_crop_pair(*ds[i], int(self.cfg.val_crop), int(self.cfg.scaling_factor)) for i in range(n)]

    def validate(self, images) -> tuple[dict[str, float], np.ndarray]:
        """Mean Y-channel PSNR/SSIM of the generator on ``images`` and its grid (see :func:`validate`)."""
        return validate(self.generator, images, self.device, lr_view="bicubic")


def _run_srgan(cfg: EasyDict, out_dir: Path, records, info: DistInfo, max_iters: int | None,
               ckpt: Mapping[str, Any] | None, resume_path: Path | None, stop_after: str | None = None) -> dict[str, Any]:
    t = SRGANTraining(cfg, out_dir, records, info)
    device = t.device
    start_iter = int(ckpt["iteration"]) if ckpt else 0
    t.iteration = start_iter
    t.samples_seen = int(ckpt.get("samples_seen", start_iter * cfg.batch_size)) if ckpt else 0
    if cfg.init_from and not ckpt:
        t.init_generator_from(cfg.init_from)
    if ckpt:
        # The checkpoint must lie inside its stage under this config's schedule: pretrain_iters
        # (or init_from) cannot move stage 1's end once the run is past it.
        stage, (begin, end) = ckpt["stage"], t.bounds.get(ckpt["stage"], (0, -1))
        was = ckpt.get("config", {})
        old_begin = 0 if stage == "pretrain" or was.get("init_from") else int(was.get("pretrain_iters", begin))
        if not begin <= start_iter <= end or begin != old_begin:
            keys = "pretrain_iters" if stage == "pretrain" else "pretrain_iters, init_from or gan_iters"
            raise CheckpointError(f"checkpoint {resume_path} is at iteration {start_iter} of stage {stage}, outside "
                                  f"that stage under this config (iterations {begin}-{end}, the checkpoint's from "
                                  f"{old_begin}): {keys} changed; set them back, or start a new run (--overwrite, "
                                  "or a new --out)")
        end_file = t.ckpt_dir / f"{stage}_end.pt"
        if start_iter == end > begin and t.is_main and not end_file.exists():
            # A run killed between last.pt and <stage>_end.pt (as the kit wrote them before issue
            # 17): the end file is last.pt's weights part, written from the same state.
            save_checkpoint({k: v for k, v in ckpt.items() if k not in RESUME_ONLY}, end_file)
            records.log(f"wrote the missing {end_file} from {resume_path} (stage {stage} had ended there)")
        records.load_state_dict(ckpt["history"], source=resume_path, iteration=start_iter)
        now = to_plain(cfg)
        changed = {k: (v, now.get(k)) for k, v in ckpt["config"].items() if k != "preset" and now.get(k) != v}
        if changed:
            records.log(f"resumed with settings that differ from the checkpoint's (old -> new), in effect from "
                        f"iteration {start_iter}: " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))
    records.log(f"device {device}, {t.precision.describe()}, channels_last={t.channels_last}, "
                f"cudnn_benchmark={t.cudnn_benchmark}, compile={bool(cfg.compile)}; "
                f"generator {cfg.generator}: {count_parameters(t.generator):,} parameters; "
                f"batch {cfg.batch_size} per process x {t.world} process(es) = {cfg.batch_size * t.world} in total")
    if t.world > 1:
        records.log(f"torchrun: {info.describe()}; BatchNorm statistics "
                    + ("synchronised over all processes (sync_bn=True)" if cfg.sync_bn else
                       f"per process, over its {cfg.batch_size} images (sync_bn=False)"))

    from course_sr.datasets import SRDataset
    from course_sr.data.loader import make_train_loader

    # Under torchrun rank 0 prepares the data first (the sample; a disk cache is written once, not
    # by every process at the same time), then the others open what it made.
    if not t.is_main:
        barrier()
    data_cfg = data_config(cfg)
    # Every list and file of both splits, before the minutes of decoding a memory cache: missing
    # data stops here with one line naming the list or folder and the command that makes it.
    check_splits(data_cfg, (cfg.train_split, cfg.val_split))
    train_set = SRDataset(cfg.train_split, data_cfg)
    records.log(f"data: {train_set.describe()}")
    if t.is_main:
        barrier()
    # The data stream resumes at the same item, also when the number of processes changed.
    loader = make_train_loader(train_set, data_cfg, start_iter=start_iter, num_replicas=t.world, rank=t.rank,
                               start_position=t.samples_seen)
    batches = iter(loader)
    val_images = t.validation_set(data_cfg) if t.is_main else []

    stop_at = t.total if max_iters is None else min(t.total, start_iter + int(max_iters))
    if stop_after is not None:
        stop_at = min(stop_at, t.bounds[stop_after][1])
    if stop_at > t.bounds["gan"][0]:
        t.prepare_vgg()
    ends: dict[str, str] = {}
    for stage in STAGES:
        begin, end = t.bounds[stage]
        if t.iteration >= end or t.iteration >= stop_at:
            continue
        t.setup_stage(stage)
        if ckpt:   # the first stage after a resume: weights (and, inside a stage, optimisers) + RNG
            t.load_state_dict(ckpt, same_stage=ckpt["stage"] == stage and t.iteration > begin, source=resume_path)
            restore_rng_state(rank_rng_state(ckpt, t.rank), device)    # each rank its own streams
            ckpt = None
            records.write_config()               # the resume fits: config.yaml now says what runs
        if stage == "gan":
            records.log(f"stage gan: discriminator {count_parameters(t.discriminator):,} parameters, "
                        f"content loss {content_loss_name(cfg)}, beta={cfg.beta}")
        _run_stage(t, stage, begin, end, stop_at, batches, val_images)
        try:
            if t.iteration == end:
                # The end file first: once last.pt says the stage is done, <stage>_end.pt exists
                # (a kill between the two leaves the older last.pt, and the resume redoes the end).
                paths = t.save(f"{stage}_end", "last")            # every rank: save is collective
                ends[stage] = str(paths[0]) if paths else ""
                records.log(f"stage {stage} done at iteration {end}: {t.ckpt_dir / (stage + '_end.pt')}")
            else:
                t.save("last")
                records.log(f"stopped at iteration {t.iteration} (max_iters); resume with --resume auto "
                            f"(or --resume {t.ckpt_dir / 'last.pt'})")
                break
        except NonFiniteError as err:
            raise stopped_by_non_finite(t.records, t.ckpt_dir, stage, err) from None
    records.write_config()                       # (a resume of a finished run: nothing was loaded)
    if t.iteration == t.total and t.total == start_iter:
        records.log(f"nothing to do: the schedule ({t.total} iterations) is already complete")
    best = t.ckpt_dir / "best.pt"
    return {"out_dir": str(out_dir), "iteration": t.iteration, "stage": t.stage, "finished": t.iteration == t.total,
            "last": str(t.ckpt_dir / "last.pt"), "best": str(best) if best.exists() else None,
            "best_psnr": t.best_psnr if np.isfinite(t.best_psnr) else None, "stage_ends": ends,
            "history": records.state_dict()}


LR_KEYS = {"pretrain": "lr_pretrain", "gan": "lr_g / lr_d", "warmup": "cyc_lr", "joint": "cyc_lr / SR_lr",
           "dual": "lr_pretrain"}


def stopped_by_non_finite(records, ckpt_dir: Path, stage: str, err: Exception) -> NonFiniteError:
    """The error a NaN/inf stop raises: one message (written to ``log.txt``, not printed, since the
    caller shows the exception) naming the checkpoint that exists and what to do. The advice is
    true: a resume with a lower learning rate applies it to the restored optimiser
    (:func:`restore_optimizer`); with no ``last.pt`` yet, ``--resume auto`` starts afresh."""
    last = ckpt_dir / "last.pt"
    if last.exists():
        kept = (f"the last good checkpoint is {last}; lower the learning rate (--set {LR_KEYS.get(stage, 'lr')}=...; "
                "a resume applies it to the restored optimiser) or check the data, then resume with --resume auto")
    else:
        kept = (f"no checkpoint was written yet in {ckpt_dir}; lower the learning rate (--set "
                f"{LR_KEYS.get(stage, 'lr')}=...) or check the data, then start again with --resume auto")
    msg = f"non-finite value, stopping stage {stage}: {err}. Weights after this point are not saved; {kept}"
    records.log(msg, console=False)
    return NonFiniteError(msg)


def _run_stage(t: SRGANTraining, stage: str, begin: int, end: int, stop_at: int, batches, val_images) -> None:
    cfg, records = t.cfg, t.records
    window, tick = t.window, time.time()
    stop = min(end, stop_at)
    # Redraw every second on a terminal; every 10 s in a notebook, whose saved output keeps
    # each redraw. `disable` is passed only to silence other ranks, so that TQDM_DISABLE=1 (tqdm's
    # own variable: `make notebooks` sets it) turns the bar off; an explicit False would win over it.
    bar = tqdm(total=end - begin, initial=t.iteration - begin, desc=stage, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 10.0, **({} if t.is_main else {"disable": True}))
    # Stage 2's first batches: is G's loss led by the content term or by beta x l_Gen?
    balance_at = min(BALANCE_BATCHES, end - begin)
    balance = WindowMeans() if stage == "gan" and t.iteration - begin < balance_at else None
    try:
        while t.iteration < stop:
            lr, hr = next(batches)
            out = t.step(lr, hr)
            t.iteration += 1
            local = t.iteration - begin
            window.add(out)
            if balance is not None:
                balance.add({k: v for k, v in out.items() if k in ("loss_content", "loss_adv", "loss_pixel")})
            where = f"in stage {stage} between iterations {t.iteration - window.n + 1} and {t.iteration}"
            last_of_stage = t.iteration == end
            try:
                if balance is not None and local == balance_at:
                    n = balance.n
                    line, _ = loss_balance(balance.pop(where), cfg.beta, cfg.content_weight, cfg.pixel_weight,
                                           "l_MSE" if cfg.content_loss == "mse" else "l_VGG")
                    records.log(f"loss balance over the first {n} batches of stage gan: {line}")
                    balance = None
                if local % cfg.log_every == 0 or last_of_stage:
                    n = window.n
                    values = window.pop(where)
                    values["it_per_s"] = n / max(time.time() - tick, 1e-9)
                    tick = time.time()
                    values["lr"] = t.lr_used
                    records.scalars(t.iteration, values, stage=stage)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.startswith(("loss", "d_"))},
                                    refresh=False)
                if local % cfg.val_every == 0 or last_of_stage:
                    scores, improved = None, False       # rank 0 validates; every rank saves (collective)
                    if t.is_main and val_images:
                        scores, grid = t.validate(val_images)
                        records.scalars(t.iteration, scores, stage=stage)
                        records.image(stage, t.iteration, grid, save_png=True)
                        improved = scores["val_psnr"] > t.best_psnr
                        if improved:
                            t.best_psnr = scores["val_psnr"]
                    if broadcast_object(improved):
                        t.save("best")
                    if scores is not None:
                        note = " (best of this stage, saved best.pt)" if improved else ""
                        records.log(f"[{stage} {t.iteration}] val PSNR {scores['val_psnr']:.2f} dB, "
                                    f"SSIM {scores['val_ssim']:.4f}{note}")
                if local % cfg.ckpt_every == 0 and not last_of_stage:
                    window.check(where)
                    t.save("last")
            except NonFiniteError as err:
                raise stopped_by_non_finite(records, t.ckpt_dir, stage, err) from None
            bar.update(1)
    finally:
        bar.close()
        records.flush()


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------
def run(config: Mapping[str, Any] | None, out_dir: str | os.PathLike, max_iters: int | None = None,
        resume: str | os.PathLike | None = None, stop_after: str | None = None,
        overwrite: bool = False) -> dict[str, Any]:
    """Run (or continue) the schedule of ``config.method`` in ``out_dir``; return a summary dict.

    Args:
        config: a config from ``get_config`` (None: the resumed checkpoint's own config).
        out_dir: the run directory (created; see the module docstring for its layout).
        max_iters: stop after this many more iterations (both stages together, at least 1) and
            write ``last.pt``; None runs the schedule to its end.
        resume: a checkpoint to continue from, or ``"auto"``: ``<out_dir>/checkpoints/last.pt``
            when it exists, else a fresh start (re-running the same notebook cell after a
            disconnect just continues).
        stop_after: ``"pretrain"`` stops at the end of stage 1 (the notebook runs the stages in
            two cells); None runs on. A later ``run(..., resume="auto")`` continues.
        overwrite: with ``resume`` None, delete the checkpoints (and sample grids) of an earlier
            run in ``out_dir`` and start afresh. Without it a fresh run in a folder whose
            ``checkpoints/`` holds ``*.pt`` files is refused (:class:`RunExistsError`, naming
            ``resume="auto"``, ``overwrite`` and a new ``out_dir``): a forgotten ``--resume``
            never replaces a run's progress.

    Returns ``{"out_dir", "iteration", "stage", "finished", "last", "best", "best_psnr",
    "stage_ends", "history"}``. Raises NonFiniteError when a loss or weight becomes NaN/inf
    (the last good checkpoint is kept), CheckpointError for a checkpoint that is corrupt or does
    not fit the config (naming the file and the settings that differ), ValueError for an SRGAN
    stage with random VGG weights unless ``allow_random_vgg``. All are UserErrors.
    """
    from course_sr.plumbing.records import RunRecords

    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if max_iters is not None and (isinstance(max_iters, bool) or int(max_iters) != max_iters or max_iters < 1):
        raise UserError(f"max_iters (--max-iters) must be a positive number of iterations, got {max_iters!r}; "
                        "leave it out to run the schedule to its end")
    if overwrite and resume is not None:
        raise UserError(f"overwrite (--overwrite) starts {out_dir} afresh, resume (--resume {resume}) continues "
                        "it: give one of them")
    if resume == "auto":
        auto = ckpt_dir / "last.pt"
        resume = auto if auto.exists() else None
    elif resume is None:
        old = sorted(p.name for p in ckpt_dir.glob("*.pt")) if ckpt_dir.is_dir() else []
        if old and not overwrite:
            raise RunExistsError(
                f"{ckpt_dir} already holds checkpoints ({', '.join(old)}) of an earlier run: continue it with "
                "--resume auto (run(..., resume='auto')), start it afresh with --overwrite (run(..., "
                "overwrite=True): deletes them), or choose a new --out")
    ckpt = load_checkpoint(resume) if resume is not None else None
    if config is None:
        if ckpt is None:
            raise ValueError("run() needs a config, or a checkpoint to resume (its config is used)")
        config = ckpt["config"]
    cfg = finalize(EasyDict(copy.deepcopy(dict(config))))
    if ckpt is not None:
        check_resumable(ckpt, to_plain(cfg), resume)   # before anything in out_dir changes
    info = init_distributed(cfg)        # a single process unless started by torchrun
    deleted = 0
    if overwrite and info.is_main:
        for p in [*ckpt_dir.glob("*.pt"), *(out_dir / "samples").glob("*.png")]:
            p.unlink()
            deleted += 1
    threads = torch.get_num_threads()
    if cfg.cpu_threads and info.device.type == "cpu":
        torch.set_num_threads(int(cfg.cpu_threads))    # restored below: the caller's setting is theirs
    try:
        records = RunRecords(out_dir, cfg, resume=ckpt is not None, is_main=info.is_main,
                             write_config=ckpt is None)   # a resume writes config.yaml once it has loaded
    except OSError as err:
        torch.set_num_threads(threads)
        if err.errno in READ_ONLY_ERRNOS:
            raise UserError(f"cannot write {err.filename or out_dir}: {os.strerror(err.errno).lower()} (the run "
                            f"folder {out_dir}: make it writable or choose another --out)") from err
        raise
    if info.is_main:
        stray = remove_stray_tmp(ckpt_dir)
        if stray:
            records.log(f"removed {stray} temporary file(s) of interrupted checkpoint saves from {ckpt_dir}")
        if deleted:
            records.log(f"--overwrite: deleted the earlier run's {deleted} checkpoint and sample file(s) in {out_dir}")
    if cfg.cpu_threads and info.device.type == "cpu":
        records.log(f"training on {torch.get_num_threads()} CPU thread(s) (cpu_threads={cfg.cpu_threads})")
    try:
        if cfg.method == "srgan":
            if stop_after not in (None, *STAGES):
                raise ValueError(f"stop_after must be None or one of {STAGES}, got {stop_after!r}")
            result = _run_srgan(cfg, out_dir, records, info, max_iters, ckpt, Path(resume) if resume else None,
                                stop_after)
            barrier()                   # every process returns once rank 0 has written its files
            return result
        elif cfg.method == "cyclesr":
            from course_sr.unpaired.cyclesr import run_cyclesr

            return run_cyclesr(cfg, out_dir, records, max_iters=max_iters, resume=resume)
        elif cfg.method == "dual":
            from course_sr.unpaired.cyclesr import run_dual

            return run_dual(cfg, out_dir, records, max_iters=max_iters, resume=resume)
        raise ValueError(f"unknown method {cfg.method!r}")
    finally:
        records.close()
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------
def load_history(source: Mapping[str, Any] | str | os.PathLike) -> dict[str, list]:
    """A run's history from a history dict, a checkpoint file, or a run directory (its last.pt)."""
    if isinstance(source, Mapping):
        return dict(source.get("history", source))
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    return load_checkpoint(path)["history"]


def plot_history(source: Mapping[str, Any] | str | os.PathLike, keys=None, out_path=None):
    """Loss, D(HR)/D(SR), lr and validation PSNR/SSIM curves of a run, one panel per quantity.

    ``source``: a history dict, a ``run()`` result, a checkpoint path or a run directory.
    Returns a matplotlib Figure (see ``course_sr.plumbing.records.plot_history``).
    """
    from course_sr.plumbing.records import plot_history as _plot

    return _plot(load_history(source), keys=keys, out_path=out_path)   # keys None: all but it_per_s


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def _parse_set(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:             # not a number: booleans, null, lists, strings as YAML reads them
            out[key.strip()] = yaml.safe_load(value)
    return out


def _iterations(text: str) -> int:
    """argparse type of --max-iters: a positive whole number."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of iterations, got {text!r} "
                                         "(leave it out to run the schedule to its end)")
    return n


def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr train --config quick|PATH --out DIR [--max-iters N] [--resume CKPT|auto]
    [--overwrite]``. A user's mistake (a :class:`~course_sr.plumbing.errors.UserError`, or argparse's) is
    one line on stderr and exit status 2."""
    p = argparse.ArgumentParser(prog="python -m course_sr train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="a preset (quick, colab, paper, ...) or a YAML/JSON file; "
                                    "optional with --resume (the checkpoint's config is used)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--max-iters", type=_iterations, default=None,
                   help="stop after N more iterations, N >= 1 (writes last.pt)")
    p.add_argument("--resume", default=None, help="checkpoint to continue from, or 'auto' (<out>/checkpoints/last.pt "
                                                   "when it exists, else a fresh start)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds checkpoints (deletes them); without it such a "
                        "start is refused")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. --set gan_iters=1000")
    args = p.parse_args(argv)
    overrides = _parse_set(args.set)
    if args.config is None and args.resume is None:
        p.error("--config is required unless --resume is given")
    if args.overwrite and args.resume is not None:
        p.error("--overwrite starts the run afresh and --resume continues it: give one of them")
    from course_sr.plumbing.course import ENV, cut_schedule, settings
    from course_sr.plumbing.distributed import cleanup

    # A user's mistake (missing data or list, a cache too large for the RAM, a bad setting, a
    # checkpoint that is corrupt or does not fit) is a UserError, which __main__ prints as one line
    # (exit 2; --debug shows the traceback). The data checks below predate UserError and raise
    # built-in errors naming the file or value: user_errors treats those as the user's too.
    with user_errors(FileNotFoundError, ValueError, KeyError):
        if args.config is None:
            path = Path(args.resume) if args.resume != "auto" else Path(args.out) / "checkpoints" / "last.pt"
            if args.resume == "auto" and not path.is_file():
                raise UserError(f"--resume auto without --config needs {path}, which does not exist: give --config "
                                "to start a run there")
            ckpt = load_checkpoint(path)
            config = get_config(None, **{**{k: v for k, v in ckpt["config"].items() if k != "preset"}, **overrides})
        else:
            config = get_config(args.config, **overrides)
        rehearsal = settings().max_iters
        if rehearsal is not None:
            config = cut_schedule(config, rehearsal)
            print(f"{ENV['max_iters']}={rehearsal}: every stage cut to {rehearsal} iterations "
                  "(a rehearsal of real mode: its numbers mean nothing)")
        try:
            result = run(config, args.out, max_iters=args.max_iters, resume=args.resume, overwrite=args.overwrite)
            rank = current().rank
        finally:
            cleanup()                   # leave torchrun's process group (no-op otherwise)
    if rank != 0:
        return 0
    print(f"iteration {result['iteration']} ({'finished' if result['finished'] else 'stopped'}); "
          f"last checkpoint: {result['last']}")
    return 0
