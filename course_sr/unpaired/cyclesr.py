"""Super-resolution without paired data: CycleSR and dual regression, trained from a config.

**CycleSR** (the design note in ``shared/seeds``): a CycleGAN learns to turn clean LR images
(bicubic-downsampled HR) into images that look like the real LR domain; the SR network learns
on (translated LR, HR) pairs, and at test time super-resolves real LR images directly.

Code names -> paper names (CycleGAN: Zhu et al., ICCV 2017; clean = domain X, real = Y):

- ``G_clean2real`` = G: X -> Y,  ``G_real2clean`` = F: Y -> X,  ``D_real`` = D_Y,  ``D_clean`` = D_X
- ``generator`` = the SR network S (``models["generator"]`` in checkpoints: what inference uses)
- ``lsgan_loss``     L_GAN (CycleGAN Eq. 1) in its least-squares form (CycleGAN Sec. 4, Mao et
                     al. 2017): G minimises E[(D(G(x)) - 1)^2]; D minimises
                     E[(D(y) - 1)^2] + E[D(G(x))^2] (halved, so D learns at half G's rate)
- ``cycle_loss``     L_cyc (Eq. 2) = E||F(G(x)) - x||_1 + E||G(F(y)) - y||_1, weight lambda_cycle
- ``identity_loss``  L_idt (Sec. 5.2) = E||G(y) - y||_1 + E||F(x) - x||_1, weight
                     lambda_identity * lambda_cycle (so 0.5 x 10 = 5)
- ``sr_loss``        L_SR = E||S(G(x)) - HR||^2 (or L1, ``SR_loss``): weight ``SR_lam`` when S
                     is updated, ``cycleSR_lam`` inside G's objective:

        L_trans = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda_cycle * L_cyc
                  + lambda_identity * lambda_cycle * L_idt + cycleSR_lam * L_SR      (G and F)
        L_S     = SR_lam * L_SR with G(x) detached                                   (S only)

One iteration reads like the algorithm (:meth:`CycleSR.train_step`): forward the cycles; update
G and F (discriminators frozen, S frozen but differentiable, so L_SR pulls G towards LR images
S can learn from); update S on the detached G(x); update both discriminators with pooled fakes.
During the first ``cyc_warmup_iters`` iterations only the CycleGAN trains (phase ``warmup``:
no L_SR anywhere), then phase ``joint``. Gradient norms are clipped at ``grad_clip`` (50).
Adam: cyc_lr 2e-4 with betas (0.5, 0.999) (CycleGAN's), SR_lr 1e-4 with ``adam_betas``.
Learning rates: constant for ``n_epoch`` epochs of ``iters_per_epoch`` iterations, then linear
decay to zero over ``n_epoch_decay`` epochs (:func:`lr_factor`); the run ends there.

**Dual regression** (DRN, Guo et al., CVPR 2020): the primal SR network P and a dual network D
that maps SR back to LR. On paired clean data (bicubic LR x, HR y):
``L = L_P(P(x), y) + dual_lambda * ||D(P(x)) - x||_1``; on unpaired real LR r, which has no HR,
only the closed loop: ``dual_lambda * dual_unpaired_weight * ||D(P(r)) - r||_1``.
Trained ``pretrain_iters`` iterations with Adam(lr_pretrain), like the SRResNet stage.

**Comparison** (:func:`compare_methods`, behind ``benchmarks/bench_cyclesr.py`` and the
notebook): bicubic, the SR network trained on bicubic LR (:class:`PairedSR`), an oracle trained on
the true synthetic degradation, CycleSR and dual regression, on the same batches and number of
SR-network updates, scored on degraded test images whose HR is known.

Ranges: every image here is in [0, 1]; SR outputs are converted from the network's
``output_range`` with ``convert_image`` (SRResNet: [-1, 1]).

Sections below: losses; lr schedule; the trainers (``CycleSR``, ``DualRegression``,
``PairedSR``); validation; the runs (``run_cyclesr``, ``run_dual``); the comparison.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from easydict import EasyDict
from torch import nn

from course_sr.plumbing.checkpoint import scaler_states
from course_sr.unpaired.nets import (ImagePool, build_dual_network, build_patch_discriminator, build_sr_network,
                           build_transfer_generator)
from course_sr.solver import Precision, adversarial_loss, make_pretrain_optimizer
from course_sr.utils import convert_image

CYCLEGAN_BETAS = (0.5, 0.999)  # CycleGAN's Adam betas (a lower beta1 keeps the GAN game stable)


# --------------------------------------------------------------------------------------
# Losses, each (pred, target)
# --------------------------------------------------------------------------------------
def lsgan_loss(scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean((scores - 1)^2) for "real", mean(scores^2) for "fake".

    ``scores``: the PatchGAN's raw outputs (N, 1, h, w), no sigmoid. Unlike the log loss it
    keeps pushing samples that are on the right side of the boundary but far from it.
    """
    return adversarial_loss(scores, target_is_real, F.mse_loss)


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||F(G(x)) - x||_1, mean over pixels (one direction of CycleGAN's L_cyc)."""
    return F.l1_loss(reconstructed, original)


def identity_loss(same: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||G(y) - y||_1: a generator fed an image already in its target domain should keep it."""
    return F.l1_loss(same, original)


def sr_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """L_SR between SR and HR, both (N, 3, H, W) in [0, 1]: ``mse`` or ``l1``."""
    if kind == "mse":
        return F.mse_loss(sr, hr)
    if kind == "l1":
        return F.l1_loss(sr, hr)
    raise ValueError(f"SR_loss must be 'mse' or 'l1', got {kind!r}")


def dual_loss(lr_back: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """DRN's dual loss ||D(P(x)) - x||_1 between the loop's LR and the input LR, in [0, 1]."""
    return F.l1_loss(lr_back, lr)


def sr_output(net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """SR of ``lr`` (N, 3, h, w) in [0, 1] as (N, 3, s*h, s*w) in [0, 1] (not clamped), whatever
    the network's ``output_range``."""
    return convert_image(net(lr), net.output_range, "[0, 1]")


# --------------------------------------------------------------------------------------
# Learning-rate schedule: constant, then linear decay to zero
# --------------------------------------------------------------------------------------
def lr_factor(iteration: int, n_epoch: int, n_epoch_decay: int, iters_per_epoch: int) -> float:
    """Multiplier of the base learning rates at (0-based) ``iteration``.

    1 for the first ``n_epoch * iters_per_epoch`` iterations, then falling linearly, one step
    per iteration, to reach 0 at ``(n_epoch + n_epoch_decay) * iters_per_epoch`` (the end of
    training): ``(end - iteration) / (end - start)``. No decay phase: 1 throughout.
    """
    start = n_epoch * iters_per_epoch
    end = (n_epoch + n_epoch_decay) * iters_per_epoch
    if iteration < start or end == start:
        return 1.0
    return max(0.0, (end - iteration) / (end - start))


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)


def sr_update(net: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision, lr: torch.Tensor,
              hr: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
    """One step of the SR network alone on pairs (``lr`` (N, 3, h, w), ``hr`` (N, 3, s*h, s*w),
    [0, 1]): ``SR_lam * L_SR``, clipped. Returns the detached L_SR. (CycleSR's S step, and the
    paired baselines of :func:`compare_methods`: the same update, only the LR differs.)"""
    with precision.autocast():
        loss = sr_loss(sr_output(net, lr).float(), hr, config["SR_loss"])
    precision.step(config["SR_lam"] * loss, optimizer, config["grad_clip"])
    return loss.detach()


# --------------------------------------------------------------------------------------
# The trainers: networks, optimisers, one step, state for checkpoints
# --------------------------------------------------------------------------------------
class _Trainer:
    """What both trainers share: ``nets`` (ModuleDict, ``generator`` = the SR network), the
    ``optimizers`` dict, one ``precision`` (a grad scaler per optimiser when float16), and their
    checkpoint state (plain tensors)."""

    config: Mapping[str, Any]
    nets: nn.ModuleDict
    optimizers: dict[str, torch.optim.Optimizer]
    precision: Precision
    base_lr: dict[str, float]

    @property
    def sr_net(self) -> nn.Module:
        return self.nets.generator

    def set_learning_rates(self, iteration: int) -> float:
        """Every optimiser's lr = its base lr (``self.base_lr``) * :func:`lr_factor` (a pure
        function of the iteration, so resuming needs no scheduler state). Returns the factor."""
        c = self.config
        f = lr_factor(iteration, c["n_epoch"], c["n_epoch_decay"], c["iters_per_epoch"])
        for key, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr[key] * f
        return f

    def state_dict(self) -> dict[str, Any]:
        """``models`` / ``optimizers`` / ``scalers`` in the checkpoint layout."""
        return {"models": {k: v.state_dict() for k, v in self.nets.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "scalers": self.precision.state_dict(self.optimizers)}

    def load_state_dict(self, state: Mapping[str, Any]) -> list[str]:
        """Restore networks, optimisers and scalers. The optimisers keep the hyper-parameters of
        the current config (``runner.restore_optimizer``: a resume with a new ``lr_pretrain`` or
        ``adam_betas`` trains on with them; CycleSR's lrs are set every step from ``base_lr``
        anyway). Returns what was applied, one line per value (for the log)."""
        from course_sr.training import restore_optimizer

        for k, net in self.nets.items():
            net.load_state_dict(state["models"][k])
        applied = []
        for k, opt in self.optimizers.items():
            applied += restore_optimizer(opt, state["optimizers"][k], name=f"optimizer {k}")
        self.precision.load_state_dict(scaler_states(state, self.optimizers), self.optimizers)
        return applied


class CycleSR(_Trainer):
    """CycleSR's networks, optimisers and training step (see the module docstring).

    ``nets``: ``generator`` (the SR network S), ``G_clean2real``, ``G_real2clean``, ``D_clean``,
    ``D_real``. ``train_step((hr, clean_lr, real_lr), iteration)`` does one iteration; the
    batch is what :class:`~course_sr.unpaired.data.UnpairedDataset` yields (all in [0, 1]).
    """

    method = "cyclesr"

    def __init__(self, config: Mapping[str, Any], device: str | torch.device = "cpu"):
        self.config, self.device = config, torch.device(device)
        self.nets = nn.ModuleDict({
            "generator": build_sr_network(config),
            "G_clean2real": build_transfer_generator(config), "G_real2clean": build_transfer_generator(config),
            "D_clean": build_patch_discriminator(config), "D_real": build_patch_discriminator(config),
        }).to(self.device)
        n = self.nets
        self.pools = {"clean": ImagePool(config["pool_size"]), "real": ImagePool(config["pool_size"])}
        self.base_lr = {"G": config["cyc_lr"], "D": config["cyc_lr"], "SR": config["SR_lr"]}
        self.optimizers = {
            "G": torch.optim.Adam(itertools.chain(n.G_clean2real.parameters(), n.G_real2clean.parameters()),
                                  lr=self.base_lr["G"], betas=CYCLEGAN_BETAS),
            "D": torch.optim.Adam(itertools.chain(n.D_clean.parameters(), n.D_real.parameters()),
                                  lr=self.base_lr["D"], betas=CYCLEGAN_BETAS),
            "SR": torch.optim.Adam(n.generator.parameters(), lr=self.base_lr["SR"],
                                   betas=tuple(config["adam_betas"])),
        }
        # One grad scaler per optimiser (fp16 on GPUs without bf16; off on CPU).
        self.precision = Precision(self.device, bool(config.get("amp", False)))
        self.total_iters = (config["n_epoch"] + config["n_epoch_decay"]) * config["iters_per_epoch"]

    def phase(self, iteration: int) -> str:
        """``warmup`` (CycleGAN only) for the first ``cyc_warmup_iters`` iterations, then ``joint``."""
        return "warmup" if iteration < self.config["cyc_warmup_iters"] else "joint"

    # ---- the three updates of one iteration ------------------------------------------
    def generator_step(self, hr: torch.Tensor, clean: torch.Tensor, real: torch.Tensor,
                       joint: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Update G (clean->real) and F (real->clean) on L_trans. Returns (losses, fakes).

        ``hr`` (N, 3, s*h, s*w), ``clean`` and ``real`` (N, 3, h, w), all in [0, 1]. With
        ``joint``, ``cycleSR_lam * L_SR(S(G(clean)), hr)`` joins the loss: S is frozen here
        (requires_grad off: its weights get no gradient and do not move) but the gradient flows
        through it into G. ``fakes`` (detached): ``fake_real`` = G(clean), ``fake_clean`` = F(real).
        """
        c, n = self.config, self.nets
        lam_c, lam_i = c["lambda_cycle"], c["lambda_identity"] * c["lambda_cycle"]
        set_requires_grad([n.D_clean, n.D_real, n.generator], False)
        with self.precision.autocast():
            fake_real = n.G_clean2real(clean)          # G(x): clean LR made to look real
            fake_clean = n.G_real2clean(real)          # F(y)
            loss_gan = lsgan_loss(n.D_real(fake_real), True) + lsgan_loss(n.D_clean(fake_clean), True)
            loss_cycle = cycle_loss(n.G_real2clean(fake_real), clean) + cycle_loss(n.G_clean2real(fake_clean), real)
            loss = loss_gan + lam_c * loss_cycle
            out = {"G_gan": loss_gan, "G_cycle": loss_cycle}
            if lam_i > 0:
                loss_idt = identity_loss(n.G_clean2real(real), real) + identity_loss(n.G_real2clean(clean), clean)
                loss = loss + lam_i * loss_idt
                out["G_idt"] = loss_idt
            if joint:
                loss_cycle_sr = sr_loss(sr_output(n.generator, fake_real).float(), hr, c["SR_loss"])
                loss = loss + c["cycleSR_lam"] * loss_cycle_sr
                out["G_sr"] = loss_cycle_sr
        self.precision.step(loss, self.optimizers["G"], c["grad_clip"])
        set_requires_grad([n.D_clean, n.D_real, n.generator], True)
        out["G_total"] = loss
        return ({k: v.detach() for k, v in out.items()},
                {"fake_real": fake_real.detach(), "fake_clean": fake_clean.detach()})

    def sr_step(self, fake_real: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Update S on (G(clean), HR): ``SR_lam * L_SR``. ``fake_real`` must be detached, so this
        loss never reaches the transfer generators (they only feel L_SR in their own step)."""
        if fake_real.requires_grad:
            raise ValueError("sr_step needs G(clean) detached: the SR update must not move the transfer generator")
        return {"SR": sr_update(self.nets.generator, self.optimizers["SR"], self.precision, fake_real, hr,
                                self.config)}

    def discriminator_step(self, clean: torch.Tensor, real: torch.Tensor, fake_clean: torch.Tensor,
                           fake_real: torch.Tensor) -> dict[str, torch.Tensor]:
        """Update D_clean and D_real (LSGAN, each halved) on real images vs pooled fakes."""
        n = self.nets
        fake_real = self.pools["real"].query(fake_real)      # maybe an older G(x) (ImagePool)
        fake_clean = self.pools["clean"].query(fake_clean)
        with self.precision.autocast():
            loss_real = 0.5 * (lsgan_loss(n.D_real(real), True) + lsgan_loss(n.D_real(fake_real), False))
            loss_clean = 0.5 * (lsgan_loss(n.D_clean(clean), True) + lsgan_loss(n.D_clean(fake_clean), False))
        # One backward for both: their parameters are disjoint, so the sum's gradients are each D's own.
        self.precision.step(loss_real + loss_clean, self.optimizers["D"], self.config["grad_clip"])
        return {"D_real": loss_real.detach(), "D_clean": loss_clean.detach()}

    def train_step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        """One iteration at ``iteration`` (0-based): lrs, G/F step, S step (joint), D step."""
        hr, clean, real = (t.to(self.device, non_blocking=True) for t in batch)
        joint = self.phase(iteration) == "joint"
        out = {"lr_factor": torch.tensor(self.set_learning_rates(iteration))}
        losses, fakes = self.generator_step(hr, clean, real, joint)
        out.update(losses)
        if joint:
            out.update(self.sr_step(fakes["fake_real"], hr))
        out.update(self.discriminator_step(clean, real, fakes["fake_clean"], fakes["fake_real"]))
        return out

    # ---- checkpoint state: the shared parts plus the image pools ------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> list[str]:
        applied = super().load_state_dict(state)
        for k, pool in self.pools.items():
            pool.load_state_dict(state["pools"][k], self.device)
        return applied


class DualRegression(_Trainer):
    """Dual regression's networks, optimiser and training step (see the module docstring).

    ``nets``: ``generator`` (the primal SR network P) and ``dual`` (D: SR -> LR). One Adam over
    both (``lr_pretrain``, ``adam_betas``), constant lr, gradient norm clipped at ``grad_clip``.
    """

    method = "dual"

    def __init__(self, config: Mapping[str, Any], device: str | torch.device = "cpu"):
        self.config, self.device = config, torch.device(device)
        self.nets = nn.ModuleDict({"generator": build_sr_network(config),
                                   "dual": build_dual_network(config)}).to(self.device)
        self.optimizers = {"primal_dual": make_pretrain_optimizer(self.nets, config)}   # P and D together
        self.precision = Precision(self.device, bool(config.get("amp", False)))
        self.total_iters = int(config["pretrain_iters"])

    def phase(self, iteration: int) -> str:
        return "dual"

    def train_step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        """Paired: L_P(P(x), y) + lambda ||D(P(x)) - x||_1; unpaired real r: lambda * w ||D(P(r)) - r||_1."""
        c, n = self.config, self.nets
        hr, clean, real = (t.to(self.device, non_blocking=True) for t in batch)
        lam = c["dual_lambda"]
        with self.precision.autocast():
            sr = sr_output(n.generator, clean).float()           # P(x), (N, 3, s*h, s*w) in [0, 1]
            loss_primal = sr_loss(sr, hr, c["SR_loss"])
            loss_dual = dual_loss(n.dual(sr).float(), clean)      # D(P(x)) ~ x
            sr_real = sr_output(n.generator, real).float()       # P(r): no HR to compare with...
            loss_loop = dual_loss(n.dual(sr_real).float(), real)  # ...but D(P(r)) ~ r closes the loop
            loss = loss_primal + lam * loss_dual + lam * c["dual_unpaired_weight"] * loss_loop
        self.precision.step(loss, self.optimizers["primal_dual"], c["grad_clip"])
        return {"primal": loss_primal.detach(), "dual": loss_dual.detach(), "loop": loss_loop.detach(),
                "total": loss.detach()}


class PairedSR(_Trainer):
    """The SR network alone, trained on pairs: the baselines CycleSR is compared with.

    ``lr_source="clean"``: the bicubic LR of each HR patch (ordinary SR training: what a model
    "trained on bicubic LR" has seen). ``"oracle"``: the HR patch degraded with the true synthetic
    degradation (``config.degradation``), an upper bound that no real unpaired setting has.
    Same update as CycleSR's S step (:func:`sr_update`), same optimiser and lr schedule.
    """

    method = "paired"

    def __init__(self, config: Mapping[str, Any], device: str | torch.device = "cpu", lr_source: str = "clean"):
        from course_sr.unpaired.degradations import get_degradation

        if lr_source not in ("clean", "oracle"):
            raise ValueError(f"lr_source must be 'clean' or 'oracle', got {lr_source!r}")
        self.config, self.device, self.lr_source = config, torch.device(device), lr_source
        self.spec = get_degradation(config.get("degradation"), config["scaling_factor"])
        if lr_source == "oracle" and self.spec is None:
            raise ValueError("the oracle baseline needs a synthetic degradation (config.degradation)")
        self.nets = nn.ModuleDict({"generator": build_sr_network(config)}).to(self.device)
        self.base_lr = {"SR": config["SR_lr"]}
        self.optimizers = {"SR": torch.optim.Adam(self.nets.generator.parameters(), lr=config["SR_lr"],
                                                  betas=tuple(config["adam_betas"]))}
        self.precision = Precision(self.device, bool(config.get("amp", False)))
        self.total_iters = (config["n_epoch"] + config["n_epoch_decay"]) * config["iters_per_epoch"]

    def phase(self, iteration: int) -> str:
        return self.lr_source

    def degrade_batch(self, hr: torch.Tensor, iteration: int) -> torch.Tensor:
        """The oracle's LR: each HR patch (N, 3, H, W) in [0, 1] degraded with the true spec."""
        from course_sr.datasets import to_tensor
        from course_sr.unpaired.degradations import degrade
        from course_sr.training import to_uint8

        seed = int(self.config["seed"])
        return torch.stack([to_tensor(degrade(to_uint8(h, "[0, 1]"), self.spec, seed=(seed, iteration, i)))
                            for i, h in enumerate(hr)])

    def train_step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        hr, clean, _ = batch
        lr = clean if self.lr_source == "clean" else self.degrade_batch(hr, iteration)
        self.set_learning_rates(iteration)
        return {"SR": sr_update(self.nets.generator, self.optimizers["SR"], self.precision,
                                lr.to(self.device), hr.to(self.device), self.config)}


# --------------------------------------------------------------------------------------
# Validation: PSNR/SSIM of the SR network on the (degraded) validation images
# --------------------------------------------------------------------------------------
def validation_set(config: Mapping[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``val_images`` of ``val_split`` as ``(lr, hr)`` tensors in [0, 1].

    With a synthetic ``degradation``: HR centre-cropped to ``val_crop`` and degraded with
    ``test_degradation`` (:func:`~course_sr.unpaired.data.degraded_pairs`). Without (real data): the
    list's own LR files, e.g. DIV2K valid "unknown" x4, centre-cropped like the SRGAN runner's.
    ``config`` must have its data paths filled in (``runner.data_config``).
    """
    from course_sr.datasets import SRDataset
    from course_sr.training import centre_crop_pair
    from course_sr.unpaired.data import degraded_pairs, tensor_pairs

    n, crop, s = int(config["val_images"]), int(config["val_crop"]), int(config["scaling_factor"])
    if config.get("degradation") is not None:
        return tensor_pairs(degraded_pairs(config, config["val_split"], config["test_degradation"], n, crop))
    ds = SRDataset(config["val_split"], config, train=False)
    return [centre_crop_pair(*ds[i], crop, s) for i in range(min(n, len(ds)))]


def validate(sr_net: nn.Module, images, device=None) -> tuple[dict[str, float], np.ndarray]:
    """Y-channel PSNR/SSIM and a grid LR (nearest) | SR | HR: the SRGAN runner's validation."""
    from course_sr.training import validate as runner_validate

    return runner_validate(sr_net, images, device, lr_view="nearest")


# --------------------------------------------------------------------------------------
# The runs: python -m course_sr train --config cyclesr-quick|dual-quick|PATH --out DIR
# --------------------------------------------------------------------------------------
def run_cyclesr(config, out_dir, records, max_iters: int | None = None, resume=None) -> dict[str, Any]:
    """Train CycleSR from ``config`` in ``out_dir`` (called by ``course_sr.training.run``).

    Phases ``warmup`` (CycleGAN only, ``cyc_warmup_iters``) then ``joint``, over
    ``(n_epoch + n_epoch_decay) * iters_per_epoch`` iterations. Checkpoints as the SRGAN runner's:
    ``checkpoints/last.pt`` (every ``ckpt_every``), ``best.pt`` (best validation PSNR of the joint
    phase), ``warmup_end.pt`` / ``joint_end.pt``; ``models["generator"]`` is the SR network, so
    ``evaluate``/``upscale`` load it like any SRResNet checkpoint. ``resume``: a checkpoint path.
    Returns the runner's summary dict.
    """
    return _run(CycleSR, config, out_dir, records, max_iters, resume)


def run_dual(config, out_dir, records, max_iters: int | None = None, resume=None) -> dict[str, Any]:
    """Train dual regression (stage ``dual``, ``pretrain_iters`` iterations); as :func:`run_cyclesr`."""
    return _run(DualRegression, config, out_dir, records, max_iters, resume)


def _run(trainer_cls, config, out_dir, records, max_iters, resume) -> dict[str, Any]:
    import time
    from pathlib import Path

    from course_sr.plumbing.checkpoint import (CheckpointError, NonFiniteError, capture_rng_state, load_checkpoint, restore_rng_state,
                             save_checkpoint)
    from course_sr.config import to_plain
    from course_sr.data.lists import check_splits
    from course_sr.datasets import make_train_loader
    from course_sr.models import count_parameters
    from course_sr.plumbing.distributed import current, resolve_device
    from course_sr.training import WindowMeans, data_config, mismatch_error, stopped_by_non_finite
    from course_sr.unpaired.data import UnpairedDataset
    from course_sr.utils import seed_everything

    if current().world_size > 1:
        raise ValueError(f"{trainer_cls.method} runs in one process; start it without torchrun")
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    device = resolve_device(config["device"])
    seed_everything(int(config["seed"]))
    t = trainer_cls(config, device)
    iteration, best = 0, float("-inf")
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if ckpt.get("method") != t.method:
            raise CheckpointError(f"{resume} is a {ckpt.get('method')!r} checkpoint, not {t.method!r}")
        iteration, best = int(ckpt["iteration"]), float(ckpt.get("best_psnr") or float("-inf"))
        if iteration > t.total_iters or (iteration > 0 and t.phase(iteration - 1) != ckpt["stage"]):
            raise CheckpointError(f"checkpoint {resume} (phase {ckpt['stage']!r}, iteration {iteration}) does not lie "
                                  f"in the same phase under this config: cyc_warmup_iters, n_epoch, n_epoch_decay, "
                                  "iters_per_epoch or pretrain_iters changed; set them back, or start a new run "
                                  "(--overwrite, or a new --out)")
        try:
            applied = t.load_state_dict(ckpt)
        except RuntimeError as err:
            raise mismatch_error(err, ckpt, to_plain(config), resume) from err
        records.write_config()                       # the resume fits: config.yaml now says what runs
        records.load_state_dict(ckpt["history"], source=resume, iteration=iteration)
        records.log(f"resuming in phase {t.phase(iteration) if iteration < t.total_iters else 'done'} "
                    f"(checkpoint phase {ckpt['stage']!r})")
        if applied:
            records.log(f"applied to the restored optimisers (from iteration {iteration} on; the checkpoint's "
                        "values before): " + ", ".join(applied))
        end_file = ckpt_dir / f"{ckpt['stage']}_end.pt"
        if iteration == t.total_iters or t.phase(iteration) != ckpt["stage"]:
            if not end_file.exists():     # killed between last.pt and the end file (an older kit's order)
                save_checkpoint(ckpt, end_file)
                records.log(f"wrote the missing {end_file} from {resume} (phase {ckpt['stage']} had ended there)")
    sizes = ", ".join(f"{k} {count_parameters(m):,}" for k, m in t.nets.items())
    records.log(f"{t.method} on {device}, {t.precision.describe()}: {t.total_iters} iterations; parameters: {sizes}")

    data_cfg = data_config(config)
    check_splits(data_cfg, (data_cfg.train_split, data_cfg.val_split,
                            data_cfg.real_lr_split if data_cfg.get("degradation") is None else None))
    dataset = UnpairedDataset(data_cfg)
    records.log(f"data: {dataset.paired.describe()}; clean images {dataset.n_clean}, real-LR images "
                f"{len(dataset.real)} ({'synthetic: ' + repr(dataset.spec) if dataset.spec else 'files'})")
    batches = iter(make_train_loader(dataset, data_cfg, start_iter=iteration))
    val_images = validation_set(data_cfg)
    if resume is not None:
        restore_rng_state(ckpt["rng"], device)   # last: building the data must not shift the streams

    def save(*names: str) -> list[Path]:
        state = {"method": t.method, "stage": t.phase(iteration - 1), "iteration": iteration,
                 "config": to_plain(config), "arch": {"generator": str(config["sr_net"])},
                 **t.state_dict(), "schedulers": {}, "history": records.state_dict(),
                 "rng": capture_rng_state(device), "best_psnr": best}
        return [save_checkpoint(state, ckpt_dir / f"{name}.pt") for name in names]

    stop = t.total_iters if max_iters is None else min(t.total_iters, iteration + int(max_iters))
    window, tick, ends = WindowMeans(), time.time(), {}
    while iteration < stop:
        phase = t.phase(iteration)
        window.add(t.train_step(next(batches), iteration))
        iteration += 1
        phase_end = iteration == t.total_iters or t.phase(iteration) != phase
        try:
            if iteration % config["log_every"] == 0 or phase_end:
                n = window.n
                values = window.pop(f"in phase {phase} before iteration {iteration}")
                values["it_per_s"] = n / max(time.time() - tick, 1e-9)
                tick = time.time()
                records.scalars(iteration, values, stage=phase)
            if phase != "warmup" and (iteration % config["val_every"] == 0 or phase_end):
                scores, grid = validate(t.sr_net, val_images, device)
                records.scalars(iteration, scores, stage=phase)
                records.image(phase, iteration, grid, save_png=True)
                note = ""
                if scores["val_psnr"] > best:
                    best, note = scores["val_psnr"], " (best, saved best.pt)"
                    save("best")
                records.log(f"[{phase} {iteration}] val PSNR {scores['val_psnr']:.2f} dB, "
                            f"SSIM {scores['val_ssim']:.4f}{note}")
            if phase_end:
                # The end file before the last.pt that records the phase as done (see the runner).
                ends[phase] = str(save(f"{phase}_end", "last")[0])
                records.log(f"phase {phase} done at iteration {iteration}: {ends[phase]}")
            elif iteration % config["ckpt_every"] == 0 or iteration == stop:
                window.check(f"in phase {phase} before iteration {iteration}")
                save("last")
        except NonFiniteError as err:
            raise stopped_by_non_finite(records, ckpt_dir, phase, err) from None
    if iteration < t.total_iters:
        records.log(f"stopped at iteration {iteration} (max_iters); resume with --resume auto "
                    f"(or --resume {ckpt_dir / 'last.pt'})")
    records.write_config()                           # (a resume of a finished run)
    records.flush()
    best_path = ckpt_dir / "best.pt"
    return {"out_dir": str(out_dir), "iteration": iteration, "stage": t.phase(max(iteration - 1, 0)),
            "finished": iteration == t.total_iters, "last": str(ckpt_dir / "last.pt"),
            "best": str(best_path) if best_path.exists() else None,
            "best_psnr": best if best > float("-inf") else None, "stage_ends": ends,
            "history": records.state_dict()}


# --------------------------------------------------------------------------------------
# The comparison: bicubic, SR trained on bicubic LR, CycleSR, dual regression (and an oracle)
# --------------------------------------------------------------------------------------
class Bicubic(nn.Module):
    """Bicubic upsampling (the kit's MATLAB-exact ``imresize``, float path) posing as an SR
    network, so tables treat it like the others: LR [0, 1] -> SR [0, 1]; no weights."""

    output_range = "[0, 1]"

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int(scale)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        from course_sr.imresize import imresize

        return imresize(lr, scalar_scale=self.scale)


COMPARED = ("bicubic", "paired", "oracle", "cyclesr", "dual")
LABELS = {"bicubic": "bicubic", "paired": "{net} trained on bicubic LR", "cyclesr": "CycleSR ({net})",
          "dual": "dual regression ({net})", "oracle": "{net} on the true degradation (oracle)"}


def comparison_sets(config: Mapping[str, Any], split: str | None = None) -> dict[str, list]:
    """``{"<split> degraded": [(lr, hr)], "<split> clean": [(lr, hr)]}``: whole images of ``split``
    (default ``val_split``) as tensors in [0, 1], HR degraded with ``test_degradation``, and with
    the list's own bicubic LR files. ``config`` must have its data paths filled in."""
    from course_sr.datasets import SRDataset
    from course_sr.unpaired.data import degraded_pairs, tensor_pairs

    split = split or config["val_split"]
    clean = SRDataset(split, config, train=False)
    return {f"{split} degraded": tensor_pairs(degraded_pairs(config, split, config["test_degradation"])),
            f"{split} clean": [clean[i] for i in range(len(clean))]}


def compare_methods(config: Mapping[str, Any], iters: int, methods=COMPARED, sets: Mapping[str, list] | None = None,
                    device="cpu", log=print) -> dict[str, Any]:
    """Train each method for the same ``iters`` iterations on the same data stream and score it.

    Every learned method uses the same SR network (``config.sr_net``, same sizes and seed), the
    same batches of :class:`~course_sr.unpaired.data.UnpairedDataset` (a synthetic ``degradation`` is
    needed, so that the degraded test set has ground truth), Adam at ``SR_lr`` for the SR network,
    and the schedule squeezed into ``iters`` (constant for half, then linear decay to zero).
    CycleSR runs ``cyc_warmup_iters`` CycleGAN-only iterations BEFORE those ``iters`` (so its SR
    network gets the same number of updates as the others; the warm-up's time is in its
    ``train_s``). Dual regression uses ``lr_pretrain``, constant. ``sets``: ``{name: [(lr, hr)]}``
    tensors in [0, 1] (default :func:`comparison_sets`); scores are mean Y-PSNR/SSIM, ``scale``
    pixels shaved (``metrics.psnr_ssim``).

    Returns ``{"results": {method: {set: {"psnr", "ssim"}, "train_s": s}}, "nets": {method: SR
    network}, "labels": {method: label}, "budget": {...}}``.
    """
    import time

    from course_sr.datasets import make_train_loader
    from course_sr.training import data_config
    from course_sr.unpaired.data import UnpairedDataset
    from course_sr.utils import seed_everything

    unknown = set(methods) - set(COMPARED)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {COMPARED}")
    cfg = data_config(config)
    if cfg.get("degradation") is None:
        raise ValueError("compare_methods needs a synthetic degradation (config.degradation): the degraded "
                         "test images need their ground truth")
    half, warm = max(1, iters // 2), int(cfg.cyc_warmup_iters)
    cfg.update(n_epoch=1, n_epoch_decay=1, iters_per_epoch=half, pretrain_iters=2 * half)
    # CycleSR: the warm-up, then the same schedule as the others (counted in single iterations)
    cyc_cfg = EasyDict({**cfg, "n_epoch": warm + half, "n_epoch_decay": half, "iters_per_epoch": 1})
    sets = dict(sets) if sets is not None else comparison_sets(cfg)
    dataset = UnpairedDataset(cfg)
    net_name = {"srresnet": "SRResNet", "vdsr": "VDSR"}.get(cfg.sr_net, cfg.sr_net)
    out: dict[str, Any] = {"results": {}, "nets": {}, "labels": {},
                           "budget": {"iters": 2 * half, "cyc_warmup_iters": warm, "batch_size": cfg.batch_size,
                                      "crop_size": cfg.crop_size, "sr_net": cfg.sr_net,
                                      "clean_images": dataset.n_clean, "real_images": len(dataset.real),
                                      "test_images": {k: len(v) for k, v in sets.items()}}}
    for m in methods:
        seed_everything(int(cfg.seed))
        t0 = time.perf_counter()
        if m == "bicubic":
            net = Bicubic(cfg.scaling_factor)
        else:
            t = {"paired": lambda: PairedSR(cfg, device, "clean"), "oracle": lambda: PairedSR(cfg, device, "oracle"),
                 "cyclesr": lambda: CycleSR(cyc_cfg, device), "dual": lambda: DualRegression(cfg, device)}[m]()
            batches = iter(make_train_loader(dataset, cfg))
            for i in range(t.total_iters):
                t.train_step(next(batches), i)
            net = t.sr_net.eval()
        train_s = time.perf_counter() - t0
        out["results"][m] = {**score_methods({m: net}, sets, device)[m], "train_s": train_s}
        out["nets"][m], out["labels"][m] = net, LABELS[m].format(net=net_name)
        log(f"{out['labels'][m]:<42} " + "   ".join(f"{k} {v['psnr']:6.2f} / {v['ssim']:.4f}"
                                                    for k, v in out["results"][m].items() if k != "train_s")
            + f"   ({train_s:.0f} s)")
    return out


def score_methods(nets: Mapping[str, nn.Module], sets: Mapping[str, list], device="cpu") -> dict[str, dict]:
    """``{method: {set: {"psnr", "ssim"}}}``: mean Y-PSNR/SSIM (shave = scale) of each SR network
    (``Bicubic``, or one from ``checkpoint.load_generator``) on each set of ``[(lr, hr)]`` tensors."""
    out = {}
    for m, net in nets.items():
        out[m] = {}
        for name, pairs in sets.items():
            scores = validate(net, pairs, device)[0]
            out[m][name] = {"psnr": scores["val_psnr"], "ssim": scores["val_ssim"]}
    return out


def format_comparison(results: Mapping[str, Mapping], labels: Mapping[str, str] | None = None,
                      baseline: str = "paired") -> str:
    """A Markdown table of ``results`` (``compare_methods(...)["results"]`` or ``score_methods``):
    PSNR / SSIM per set, with each method's PSNR gain over ``baseline`` (the network trained on
    bicubic LR) in parentheses, and the training time when known."""
    labels = labels or {}
    names = [k for k in next(iter(results.values())) if k != "train_s"]
    timed = any("train_s" in r for r in results.values())
    base = results.get(baseline)
    head = "| method | " + " | ".join(f"{n} PSNR / SSIM" for n in names) + (" | train s |" if timed else " |")
    lines = [head, "|---" * (len(names) + 1 + timed) + "|"]
    for m, r in results.items():
        cells = []
        for n in names:
            gain = f" ({r[n]['psnr'] - base[n]['psnr']:+.2f})" if base is not None and m != baseline else ""
            cells.append(f"{r[n]['psnr']:.2f}{gain} / {r[n]['ssim']:.4f}")
        time_cell = f" | {r['train_s']:.0f}" if timed else ""
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(cells) + time_cell + " |")
    return "\n".join(lines)
