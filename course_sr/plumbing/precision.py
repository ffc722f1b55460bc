"""Mixed precision for one device: the kit's one decision (:func:`amp_dtype`) and set-up
(:class:`Precision`), and the scoped cuDNN autotuning flag (:func:`cudnn_benchmark`).

Every training step, SRGAN's and the unpaired methods', has one code path whatever was chosen:
``with precision.autocast(): ...`` then ``precision.step(loss, optimizer, clip)``.
(``course_sr.solver`` re-exports these three names: ``solver.amp_dtype`` is the course's name.)
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Mapping

import torch

BF16_CAPABILITY = (8, 0)


def amp_dtype(capability: tuple[int, int]) -> torch.dtype:
    """The autocast dtype for a CUDA GPU of compute ``capability`` ``(major, minor)``.

    bfloat16 from 8.0 up (A100, L4, RTX 30xx/40xx, H100): tensor cores run it, and its float32
    exponent range needs no loss scaling. float16 (with a grad scaler) below: a T4 (7.5) or a
    V100 (7.0) has float16 tensor cores but no bfloat16 ones, and cuDNN has no bfloat16
    convolutions there. (``torch.cuda.is_bf16_supported()`` is no guide: by default it also
    counts emulated bfloat16 and answers True on a T4.)

        >>> amp_dtype((7, 5)), amp_dtype((8, 0))
        (torch.float16, torch.bfloat16)
    """
    major, minor = (int(c) for c in capability)
    return torch.bfloat16 if (major, minor) >= BF16_CAPABILITY else torch.float16


class Precision:
    """Autocast and loss scaling for one device: the one mixed-precision set-up of the kit.

    ``Precision(device, enabled)``: on CUDA with ``enabled``, autocast in :func:`amp_dtype` of
    the GPU's compute capability; float16 adds a ``GradScaler`` PER OPTIMISER (created on its
    first :meth:`step`), so an overflow in D's gradients halves D's loss scale only, never G's.
    On CPU, or ``enabled=False``: float32, no scaler (training on CPU keeps float32 numerics).
    ``dtype=torch.float16 / torch.bfloat16`` forces autocast in that dtype on any device
    (tests and benchmarks run the float16 + ``GradScaler("cpu")`` path on CPU that way).

    The steps have one code path whatever was chosen: ``with precision.autocast(): ...`` then
    ``precision.step(loss, optimizer, clip)``. :meth:`state_dict` / :meth:`load_state_dict`
    save and restore the scalers by optimiser name.
    """

    def __init__(self, device: str | torch.device = "cpu", enabled: bool = True, dtype: torch.dtype | None = None):
        device = torch.device(device)
        self.device_type = device.type
        self.capability: tuple[int, int] | None = None
        if dtype is not None:
            if dtype not in (torch.float16, torch.bfloat16):
                raise ValueError(f"Precision: dtype must be torch.float16 or torch.bfloat16, got {dtype}")
            self.enabled, self.dtype = True, dtype
        elif enabled and device.type == "cuda":
            self.capability = tuple(torch.cuda.get_device_capability(device))
            self.enabled, self.dtype = True, amp_dtype(self.capability)
        else:
            self.enabled, self.dtype = False, torch.float32
        # bf16 has float32's exponent range: no loss scaling needed. fp16 needs it.
        self.scaling = self.enabled and self.dtype == torch.float16
        self._scalers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    def scaler(self, optimizer: torch.optim.Optimizer) -> torch.amp.GradScaler:
        """``optimizer``'s own grad scaler (disabled unless float16), made on first use."""
        if optimizer not in self._scalers:
            self._scalers[optimizer] = torch.amp.GradScaler(self.device_type, enabled=self.scaling)
        return self._scalers[optimizer]

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, clip: float = 0.0,
             per_network=None) -> None:
        """zero_grad, backward, (``clip > 0``: clip the gradient norm, on the true, unscaled
        gradients), step. The norm is that of all the optimizer's parameters together, or with
        ``per_network`` (modules whose parameters the optimizer holds) that of each network on its
        own, as Vega's CycleSR clips G and F (and both discriminators) each at 50."""
        scaler = self.scaler(optimizer)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip and clip > 0:
            scaler.unscale_(optimizer)
            groups = ([list(net.parameters()) for net in per_network] if per_network else
                      [[p for g in optimizer.param_groups for p in g["params"]]])
            for params in groups:
                torch.nn.utils.clip_grad_norm_(params, clip)
        scaler.step(optimizer)           # skipped by the scaler when fp16 grads overflowed
        scaler.update()                  # this optimiser's scale only

    def state_dict(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, dict]:
        """``{name: GradScaler state}`` for each of ``optimizers`` (``{}`` without loss scaling)."""
        if not self.scaling:
            return {}
        return {name: self.scaler(opt).state_dict() for name, opt in optimizers.items()}

    def load_state_dict(self, state: Mapping[str, Mapping], optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        """Restore the scalers :meth:`state_dict` saved. Entries of a run without loss scaling
        (bf16 or float32) are empty and skipped: a float16 run then starts with fresh scales."""
        if not self.scaling:
            return
        for name, opt in optimizers.items():
            if (state or {}).get(name):
                self.scaler(opt).load_state_dict(state[name])

    def describe(self) -> str:
        """One line for the log: what was chosen and why."""
        if not self.enabled:
            return "float32 (amp=False)" if self.device_type == "cuda" else \
                "float32 (autocast is for CUDA: training on CPU stays float32)"
        name = str(self.dtype).replace("torch.", "")
        why = ""
        if self.capability is not None:
            cc = f"compute capability {self.capability[0]}.{self.capability[1]}"
            why = f" ({cc} >= 8.0: bf16 tensor cores)" if self.dtype == torch.bfloat16 else \
                f" ({cc} < 8.0: no bf16 tensor cores)"
        scaler = ", a grad scaler per optimiser" if self.scaling else ", no grad scaler"
        return f"{name} autocast{scaler}{why}"

    def __repr__(self):
        scaler = ", grad scaler per optimiser" if self.scaling else ""
        return f"Precision({self.device_type}, {str(self.dtype).replace('torch.', '')}{scaler})"


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    """``torch.backends.cudnn.benchmark = enabled`` inside the block, the previous value after.

    Autotuning times every convolution algorithm once per input shape: a win for training's
    fixed-size crops, a loss for evaluation, where every image has its own size. So the training loop
    turns it on for the training steps only (not for validation, not for what runs after).
    Only cuDNN reads the flag: on CPU it changes nothing.
    """
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
