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

One iteration reads like the algorithm (:meth:`CycleSR.step`): forward the cycles; update
G and F (discriminators frozen, S frozen but differentiable, so L_SR pulls G towards LR images
S can learn from); update S on the detached G(x); update both discriminators with pooled fakes.
Vega's three phases (``stage_bounds``): ``warmup``, the first ``cyc_warmup_iters`` iterations,
trains only the CycleGAN (no L_SR anywhere); ``sr``, the next ``cyc_sr_iters``, trains only S on
the bicubic LR with weight 1; then ``joint``. Gradient norms are clipped at ``grad_clip`` (50)
for each network on its own (G, F, D_X, D_Y and S), as Vega does. Adam with betas (0.5, 0.999)
for all of them (Vega's, CycleGAN's: a lower beta1 keeps the GAN game stable): cyc_lr 2e-4,
SR_lr 1e-4. Learning rates: constant for ``n_epoch`` epochs of ``iters_per_epoch`` iterations,
then linear decay to zero over ``n_epoch_decay`` epochs (:func:`lr_factor`); the run ends there.

**Dual regression** (DRN, Guo et al., CVPR 2020) with DRN's losses: the primal SR network P and
a dual network D that maps SR back to LR. On paired clean data (bicubic LR x, HR y):
``L = ||P(x) - y||_1 + dual_lambda * ||D(P(x)) - x||_1`` (DRN: L1 both, dual weight 0.1); on
unpaired real LR r, which has no HR, only the closed loop:
``dual_lambda * dual_unpaired_weight * ||D(P(r)) - r||_1``. A simplification of DRN: one x4 dual
network (``nets.DualNet``), where DRN has a dual block and a loss at every x2 level. Trained
``pretrain_iters`` iterations with Adam(lr_pretrain), like the SRResNet stage.

**Paired** (:class:`PairedSR`, method ``paired``): the same SR network alone on the bicubic LR of
the same HR patches (ordinary SR training), the baseline CycleSR and dual regression must beat.

All are :class:`~course_sr.plumbing.trainer.Trainer` s of the one training loop
(``course_sr.training.run``, ``python -m course_sr train --config cyclesr|dual|paired``): the
loop owns the data, logging, validation and checkpoints. Their comparison on one budget is
``course_sr.unpaired.compare``.

Ranges: every image here is in [0, 1]; SR outputs are converted from the network's
``output_range`` with ``convert_image`` (SRResNet: [-1, 1]).

Sections below: losses; lr schedule; the trainers (``CycleSR``, ``DualRegression``, ``PairedSR``).
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from course_sr.datasets import to_tensor
from course_sr.models import count_parameters
from course_sr.plumbing.trainer import Trainer
from course_sr.solver import Precision, adversarial_loss, make_pretrain_optimizer
from course_sr.unpaired.nets import (ImagePool, build_dual_network, build_patch_discriminator, build_sr_network,
                                     build_transfer_generator)
from course_sr.unpaired.degradations import degrade, get_degradation
from course_sr.utils import convert_image, to_uint8

CYCLEGAN_BETAS = (0.5, 0.999)  # Vega's Adam betas for every network, CycleGAN's (a lower beta1 keeps the GAN stable)


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


def schedule_length(cfg: Mapping[str, Any]) -> int:
    """Iterations of the :func:`lr_factor` schedule: ``(n_epoch + n_epoch_decay) * iters_per_epoch``."""
    return (int(cfg["n_epoch"]) + int(cfg["n_epoch_decay"])) * int(cfg["iters_per_epoch"])


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)


def sr_optimizer(net: nn.Module, config: Mapping[str, Any]) -> torch.optim.Adam:
    """Adam(``SR_lr``, betas (0.5, 0.999)) for the SR network: Vega's, shared by CycleSR and the
    paired baseline so that they differ in the LR they see only."""
    return torch.optim.Adam(net.parameters(), lr=config["SR_lr"], betas=CYCLEGAN_BETAS)


def sr_update(net: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision, lr: torch.Tensor,
              hr: torch.Tensor, config: Mapping[str, Any], weight: float | None = None) -> torch.Tensor:
    """One step of the SR network alone on pairs (``lr`` (N, 3, h, w), ``hr`` (N, 3, s*h, s*w),
    [0, 1]): ``weight`` (default ``SR_lam``) ``* L_SR``, clipped. Returns the detached L_SR.
    (CycleSR's S step, its ``sr`` phase with weight 1, and :class:`PairedSR`: the same update,
    only the LR differs.)"""
    with precision.autocast():
        loss = sr_loss(sr_output(net, lr).float(), hr, config["SR_loss"])
    precision.step((config["SR_lam"] if weight is None else weight) * loss, optimizer, config["grad_clip"])
    return loss.detach()


# --------------------------------------------------------------------------------------
# The trainers: networks, optimisers, one step, state for checkpoints
# --------------------------------------------------------------------------------------
class UnpairedTrainer(Trainer):
    """What CycleSR, dual regression and the paired baselines share: ``nets`` (a ModuleDict,
    ``generator`` = the SR network), optimisers that live through every phase (so a resume
    restores them at a phase boundary too), one ``precision`` (a grad scaler per optimiser when
    float16), the lr schedule of :func:`lr_factor`, and validation grids with the LR column
    enlarged by nearest neighbour (the pixels as they are)."""

    persistent_optimizers = True
    lr_view = "nearest"
    base_lr: dict[str, float]

    def __init__(self, config: Mapping[str, Any], device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = self.config = config
        self.device = torch.device(device)
        self.arch = str(config["sr_net"])
        self.precision = Precision(self.device, bool(config.get("amp", False)))

    def set_learning_rates(self, iteration: int) -> float:
        """Every optimiser's lr = its base lr (``self.base_lr``) * :func:`lr_factor` (a pure
        function of the iteration, so resuming needs no scheduler state). Returns the factor."""
        c = self.config
        f = lr_factor(iteration, c["n_epoch"], c["n_epoch_decay"], c["iters_per_epoch"])
        for key, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr[key] * f
        return f

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {count_parameters(m):,}" for k, m in self.nets.items())
        return (f"{self.method} on {self.device}, {self.precision.describe()}: {self.total_iters} iterations; "
                f"parameters: {sizes}")


class CycleSR(UnpairedTrainer):
    """CycleSR's networks, optimisers and training step (see the module docstring).

    ``nets``: ``generator`` (the SR network S), ``G_clean2real``, ``G_real2clean``, ``D_clean``,
    ``D_real``. ``step((hr, clean_lr, real_lr), iteration)`` does one iteration; the
    batch is what :class:`~course_sr.unpaired.data.UnpairedDataset` yields (all in [0, 1]).
    """

    method = "cyclesr"
    schedule_keys = "cyc_warmup_iters, n_epoch, n_epoch_decay or iters_per_epoch"

    def __init__(self, config: Mapping[str, Any], device: str | torch.device = "cpu"):
        super().__init__(config, device)
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
            "SR": sr_optimizer(n.generator, config),
        }

    @staticmethod
    def stage_bounds(cfg: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        """Vega's phases: ``warmup`` (CycleGAN only) for the first ``cyc_warmup_iters`` iterations,
        ``sr`` (S only, on bicubic LR) for the next ``cyc_sr_iters``, then ``joint``, to
        ``(n_epoch + n_epoch_decay) * iters_per_epoch``. An empty phase is skipped."""
        total = schedule_length(cfg)
        warm = min(int(cfg.get("cyc_warmup_iters", 0)), total)
        sr_end = min(warm + int(cfg.get("cyc_sr_iters", 0)), total)
        return {"warmup": (0, warm), "sr": (warm, sr_end), "joint": (sr_end, total)}

    def phase(self, iteration: int) -> str:
        """The phase the (0-based) ``iteration`` belongs to: ``warmup``, ``sr`` or ``joint``."""
        return next(name for name, (_, end) in self.bounds.items() if iteration < end)

    def validates(self, stage: str) -> bool:
        return stage != "warmup"              # the SR network does not train in the warm-up

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
        self.precision.step(loss, self.optimizers["G"], c["grad_clip"], per_network=(n.G_clean2real, n.G_real2clean))
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
        self.precision.step(loss_real + loss_clean, self.optimizers["D"], self.config["grad_clip"],
                            per_network=(n.D_real, n.D_clean))
        return {"D_real": loss_real.detach(), "D_clean": loss_clean.detach()}

    def step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        """One iteration at ``iteration`` (0-based): lrs, G/F step, S step (joint), D step."""
        hr, clean, real = (t.to(self.device, non_blocking=True) for t in batch)
        phase = self.phase(iteration)
        out = {"lr_factor": torch.tensor(self.set_learning_rates(iteration))}
        if phase == "sr":              # Vega's epoch 6: S alone on the bicubic LR, weight 1
            out["SR"] = sr_update(self.nets.generator, self.optimizers["SR"], self.precision, clean, hr,
                                  self.config, weight=1.0)
            return out
        joint = phase == "joint"
        losses, fakes = self.generator_step(hr, clean, real, joint)
        out.update(losses)
        if joint:
            out.update(self.sr_step(fakes["fake_real"], hr))
        out.update(self.discriminator_step(clean, real, fakes["fake_clean"], fakes["fake_real"]))
        return out

    # ---- checkpoint state: the shared parts plus the image pools ------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_state_dict(self, state: Mapping[str, Any], same_stage: bool = True,
                        source: Any = "the checkpoint") -> list[str]:
        applied = super().load_state_dict(state, same_stage, source)
        for k, pool in self.pools.items():
            pool.load_state_dict(state["pools"][k], self.device)
        return applied


class DualRegression(UnpairedTrainer):
    """Dual regression's networks, optimiser and training step (see the module docstring).

    ``nets``: ``generator`` (the primal SR network P) and ``dual`` (D: SR -> LR). One Adam over
    both (``lr_pretrain``, ``adam_betas``), constant lr, gradient norm clipped at ``grad_clip``.
    """

    method = "dual"
    schedule_keys = "pretrain_iters"

    def __init__(self, config: Mapping[str, Any], device: str | torch.device = "cpu"):
        super().__init__(config, device)
        self.nets = nn.ModuleDict({"generator": build_sr_network(config),
                                   "dual": build_dual_network(config)}).to(self.device)
        self.optimizers = {"primal_dual": make_pretrain_optimizer(self.nets, config)}   # P and D together

    @staticmethod
    def stage_bounds(cfg: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        return {"dual": (0, int(cfg["pretrain_iters"]))}

    def step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        """Paired: ||P(x) - y||_1 + lambda ||D(P(x)) - x||_1; unpaired real r: lambda * w ||D(P(r)) - r||_1."""
        c, n = self.config, self.nets
        hr, clean, real = (t.to(self.device, non_blocking=True) for t in batch)
        lam = c["dual_lambda"]
        with self.precision.autocast():
            sr = sr_output(n.generator, clean).float()           # P(x), (N, 3, s*h, s*w) in [0, 1]
            loss_primal = sr_loss(sr, hr, "l1")                   # DRN's primal loss is L1
            loss_dual = dual_loss(n.dual(sr).float(), clean)      # D(P(x)) ~ x
            sr_real = sr_output(n.generator, real).float()       # P(r): no HR to compare with...
            loss_loop = dual_loss(n.dual(sr_real).float(), real)  # ...but D(P(r)) ~ r closes the loop
            loss = loss_primal + lam * loss_dual + lam * c["dual_unpaired_weight"] * loss_loop
        self.precision.step(loss, self.optimizers["primal_dual"], c["grad_clip"])
        return {"primal": loss_primal.detach(), "dual": loss_dual.detach(), "loop": loss_loop.detach(),
                "total": loss.detach()}


class PairedSR(UnpairedTrainer):
    """The SR network alone, trained on pairs: the baselines CycleSR is compared with.

    ``lr_source="clean"``: the bicubic LR of each HR patch (ordinary SR training: what a model
    "trained on bicubic LR" has seen). ``"oracle"``: the HR patch degraded with the true synthetic
    degradation (``config.degradation``), an upper bound that no real unpaired setting has.
    Same update as CycleSR's S step (:func:`sr_update`), same optimiser and lr schedule.
    """

    method = "paired"
    schedule_keys = "n_epoch, n_epoch_decay or iters_per_epoch"

    def __init__(self, config: Mapping[str, Any], device: str | torch.device = "cpu", lr_source: str = "clean"):
        if lr_source not in ("clean", "oracle"):
            raise ValueError(f"lr_source must be 'clean' or 'oracle', got {lr_source!r}")
        super().__init__(config, device)
        self.lr_source = lr_source
        self.spec = get_degradation(config.get("degradation"), config["scaling_factor"])
        if lr_source == "oracle" and self.spec is None:
            raise ValueError("the oracle baseline needs a synthetic degradation (config.degradation)")
        self.nets = nn.ModuleDict({"generator": build_sr_network(config)}).to(self.device)
        self.base_lr = {"SR": config["SR_lr"]}
        self.optimizers = {"SR": sr_optimizer(self.nets.generator, config)}

    @staticmethod
    def stage_bounds(cfg: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        return {"paired": (0, schedule_length(cfg))}

    def degrade_batch(self, hr: torch.Tensor, iteration: int) -> torch.Tensor:
        """The oracle's LR: each HR patch (N, 3, H, W) in [0, 1] degraded with the true spec."""
        seed = int(self.config["seed"])
        return torch.stack([to_tensor(degrade(to_uint8(h, "[0, 1]"), self.spec, seed=(seed, iteration, i)))
                            for i, h in enumerate(hr)])

    def step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        hr, clean, _ = batch
        lr = clean if self.lr_source == "clean" else self.degrade_batch(hr, iteration)
        self.set_learning_rates(iteration)
        return {"SR": sr_update(self.nets.generator, self.optimizers["SR"], self.precision,
                                lr.to(self.device), hr.to(self.device), self.config)}
