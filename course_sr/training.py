"""The one training loop: every method of the kit, from a config, resumable exactly.

    >>> from course_sr.config import get_config
    >>> result = run(get_config("quick"), "runs/quick")         # doctest: +SKIP

or, the same from a shell (the notebooks and the command call this same function)::

    python -m course_sr train --config quick --out runs/quick [--max-iters N] [--resume CKPT|auto]
                              [--overwrite] [--set key=value ...]

A method is a :class:`~course_sr.plumbing.trainer.Trainer` (``config.method``): ``srgan``
(:class:`~course_sr.solver.SRGANTrainer`: stage ``pretrain``, SRResNet on the pixel MSE, then
stage ``gan``), ``cyclesr`` (:class:`~course_sr.unpaired.cyclesr.CycleSR`: phases ``warmup`` and
``joint``) or ``dual`` (:class:`~course_sr.unpaired.cyclesr.DualRegression`). The trainer says
where its stages begin and end and does one ``step``; this loop does the rest, the same way for
all: the data stream, logging, validation, checkpoints, resuming and stopping on a NaN. The
schedule is counted in iterations (one batch each) over all stages together; ``log_every``,
``val_every`` and ``ckpt_every`` count from the start of each stage.

Run directory::

    config.yaml  log.txt  events/                  (course_sr.plumbing.records.RunRecords)
    checkpoints/last.pt                            every ckpt_every iterations and at the end
    checkpoints/best.pt                            best validation PSNR *of the current stage*
    checkpoints/<stage>_end.pt                     at each stage end (evaluate pretrain_end / gan_end)
    samples/<stage>_<iteration>.png                LR | SR | HR of the validation images

One checkpoint schema: ``method``, ``stage``, ``iteration``, ``samples_seen``, ``config``,
``arch``, ``models`` (``generator`` is the SR network), ``history``, ``rng``, ``best_psnr``,
``window``; only ``last.pt`` adds ``optimizers``, ``schedulers`` and ``scalers``.

Nothing is lost by accident: a fresh start where ``checkpoints/`` holds ``*.pt`` files is refused
(naming ``--resume auto``, ``--overwrite`` and a new ``--out``); stray ``.*.tmp`` files of killed
saves are removed; each ``<stage>_end.pt`` is written before the ``last.pt`` that records the
stage as done; every checkpoint carries a checksum, verified on load. A resume may not change the
network sizes, ``method``, ``seed`` or where a stage it is in began (``plumbing.trainer``); inside
a stage the config's optimiser settings are applied to the restored optimisers (and logged). It
restores weights, optimisers, schedulers, scalers, history, window means and every RNG (each rank
its own), and the data stream restarts at the same item: on CPU a resumed run is bit-identical to
one that never stopped; on CUDA it continues from the same state, not bit-identically (cuDNN
autotuning in the new process, atomics in some backward kernels).

Several GPUs (SRGAN): ``torchrun --nproc_per_node=N -m course_sr train ...`` (see
``course_sr.plumbing.distributed``): ``batch_size`` is PER PROCESS; only rank 0 validates, logs
and writes; a run written by N processes resumes on M where its data stream stopped.
"""
from __future__ import annotations

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

from course_sr.config import finalize, to_plain
from course_sr.data.lists import check_splits
from course_sr.data.loader import make_train_loader
from course_sr.data.sample import resolve_data
from course_sr.datasets import SRDataset
from course_sr.metrics import psnr_ssim
from course_sr.plumbing.checkpoint import (NonFiniteError, capture_rng_state, first_non_finite,
                                           load_checkpoint, rank_rng_state, remove_stray_tmp, restore_rng_state,
                                           save_checkpoint)
from course_sr.plumbing.distributed import DistInfo, barrier, broadcast_object, gather_object, init_distributed
from course_sr.plumbing.errors import READ_ONLY_ERRNOS, UserError
from course_sr.plumbing.records import RunRecords
from course_sr.plumbing.trainer import (RESUME_ONLY, Trainer, WindowMeans, check_resumable, check_stage,
                                        stopped_by_non_finite)
from course_sr.results.inference import super_resolve
from course_sr.solver import SRGANTrainer
from course_sr.unpaired.cyclesr import CycleSR, DualRegression, PairedSR
from course_sr.unpaired.data import UnpairedDataset, degraded_pairs, tensor_pairs
from course_sr.utils import centre_crop_pair, label_columns, seed_everything, to_uint8

METHODS = ("srgan", "cyclesr", "dual", "paired")


class RunExistsError(UserError, FileExistsError):
    """A fresh run was asked for in a run directory that already holds checkpoints."""


# --------------------------------------------------------------------------------------
# Data and validation (resolved here, at the entry point: datasets build nothing on disk)
# --------------------------------------------------------------------------------------
def data_config(config: Mapping[str, Any], **overrides: Any) -> EasyDict:
    """A copy of ``config`` (with ``overrides``, e.g. ``cache="none"`` for a look at the data)
    whose data paths are filled in: the embedded sample when ``data_root`` is None. Lists are
    found per split by ``course_sr.data.lists.find_data_list`` (csv_folder None: the data root's
    own, else the course's)."""
    return resolve_data(EasyDict({**copy.deepcopy(dict(config)), **overrides}))


def training_set(cfg: Mapping[str, Any]):
    """The training data of ``cfg.method`` (``cfg``'s paths filled in): ``(dataset, description)``.
    SRGAN: ``SRDataset(train_split)`` yielding ``(lr, hr)``; the unpaired methods:
    ``UnpairedDataset`` yielding ``(hr, clean_lr, real_lr)``. Every list and file is checked
    first, before the minutes of decoding a memory cache: missing data is one line naming the
    list or folder and the command that makes it."""
    synthetic = cfg.get("degradation") is not None
    real = [] if cfg.method == "srgan" or synthetic else [cfg.real_lr_split]
    check_splits(cfg, (cfg.train_split, cfg.val_split, *real))
    if cfg.method == "srgan":
        ds = SRDataset(cfg.train_split, cfg)
        return ds, ds.describe()
    ds = UnpairedDataset(cfg)
    return ds, (f"{ds.paired.describe()}; clean images {ds.n_clean}, real-LR images {len(ds.real)} "
                f"({'synthetic: ' + repr(ds.spec) if ds.spec else 'files'})")


def validation_set(cfg: Mapping[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``val_images`` of ``val_split`` as ``(lr, hr)`` tensors in [0, 1], centre-cropped
    to ``val_crop``: the list's own LR files, or for the unpaired methods with a synthetic
    ``degradation`` the HR degraded with ``test_degradation`` (its HR is then known)."""
    n, crop, s = int(cfg.val_images), int(cfg.val_crop), int(cfg.scaling_factor)
    if cfg.method != "srgan" and cfg.get("degradation") is not None:
        return tensor_pairs(degraded_pairs(cfg, cfg.val_split, cfg.test_degradation, n, crop))
    ds = SRDataset(cfg.val_split, cfg, train=False)
    return [centre_crop_pair(*ds[i], crop, s) for i in range(min(n, len(ds)))]


@torch.no_grad()
def validate(net: torch.nn.Module, images, device=None, lr_view: str = "bicubic",
             grid: bool = True) -> tuple[dict[str, float], np.ndarray | None]:
    """Mean Y-channel PSNR/SSIM (``scale`` pixels shaved, ``metrics.psnr_ssim``) of ``net`` on
    ``images`` ([(lr, hr)] in [0, 1]) and a grid ``LR | SR | HR``, one row per image (uint8 HxWx3)
    under a strip that labels the three columns.

    ``net`` is any SR network of the kit (``scale``, ``output_range``), run in eval mode through
    ``inference.super_resolve`` (its mode is restored). ``lr_view``: the LR column enlarged by
    ``"bicubic"`` (what a plain upscaler gives) or ``"nearest"`` (the pixels as they are).
    ``grid=False``: the scores only (the grid is None), for tables.
    """
    if lr_view not in ("bicubic", "nearest"):
        raise ValueError(f"lr_view must be 'bicubic' or 'nearest', got {lr_view!r}")
    s, rows, scores = int(net.scale), [], []
    for lr, hr in images:
        sr = super_resolve(net, lr, device=device).cpu()                 # (3, H, W) in [0, 1], clamped
        sr_u8, hr_u8 = to_uint8(sr, "[0, 1]"), to_uint8(hr, "[0, 1]")
        scores.append(psnr_ssim(sr_u8, hr_u8, s))
        if not grid:
            continue
        if lr_view == "nearest":
            left = to_uint8(lr, "[0, 1]").repeat(s, 0).repeat(s, 1)
        else:
            up = F.interpolate(lr.unsqueeze(0), scale_factor=s, mode="bicubic", align_corners=False)[0]
            left = to_uint8(up.clamp(0, 1), "[0, 1]")
        rows.append(np.concatenate([left, sr_u8, hr_u8], axis=1))
    psnr, ssim = (float(np.mean(v)) for v in zip(*scores))
    if not grid:
        return {"val_psnr": psnr, "val_ssim": ssim}, None
    width = max(r.shape[1] for r in rows)
    picture = np.concatenate([np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    picture = label_columns(picture, [rows[0].shape[1] // 3] * 3, (f"LR ({lr_view})", "SR", "HR"))
    return {"val_psnr": psnr, "val_ssim": ssim}, picture


def make_trainer(cfg: Mapping[str, Any], info: DistInfo, log=print) -> Trainer:
    """The trainer of ``cfg.method`` (a visible if/elif: add a method here)."""
    if cfg.method == "srgan":
        return SRGANTrainer(cfg, info, log)
    if info.world_size > 1:
        raise ValueError(f"{cfg.method} runs in one process; start it without torchrun")
    seed_everything(int(cfg.seed))
    if cfg.method == "cyclesr":
        return CycleSR(cfg, info.device)
    if cfg.method == "dual":
        return DualRegression(cfg, info.device)
    if cfg.method == "paired":
        return PairedSR(cfg, info.device)
    raise ValueError(f"unknown method {cfg.method!r}: expected one of {METHODS}")


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------
class _Loop:
    """What the loop owns besides the trainer: iteration, samples seen, best PSNR of the stage,
    the window means since the last log line, and where it all goes (records, checkpoints)."""

    def __init__(self, t: Trainer, cfg: EasyDict, out_dir: Path, records: RunRecords, info: DistInfo):
        self.t, self.cfg, self.records, self.info = t, cfg, records, info
        self.out_dir, self.ckpt_dir = out_dir, out_dir / "checkpoints"
        self.bounds, self.total = t.bounds, t.total_iters
        self.stage = next(iter(self.bounds))
        self.iteration = self.samples_seen = 0
        self.best, self.window = float("-inf"), WindowMeans()

    def state(self, rng_ranks: list[dict[str, Any]]) -> dict[str, Any]:
        state = {"method": self.t.method, "stage": self.stage, "iteration": self.iteration,
                 "samples_seen": self.samples_seen, "world_size": self.info.world_size,
                 "config": to_plain(self.cfg), "arch": {"generator": self.t.arch}, **self.t.state_dict(),
                 "history": self.records.state_dict(), "rng": rng_ranks[0], "best_psnr": self.best,
                 "window": self.window.state_dict()}
        if len(rng_ranks) > 1:
            state["rng_ranks"] = rng_ranks
        return state

    def save(self, *names: str) -> list[Path]:
        """Write ``checkpoints/<name>.pt`` for each name (rank 0; returns the paths, [] elsewhere).

        Collective: every rank calls it at the same iteration. First every rank checks its own
        weights and all learn the result, so a NaN/inf on any rank stops every rank with the
        same NonFiniteError and nothing is written. ``last`` gets the full state; other names
        (``best``, ``<stage>_end``) the weights only (no optimiser, scheduler or scaler state).
        """
        bad = [(r, b) for r, b in enumerate(gather_object(first_non_finite(self.t.model_states()))) if b]
        if bad:
            rank, key = bad[0]
            on = f" on rank {rank}" if self.info.world_size > 1 else ""
            raise NonFiniteError(f"{key} has NaN/inf values{on} at iteration {self.iteration}: not saving "
                                 f"{', '.join(n + '.pt' for n in names)}")
        rng_ranks = gather_object(capture_rng_state(self.t.device))
        if not self.info.is_main:
            return []
        full = self.state(rng_ranks)
        light = {k: v for k, v in full.items() if k not in RESUME_ONLY}
        return [save_checkpoint(full if name == "last" else light, self.ckpt_dir / f"{name}.pt") for name in names]

    def resume_from(self, ckpt: Mapping[str, Any], path: Path) -> None:
        """Check that ``ckpt`` lies in its stage under this config, write a missing end file,
        restore the history and say which settings differ (the weights load in :meth:`fit`)."""
        check_stage(ckpt, self.bounds, self.t.stage_bounds(ckpt.get("config", {})), self.t.schedule_keys, path)
        self.iteration, self.stage = int(ckpt["iteration"]), ckpt["stage"]
        self.samples_seen = int(ckpt.get("samples_seen", self.iteration * self.cfg.batch_size))
        begin, end = self.bounds[self.stage]
        end_file = self.ckpt_dir / f"{self.stage}_end.pt"
        if self.iteration == end > begin and self.info.is_main and not end_file.exists():
            # killed between last.pt and <stage>_end.pt (an older kit wrote them in that order)
            save_checkpoint({k: v for k, v in ckpt.items() if k not in RESUME_ONLY}, end_file)
            self.records.log(f"wrote the missing {end_file} from {path} (stage {self.stage} had ended there)")
        self.records.load_state_dict(ckpt["history"], source=path, iteration=self.iteration)
        now = to_plain(self.cfg)
        changed = {k: (v, now.get(k)) for k, v in ckpt["config"].items() if k != "preset" and now.get(k) != v}
        if changed:
            self.records.log(f"resumed with settings that differ from the checkpoint's (old -> new), in effect from "
                             f"iteration {self.iteration}: "
                             + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))

    def fit(self, batches, val_images, stop_at: int, ckpt: Mapping[str, Any] | None, path: Path | None) -> dict:
        """Run every stage from the current iteration to ``stop_at``; return the run's summary."""
        t, records, ends, start = self.t, self.records, {}, self.iteration
        t.prepare(stop_at)
        for stage, (begin, end) in self.bounds.items():
            if self.iteration >= end or self.iteration >= stop_at:
                continue
            self.stage = stage
            t.setup_stage(stage)
            # "best" is per stage (a GAN's PSNR is below its SRResNet's), and so is the window
            self.best, self.window = float("-inf"), WindowMeans()
            if ckpt:   # the first stage after a resume: weights (and, inside a stage, optimisers) + RNG
                same = ckpt["stage"] == stage and self.iteration > begin
                applied = t.load_state_dict(ckpt, same_stage=same, source=path)
                if applied:
                    records.log(f"applied to the restored optimisers of stage {stage} (from iteration "
                                f"{self.iteration} on; the checkpoint's values before): " + ", ".join(applied))
                if same:
                    self.best = float(ckpt.get("best_psnr") or float("-inf"))
                    if "window" in ckpt:
                        self.window.load_state_dict(ckpt["window"], t.device)
                restore_rng_state(rank_rng_state(ckpt, self.info.rank), t.device)   # each rank its own
                ckpt = None
                records.write_config()               # the resume fits: config.yaml now says what runs
            try:
                self.run_stage(stage, begin, end, min(end, stop_at), batches, val_images)
                if self.iteration == end:
                    # The end file first: once last.pt says the stage is done, <stage>_end.pt exists.
                    paths = self.save(f"{stage}_end", "last")
                    ends[stage] = str(paths[0]) if paths else ""
                    records.log(f"stage {stage} done at iteration {end}: {self.ckpt_dir / (stage + '_end.pt')}")
                else:
                    self.save("last")
                    records.log(f"stopped at iteration {self.iteration} (max_iters); resume with --resume auto "
                                f"(or --resume {self.ckpt_dir / 'last.pt'})")
                    break
            except NonFiniteError as err:
                raise stopped_by_non_finite(records, self.ckpt_dir, stage, err) from None
        records.write_config()                       # (a resume of a finished run: nothing was loaded)
        if self.iteration == self.total == start:
            records.log(f"nothing to do: the schedule ({self.total} iterations) is already complete")
        best = self.ckpt_dir / "best.pt"
        return {"out_dir": str(self.out_dir), "iteration": self.iteration, "stage": self.stage,
                "finished": self.iteration == self.total, "last": str(self.ckpt_dir / "last.pt"),
                "best": str(best) if best.exists() else None,
                "best_psnr": self.best if np.isfinite(self.best) else None, "stage_ends": ends,
                "history": records.state_dict()}

    def run_stage(self, stage: str, begin: int, end: int, stop: int, batches, val_images) -> None:
        t, cfg, records, window, tick = self.t, self.cfg, self.records, self.window, time.time()
        # 1 s redraws on a terminal, 10 s in a notebook (it keeps each); TQDM_DISABLE=1 still turns it off
        bar = tqdm(total=end - begin, initial=self.iteration - begin, desc=stage, dynamic_ncols=True,
                   mininterval=1.0 if sys.stderr.isatty() else 10.0, **({} if self.info.is_main else {"disable": True}))
        def where() -> str:                          # formatted only when a log or a save reads it
            return f"in stage {stage} between iterations {self.iteration - window.n + 1} and {self.iteration}"

        try:
            while self.iteration < stop:
                batch = next(batches)
                out = t.step(batch, self.iteration)
                self.iteration += 1
                self.samples_seen += batch[0].shape[0] * self.info.world_size
                local, last = self.iteration - begin, self.iteration == end
                window.add(out)
                if local % cfg.log_every == 0 or last:
                    n, values = window.n, window.pop(where())
                    values["it_per_s"] = n / max(time.time() - tick, 1e-9)
                    tick = time.time()
                    if t.lr_used is not None:
                        values["lr"] = t.lr_used
                    records.scalars(self.iteration, values, stage=stage)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.startswith(("loss", "d_"))},
                                    refresh=False)
                if t.validates(stage) and (local % cfg.val_every == 0 or last):
                    self.validate(stage, val_images)
                if local % cfg.ckpt_every == 0 and not last:
                    window.check(where())
                    self.save("last")
                bar.update(1)
        finally:
            bar.close()
            records.flush()

    def validate(self, stage: str, val_images) -> None:
        """Rank 0 scores the SR network and logs; every rank saves ``best.pt`` when it improved
        (the save is collective)."""
        scores, improved = None, False
        if self.info.is_main and val_images:
            scores, grid = validate(self.t.sr_net, val_images, self.t.device, lr_view=self.t.lr_view)
            self.records.scalars(self.iteration, scores, stage=stage)
            self.records.image(stage, self.iteration, grid, save_png=True)
            improved = scores["val_psnr"] > self.best
            if improved:
                self.best = scores["val_psnr"]
        if broadcast_object(improved):
            self.save("best")
        if scores is not None:
            note = " (best of this stage, saved best.pt)" if improved else ""
            self.records.log(f"[{stage} {self.iteration}] val PSNR {scores['val_psnr']:.2f} dB, "
                             f"SSIM {scores['val_ssim']:.4f}{note}")


def _train(cfg: EasyDict, out_dir: Path, records: RunRecords, info: DistInfo, max_iters: int | None,
           ckpt: Mapping[str, Any] | None, path: Path | None, stop_after: str | None) -> dict[str, Any]:
    t = make_trainer(cfg, info, records.log)
    loop = _Loop(t, cfg, out_dir, records, info)
    if stop_after not in (None, *loop.bounds):
        raise ValueError(f"stop_after must be None or one of {tuple(loop.bounds)}, got {stop_after!r}")
    if ckpt:
        loop.resume_from(ckpt, path)
    elif cfg.method == "srgan" and cfg.init_from:
        records.log(t.init_generator_from(cfg.init_from))
    world = info.world_size
    records.log(f"{t.describe()}; batch {cfg.batch_size} per process x {world} process(es) = "
                f"{cfg.batch_size * world} in total")
    if world > 1:
        records.log(f"torchrun: {info.describe()}; BatchNorm statistics "
                    + ("synchronised over all processes (sync_bn=True)" if cfg.sync_bn else
                       f"per process, over its {cfg.batch_size} images (sync_bn=False)"))
    # Under torchrun rank 0 prepares the data first (the sample; a disk cache is written once),
    # then the others open what it made.
    if not info.is_main:
        barrier()
    data_cfg = data_config(cfg)
    train_set, described = training_set(data_cfg)
    records.log(f"data: {described}")
    if info.is_main:
        barrier()
    # The data stream resumes at the same item, also when the number of processes changed.
    loader = make_train_loader(train_set, data_cfg, start_iter=loop.iteration, num_replicas=world, rank=info.rank,
                               start_position=loop.samples_seen)
    val_images = validation_set(data_cfg) if info.is_main else []
    stop_at = loop.total if max_iters is None else min(loop.total, loop.iteration + int(max_iters))
    if stop_after is not None:
        stop_at = min(stop_at, loop.bounds[stop_after][1])
    return loop.fit(iter(loader), val_images, stop_at, ckpt, path)


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
        max_iters: stop after this many more iterations (all stages together, at least 1) and
            write ``last.pt``; None runs the schedule to its end.
        resume: a checkpoint to continue from, or ``"auto"``: ``<out_dir>/checkpoints/last.pt``
            when it exists, else a fresh start (re-running the same notebook cell after a
            disconnect just continues).
        stop_after: a stage name (``"pretrain"``: the notebook runs SRGAN's stages in two cells)
            to stop at its end; None runs on. A later ``run(..., resume="auto")`` continues.
        overwrite: with ``resume`` None, delete the checkpoints (and sample grids) of an earlier
            run in ``out_dir`` and start afresh. Without it a fresh run in a folder whose
            ``checkpoints/`` holds ``*.pt`` files is refused (:class:`RunExistsError`).

    Returns ``{"out_dir", "iteration", "stage", "finished", "last", "best", "best_psnr",
    "stage_ends", "history"}``. Raises NonFiniteError when a loss or weight becomes NaN/inf
    (the last good checkpoint is kept), CheckpointError for a checkpoint that is corrupt or does
    not fit the config (naming the file and the settings that differ), ValueError for an SRGAN
    stage with random VGG weights unless ``allow_random_vgg``. All are UserErrors.
    """
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
        result = _train(cfg, out_dir, records, info, max_iters, ckpt, Path(resume) if resume else None, stop_after)
        barrier()                       # every process returns once rank 0 has written its files
        return result
    finally:
        records.close()
        torch.set_num_threads(threads)
