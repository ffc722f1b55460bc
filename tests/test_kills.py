"""A kill at any checkpoint save, then ``resume="auto"``: the stage-end files exist, no stray
temporary file is left, and the run ends bit-identical to one that never stopped (issue 17).

A "kill" here is the process dying inside a save: the save has written part of its temporary
file and never renamed it (what SIGKILL mid-write leaves), then a BaseException unwinds the run
as the process would have ended. ``benchmarks/kill_campaign.py`` does the same with real SIGKILLs
at random times in a subprocess.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from course_sr.plumbing import checkpoint

from course_sr import training
from course_sr.plumbing.checkpoint import load_checkpoint
from helpers import assert_same_state, tiny, without_timing

# The saves of the tiny SRGAN run (3 + 3 iterations, ckpt_every 2, a validation at each stage end)
SRGAN_SAVES = ["last.pt", "best.pt", "pretrain_end.pt", "last.pt", "last.pt", "best.pt", "gan_end.pt", "last.pt"]


class Killed(BaseException):
    """The process died (not an Exception: nothing in the kit may catch it)."""


def kill_at_save(monkeypatch, k: int) -> list[str]:
    """Make the ``k``-th checkpoint save (0-based) die mid-write; returns the names saved so far."""
    real, seen = checkpoint.save_checkpoint, []

    def save(state, path, *args, **kwargs):
        path = Path(path)
        seen.append(path.name)
        if len(seen) - 1 == k:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_name(f".{path.name}.{os.getpid()}.tmp").write_bytes(b"PK\x03\x04 half a checkpoint")
            raise Killed(f"killed while writing {path.name}")
        return real(state, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
    monkeypatch.setattr(training, "save_checkpoint", save)
    return seen


@pytest.fixture(scope="module")
def unbroken(sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("unbroken")
    real, names = training.save_checkpoint, []

    def record(state, path, *args, **kwargs):
        names.append(Path(path).name)
        return real(state, path, *args, **kwargs)

    training.save_checkpoint = record
    try:
        training.run(tiny(sample_root), out)
    finally:
        training.save_checkpoint = real
    return out, names


def test_the_tiny_run_saves_end_files_before_the_last_pt_that_records_the_stage(unbroken):
    assert unbroken[1] == SRGAN_SAVES


def assert_same_run(ref: Path, out: Path, ends=("pretrain_end", "gan_end")):
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (ref, out))
    assert_same_state(a, b)
    assert without_timing(a["history"]) == without_timing(b["history"])
    for name in ends:
        x, y = (load_checkpoint(d / "checkpoints" / f"{name}.pt") for d in (ref, out))
        assert x["iteration"] == y["iteration"]
        for net, sd in x["models"].items():
            assert all(torch.equal(v, y["models"][net][key]) for key, v in sd.items()), f"{name} {net}"
    assert not list((out / "checkpoints").glob("*.tmp"))


# pretrain_end.pt itself; the last.pt after it (the "kill between the two files"); gan_end.pt
@pytest.mark.parametrize("k", [2, 3, 6])
def test_a_kill_inside_any_save_then_resume_auto_ends_bit_identical(unbroken, sample_root, tmp_path, monkeypatch, k):
    ref, _ = unbroken
    seen = kill_at_save(monkeypatch, k)
    with pytest.raises(Killed):
        training.run(tiny(sample_root), tmp_path)
    assert seen[-1] == SRGAN_SAVES[k] and list((tmp_path / "checkpoints").glob(".*.tmp"))
    monkeypatch.undo()
    with pytest.raises(training.RunExistsError):           # the same command without --resume: refused
        training.run(tiny(sample_root), tmp_path)
    result = training.run(tiny(sample_root), tmp_path, resume="auto")
    assert result["finished"]
    assert "removed 1 temporary file(s) of interrupted checkpoint saves" in (tmp_path / "log.txt").read_text()
    assert_same_run(ref, tmp_path)


def test_a_last_pt_at_a_stage_end_without_its_end_file_gets_it_back(unbroken, sample_root, tmp_path):
    """A run killed between last.pt and pretrain_end.pt by an older kit (which wrote last.pt first)."""
    ref, _ = unbroken
    training.run(tiny(sample_root), tmp_path, stop_after="pretrain")
    (tmp_path / "checkpoints" / "pretrain_end.pt").unlink()
    training.run(tiny(sample_root), tmp_path, resume="auto")
    assert "wrote the missing" in (tmp_path / "log.txt").read_text()
    assert_same_run(ref, tmp_path)


def test_cyclesr_warmup_end_survives_a_kill_at_its_save(sample_root, tmp_path, monkeypatch):
    from helpers import run_cfg

    cfg = run_cfg(sample_root, log_every=1, n_epoch=1, n_epoch_decay=0, iters_per_epoch=2,
                  cyc_warmup_iters=1)                    # 1 warm-up + 1 joint iteration
    training.run(cfg, tmp_path / "full")
    real = checkpoint.save_checkpoint

    def die_at_warmup_end(state, path, *args, **kwargs):
        if Path(path).name == "warmup_end.pt":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).with_name(f".warmup_end.pt.{os.getpid()}.tmp").write_bytes(b"PK")
            raise Killed("killed while writing warmup_end.pt")
        return real(state, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_checkpoint", die_at_warmup_end)
    monkeypatch.setattr(training, "save_checkpoint", die_at_warmup_end)     # the loop's own reference
    with pytest.raises(Killed):
        training.run(cfg, tmp_path / "part")
    monkeypatch.undo()
    assert not (tmp_path / "part" / "checkpoints" / "last.pt").exists()     # ckpt_every 100: none yet
    training.run(cfg, tmp_path / "part", resume="auto")   # no last.pt yet: auto starts afresh
    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "warmup_end.pt") for d in ("full", "part"))
    assert a["iteration"] == b["iteration"] == 1
    for name, sd in a["models"].items():
        assert all(torch.equal(v, b["models"][name][key]) for key, v in sd.items()), name
    x, y = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("full", "part"))
    for name, sd in x["models"].items():
        assert all(torch.equal(v, y["models"][name][key]) for key, v in sd.items()), name
