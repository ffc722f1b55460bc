"""What the one training loop (``course_sr.training``) needs from a method, and the resume rules.

A method (SRGAN in ``course_sr.solver``, CycleSR and dual regression in
``course_sr.unpaired.cyclesr``) is a :class:`Trainer`: its networks, optimisers and one
``step``. The loop owns everything else (data, logging, validation, checkpoints, resuming),
so every method resumes, logs and stops on a NaN the same way.

The protocol (attributes and methods the loop calls)::

    method            "srgan" | "cyclesr" | "dual" (written into checkpoints)
    nets              {name: module}: checkpoint["models"]; nets["generator"] is the SR network
    optimizers, schedulers, precision      (plumbing.precision.Precision: a scaler per optimiser)
    stage_bounds(cfg) {stage: (begin, end)} in global iterations, in order (a static method:
                      the loop also applies it to a checkpoint's own config)
    setup_stage(s)    build what stage s trains with (SRGAN: its optimisers; D for "gan")
    prepare(stop_at)  build what a later stage needs now, so a refusal comes before hours of work
    step(batch, i)    one iteration on a loader batch -> {name: detached tensor} to log
    validates(s)      whether stage s is validated (CycleSR's CycleGAN-only warm-up is not)
    lr_used           the generator's lr of the last step (logged), or None
    state_dict() / load_state_dict(state, same_stage, source)

The resume rules: a checkpoint fixes the method, the seed and the network sizes
(:func:`check_resumable` refuses others, naming ``n_blocks 2 vs 4``); weights that do not load
are one line (:func:`mismatch_error`); inside a stage the config's optimiser settings are
applied to the restored optimisers (:func:`restore_optimizer`), so "lower the learning rate,
then resume" after a NaN (:func:`stopped_by_non_finite`) does what it says.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from course_sr.config import DEFAULTS, to_plain
from course_sr.plumbing.checkpoint import CheckpointError, NonFiniteError, scaler_states
from course_sr.plumbing.distributed import all_reduce_mean
from course_sr.plumbing.precision import Precision

# Settings a resume cannot change: the network sizes (the weights would not fit) and the seed
# (every random stream is restored from the checkpoint, so a new seed would only be logged).
ARCH_KEYS = {
    "srgan": ("scaling_factor", "generator", "large_kernel_size", "small_kernel_size", "n_channels", "n_blocks",
              "bicubic_residual", "d_kernel_size", "d_n_channels", "d_n_blocks", "d_fc_size"),
    "cyclesr": ("scaling_factor", "sr_net", "SR_nb", "SR_nf", "SR_norm_type", "bicubic_residual", "cyc_ngf", "cyc_ndf", "cyc_n_blocks",
                "cyc_n_layers_D", "cyc_norm", "cyc_up_mode", "cyc_residual", "cyc_noise_nc"),
    "dual": ("scaling_factor", "sr_net", "SR_nb", "SR_nf", "SR_norm_type", "bicubic_residual", "dual_nf"),
    "paired": ("scaling_factor", "sr_net", "SR_nb", "SR_nf", "SR_norm_type", "bicubic_residual"),
}
SRRESNET_KEYS = ("large_kernel_size", "small_kernel_size", "n_channels", "n_blocks", "bicubic_residual")
FIXED_ON_RESUME = ("method", "seed")
RESUME_ONLY = ("optimizers", "schedulers", "scalers")   # in last.pt only: best.pt / *_end.pt hold weights
LR_KEYS = {"pretrain": "lr_pretrain", "gan": "lr_g / lr_d", "warmup": "cyc_lr", "sr": "SR_lr",
           "joint": "cyc_lr / SR_lr", "dual": "lr_pretrain", "paired": "SR_lr"}


class Trainer:
    """The shared part of every method (see the module docstring for the protocol).

    Subclasses set ``method``, ``cfg``, ``device``, ``nets``, ``optimizers``, ``precision`` and
    implement ``stage_bounds`` and ``step``. ``persistent_optimizers``: the optimisers live
    through every stage (CycleSR, dual), so a resume restores them also at a stage boundary;
    SRGAN builds new ones per stage.
    """

    method = ""
    schedule_keys = ""                 # the settings that place the stages (named when a resume does not fit)
    persistent_optimizers = False
    lr_view = "bicubic"                # the LR column of the validation grid: "bicubic" or "nearest"
    lr_used: float | None = None
    cfg: Mapping[str, Any]
    device: torch.device
    nets: dict[str, nn.Module]
    precision: Precision

    def __init__(self):
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}

    @property
    def sr_net(self) -> nn.Module:
        """The SR network (LR in [0, 1]; ``scale``, ``output_range``): what validation and
        inference use, ``models["generator"]`` in checkpoints."""
        return self.nets["generator"]

    @staticmethod
    def stage_bounds(cfg: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        raise NotImplementedError

    @property
    def bounds(self) -> dict[str, tuple[int, int]]:
        """This trainer's stages under its own config (:meth:`stage_bounds`)."""
        return self.stage_bounds(self.cfg)

    @property
    def total_iters(self) -> int:
        """Iterations of the whole schedule: where the last stage ends."""
        return max(end for _, end in self.bounds.values())

    def setup_stage(self, stage: str) -> None:
        """Nothing to build per stage unless a method says otherwise."""

    def prepare(self, stop_at: int) -> None:
        """Nothing to build ahead unless a method says otherwise."""

    def validates(self, stage: str) -> bool:
        return True

    def step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> str:
        """One log line: device, precision, the networks' sizes."""
        return ""

    def model_states(self) -> dict[str, dict[str, torch.Tensor]]:
        return {k: net.state_dict() for k, net in self.nets.items()}

    def state_dict(self) -> dict[str, Any]:
        """``models`` / ``optimizers`` / ``schedulers`` / ``scalers`` in the checkpoint layout."""
        return {"models": self.model_states(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "scalers": self.precision.state_dict(self.optimizers)}

    def load_state_dict(self, state: Mapping[str, Any], same_stage: bool = True,
                        source: Any = "the checkpoint") -> list[str]:
        """Restore the networks always; the optimisers, schedulers and grad scalers when the
        checkpoint was written inside the current stage (or they live through every stage).
        Returns one ``"optimizer g lr 0.001 -> 1e-05"`` line per setting of the config applied
        to a restored optimiser (see :func:`restore_optimizer`)."""
        try:
            for k, net in self.nets.items():
                if k in state["models"]:
                    net.load_state_dict(state["models"][k])
        except RuntimeError as err:
            raise mismatch_error(err, state, to_plain(self.cfg), source) from err
        if not (same_stage or self.persistent_optimizers):
            return []
        if "optimizers" not in state:
            raise CheckpointError(f"{source} holds weights only (no optimiser state: best.pt and *_end.pt are "
                                  f"for evaluation), so it cannot continue a stage at iteration "
                                  f"{state.get('iteration')}; resume from checkpoints/last.pt instead")
        applied: list[str] = []
        for k, opt in self.optimizers.items():
            applied += restore_optimizer(opt, state["optimizers"][k], self.schedulers.get(k),
                                         state.get("schedulers", {}).get(k), name=f"optimizer {k}")
        self.precision.load_state_dict(scaler_states(state, self.optimizers), self.optimizers)
        return applied


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
# Resume rules
# --------------------------------------------------------------------------------------
def _differences(old: Mapping[str, Any], new: Mapping[str, Any], keys) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for each of ``keys`` that differs; a key an older checkpoint's config
    lacks counts as its default (the kit's behaviour before the key existed)."""
    def value(cfg, k):
        return cfg.get(k, DEFAULTS.get(k))

    return {k: (value(old, k), value(new, k)) for k in keys if value(old, k) != value(new, k)}


def say_differences(diff: Mapping[str, tuple[Any, Any]]) -> str:
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
        sizes = sizes + SRRESNET_KEYS
    written_by = ckpt.get("method", old.get("method", method))
    if written_by != method:
        raise CheckpointError(f"{path} is a {written_by!r} checkpoint, but config.method is {method!r}: resume it "
                              f"with its own method, or start a new run (--overwrite, or a new --out)")
    diff = {**_differences(old, config, FIXED_ON_RESUME), **_differences(old, config, sizes)}
    if diff:
        raise CheckpointError(
            f"checkpoint {path} does not fit this config: {say_differences(diff)} (checkpoint vs config); "
            "network sizes, method and seed cannot change on resume: set them back, or start a new run "
            "(--overwrite, or a new --out)")


def check_stage(ckpt: Mapping[str, Any], bounds_now: Mapping[str, tuple[int, int]],
                bounds_then: Mapping[str, tuple[int, int]], keys: str, path: Any) -> None:
    """Refuse a checkpoint that does not lie inside its stage under this config's schedule, or
    whose stage would now begin elsewhere (the settings in ``keys`` changed under a run that is
    past that point)."""
    stage, it = ckpt["stage"], int(ckpt["iteration"])
    begin, end = bounds_now.get(stage, (0, -1))
    old_begin = bounds_then.get(stage, (begin, end))[0]
    if not begin <= it <= end or begin != old_begin:
        raise CheckpointError(f"checkpoint {path} is at iteration {it} of stage {stage}, outside that stage under "
                              f"this config (iterations {begin}-{end}, the checkpoint's from {old_begin}): {keys} "
                              "changed; set them back, or start a new run (--overwrite, or a new --out)")


def mismatch_error(err: Exception, ckpt: Mapping[str, Any], config: Mapping[str, Any], path: Any) -> CheckpointError:
    """The one-line error for weights that do not load (``load_state_dict``'s RuntimeError):
    the file and the settings that differ, instead of PyTorch's "Missing key(s) in state_dict"."""
    diff = _differences(ckpt.get("config", {}), config, sorted(set(config) | set(ckpt.get("config", {}))))
    diff.pop("preset", None)
    said = say_differences(diff) if diff else "no setting differs (a checkpoint written by another version?)"
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
