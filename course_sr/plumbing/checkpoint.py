"""Checkpoints: plain state dicts written atomically, resumed exactly, loaded without the notebook.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so
``torch.load(path, weights_only=True)`` reads it (no pickled modules, no code runs)::

    {"format": "course_sr/1",
     "method": "srgan", "stage": "pretrain" | "gan" | ..., "iteration": int (global, all stages),
     "config": to_plain(cfg),                  # everything needed to rebuild the networks
     "arch": {"generator": "srresnet"},        # which SR network models["generator"] is
     "models": {"generator": sd, "discriminator": sd, ...},  # "generator" = the SR net used at inference
     "optimizers": {...}, "schedulers": {...},  # last.pt only: best.pt / *_end.pt hold weights only
     "scalers": {"g": sd, "d": sd} | {},       # last.pt only: one GradScaler per optimiser (fp16 runs)
     "history": {"<stage>/<name>": [[step, value], ...]},   # RunRecords.state_dict()
     "rng": capture_rng_state(device),         # rank 0's; under torchrun also
     "rng_ranks": [capture_rng_state(device) of rank r, ...],
     "best_psnr": float}

Checkpoints written before the per-optimiser scalers had one ``"scaler"`` entry; they still
resume (:func:`scaler_states`).

Writes are atomic (:func:`save_checkpoint`): the bytes go to a temporary file in the same
folder, are flushed and fsync'ed, then ``os.replace`` swaps the name in one step. A process
killed mid-save (a Colab disconnect) leaves the previous file untouched; at worst a stray
``.<name>.<pid>.tmp`` file remains, which the next run in that folder removes
(:func:`remove_stray_tmp`). The folder may be on Google Drive. A full disk or a read-only
folder while saving is a :class:`CheckpointWriteError` naming the file ("disk full"), and the
previous checkpoint stays as it was.

Every checkpoint carries a checksum of its contents, ``"checksum": {"sha256": hex}``: SHA-256
over every entry (keys, numbers, strings, and each tensor's dtype, shape and bytes; see
:func:`content_digest`). ``torch.load`` checks no CRC, so a file damaged on its way through a
Drive sync would otherwise load and train on: :func:`load_checkpoint` recomputes the digest and
refuses a file whose contents changed (:class:`CheckpointError`, naming the path). The returned
dict has no ``"checksum"`` entry. Checkpoints written before checksums (course_sr before issue
17) still load, unverified, with one warning per file (``warnings.warn``).
"""
from __future__ import annotations

import hashlib
import os
import random
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from course_sr.plumbing.errors import DISK_FULL_ERRNOS, READ_ONLY_ERRNOS, UserError

FORMAT = "course_sr/1"


class NonFiniteError(UserError, FloatingPointError):
    """A loss or a weight became NaN/inf: the stage stops, the last good checkpoint is kept."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used: corrupt, truncated, not a course_sr file, a checksum
    that does not match, or one that does not fit the run's config (the message names the file
    and, for a mismatch, the settings that differ)."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """No checkpoint at the given path."""


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written: the disk is full or the folder is read-only. The
    message names the file; the previous checkpoint of that name is intact."""


# --------------------------------------------------------------------------------------
# RNG states (python, numpy, torch CPU, every CUDA device), as plain tensors/lists
# --------------------------------------------------------------------------------------
def capture_rng_state(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Every RNG state a training step of this process may draw from, weights_only-loadable.

    ``"cuda"``: ``[state]`` of the generator of ``device`` when it is a CUDA device (the GPU this
    process trains on), else ``[]``. Under torchrun each rank captures its own (rank r's GPU is
    r), and the training loop keeps them all (``"rng_ranks"``): restoring rank 0's GPU state on every
    rank would give every process the same stream it never had.
    """
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    device = torch.device(device)
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
    }
    return state


def restore_rng_state(state: Mapping[str, Any], device: str | torch.device = "cpu") -> None:
    """Undo :func:`capture_rng_state`: python, numpy, torch, and ``device``'s CUDA generator
    when ``device`` is a CUDA device and the state has one (a CPU state resumed on a GPU
    leaves the GPU's seeded generator as it is)."""
    version, mt_state, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), int(pos),
                         int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    device = torch.device(device)
    if cuda and device.type == "cuda":
        torch.cuda.set_rng_state(cuda[0].cpu(), device)


def rank_rng_state(ckpt: Mapping[str, Any], rank: int = 0) -> Mapping[str, Any]:
    """The RNG state process ``rank`` resumes with: its own (``rng_ranks[rank]``) when the
    checkpoint was written by at least ``rank + 1`` processes, else rank 0's (``rng``)."""
    ranks = ckpt.get("rng_ranks") or []
    return ranks[rank] if rank < len(ranks) else ckpt["rng"]


def scaler_states(ckpt: Mapping[str, Any], names) -> dict[str, Any]:
    """The grad-scaler states of a checkpoint by optimiser name (``{}`` when it has none).

    ``"scalers"`` as written now; older checkpoints had ``"scaler"``: the SRGAN loop's one
    scaler shared by G and D (``None``, or one GradScaler state, whose scale then seeds every
    optimiser's scaler), or CycleSR's ``{name: state}``.
    """
    if "scalers" in ckpt:
        return dict(ckpt["scalers"] or {})
    legacy = ckpt.get("scaler") or {}
    if "scale" in legacy:                  # one GradScaler state for all
        return {name: legacy for name in names}
    return dict(legacy)


# --------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------
def first_non_finite(models: Mapping[str, Mapping[str, torch.Tensor]]) -> str | None:
    """``"<model>.<key>"`` of the first floating-point tensor with a NaN/inf value, or None."""
    for name, sd in models.items():
        for key, t in sd.items():
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return f"{name}.{key}"
    return None


def check_finite(models: Mapping[str, Mapping[str, torch.Tensor]], where: str = "") -> None:
    """Raise :class:`NonFiniteError` naming the first NaN/inf tensor among model state dicts."""
    bad = first_non_finite(models)
    if bad is not None:
        raise NonFiniteError(f"{bad} has NaN/inf values{where}: not saving these weights")


def _feed(h, obj: Any) -> None:
    """Hash ``obj`` (a checkpoint entry) into ``h``, type-tagged so that 1, 1.0, "1" and True differ."""
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)};".encode())
        for k, v in obj.items():             # insertion order: torch.save/torch.load keep it
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)};".encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        h.update(f"S{len(b)};".encode() + b)
    elif isinstance(obj, bool) or obj is None:
        h.update(f"{obj!r};".encode())
    elif isinstance(obj, int):
        h.update(f"I{obj};".encode())
    elif isinstance(obj, float):
        h.update(f"F{obj.hex()};".encode())
    elif isinstance(obj, bytes):
        h.update(f"Y{len(obj)};".encode() + obj)
    else:                                    # anything else weights_only can load (torch.Size, dtypes)
        h.update(f"R{obj!r};".encode())


def content_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's contents, its ``"checksum"`` entry left out: every key and
    value in order, tensors by dtype, shape and bytes (on the CPU, so a GPU run and its copy
    agree). What :func:`save_checkpoint` stores and :func:`load_checkpoint` verifies."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


def remove_stray_tmp(folder: str | os.PathLike) -> int:
    """Delete the ``.<name>.pt.<pid>.tmp`` files that saves killed mid-write left in ``folder``;
    returns how many. (Call it before this process saves: its own temporary files are never
    left behind by a save that returned.)"""
    folder = Path(folder)
    n = 0
    for p in folder.glob(".*.pt.*.tmp") if folder.is_dir() else ():
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


def _write_error(err: BaseException, path: Path) -> CheckpointWriteError | None:
    """The one-line error for a failed write of ``path``, or None when ``err`` is not a full
    disk or a read-only folder. torch reports a write that ran out of space as a RuntimeError
    from its zip writer ("[enforce fail at inline_container.cc:...] unexpected pos ...")."""
    text = str(err)
    if (isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS) or (
            isinstance(err, RuntimeError) and ("unexpected pos" in text or "PytorchStreamWriter failed" in text
                                               or "No space left" in text)):
        return CheckpointWriteError(f"disk full while writing checkpoint {path}: free some space (or move the run "
                                    f"folder), then resume; the previous {path.name} is intact")
    if isinstance(err, OSError) and err.errno in READ_ONLY_ERRNOS:
        return CheckpointWriteError(f"cannot write checkpoint {path}: the folder {path.parent} is read-only "
                                    f"({os.strerror(err.errno)}); make it writable or choose another --out")
    return None


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike, check: bool = True) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    ``state`` should follow the module docstring; ``format`` is filled in when missing, and the
    ``checksum`` (:func:`content_digest`) is added. With ``check`` (default) the model weights
    are checked first and a NaN/inf raises :class:`NonFiniteError` without touching ``path``, so
    ``last.pt`` never holds broken weights. A full disk or a read-only folder raises
    :class:`CheckpointWriteError` (naming ``path``), leaving the previous file as it was.
    Returns the path.
    """
    path = Path(path)
    state = {k: v for k, v in state.items() if k != "checksum"}
    state.setdefault("format", FORMAT)
    if check and "models" in state:
        check_finite(state["models"], f" (while saving {path})")
    state["checksum"] = {"sha256": content_digest(state)}
    # Same folder, so os.replace is a rename on one file system (atomic, also on Drive mounts).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())     # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        clear = _write_error(err, path)
        if clear is not None:
            raise clear from err
        raise
    try:                              # make the rename itself durable (not possible everywhere)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    verify: bool = True) -> dict[str, Any]:
    """Read a course_sr checkpoint with ``torch.load(weights_only=True)`` and verify its checksum.

    Returns the checkpoint's dict without its ``"checksum"`` entry. A file written before
    checksums loads unverified, with a warning.

    ``verify=False`` is a read for metadata only (``config``, ``history``, ``iteration``...:
    what the experiment report shows): the file is memory-mapped, so only the entries touched
    are read from disk (a paper-size ``last.pt`` is hundreds of MB), and the checksum is NOT
    verified (that would read every tensor); the format is still checked. Never use it for
    weights that will be trained on or scored: a damaged file would pass. Files in torch's
    legacy (non-zip) format cannot be memory-mapped and are read whole.

    Raises:
        CheckpointNotFoundError (a FileNotFoundError): no file at ``path``.
        CheckpointError (a ValueError): the file is corrupt/truncated, its contents do not match
            its checksum, or it is not a course_sr checkpoint (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    try:
        if verify:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        else:
            try:
                ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
            except RuntimeError:     # a legacy (non-zip) file cannot be memory-mapped: read it whole
                ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickle error, a pickled module (weights_only refuses)
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt, truncated, or not a weights-only "
                              f"torch file ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a course_sr checkpoint (format {found!r}, expected {FORMAT!r}); "
                              "course_sr checkpoints are written by course_sr.training / save_checkpoint")
    stored = ckpt.pop("checksum", None)
    if not verify:
        return ckpt
    if stored is None:
        warnings.warn(f"{path} has no checksum (written by an older course_sr): loaded without verifying "
                      "its contents", stacklevel=2)
    elif not isinstance(stored, Mapping) or stored.get("sha256") != content_digest(ckpt):
        raise CheckpointError(f"checkpoint {path} is corrupt: its contents do not match its checksum (damaged "
                              "while copied or synced?); use another copy, or an earlier checkpoint of the run")
    return ckpt


def checkpoint_info(ckpt: Mapping[str, Any], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a checkpoint holds, in a few words: scale, arch, output_range, method, stage, ..."""
    cfg = ckpt.get("config", {})
    return {
        "name": Path(path).stem if path is not None else None,
        "path": str(path) if path is not None else None,
        "scale": int(cfg.get("scaling_factor", 4)),
        "arch": ckpt.get("arch", {}).get("generator", cfg.get("generator", "srresnet")),
        "output_range": None,              # filled in by load_generator from the built network
        "method": ckpt.get("method", cfg.get("method")),
        "stage": ckpt.get("stage"),
        "iteration": int(ckpt.get("iteration", 0)),
        "best_psnr": ckpt.get("best_psnr"),
    }
