"""The schedule runner on the embedded sample with tiny networks: exact resume, guards, command."""
from __future__ import annotations

import math

import pytest
import torch

from course_sr import training

from course_sr import solver
from course_sr.__main__ import main as cli
from course_sr.plumbing.checkpoint import NonFiniteError, load_checkpoint
from course_sr.plumbing.distributed import current
from course_sr.plumbing.records import plot_history
from course_sr.plumbing.train_cli import main as train_main
from course_sr.utils import centre_crop_pair
from course_sr.config import get_config
from helpers import assert_same_state, tiny, without_timing  # noqa: F401 (test_kills too)


@pytest.fixture(scope="module")
def full_run(sample_root, tmp_path_factory):
    """The uninterrupted reference run: 3 SRResNet + 3 SRGAN iterations."""
    out = tmp_path_factory.mktemp("full")
    return training.run(tiny(sample_root), out), out


def test_full_run_writes_the_documented_layout(full_run):
    result, out = full_run
    assert result["finished"] and result["iteration"] == 6 and result["stage"] == "gan"
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["best.pt", "gan_end.pt", "last.pt", "pretrain_end.pt"]

    assert sorted(p.name for p in (out / "samples").iterdir()) == ["gan_6.png", "pretrain_3.png"]
    assert (out / "config.yaml").is_file() and "stage gan done" in (out / "log.txt").read_text()
    ckpt = load_checkpoint(out / "checkpoints" / "gan_end.pt")
    h = ckpt["history"]
    assert [s for s, _ in h["pretrain/loss"]] == [2, 3] and [s for s, _ in h["gan/loss_d"]] == [5, 6]
    assert {"gan/loss_g", "gan/loss_content", "gan/loss_adv", "gan/d_hr", "gan/d_sr", "gan/lr",
            "gan/val_psnr", "gan/val_ssim", "pretrain/val_psnr"} <= h.keys()
    assert all(0 <= v <= 1 for _, v in h["gan/d_sr"])
    # lr as used by the logged iteration: x0.1 from GAN iteration round(0.5 * 3) + 1 = 3 (global 6)
    assert [s for s, _ in h["gan/lr"]] == [5, 6]
    assert h["gan/lr"][0][1] == pytest.approx(1e-4) and h["gan/lr"][1][1] == pytest.approx(1e-5)
    assert "discriminator" not in load_checkpoint(out / "checkpoints" / "pretrain_end.pt")["models"]


def test_only_last_pt_holds_optimiser_state(full_run):
    _, out = full_run
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert {"optimizers", "schedulers", "scalers"} <= last.keys() and set(last["optimizers"]) == {"g", "d"}
    for name in ("best", "pretrain_end", "gan_end"):
        light = torch.load(out / "checkpoints" / f"{name}.pt", weights_only=True)
        assert not {"optimizers", "schedulers", "scalers", "scaler"} & light.keys(), name
        assert {"models", "config", "history", "rng", "iteration"} <= light.keys(), name
    end = load_checkpoint(out / "checkpoints" / "gan_end.pt")
    assert end["iteration"] == last["iteration"] and end["models"].keys() == last["models"].keys()
    assert all(torch.equal(v, last["models"]["discriminator"][k]) for k, v in end["models"]["discriminator"].items())


def test_resuming_mid_stage_from_a_weights_only_checkpoint_says_to_use_last(full_run, sample_root, tmp_path):
    import shutil

    _, full_out = full_run
    shutil.copy(full_out / "checkpoints" / "gan_end.pt", tmp_path / "gan_end.pt")
    longer = tiny(sample_root, gan_iters=4)              # gan_end.pt (iteration 6) is now mid-stage
    with pytest.raises(ValueError, match=r"gan_end.pt holds weights only.*resume from checkpoints/last.pt"):
        training.run(longer, tmp_path / "run", resume=tmp_path / "gan_end.pt")


def test_old_single_scaler_entries_are_read_per_optimiser():
    from course_sr.plumbing.checkpoint import scaler_states

    shared = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
              "_growth_tracker": 7}
    assert scaler_states({"scaler": shared}, ["g", "d"]) == {"g": shared, "d": shared}   # seeds both
    assert scaler_states({"scaler": None}, ["g"]) == {} and scaler_states({}, ["g"]) == {}
    assert scaler_states({"scaler": {"G": shared}}, ["G"]) == {"G": shared}             # CycleSR's layout
    assert scaler_states({"scalers": {"d": shared}, "scaler": None}, ["g", "d"]) == {"d": shared}
    p = solver.Precision("cpu", dtype=torch.float16)
    opts = {k: torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1) for k in ("g", "d")}
    p.load_state_dict(scaler_states({"scaler": shared}, opts), opts)
    assert [p.scaler(o).get_scale() for o in opts.values()] == [1024.0, 1024.0]


def test_a_checkpoint_with_the_old_single_scaler_entry_still_resumes(full_run, sample_root, tmp_path):
    _, full_out = full_run
    ckpt = load_checkpoint(full_out / "checkpoints" / "last.pt")
    ckpt["iteration"], ckpt["scaler"] = 5, None       # as written before per-optimiser scalers (CPU: None)
    ckpt.pop("scalers")
    torch.save(ckpt, tmp_path / "old.pt")
    assert training.run(tiny(sample_root), tmp_path / "run", resume=tmp_path / "old.pt")["finished"]


# inside stage 1, at the stage boundary (as the notebook stops there), inside stage 2
@pytest.mark.parametrize("stop, k", [(dict(max_iters=2), 2), (dict(stop_after="pretrain"), 3), (dict(max_iters=4), 4)])
def test_resume_is_bit_identical(full_run, sample_root, tmp_path, stop, k):
    _, full_out = full_run
    first = training.run(tiny(sample_root), tmp_path, **stop)
    assert first["iteration"] == k and not first["finished"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == k
    second = training.run(None, tmp_path, resume=tmp_path / "checkpoints" / "last.pt")
    assert second["finished"]
    a = load_checkpoint(full_out / "checkpoints" / "last.pt")             # the full state, at the end
    b = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert_same_state(a, b)
    assert without_timing(a["history"]) == without_timing(b["history"])   # every step logged once
    ends = [load_checkpoint(out / "checkpoints" / "gan_end.pt") for out in (full_out, tmp_path)]
    for k, v in ends[0]["models"]["generator"].items():
        assert torch.equal(v, ends[1]["models"]["generator"][k])


def test_random_vgg_is_refused_for_the_gan_stage_before_stage_one_starts(sample_root, tmp_path):
    cfg = tiny(sample_root, content_loss="vgg", allow_random_vgg=False)
    with pytest.raises(ValueError, match="vgg_weights='random'.*allow_random_vgg=True"):
        training.run(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()          # failed at once, not after stage 1
    assert training.run(cfg, tmp_path, stop_after="pretrain")["iteration"] == 3   # stage 1 alone is fine


def test_srgan_mse_needs_no_vgg_and_its_content_term_is_the_pixel_mse(sample_root, tmp_path, monkeypatch):
    """content_loss='mse' (the paper's SRGAN-MSE): no VGG is built, so no ImageNet weights are
    needed, and the logged content loss is the pixel MSE of G's images."""
    from course_sr import models

    def no_vgg(*args, **kwargs):
        raise AssertionError("SRGAN-MSE must not build a VGG")

    monkeypatch.setattr(solver, "build_vgg", no_vgg)
    monkeypatch.setattr(models, "TruncatedVGG19", no_vgg)
    cfg = tiny(sample_root, content_loss="mse", vgg_weights="imagenet", allow_random_vgg=False)
    training.run(cfg, tmp_path, stop_after="pretrain")   # stage 1's loss is the pixel MSE too: count stage 2's
    seen = []
    real = solver.pixel_loss
    monkeypatch.setattr(solver, "pixel_loss", lambda p, t: seen.append(1) or real(p, t))
    result = training.run(cfg, tmp_path, resume="auto")
    assert result["finished"] and len(seen) == cfg.gan_iters         # one content term per G step
    assert "content loss pixel MSE (SRGAN-MSE)" in (tmp_path / "log.txt").read_text()


def test_cpu_threads_apply_to_the_run_only(sample_root, tmp_path, monkeypatch):
    before = torch.get_num_threads()
    used = []
    real = solver.pretrain_step
    monkeypatch.setattr(solver, "pretrain_step", lambda *a, **k: used.append(torch.get_num_threads()) or real(*a, **k))
    training.run(tiny(sample_root, cpu_threads=1), tmp_path, stop_after="pretrain")
    assert set(used) == {1} and torch.get_num_threads() == before
    assert "training on 1 CPU thread(s)" in (tmp_path / "log.txt").read_text()


def test_validation_grid_has_column_labels(full_run):
    import numpy as np
    from PIL import Image

    _, out = full_run
    grid = np.asarray(Image.open(out / "samples" / "pretrain_3.png"))
    assert grid.shape == (14 + 32 + 2, 3 * 32, 3)                  # label strip + one 32 px row
    strip = grid[:14]
    assert (strip > 250).mean() > 0.7 and (strip < 100).any()      # white, with dark text
    thirds = [strip[:, k * 32:(k + 1) * 32] for k in range(3)]
    assert all((t < 100).any() for t in thirds)                    # a label over each column


def test_resume_logs_changed_settings(full_run, sample_root, tmp_path):
    import shutil

    _, full_out = full_run
    shutil.copy(full_out / "checkpoints" / "pretrain_end.pt", tmp_path / "stage1.pt")
    result = training.run(tiny(sample_root, gan_iters=1), tmp_path / "run", resume=tmp_path / "stage1.pt")
    assert result["iteration"] == 4 and result["finished"]
    assert "gan_iters: 3 -> 1" in (tmp_path / "run" / "log.txt").read_text()


@pytest.mark.parametrize("log_every", [1, 100])   # found at a log point, or before a checkpoint
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(sample_root, tmp_path, monkeypatch, log_every):
    calls = {"n": 0}
    real = solver.pixel_loss

    def poisoned(pred, target):       # iteration 3 produces NaN (and NaN weights after its step)
        calls["n"] += 1
        loss = real(pred, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(solver, "pixel_loss", poisoned)
    cfg = tiny(sample_root, pretrain_iters=6, log_every=log_every, ckpt_every=2)
    with pytest.raises(NonFiniteError, match=r"stopping stage pretrain: loss became nan.*last good checkpoint"):
        training.run(cfg, tmp_path)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in last["models"]["generator"].values())
    assert "non-finite value" in (tmp_path / "log.txt").read_text()


def test_init_from_skips_stage_one(full_run, sample_root, tmp_path):
    _, full_out = full_run
    cfg = tiny(sample_root, init_from=str(full_out / "checkpoints" / "pretrain_end.pt"), gan_iters=2)
    result = training.run(cfg, tmp_path)
    assert result["iteration"] == 2 and list(result["stage_ends"]) == ["gan"]
    assert "stage 1 (pretrain) is skipped" in (tmp_path / "log.txt").read_text()


def test_command_line_runs_and_resumes_with_auto(sample_root, tmp_path, capsys):
    yaml_path = tmp_path / "tiny.yaml"
    cfg = tiny(sample_root)
    yaml_path.write_text("preset: quick\n" + "".join(
        f"{k}: {v!r}\n" if isinstance(v, str) else f"{k}: {v}\n"
        for k, v in cfg.items() if k in ("data_root", "csv_folder", "n_channels", "n_blocks", "d_n_channels",
                                         "d_n_blocks", "d_fc_size", "crop_size", "batch_size", "val_images",
                                         "val_crop", "tensorboard")))
    out = tmp_path / "run"
    assert train_main(["--config", str(yaml_path), "--out", str(out), "--max-iters", "2",
                        "--set", "pretrain_iters=2", "gan_iters=1", "lr_pretrain=1e-3"]) == 0
    assert "iteration 2 (stopped)" in capsys.readouterr().out
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["config"]["lr_pretrain"] == 1e-3 and ckpt["config"]["n_channels"] == 8
    assert train_main(["--out", str(out), "--resume", "auto"]) == 0
    assert "iteration 3 (finished)" in capsys.readouterr().out


def test_plot_history_from_a_run_directory(full_run):
    _, out = full_run
    fig = plot_history(out)
    titles = {ax.get_title() for ax in fig.axes}
    assert {"loss", "loss_d", "d_hr", "val_psnr", "lr"} <= titles and "it_per_s" not in titles


def test_one_loop_trains_every_method(sample_root, tmp_path, monkeypatch):
    """SRGAN, CycleSR and dual regression are trainers of the same loop: each method's stages
    run through ``_Loop.run_stage`` and its checkpoints have the one schema."""
    from course_sr.solver import SRGANTrainer
    from course_sr.unpaired.cyclesr import CycleSR, DualRegression

    info = current("cpu")
    assert isinstance(training.make_trainer(tiny(sample_root), info), SRGANTrainer)
    assert isinstance(training.make_trainer(get_config("cyclesr-quick"), info), CycleSR)
    assert isinstance(training.make_trainer(get_config("dual-quick"), info), DualRegression)
    seen = []
    real = training._Loop.run_stage

    def spy(self, stage, *args, **kwargs):
        seen.append((self.t.method, stage))
        return real(self, stage, *args, **kwargs)
    monkeypatch.setattr(training._Loop, "run_stage", spy)
    small = dict(data_root=str(sample_root), csv_folder=str(sample_root / "data_lists"), tensorboard=False,
                 device="cpu", batch_size=2, val_images=1, val_crop=32, cyc_ngf=4, cyc_ndf=4, cyc_n_blocks=1,
                 cyc_n_layers_D=2, SR_nb=2, SR_nf=4, dual_nf=4, pool_size=2, n_epoch=1, n_epoch_decay=1,
                 iters_per_epoch=3, cyc_warmup_iters=2, cyc_sr_iters=1, pretrain_iters=3, log_every=1, val_every=2,
                 ckpt_every=100)
    for preset, method in (("cyclesr-quick", "cyclesr"), ("dual-quick", "dual")):
        out = training.run(get_config(preset, **small), tmp_path / method)
        ckpt = load_checkpoint(out["last"])
        assert ckpt["method"] == method and ckpt["iteration"] == out["iteration"] and out["finished"]
        assert {"models", "optimizers", "scalers", "history", "rng", "window", "samples_seen"} <= set(ckpt)
        assert not set(training.RESUME_ONLY) & set(load_checkpoint(out["stage_ends"][ckpt["stage"]]))
    assert seen == [("cyclesr", "warmup"), ("cyclesr", "sr"), ("cyclesr", "joint"), ("dual", "dual")]


def test_centre_crop_pair_is_aligned():
    # Every pixel of both images is distinct and HR pixel (y, x) lies under LR pixel (y // 4, x // 4):
    # the crops must keep that correspondence, not only the shapes.
    lr = torch.arange(10 * 12).float().view(1, 10, 12)
    hr = torch.arange(40 * 48).float().view(1, 40, 48)
    lr_c, hr_c = centre_crop_pair(lr, hr, 16, 4)
    assert lr_c.shape == (1, 4, 4) and hr_c.shape == (1, 16, 16)
    assert lr_c[0, 0, 0] == 3 * 12 + 4                 # top-left of the centred 4 x 4 window
    assert hr_c[0, 0, 0] == (3 * 4) * 48 + 4 * 4       # the HR window starts under it
    for y, x in ((0, 0), (3, 2), (1, 3)):              # each LR pixel covers its 4 x 4 HR block
        assert hr_c[0, 4 * y, 4 * x] == hr[0, (3 + y) * 4, (4 + x) * 4]
    assert centre_crop_pair(lr, hr, 0, 4)[1].shape == (1, 40, 48)
    assert math.isclose(centre_crop_pair(lr, hr, 400, 4)[0].numel(), lr.numel())


def test_cudnn_benchmark_is_on_for_the_training_steps_only(sample_root, tmp_path, monkeypatch):
    seen = {"step": set(), "validate": set()}
    for name in ("pretrain_step", "gan_step"):
        real = getattr(solver, name)

        def spy(*args, _real=real, **kwargs):
            seen["step"].add(torch.backends.cudnn.benchmark)
            return _real(*args, **kwargs)
        monkeypatch.setattr(solver, name, spy)
    real_validate = training.validate

    def validate_spy(*args, **kwargs):
        seen["validate"].add(torch.backends.cudnn.benchmark)
        return real_validate(*args, **kwargs)
    monkeypatch.setattr(training, "validate", validate_spy)
    before = torch.backends.cudnn.benchmark
    training.run(tiny(sample_root, cudnn_benchmark=True, pretrain_iters=2, gan_iters=1, val_every=1), tmp_path)
    assert seen == {"step": {True}, "validate": {before}}
    assert torch.backends.cudnn.benchmark == before          # evaluate() afterwards does not autotune
    assert "cudnn_benchmark=True" in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize("rescale, warned", [(1.0, False), (1 / 12.75, True)])
def test_stage_two_logs_the_loss_balance_and_warns_when_the_adversarial_term_dominates(sample_root, tmp_path,
                                                                                       rescale, warned):
    # The paper's SRResNet and VGG loss (quick's bicubic_residual G starts almost at HR: tiny content loss).
    training.run(tiny(sample_root, content_loss="vgg", bicubic_residual=False, vgg_rescale=rescale,
                    pretrain_iters=1, gan_iters=3), tmp_path)
    log = (tmp_path / "log.txt").read_text()
    assert log.count("loss balance over the first 3 batches of stage gan: content_weight x l_VGG = ") == 1
    assert ("WARNING: the adversarial term dominates G's loss" in log) == warned


def test_torch_compile_saves_plain_keys_and_resumes(sample_root, tmp_path):
    from course_sr.models import Generator

    cfg = tiny(sample_root, compile=True, pretrain_iters=3)
    straight = training.run(cfg, tmp_path / "straight", stop_after="pretrain")
    assert straight["iteration"] == 3
    training.run(cfg, tmp_path / "resumed", max_iters=2)
    last = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert list(last["models"]["generator"]) == list(Generator(cfg).state_dict())     # no "_orig_mod."
    assert "compile=True" in (tmp_path / "resumed" / "log.txt").read_text()
    training.run(None, tmp_path / "resumed", resume=tmp_path / "resumed" / "checkpoints" / "last.pt",
               stop_after="pretrain")
    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "pretrain_end.pt") for d in ("straight", "resumed"))
    assert a["iteration"] == b["iteration"] == 3
    for k, v in a["models"]["generator"].items():
        assert torch.equal(v, b["models"]["generator"][k]), k


def test_train_without_data_says_what_is_missing_in_one_line(tmp_path, monkeypatch):
    """`train --config colab` with no data: one line naming the folder and the command; no traceback.
    Run as a student would, in a subprocess from an empty directory."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_SR_")}
    cmd = [sys.executable, "-m", "course_sr", "train", "--config", "colab", "--out", "runs/srgan"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("train: error: split 'train': no data in data: data/DIV2K/DIV2K_train_HR does not")
    assert "python -m course_sr download --root data --what div2k" in lines[0]
    # a partial data root without its own lists: the course's list, one line, the command that fixes it
    from course_sr.utils import save_image

    for i in (1, 2):
        save_image(tmp_path / f"data/DIV2K/DIV2K_train_HR/{i:04d}.png", torch.zeros(8, 8, 3, dtype=torch.uint8).numpy())
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "split 'train': 1598 of the 1600 files listed in" in lines[0]
    assert "python -m course_sr data-lists --data-root data" in lines[0]


def test_max_iters_variable_cuts_every_stage(sample_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_SR_MAX_ITERS", "2")
    sets = [f"data_root={sample_root}", f"csv_folder={sample_root / 'data_lists'}", "n_channels=8", "n_blocks=1",
            "d_n_channels=4", "d_n_blocks=4", "d_fc_size=8", "crop_size=16", "batch_size=2", "val_images=1",
            "val_crop=32", "tensorboard=false"]
    assert train_main(["--config", "quick", "--out", str(tmp_path), "--set", *sets]) == 0
    assert "COURSE_SR_MAX_ITERS=2: every stage cut to 2 iterations" in capsys.readouterr().out
    ckpts = tmp_path / "checkpoints"
    assert load_checkpoint(ckpts / "pretrain_end.pt")["iteration"] == 2
    assert load_checkpoint(ckpts / "gan_end.pt")["iteration"] == 4
    monkeypatch.setenv("COURSE_SR_MAX_ITERS", "two")
    assert cli(["train", "--config", "quick", "--out", str(tmp_path / "x")]) == 2
    assert "COURSE_SR_MAX_ITERS='two': expected a whole number" in capsys.readouterr().err


# ---- issue 17: nothing lost, settings that do not lie, one line per mistake ----------------
def copy_run(full_run, tmp_path):
    import shutil

    _, full_out = full_run
    shutil.copytree(full_out, tmp_path / "run")
    return tmp_path / "run"


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != "log.txt"}


def test_a_forgotten_resume_is_refused_and_changes_nothing(full_run, sample_root, tmp_path, capsys):
    out = copy_run(full_run, tmp_path)
    before = snapshot(out)
    with pytest.raises(training.RunExistsError, match=r"checkpoints already holds checkpoints .*last.pt.*--resume auto"
                                                    r".*--overwrite.*new --out"):
        training.run(tiny(sample_root), out)
    yaml_path = tmp_path / "tiny.yaml"
    yaml_path.write_text("preset: quick\n")
    assert cli(["train", "--config", str(yaml_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train: error: ") and "--overwrite" in err[0]
    assert snapshot(out) == before


def test_overwrite_deletes_the_old_checkpoints_and_starts_afresh(full_run, sample_root, tmp_path):
    out = copy_run(full_run, tmp_path)
    with pytest.raises(Exception, match="give one of them"):
        training.run(tiny(sample_root), out, resume="auto", overwrite=True)
    result = training.run(tiny(sample_root), out, max_iters=1, overwrite=True)
    assert result["iteration"] == 1 and sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]
    assert not list((out / "samples").glob("*.png")) and "--overwrite: deleted the earlier run" in (out / "log.txt").read_text()


@pytest.mark.parametrize("bad", ["0", "-5"])
def test_max_iters_below_one_is_refused(sample_root, tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as e:
        train_main(["--config", "quick", "--out", str(tmp_path / "r"), "--max-iters", bad])
    assert e.value.code == 2 and f"must be a positive number of iterations, got '{bad}'" in capsys.readouterr().err
    with pytest.raises(training.UserError, match="max_iters .* must be a positive number"):
        training.run(tiny(sample_root), tmp_path / "r", max_iters=int(bad))
    assert not (tmp_path / "r").exists()


def test_other_network_sizes_are_refused_naming_the_file_and_settings_and_config_yaml_stays(full_run, sample_root,
                                                                                              tmp_path, capsys):
    from course_sr.plumbing.checkpoint import CheckpointError

    out = copy_run(full_run, tmp_path)
    before = snapshot(out)
    last = out / "checkpoints" / "last.pt"
    with pytest.raises(CheckpointError, match=r"checkpoint .*last.pt does not fit this config: n_blocks 1 vs 2, "
                                              r"d_fc_size 8 vs 16 \(checkpoint vs config\)"):
        training.run(tiny(sample_root, n_blocks=2, d_fc_size=16, gan_iters=5), out, resume=last)
    with pytest.raises(CheckpointError, match="seed 0 vs 3"):
        training.run(tiny(sample_root, seed=3, gan_iters=5), out, resume="auto")
    assert cli(["train", "--out", str(out), "--resume", "auto", "--set", "n_blocks=4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.pt does not fit this config: n_blocks 1 vs 4" in err[0]
    assert "Missing key" not in err[0] and "Traceback" not in err[0]
    assert snapshot(out) == before                   # config.yaml byte-identical, checkpoints untouched


def test_pretrain_iters_cannot_move_a_finished_stage_one(full_run, sample_root, tmp_path):
    from course_sr.plumbing.checkpoint import CheckpointError

    out = copy_run(full_run, tmp_path)
    with pytest.raises(CheckpointError, match=r"iteration 6 of stage gan, outside that stage .*pretrain_iters"):
        training.run(tiny(sample_root, pretrain_iters=5), out, resume="auto")


def test_a_corrupt_checkpoint_is_one_line_naming_it(full_run, tmp_path, capsys):
    from helpers import flip_bytes_inside

    out = copy_run(full_run, tmp_path)
    last = out / "checkpoints" / "last.pt"
    flip_bytes_inside(last, load_checkpoint(last)["models"]["generator"]["conv_block1.conv_block.0.weight"]
                      if "conv_block1.conv_block.0.weight" in load_checkpoint(last)["models"]["generator"] else
                      max(load_checkpoint(last)["models"]["generator"].values(), key=lambda t: t.numel()))
    assert cli(["train", "--out", str(out), "--resume", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"checkpoint {last} is corrupt" in err[0]


def test_a_new_lr_inside_a_stage_is_applied_to_the_restored_optimiser(sample_root, tmp_path):
    training.run(tiny(sample_root), tmp_path, max_iters=4)                      # inside stage gan (iteration 4)
    training.run(tiny(sample_root, lr_g=5e-5, lr_d=2e-5), tmp_path, resume="auto")
    log = (tmp_path / "log.txt").read_text()
    assert "applied to the restored optimisers of stage gan" in log
    assert "optimizer g scheduler base_lrs [0.0001] -> [5e-05]" in log and "optimizer d lr 0.0001 -> 2e-05" in log
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    # after the milestone (global iteration 5) the schedule decays the NEW base lr
    assert last["schedulers"]["g"]["base_lrs"] == [5e-5] and last["schedulers"]["d"]["base_lrs"] == [2e-5]
    assert last["optimizers"]["g"]["param_groups"][0]["lr"] == pytest.approx(5e-6)
    assert last["optimizers"]["d"]["param_groups"][0]["lr"] == pytest.approx(2e-6)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["config"]["lr_g"] == 5e-5
    assert "\nlr_g: 5.0e-05\n" in (tmp_path / "config.yaml").read_text()


def test_after_a_nan_lowering_the_lr_and_resuming_does_what_the_message_says(sample_root, tmp_path, monkeypatch,
                                                                               capsys):
    calls = {"n": 0}
    real = solver.pixel_loss

    def poisoned(pred, target):
        calls["n"] += 1
        loss = real(pred, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(solver, "pixel_loss", poisoned)
    cfg = tiny(sample_root, pretrain_iters=6, log_every=1, ckpt_every=2)
    capsys.readouterr()
    with pytest.raises(NonFiniteError) as e:
        training.run(cfg, tmp_path)
    msg = str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__        # not chained twice
    last = tmp_path / "checkpoints" / "last.pt"
    assert f"the last good checkpoint is {last}" in msg and last.exists() and "--set lr_pretrain=" in msg
    assert "--resume auto" in msg and "non-finite" not in capsys.readouterr().out   # shown once: by the raise
    assert (tmp_path / "log.txt").read_text().count("non-finite value, stopping") == 1
    monkeypatch.undo()
    training.run(tiny(sample_root, pretrain_iters=6, log_every=1, ckpt_every=2, lr_pretrain=1e-4), tmp_path,
               resume="auto", stop_after="pretrain")
    assert "optimizer g lr 0.001 -> 0.0001" in (tmp_path / "log.txt").read_text()
    assert load_checkpoint(last)["optimizers"]["g"]["param_groups"][0]["lr"] == 1e-4


def test_a_nan_before_any_checkpoint_names_none(sample_root, tmp_path, monkeypatch):
    monkeypatch.setattr(solver, "pixel_loss", lambda pred, target: (pred - target).pow(2).mean() * float("nan"))
    with pytest.raises(NonFiniteError, match=r"no checkpoint was written yet in .*checkpoints; .*--resume auto") as e:
        training.run(tiny(sample_root, log_every=1), tmp_path)
    assert "last.pt" not in str(e.value)


def test_disk_full_while_training_is_one_line_and_keeps_the_last_checkpoint(sample_root, tmp_path, monkeypatch,
                                                                              capsys):
    import yaml

    cfg = tiny(sample_root)
    yaml_path = tmp_path / "tiny.yaml"
    yaml_path.write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()
                                         if k != "preset"}))
    out = tmp_path / "run"
    assert train_main(["--config", str(yaml_path), "--out", str(out), "--max-iters", "2"]) == 0
    last = out / "checkpoints" / "last.pt"
    before = last.read_bytes()
    real = torch.save

    def full(obj, f, *args, **kwargs):
        real(obj, f, *args, **kwargs)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4480 vs 4376")

    monkeypatch.setattr(torch, "save", full)
    capsys.readouterr()
    assert cli(["train", "--out", str(out), "--resume", "auto"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("pretrain:", "gan:"))]  # no bars
    assert len(lines) == 1 and lines[0].startswith("train: error: disk full while writing checkpoint ")
    assert "Traceback" not in err
    monkeypatch.undo()
    assert last.read_bytes() == before and not list(last.parent.glob("*.tmp"))


def test_a_read_only_run_folder_says_so(sample_root, tmp_path, monkeypatch, capsys):
    from pathlib import Path

    def read_only(self, *args, **kwargs):               # root ignores chmod: fake the file system's answer
        raise OSError(30, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    assert cli(["train", "--config", "quick", "--out", str(tmp_path / "ro"), "--set", "tensorboard=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write {tmp_path / 'ro'}" in err[0] and ": read-only file system (the run " \
        f"folder {tmp_path / 'ro'}: make it writable" in err[0]


def test_best_is_the_best_of_the_current_stage(sample_root, tmp_path, monkeypatch):
    """A GAN trades PSNR for texture: stage 2's first validation is its best even when stage 1
    scored higher, and best.pt then holds stage 2's generator (the README's contract)."""
    real = training.validate
    psnr = {"pretrain": 30.0, "gan": 20.0}

    def scored(net, images, *args, **kwargs):
        scores, grid = real(net, images, *args, **kwargs)
        return {**scores, "val_psnr": psnr[stage[0]]}, grid
    stage = ["pretrain"]
    real_run_stage = training._Loop.run_stage

    def run_stage(self, name, *args, **kwargs):
        stage[0] = name
        return real_run_stage(self, name, *args, **kwargs)
    monkeypatch.setattr(training, "validate", scored)
    monkeypatch.setattr(training._Loop, "run_stage", run_stage)
    result = training.run(tiny(sample_root, val_every=1), tmp_path)
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert (best["stage"], best["iteration"], result["best_psnr"]) == ("gan", 4, 20.0)
    assert "[gan 4] val PSNR 20.00 dB, SSIM" in (tmp_path / "log.txt").read_text()
