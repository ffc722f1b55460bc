"""Checkpoints: weights_only round trip, RNG states, atomic writes, clear errors, load_generator."""
from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch

from course_sr.plumbing import checkpoint as ck
from course_sr.plumbing.checkpoint import (NonFiniteError, capture_rng_state, load_checkpoint, restore_rng_state,
                                           save_checkpoint)
from course_sr.config import get_config, to_plain
from course_sr.models import Discriminator, Generator, load_generator
from helpers import flip_bytes_inside

CFG = get_config("quick", n_channels=8, n_blocks=1, d_n_channels=4, d_n_blocks=2, d_fc_size=8)


def make_state(generator=None, arch="srresnet", cfg=CFG):
    torch.manual_seed(0)
    g = generator or Generator(cfg)
    d = Discriminator(cfg)
    opt = torch.optim.Adam(g.parameters(), lr=1e-4)
    g(torch.rand(1, 3, 4, 4)).mean().backward()
    opt.step()                                       # so the optimizer has state tensors
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [5])
    return {"method": "srgan", "stage": "pretrain", "iteration": 7, "config": to_plain(cfg),
            "arch": {"generator": arch}, "models": {"generator": g.state_dict(), "discriminator": d.state_dict()},
            "optimizers": {"g": opt.state_dict()}, "schedulers": {"g": sched.state_dict()}, "scaler": None,
            "history": {"pretrain/loss": [[5, 0.5]]}, "rng": capture_rng_state(), "best_psnr": 21.5}


def test_round_trip_loads_with_weights_only(tmp_path):
    state = make_state()
    path = save_checkpoint(state, tmp_path / "ckpt" / "last.pt")
    raw = torch.load(path, weights_only=True)          # no pickled code needed
    assert raw["format"] == ck.FORMAT
    back = load_checkpoint(path)
    for k, v in state["models"]["generator"].items():
        assert torch.equal(back["models"]["generator"][k], v)
    assert back["optimizers"]["g"]["state"][0]["exp_avg"].shape == state["optimizers"]["g"]["state"][0]["exp_avg"].shape
    assert back["history"] == state["history"] and back["iteration"] == 7 and back["best_psnr"] == 21.5
    assert not list(path.parent.glob(".*.tmp"))


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    save_checkpoint({"rng": capture_rng_state()}, tmp_path / "rng.pt", check=False)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_crash_mid_save_leaves_last_untouched(tmp_path, monkeypatch):
    path = save_checkpoint(make_state(), tmp_path / "last.pt")
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):                # the process "dies" halfway through the write
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(torch, "save", crash)
    state = make_state()
    state["iteration"] = 8
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(state, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["iteration"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]    # no temporary file left behind


def test_nan_weights_are_never_saved(tmp_path):
    path = save_checkpoint(make_state(), tmp_path / "last.pt")
    state = make_state()
    state["models"]["generator"]["conv_block1.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"generator.conv_block1.0.weight has NaN/inf.*last.pt"):
        save_checkpoint(state, path)
    assert load_checkpoint(path)["iteration"] == 7


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a course_sr checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save(Generator(CFG), tmp_path / "pickled.pt")   # a whole pickled module (the template's habit)
    with pytest.raises(ValueError, match="cannot read checkpoint .*pickled.pt"):
        load_checkpoint(tmp_path / "pickled.pt")
    path = save_checkpoint(make_state(), tmp_path / "trunc.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cannot read checkpoint .*trunc.pt"):
        load_checkpoint(path)


def test_load_generator_rebuilds_from_the_checkpoint_alone(tmp_path):
    state = make_state()
    path = save_checkpoint(state, tmp_path / "run" / "best.pt")
    model, info = load_generator(path)
    assert not model.training
    assert info == {"name": "best", "path": str(path), "scale": 4, "arch": "srresnet", "output_range": "[-1, 1]",
                    "method": "srgan", "stage": "pretrain", "iteration": 7, "best_psnr": 21.5}
    reference = Generator(CFG)
    reference.load_state_dict(state["models"]["generator"])
    lr = torch.rand(1, 3, 5, 6)
    torch.testing.assert_close(model(lr), reference.eval()(lr))
    again = Generator.from_checkpoint(path)
    assert isinstance(again, Generator)
    torch.testing.assert_close(again(lr), model(lr))


def test_from_checkpoint_refuses_another_architecture(tmp_path):
    from course_sr.models import build_generator

    cfg = get_config("quick", SR_nb=3, SR_nf=4)
    path = save_checkpoint(make_state(build_generator(cfg, "vdsr"), "vdsr", cfg), tmp_path / "vdsr.pt")
    model, info = load_generator(path)
    assert info["arch"] == "vdsr" and info["output_range"] == "[0, 1]"
    with pytest.raises(ValueError, match="vdsr.pt holds a 'vdsr' network"):
        Generator.from_checkpoint(path)


def test_cuda_rng_is_the_training_devices_own(monkeypatch):
    """Each process saves the generator of the GPU it trains on and restores it there."""
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": calls.append(("get", device))
                        or torch.full((16,), 7, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append(("set", device,
                                                                                               int(state[0]))))
    state = capture_rng_state("cuda:1")
    assert calls == [("get", torch.device("cuda:1"))] and len(state["cuda"]) == 1
    restore_rng_state(state, "cuda:1")
    assert calls[-1] == ("set", torch.device("cuda:1"), 7)
    calls.clear()
    restore_rng_state(state, "cpu")                       # a GPU state resumed on CPU: nothing to set
    restore_rng_state(capture_rng_state("cpu"), "cuda:0")  # a CPU state on a GPU: its seeded generator stays
    assert calls == []


def test_rank_rng_state_picks_each_ranks_own():
    ckpt = {"rng": {"who": 0}, "rng_ranks": [{"who": 0}, {"who": 1}]}
    assert [ck.rank_rng_state(ckpt, r)["who"] for r in range(3)] == [0, 1, 0]
    assert ck.rank_rng_state({"rng": {"who": 0}}, 1)["who"] == 0     # written by one process


# ---- checksums (issue 17: 16 flipped bytes inside a tensor loaded and trained on) -------------
def test_every_checkpoint_carries_a_checksum_that_load_verifies_and_strips(tmp_path):
    state = make_state()
    path = save_checkpoint(state, tmp_path / "last.pt")
    raw = torch.load(path, weights_only=True)
    assert set(raw["checksum"]) == {"sha256"} and len(raw["checksum"]["sha256"]) == 64
    back = load_checkpoint(path)
    assert "checksum" not in back and ck.content_digest(back) == raw["checksum"]["sha256"]
    save_checkpoint(back, tmp_path / "again.pt")          # a loaded checkpoint saved again verifies again
    assert load_checkpoint(tmp_path / "again.pt")["iteration"] == 7


def test_a_checkpoint_with_flipped_bytes_inside_a_tensor_is_refused_with_its_path(tmp_path):
    state = make_state()
    path = save_checkpoint(state, tmp_path / "last.pt")
    weight = state["models"]["discriminator"]["fc1.weight"] if "fc1.weight" in state["models"]["discriminator"] \
        else max(state["models"]["generator"].values(), key=lambda t: t.numel())
    flip_bytes_inside(path, weight)
    torch.load(path, weights_only=True)                   # torch itself notices nothing
    with pytest.raises(ck.CheckpointError, match=r"checkpoint .*last.pt is corrupt: its contents do not match"):
        load_checkpoint(path)
    with pytest.raises(ck.CheckpointError, match="last.pt is corrupt"):
        load_generator(path)


def test_the_digest_sees_every_kind_of_entry():
    base = {"a": 1, "b": [1.0, "x"], "t": torch.zeros(3)}
    d = ck.content_digest(base)
    for changed in ({**base, "a": True}, {**base, "a": 1.0}, {**base, "b": [1.0, "y"]},
                    {**base, "t": torch.zeros(3, dtype=torch.float64)}, {**base, "t": torch.zeros(1, 3)},
                    {**base, "t": torch.tensor([0.0, 0.0, 1e-30])}, {**base, "c": None}):
        assert ck.content_digest(changed) != d
    assert ck.content_digest({**base, "checksum": {"sha256": "x"}}) == d
    assert ck.content_digest({"t": torch.ones(2, dtype=torch.bfloat16)}) != ck.content_digest({"t": torch.ones(2)})


def test_a_checkpoint_without_a_checksum_still_loads_with_a_warning(tmp_path):
    state = {**make_state(), "format": ck.FORMAT}
    torch.save(state, tmp_path / "old.pt")               # as written before checksums
    with pytest.warns(UserWarning, match=r"old.pt has no checksum"):
        assert load_checkpoint(tmp_path / "old.pt")["iteration"] == 7



def test_an_unverified_read_is_for_metadata_only_memory_mapped_and_skips_the_checksum(tmp_path):
    """verify=False (the report's read): the same metadata, a damaged tensor not noticed, no
    warning for a file without checksum; the format and unreadable files are still refused."""
    state = make_state()
    path = save_checkpoint(state, tmp_path / "last.pt")
    meta = load_checkpoint(path, verify=False)
    assert "checksum" not in meta and meta["config"] == state["config"] and meta["history"] == state["history"]
    assert meta["iteration"] == 7
    flip_bytes_inside(path, max(state["models"]["generator"].values(), key=lambda t: t.numel()))
    assert load_checkpoint(path, verify=False)["config"] == state["config"]     # not verified: by design
    with pytest.raises(ck.CheckpointError, match="last.pt is corrupt"):
        load_checkpoint(path)                                                     # the default still is
    torch.save({**make_state(), "format": ck.FORMAT}, tmp_path / "old.pt")        # no checksum, zip format
    torch.save({**make_state(), "format": ck.FORMAT}, tmp_path / "legacy.pt",     # cannot be memory-mapped
               _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("old.pt", "legacy.pt"):
            assert load_checkpoint(tmp_path / name, verify=False)["iteration"] == 7
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ck.CheckpointError, match="other.pt is not a course_sr checkpoint"):
        load_checkpoint(tmp_path / "other.pt", verify=False)
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="cannot read checkpoint .*junk.pt"):
        load_checkpoint(tmp_path / "junk.pt", verify=False)

# ---- disk full / read-only while saving (issue 17: "unexpected pos" raw tracebacks) ---------
@pytest.mark.parametrize("error", [
    OSError(28, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 768"),
])
def test_disk_full_while_saving_says_so_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, error):
    path = save_checkpoint(make_state(), tmp_path / "last.pt")
    before = path.read_bytes()

    def full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 part of a zip")
        raise error

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ck.CheckpointWriteError, match=r"^disk full while writing checkpoint .*last.pt: .*intact") as e:
        save_checkpoint(make_state(), path)
    assert isinstance(e.value, OSError) and "\n" not in str(e.value)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_read_only_folder_says_so(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):      # root ignores chmod: fake the file system's answer
        if "w" in mode and str(file).endswith(".tmp"):
            raise OSError(30, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    with pytest.raises(ck.CheckpointWriteError, match=r"cannot write checkpoint .*last.pt: the folder .* is read-only"):
        save_checkpoint(make_state(), tmp_path / "last.pt")


def test_stray_tmp_files_of_killed_saves_are_removed(tmp_path):
    save_checkpoint(make_state(), tmp_path / "last.pt")
    for name in (".last.pt.123.tmp", ".best.pt.9.tmp"):
        (tmp_path / name).write_bytes(b"half")
    (tmp_path / "notes.tmp").write_text("not ours")
    assert ck.remove_stray_tmp(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "notes.tmp"]
    assert ck.remove_stray_tmp(tmp_path / "missing") == 0
