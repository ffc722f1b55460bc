"""Several processes, one training run: PyTorch's own distributed engine, made explicit.

A run started with ``torchrun`` is N copies of the same program; each copy (a *process*, or
*rank*) owns one GPU (or, on CPU, one share of the cores), reads its own share of every batch,
and ``DistributedDataParallel`` (DDP) averages the gradients after each backward so every copy
takes the same optimiser step and the weights stay identical::

    torchrun --nproc_per_node=2 -m course_sr train --config colab --out runs/colab2

What this module gives the training loop (``course_sr.training``):

- :func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: backend NCCL on
  CUDA (process ``LOCAL_RANK`` drives GPU ``LOCAL_RANK``), gloo on CPU. Without torchrun
  (``WORLD_SIZE`` unset or 1) it does nothing and the run is the ordinary single-process one;
  the notebooks always run that way. It returns a :class:`DistInfo`.
- :func:`wrap_model` wraps a network in DDP, optionally after :func:`convert_sync_batchnorm`;
  :func:`unwrap` gives the plain network back, so checkpoints hold plain state dicts (no
  ``module.`` prefix) and a checkpoint written by N processes loads on M, including 1.
- :func:`barrier`, :func:`broadcast_object`, :func:`gather_object`, :func:`all_reduce_mean`,
  :func:`cleanup`: the few collective calls the training loop needs; each is a no-op (or the
  identity) in a single process.

BatchNorm under DDP, the deliberate choice (``config.sync_bn``). Both the SRResNet and the
discriminator have BatchNorm. Plain DDP normalises each process's batch by *its own* mean and
variance: with 2 processes x batch 8 the statistics come from 8 images, not 16, so the run is
NOT the single-GPU run with batch 16 (the gradients differ; running statistics are those of
rank 0, which DDP broadcasts at every forward). That is what the paper-era recipes did and is
cheaper. ``sync_bn=True`` computes the statistics over the whole global batch (one extra
all-reduce per BatchNorm layer, forward and backward); then N processes x batch b take the same
step as one process with batch N*b, which the tests check to float precision. On CUDA that is
``torch.nn.SyncBatchNorm``; it refuses CPU tensors, so on CPU (gloo, the CI) the same maths
runs in :class:`AllReduceBatchNorm` below. :func:`convert_sync_batchnorm` picks one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from course_sr.plumbing.errors import UserError

__all__ = ["DistInfo", "init_distributed", "current", "cleanup", "barrier", "broadcast_object",
           "gather_object", "all_reduce_mean", "AllReduceBatchNorm", "convert_sync_batchnorm", "wrap_model", "unwrap"]


# --------------------------------------------------------------------------------------
# Who am I: the process group
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run.

    ``rank``: 0 .. world_size-1 over all machines; ``local_rank``: index on this machine (the
    GPU it drives); ``device``: where its networks and batches live. ``is_main`` (rank 0) is the
    one process that validates, logs and writes checkpoints.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when there is a process group of more than one process (DDP is used)."""
        return self.world_size > 1

    def describe(self) -> str:
        """One line for the log, e.g. ``rank 0 of 2 (local 0), cuda:0, backend nccl``."""
        if not self.distributed:
            return f"single process on {self.device}"
        return (f"rank {self.rank} of {self.world_size} (local {self.local_rank}), {self.device}, "
                f"backend {dist.get_backend()}")


def _initialized() -> bool:
    """Is there a process group to talk to (torch.distributed built in and initialised)?"""
    return dist.is_available() and dist.is_initialized()


class DeviceError(UserError, RuntimeError):
    """A device name torch does not know, or a device this machine does not have."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``config.device`` (or a ``--device``) as a torch.device; ``auto`` is cuda when available, else cpu.

    Raises:
        DeviceError: an unknown name (``banana``), or a device this machine lacks (``cuda`` without
            a GPU, ``cuda:3`` with two); the message names the value and what to use instead.
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {str(name)!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    backend = getattr(torch, device.type, None) if device.type != "meta" else None
    if backend is None or not hasattr(backend, "is_available"):
        raise DeviceError(f"device {str(name)!r} is not supported here: use auto, cpu, cuda or cuda:N")
    if not backend.is_available():
        hint = " (this PyTorch is built without CUDA)" if device.type == "cuda" and torch.version.cuda is None else ""
        raise DeviceError(f"device {str(name)!r}: no {device.type.upper()} device on this machine{hint}; use "
                          "--device cpu (or device=auto), or on Colab pick a GPU runtime")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if device.index is not None and device.index >= count:
        raise DeviceError(f"device {str(name)!r}: this machine has {count} {device.type.upper()} device(s), "
                          f"numbered 0 to {count - 1}")
    return device


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    if value is None:
        raise RuntimeError(f"WORLD_SIZE is set but {name} is not: start distributed runs with torchrun "
                           "(torchrun --nproc_per_node=N -m course_sr train ...), which sets RANK, "
                           "LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT")
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={value!r} is not an integer") from None


def _group_device(kind: str, local_rank: int) -> torch.device:
    """The device of process ``local_rank`` for device kind ``kind`` (one GPU per process)."""
    if kind != "cuda":
        return torch.device(kind)
    n = torch.cuda.device_count()
    if local_rank >= n:
        raise RuntimeError(f"LOCAL_RANK={local_rank} needs GPU {local_rank}, but only {n} CUDA device(s) "
                           "are visible: use --nproc_per_node <= the number of GPUs")
    return torch.device("cuda", local_rank)


def current(device: str | torch.device = "auto") -> DistInfo:
    """The :class:`DistInfo` of this process without joining anything.

    Reads the process group when one is initialised (NCCL: GPU ``LOCAL_RANK``; gloo: CPU, as
    :func:`init_distributed` pairs them), else a single process on ``device``.
    """
    if not _initialized():
        return DistInfo(device=resolve_device(str(device)))
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    return DistInfo(rank, world, local, _group_device("cuda" if dist.get_backend() == "nccl" else "cpu", local))


def init_distributed(config: Mapping[str, Any] | None = None) -> DistInfo:
    """Join torchrun's process group (once) and return this process's :class:`DistInfo`.

    ``config.device`` picks the KIND of device (``auto``, ``cpu``, ``cuda``); under torchrun the
    GPU index is always ``LOCAL_RANK`` (an index in ``config.device`` is ignored there). Backend:
    NCCL for CUDA, gloo for CPU. ``WORLD_SIZE`` unset or 1: no process group, a single process
    on ``config.device``. Calling it again (or after another caller joined a group) returns the
    existing group's info. Errors name the missing variable or the GPU that is not there.
    """
    name = str((config or {}).get("device", "auto"))
    if _initialized():
        return current(name)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistInfo(device=resolve_device(name))
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK")
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {var} is not set: start distributed runs with torchrun")
    device = _group_device(resolve_device(name).type, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)   # NCCL and the CUDA caching allocator use the current device
        dist.init_process_group("nccl", init_method="env://", rank=rank, world_size=world, device_id=device)
    else:
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
    return DistInfo(rank, world, local, device)


def cleanup() -> None:
    """Leave the process group (no-op when there is none). Call once, at the end of the command."""
    if _initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return _initialized() and dist.get_world_size() > 1


# --------------------------------------------------------------------------------------
# The collective calls the training loop needs (identity in a single process)
# --------------------------------------------------------------------------------------
def barrier() -> None:
    """Wait until every process gets here (e.g. while rank 0 writes a checkpoint)."""
    if not _active():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable value) on every process; ``obj`` itself when single."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order, on every process; ``[obj]`` when single.

    For what each rank brings to a checkpoint rank 0 writes (its RNG state, whether its weights
    are finite)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all processes, as a new tensor (a copy when single-process).

    For logged values: the mean of per-process mean losses over equal shares is the loss of the
    global batch. Not differentiable (see :class:`AllReduceBatchNorm` for that).
    """
    out = tensor.detach().clone()
    if not _active():
        return out
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.div_(dist.get_world_size())



# --------------------------------------------------------------------------------------
# Synchronised BatchNorm that runs on any device (CPU + gloo included)
# --------------------------------------------------------------------------------------
class AllReduceBatchNorm(_BatchNorm):
    """BatchNorm whose batch statistics are those of the GLOBAL batch (all processes).

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d/2d/3d`` (so checkpoints
    move freely between the two), the same maths as ``torch.nn.SyncBatchNorm``, but written with
    the differentiable ``torch.distributed.nn.functional.all_reduce`` so it runs wherever the
    process group runs, CPU and gloo included (``nn.SyncBatchNorm`` is GPU-only).

    Input ``(N, C, *)`` of any float dtype (statistics are accumulated in at least float32);
    output the same shape and dtype. Training (or ``track_running_stats=False``) in a process
    group of more than one process, per channel c, over the n = sum of all processes' ``N * prod(*)``
    values:

        mean_c = all_reduce(sum x) / n                 (first all-reduce; n travels with it)
        var_c  = all_reduce(sum (x - mean_c)^2) / n    (second: two passes, no cancellation)
        y      = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c

    The backward of each all-reduce is an all-reduce of the gradients (sum), so each process's
    input gradient includes what the other processes' losses owe to the shared statistics:
    exactly the gradient of plain BatchNorm on the concatenated batch. Running statistics update
    as BatchNorm's (momentum, or the cumulative average when ``momentum=None``; unbiased
    variance n/(n-1)). Evaluation with running statistics, or a single process, is plain
    BatchNorm (no communication).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"AllReduceBatchNorm expects (N, C, *) input, got shape {tuple(input.shape)}")

    def _synchronised(self) -> bool:
        if not (self.training or not self.track_running_stats):
            return False                        # eval with running statistics: nothing to share
        if not _initialized():
            return False
        return dist.get_world_size(self.process_group) > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self._synchronised():
            return super().forward(x)           # plain BatchNorm
        from torch.distributed.nn.functional import all_reduce

        group = self.process_group or dist.group.WORLD
        c = x.shape[1]
        if c != self.num_features:
            raise ValueError(f"AllReduceBatchNorm({self.num_features}) got {c} channels (shape {tuple(x.shape)})")
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        xs = x if x.dtype in (torch.float32, torch.float64) else x.float()
        local_n = xs.new_full((1,), x.numel() // c if c else 0)
        total = all_reduce(torch.cat([xs.sum(dims), local_n]), group=group)
        n = total[-1].detach()
        if self.training and float(n) <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)} "
                             "on every process together")
        mean = total[:-1] / n
        centred = xs - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims), group=group) / n        # biased, as BN normalises
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)

        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                self.running_mean.mul_(1 - f).add_(mean.detach().to(self.running_mean.dtype), alpha=f)
                unbiased = var.detach() * (n / (n - 1))
                self.running_var.mul_(1 - f).add_(unbiased.to(self.running_var.dtype), alpha=f)
        return y.to(x.dtype)

    @classmethod
    def convert(cls, module: nn.Module, process_group=None) -> nn.Module:
        """``module`` with every BatchNorm layer replaced by an AllReduceBatchNorm sharing its
        parameters and buffers (in place for children; returns the new root when the root itself
        is a BatchNorm). Already-synchronised layers are left alone."""
        if isinstance(module, _BatchNorm) and not isinstance(module, (cls, nn.SyncBatchNorm)):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group)
            if module.affine:
                new.weight, new.bias = module.weight, module.bias       # the same Parameters
            if module.track_running_stats:
                new.running_mean, new.running_var = module.running_mean, module.running_var
                new.num_batches_tracked = module.num_batches_tracked
            new.train(module.training)
            return new
        for name, child in module.named_children():
            new_child = cls.convert(child, process_group)
            if new_child is not child:
                setattr(module, name, new_child)
        return module


def _module_device(module: nn.Module) -> torch.device:
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Replace every BatchNorm of ``module`` by a synchronised one; returns the module.

    On CUDA (where the module's parameters live): ``torch.nn.SyncBatchNorm`` (fused kernels,
    NCCL). Elsewhere (CPU with gloo): :class:`AllReduceBatchNorm`, the same maths. Both keep
    the plain BatchNorm state-dict keys. Move the module to its device BEFORE converting.
    """
    if _module_device(module).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    return AllReduceBatchNorm.convert(module, process_group)


# --------------------------------------------------------------------------------------
# DDP wrapping
# --------------------------------------------------------------------------------------
def wrap_model(model: nn.Module, info: DistInfo, sync_bn: bool = False) -> nn.Module:
    """``model`` ready for this process: DDP when distributed, unchanged otherwise.

    ``model`` must already be on ``info.device``. ``sync_bn`` converts its BatchNorm layers
    first (:func:`convert_sync_batchnorm`; see the module docstring for why it is a choice).
    A model with no trainable parameter (the frozen VGG) is returned as it is: DDP has nothing
    to average. DDP broadcasts rank 0's weights and buffers when it wraps, so every process
    starts from the same network. Use :func:`unwrap` for state dicts and attributes.
    """
    if not info.distributed:
        return model
    if not any(p.requires_grad for p in model.parameters()):
        return model
    where = _module_device(model)
    if where != info.device and not (where.type == info.device.type == "cpu"):
        raise ValueError(f"wrap_model: the model is on {where} but this process ({info.describe()}) "
                         f"uses {info.device}; move it there first")
    if sync_bn:
        model = convert_sync_batchnorm(model)
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain network inside DDP (``.module``) and/or ``torch.compile`` (``._orig_mod``).

    Checkpoints store ``unwrap(model).state_dict()``: the keys of the plain network, so a
    checkpoint from N processes (with or without sync BN) loads into 1, and vice versa.
    Attributes such as ``output_range`` and ``scale`` live on the plain network too.
    """
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model
