"""Losses and training steps: stage 1 SRResNet (pixel MSE), stage 2 SRGAN (perceptual loss).

Paper names (Ledig et al., CVPR 2017, Sec. 2.2) and code names:

- ``pixel_loss``          l^SR_MSE: mean squared error of the images
- ``ContentLoss``         l^SR_VGG/i.j: MSE of VGG19 feature maps phi_{i,j} (torchvision's
                          VGG19 on ImageNet-normalised input), times ``rescale``^2 (default 1:
                          see ``config.vgg_rescale`` for why the paper's 1/12.75 is an option)
- ``adversarial_loss``    l^SR_Gen = -log D(G(I^LR)) (``target_is_real=True`` on G's images);
                          D's sigmoid lives inside BCE-with-logits, which is stable in float16
- ``discriminator_loss``  the cross-entropy of D on real (HR) and fake (SR) images
- perceptual loss         l^SR = content_weight * l_VGG + beta * l_Gen (+ pixel_weight * l_MSE);
                          paper: content_weight 1, beta 1e-3, pixel_weight 0
- SRGAN-MSE               the paper's variant with l_MSE as the content loss (``content_loss="mse"``):
                          l^SR = content_weight * l_MSE + beta * l_Gen; no VGG, so it needs no
                          ImageNet weights (the quick preset uses it; real runs keep VGG54)

Every loss takes ``(pred, target)``. Ranges: LR in [0, 1]; SR and HR in [-1, 1] (the HR from
the dataset is in [0, 1] and is converted once, with ``convert_image``).

The step functions (:func:`pretrain_step`, :func:`gan_step`) are what :class:`SRGANTrainer`
(SRGAN's two stages for the one training loop, ``course_sr.training``) and the template's epoch
functions (:func:`pretrain`, :func:`train`) all call, so there is one copy of the algorithm.
:class:`Precision` (``course_sr.plumbing.precision``) holds the mixed-precision set-up
(:func:`amp_dtype`: bf16 from compute capability 8.0, else fp16 with a grad scaler per
optimiser; off on CPU). :func:`loss_balance` says, at the start of stage 2, whether the content
or the adversarial term leads G's loss.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from course_sr.config import DEFAULTS
from course_sr.models import build_discriminator, build_generator, build_vgg, count_parameters, load_generator
from course_sr.plumbing.checkpoint import NonFiniteError
from course_sr.plumbing.distributed import DistInfo, wrap_model
from course_sr.plumbing.precision import BF16_CAPABILITY, Precision, amp_dtype, cudnn_benchmark  # noqa: F401 (the course's names)
from course_sr.plumbing.trainer import Trainer, WindowMeans
from course_sr.utils import AverageMeter, convert_image, seed_everything

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------
# Losses, each (pred, target)
# --------------------------------------------------------------------------------------
def pixel_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """l_MSE: mean of (pred - target)^2 over every pixel and channel; both in the same range."""
    return F.mse_loss(pred, target)


class ContentLoss(nn.Module):
    """l_VGG/i.j = MSE(rescale * phi(pred), rescale * phi(target)).

    ``vgg``: a frozen :class:`~course_sr.models.TruncatedVGG19` (it normalises its own input;
    ``pred`` and ``target`` are ``(N, 3, H, W)`` in the VGG's ``input_range``, [-1, 1] here).
    ``rescale``: ``config.vgg_rescale``; 1.0 (default) is the torchvision-VGG reference (the
    template's parent, beta 1e-3), 1/12.75 the paper's factor for its Caffe VGG.
    The target's features are computed without a graph: only ``pred`` receives gradients.
    """

    def __init__(self, vgg: nn.Module, rescale: float = 1.0, criterion: Criterion = F.mse_loss):
        super().__init__()
        self.vgg, self.rescale, self.criterion = vgg, float(rescale), criterion

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.vgg(target) * self.rescale
        return self.criterion(self.vgg(pred) * self.rescale, target_features)


def content_loss_name(config: Mapping[str, Any]) -> str:
    """The content term of a config in the paper's words: ``"VGG54 (imagenet weights)"`` or
    ``"pixel MSE (SRGAN-MSE)"`` (``config.content_loss``: ``"vgg"`` or ``"mse"``)."""
    if config.get("content_loss", "vgg") == "mse":
        return "pixel MSE (SRGAN-MSE)"
    return f"VGG{config['vgg_i']}{config['vgg_j']} ({config['vgg_weights']} weights)"


def adversarial_loss(logits: torch.Tensor, target_is_real: bool,
                     criterion: Criterion = F.binary_cross_entropy_with_logits) -> torch.Tensor:
    """BCE of D's logits against all-real (1) or all-fake (0) labels.

    On G's images with ``target_is_real=True`` this is -log D(G(LR)), the paper's l_Gen (it
    gives G strong gradients early on, when D easily spots fakes; log(1 - D(G(LR))) saturates).
    """
    labels = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    return criterion(logits, labels)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       criterion: Criterion = F.binary_cross_entropy_with_logits) -> torch.Tensor:
    """-log D(HR) - log(1 - D(SR)): the cross-entropy of a real/fake classifier (template: a sum)."""
    return adversarial_loss(real_logits, True, criterion) + adversarial_loss(fake_logits, False, criterion)


# --------------------------------------------------------------------------------------
# One optimisation step of each stage
# --------------------------------------------------------------------------------------
def pretrain_step(lr: torch.Tensor, hr: torch.Tensor, generator: nn.Module, optimizer: torch.optim.Optimizer,
                  precision: Precision | None = None, criterion: Criterion | None = None) -> dict[str, torch.Tensor]:
    """Stage 1 (SRResNet): one Adam step on the pixel MSE (``criterion`` None; else ``criterion(sr, hr)``).

    ``lr``: ``(N, 3, h, w)`` in [0, 1]; ``hr``: ``(N, 3, s*h, s*w)`` in [-1, 1]. Returns the
    detached loss as ``{"loss": tensor}`` (no ``.item()``: no GPU sync per step).
    """
    precision = precision or Precision("cpu", enabled=False)
    with precision.autocast():
        sr = generator(lr)                       # (N, 3, s*h, s*w) in [-1, 1]
        loss = (criterion or pixel_loss)(sr.float(), hr)
    precision.step(loss, optimizer)
    return {"loss": loss.detach()}


def gan_step(lr: torch.Tensor, hr: torch.Tensor, generator: nn.Module, discriminator: nn.Module,
             optimizer_g: torch.optim.Optimizer, optimizer_d: torch.optim.Optimizer,
             content_loss: Criterion, precision: Precision | None = None, *, beta: float = 1e-3,
             content_weight: float = 1.0, pixel_weight: float = 0.0, g_steps: int = 1, d_steps: int = 1,
             adversarial_criterion: Criterion = F.binary_cross_entropy_with_logits,
             judge: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Stage 2 (SRGAN): ``g_steps`` generator steps, then ``d_steps`` discriminator steps.

    ``lr`` in [0, 1], ``hr`` in [-1, 1] (shapes as :func:`pretrain_step`). The k = ``d_steps``
    discriminator steps reuse this batch's HR and SR images (one loader batch per iteration
    keeps the data stream, and so resuming, simple). Returns detached tensors: ``loss_g``,
    ``loss_content``, ``loss_adv``, ``loss_pixel`` (when used), ``loss_d``, and ``d_hr`` /
    ``d_sr``, the mean probability D gives real and generated images (0.5 = D cannot tell).

    ``judge``: the module G's step calls as D (default ``discriminator``). Under
    DistributedDataParallel pass the plain network there and the DDP wrapper as
    ``discriminator``: D is not trained during G's step, so it needs no gradient sync.
    """
    precision = precision or Precision("cpu", enabled=False)
    judge = discriminator if judge is None else judge
    out: dict[str, torch.Tensor] = {}

    # ---- generator: make D call G's images real, stay close to HR in VGG space ----
    # D is frozen here: its weights are the fixed judge of this step. Without this, backward
    # would also fill D's .grad with the *generator's* objective (wasted work, and wrong if
    # anyone forgot to zero them before D's step).
    discriminator.requires_grad_(False)
    for _ in range(g_steps):
        with precision.autocast():
            sr = generator(lr)                                    # (N, 3, H, W) in [-1, 1]
            loss_content = content_loss(sr, hr)
            loss_adv = adversarial_loss(judge(sr), True, adversarial_criterion)  # -log D(G(LR))
            loss_g = content_weight * loss_content + beta * loss_adv
            if pixel_weight:
                loss_pixel = pixel_loss(sr.float(), hr)
                loss_g = loss_g + pixel_weight * loss_pixel
                out["loss_pixel"] = loss_pixel.detach()
        precision.step(loss_g, optimizer_g)
    discriminator.requires_grad_(True)

    # ---- discriminator: tell HR (label 1) from SR (label 0) ----
    # Why detach? D's loss must only move D. Without detach, backward would run through G
    # too (wasted) and, worse, push G's gradients towards making its images *easier* to spot.
    sr = sr.detach()
    for _ in range(d_steps):
        with precision.autocast():
            hr_logits, sr_logits = discriminator(hr), discriminator(sr)
            loss_d = discriminator_loss(hr_logits, sr_logits, adversarial_criterion)
        precision.step(loss_d, optimizer_d)

    out.update(loss_g=loss_g.detach(), loss_content=loss_content.detach(), loss_adv=loss_adv.detach(),
               loss_d=loss_d.detach(), d_hr=torch.sigmoid(hr_logits.detach().float()).mean(),
               d_sr=torch.sigmoid(sr_logits.detach().float()).mean())
    return out


def loss_balance(means: Mapping[str, float], beta: float, content_weight: float = 1.0,
                 pixel_weight: float = 0.0, content_term: str = "l_VGG") -> tuple[str, bool]:
    """How G's loss splits between its terms: one log line, and whether the adversarial term
    dominates.

    ``means``: mean ``loss_content`` and ``loss_adv`` (and ``loss_pixel`` when used) over the
    first batches of stage 2 (:func:`gan_step`'s outputs). The terms as they enter G's loss are
    ``content_weight * l_VGG`` (+ ``pixel_weight * l_MSE``) and ``beta * l_Gen``. When the
    adversarial term is the larger one, G learns to fool D more than to match HR in VGG space:
    the images drift (colour casts, invented texture). The usual cause is a content loss scaled
    down twice (``vgg_rescale`` 1/12.75 on torchvision's VGG, or with ``content_weight`` 0.006).
    ``content_term`` names the content loss in the line (``"l_MSE"`` for SRGAN-MSE).
    """
    content = content_weight * float(means["loss_content"]) + pixel_weight * float(means.get("loss_pixel", 0.0))
    adversarial = beta * float(means["loss_adv"])
    ratio = adversarial / content if content > 0 else math.inf
    side = f"content_weight x {content_term} = {content_weight * float(means['loss_content']):.4g}"
    if pixel_weight and "loss_pixel" in means:
        side += f" + pixel_weight x l_MSE = {pixel_weight * float(means['loss_pixel']):.4g}"
    line = f"{side}; beta x l_Gen = {adversarial:.4g} (adversarial / content {ratio:.3g})"
    dominates = adversarial > content
    if dominates:
        line += ("\nWARNING: the adversarial term dominates G's loss; G will chase D rather than the HR "
                 "images. Check vgg_rescale (1.0 for torchvision's VGG19), content_weight and beta.")
    return line, dominates


# --------------------------------------------------------------------------------------
# Optimisers and schedules of the two stages
# --------------------------------------------------------------------------------------
def make_pretrain_optimizer(generator: nn.Module, config: Mapping[str, Any]) -> torch.optim.Adam:
    """Stage 1: Adam(lr_pretrain, adam_betas), constant learning rate (paper: 1e-4)."""
    return torch.optim.Adam(generator.parameters(), lr=config["lr_pretrain"], betas=tuple(config["adam_betas"]))


def make_gan_optimizers(generator: nn.Module, discriminator: nn.Module, config: Mapping[str, Any]):
    """Stage 2: Adam for G (lr_g) and D (lr_d); both lrs x lr_decay_gamma after lr_decay_at * gan_iters.

    Returns ``(optimizer_g, optimizer_d, scheduler_g, scheduler_d)``; the schedulers are stepped
    once per iteration (paper: 1e-4 for 10^5 updates, then 1e-5).
    """
    betas = tuple(config["adam_betas"])
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=config["lr_g"], betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=config["lr_d"], betas=betas)
    milestone = max(1, int(round(config["lr_decay_at"] * config["gan_iters"])))
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(o, [milestone], gamma=config["lr_decay_gamma"])
                  for o in (optimizer_g, optimizer_d)]
    return optimizer_g, optimizer_d, schedulers[0], schedulers[1]


# --------------------------------------------------------------------------------------
# SRGAN's two stages as a trainer of the one loop (course_sr.training)
# --------------------------------------------------------------------------------------
BALANCE_BATCHES = 10          # stage 2's first batches, over which the loss balance is logged


class SRGANTrainer(Trainer):
    """SRResNet (stage ``pretrain``: :func:`pretrain_step`) then SRGAN (stage ``gan``:
    :func:`gan_step`), from a config, for ``course_sr.training.run``.

    Each stage gets fresh optimisers (:meth:`setup_stage`); D is built when stage 2 starts, from
    its own seed (``seed + 1``), so a run resumed at the stage boundary builds the same D as one
    that never stopped. ``config.init_from`` (a stage-1 checkpoint of another run) skips stage 1.
    On CUDA: ``channels_last``, scoped ``cudnn_benchmark``, ``compile``; under torchrun G and D are
    wrapped in DistributedDataParallel (checkpoints keep the plain modules). ``log``: where the
    stage-2 loss-balance line goes (``RunRecords.log``).
    """

    method = "srgan"
    schedule_keys = "pretrain_iters, init_from or gan_iters"

    def __init__(self, config: Mapping[str, Any], info: DistInfo, log: Callable[[str], None] = print):
        super().__init__()
        self.cfg, self.info, self.log, self.device = config, info, log, info.device
        self.arch = str(config["generator"])
        self.channels_last = bool(config["channels_last"]) and self.device.type == "cuda"
        # cuDNN autotuning for the training steps only (see cudnn_benchmark); set on every device
        # (only cuDNN reads it), so the scoping is tested on CPU too.
        self.cudnn_benchmark = bool(config["cudnn_benchmark"])
        self.precision = Precision(self.device, enabled=bool(config["amp"]))
        self.stage, self.balance = "pretrain", None
        seed_everything(config["seed"])
        self.generator = self._to_device(build_generator(config)).train()
        # What the steps call: DDP around it under torchrun (identity otherwise), then
        # torch.compile (config.compile). All share the parameters; checkpoints save the plain module.
        self.g_forward = wrap_model(self.generator, info, sync_bn=bool(config["sync_bn"]))
        if config["compile"]:
            self.g_forward = torch.compile(self.g_forward)
        self.discriminator = self.d_forward = self.vgg = self.content_loss = None
        self.nets = {"generator": self.generator}

    @staticmethod
    def stage_bounds(cfg: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        get = lambda k: cfg.get(k, DEFAULTS.get(k))                       # noqa: E731 (an older config)
        n_pre = 0 if get("init_from") else int(get("pretrain_iters"))
        return {"pretrain": (0, n_pre), "gan": (n_pre, n_pre + int(get("gan_iters")))}

    def _to_device(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def init_generator_from(self, path) -> str:
        """Start from the generator of another run's checkpoint (``config.init_from``)."""
        init, info = load_generator(path)
        self.generator.load_state_dict(init.state_dict())
        return (f"generator initialised from {path} ({info['stage']} stage, iteration {info['iteration']}); "
                "stage 1 (pretrain) is skipped in this run")

    def describe(self) -> str:
        return (f"device {self.device}, {self.precision.describe()}, channels_last={self.channels_last}, "
                f"cudnn_benchmark={self.cudnn_benchmark}, compile={bool(self.cfg['compile'])}; "
                f"generator {self.arch}: {count_parameters(self.generator):,} parameters")

    def prepare(self, stop_at: int) -> None:
        """Build the content-loss VGG now when the run will reach stage 2, so a missing download
        or a refused setting fails before hours of stage 1, not after."""
        cfg = self.cfg
        if stop_at <= self.bounds["gan"][0] or cfg["content_loss"] == "mse" or self.vgg is not None:
            return                                          # SRGAN-MSE: the content loss is the pixel MSE
        if cfg["vgg_weights"] == "random" and not cfg["allow_random_vgg"]:
            raise ValueError("vgg_weights='random' gives a meaningless content loss: the SRGAN stage "
                             "needs the ImageNet VGG19 (vgg_weights='imagenet'). For tests or the quick "
                             "mode only, set allow_random_vgg=True.")
        self.vgg = self._to_device(build_vgg(cfg))

    def setup_stage(self, stage: str) -> None:
        """Build the optimisers of ``stage`` (and D and the content loss for the GAN stage)."""
        cfg = self.cfg
        self.stage = stage
        if stage == "pretrain":
            self.optimizers, self.schedulers = {"g": make_pretrain_optimizer(self.generator, cfg)}, {}
            return
        self.prepare(self.bounds["gan"][1])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg["seed"]) + 1)
            self.discriminator = self._to_device(build_discriminator(cfg)).train()
        self.nets["discriminator"] = self.discriminator
        self.d_forward = wrap_model(self.discriminator, self.info, sync_bn=bool(cfg["sync_bn"]))
        self.content_loss = pixel_loss if cfg["content_loss"] == "mse" else ContentLoss(self.vgg, cfg["vgg_rescale"])
        opt_g, opt_d, sched_g, sched_d = make_gan_optimizers(self.generator, self.discriminator, cfg)
        self.optimizers, self.schedulers = {"g": opt_g, "d": opt_d}, {"g": sched_g, "d": sched_d}
        self.log(f"stage gan: discriminator {count_parameters(self.discriminator):,} parameters, "
                 f"content loss {content_loss_name(cfg)}, beta={cfg['beta']}")

    def step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        """One iteration of the current stage on a loader batch ``(lr, hr)``, both in [0, 1]."""
        cfg = self.cfg
        lr = batch[0].to(self.device, non_blocking=True)                                   # [0, 1]
        hr = convert_image(batch[1].to(self.device, non_blocking=True), "[0, 1]", "[-1, 1]")  # [-1, 1]
        if self.channels_last:
            lr, hr = lr.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
        with cudnn_benchmark(self.cudnn_benchmark):
            if self.stage == "pretrain":
                out = pretrain_step(lr, hr, self.g_forward, self.optimizers["g"], self.precision)
            else:
                out = gan_step(lr, hr, self.g_forward, self.d_forward, self.optimizers["g"], self.optimizers["d"],
                               self.content_loss, self.precision, beta=cfg["beta"],
                               content_weight=cfg["content_weight"], pixel_weight=cfg["pixel_weight"],
                               g_steps=int(cfg["g_steps"]), d_steps=int(cfg["d_steps"]), judge=self.discriminator)
        self.lr_used = float(self.optimizers["g"].param_groups[0]["lr"])       # what this step used
        for s in self.schedulers.values():
            s.step()
        if self.stage == "gan":
            self._watch_balance(out, iteration)
        return out

    def _watch_balance(self, out: Mapping[str, torch.Tensor], iteration: int) -> None:
        """Over stage 2's first batches: is G's loss led by the content term or by beta x l_Gen?"""
        begin, end = self.bounds["gan"]
        local, at = iteration + 1 - begin, min(BALANCE_BATCHES, end - begin)
        if local > at:
            return
        if self.balance is None:
            self.balance = WindowMeans()
        self.balance.add({k: v for k, v in out.items() if k in ("loss_content", "loss_adv", "loss_pixel")})
        if local == at:
            cfg, n = self.cfg, self.balance.n
            where = f"in stage gan between iterations {iteration + 2 - n} and {iteration + 1}"
            line, _ = loss_balance(self.balance.pop(where), cfg["beta"], cfg["content_weight"], cfg["pixel_weight"],
                                   "l_MSE" if cfg["content_loss"] == "mse" else "l_VGG")
            self.log(f"loss balance over the first {n} batches of stage gan: {line}")
            self.balance = None


# --------------------------------------------------------------------------------------
# The template's epoch functions (kept working; the training loop is the recommended way)
# --------------------------------------------------------------------------------------
def _check(loss: float, what: str, epoch: int, i: int) -> None:
    if not math.isfinite(loss):
        raise NonFiniteError(f"{what} became {loss} at epoch {epoch}, batch {i}: stopping this epoch "
                             "(lower the learning rate, or resume from the last good checkpoint)")


def pretrain(train_loader, generator, content_loss_criterion, optimizer, epoch, device, print_freq,
             precision: Precision | None = None):
    """One epoch of stage 1 (SRResNet on pixel MSE), in the template's style.

    ``content_loss_criterion`` compares images (e.g. ``nn.MSELoss()``); batches are
    ``(lr, hr)`` in [0, 1] (``SRDataset``), HR is converted to [-1, 1] here. Returns the
    epoch's mean loss.
    """
    generator.train()
    precision = precision or Precision(device, enabled=False)
    losses, batch_time, start = AverageMeter(), AverageMeter(), time.time()
    for i, (lr_imgs, hr_imgs) in enumerate(train_loader):
        lr_imgs = lr_imgs.to(device)                                             # [0, 1]
        hr_imgs = convert_image(hr_imgs.to(device), "[0, 1]", "[-1, 1]")        # [-1, 1]
        loss = pretrain_step(lr_imgs, hr_imgs, generator, optimizer, precision, content_loss_criterion)["loss"]
        losses.update(loss.item(), lr_imgs.size(0))
        _check(losses.val, "the pixel loss", epoch, i)
        batch_time.update(time.time() - start)
        start = time.time()
        if i % print_freq == 0:
            print(f"Epoch: [{epoch}][{i}/{len(train_loader)}]----"
                  f"Batch Time {batch_time.val:.3f} ({batch_time.avg:.3f})----"
                  f"MSE Loss {losses.val:.4f} ({losses.avg:.4f})")
    return losses.avg


def train(train_loader, generator, discriminator, truncated_vgg19, content_loss_criterion,
          adversarial_loss_criterion, optimizer_g, optimizer_d, epoch, device, beta, print_freq,
          vgg_rescale: float = DEFAULTS["vgg_rescale"], precision: Precision | None = None):
    """One epoch of stage 2 (SRGAN), the template's function with the template's arguments.

    ``truncated_vgg19`` normalises its own input (give it [-1, 1] images);
    ``content_loss_criterion`` compares feature maps (``nn.MSELoss()``);
    ``adversarial_loss_criterion`` takes logits and labels (``nn.BCEWithLogitsLoss()``).
    ``vgg_rescale`` 1.0 is the template and the kit's default (``config.vgg_rescale``); the
    paper's 1/12.75 is an option. Each batch runs :func:`gan_step` with the config's defaults for
    what the template does not pass (``content_weight``, ``pixel_weight``, ``g_steps``, ``d_steps``). Returns ``(mean perceptual loss, mean discriminator loss)``.
    """
    generator.train()
    discriminator.train()
    precision = precision or Precision(device, enabled=False)
    content_loss = ContentLoss(truncated_vgg19, vgg_rescale, content_loss_criterion)
    losses_c, losses_a, losses_d = AverageMeter(), AverageMeter(), AverageMeter()
    batch_time, start = AverageMeter(), time.time()
    for i, (lr_imgs, hr_imgs) in enumerate(train_loader):
        lr_imgs = lr_imgs.to(device)                                             # [0, 1]
        hr_imgs = convert_image(hr_imgs.to(device), "[0, 1]", "[-1, 1]")        # [-1, 1]
        out = gan_step(lr_imgs, hr_imgs, generator, discriminator, optimizer_g, optimizer_d, content_loss, precision,
                       beta=beta, content_weight=DEFAULTS["content_weight"], pixel_weight=DEFAULTS["pixel_weight"],
                       g_steps=DEFAULTS["g_steps"], d_steps=DEFAULTS["d_steps"],
                       adversarial_criterion=adversarial_loss_criterion)
        n = lr_imgs.size(0)
        losses_c.update(out["loss_content"].item(), n)
        losses_a.update(out["loss_adv"].item(), n)
        losses_d.update(out["loss_d"].item(), n)
        _check(losses_c.val + losses_a.val + losses_d.val, "a GAN loss", epoch, i)
        batch_time.update(time.time() - start)
        start = time.time()
        if i % print_freq == 0:
            print(f"Epoch: [{epoch}][{i}/{len(train_loader)}]----"
                  f"Batch Time {batch_time.val:.3f} ({batch_time.avg:.3f})----"
                  f"Cont. Loss {losses_c.val:.4f} ({losses_c.avg:.4f})----"
                  f"Adv. Loss {losses_a.val:.4f} ({losses_a.avg:.4f})----"
                  f"Disc. Loss {losses_d.val:.4f} ({losses_d.avg:.4f})")
    return losses_c.avg + beta * losses_a.avg, losses_d.avg
