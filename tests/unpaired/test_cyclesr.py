"""CycleSR and dual regression: each loss term, the schedule, where gradients go, exact resume."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from course_sr.models import load_generator
from course_sr.plumbing.checkpoint import load_checkpoint
from course_sr.config import get_config
from course_sr.training import validation_set
from course_sr.unpaired.cyclesr import (CycleSR, DualRegression, PairedSR, cycle_loss, dual_loss, identity_loss, lr_factor,
                                        lsgan_loss, sr_loss, sr_output)
from course_sr.utils import seed_everything
from helpers import TINY, run_cfg

REPO = Path(__file__).resolve().parents[2]


def batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 64, 64, generator=g), torch.rand(n, 3, 16, 16, generator=g), \
        torch.rand(n, 3, 16, 16, generator=g)


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# ---- losses on known inputs ---------------------------------------------------------
def test_lsgan_loss_values():
    half = torch.full((2, 1, 3, 3), 0.5)
    assert lsgan_loss(half, True).item() == pytest.approx(0.25)
    assert lsgan_loss(half, False).item() == pytest.approx(0.25)
    assert lsgan_loss(torch.ones(1, 1, 2, 2), True).item() == 0.0
    assert lsgan_loss(torch.full((1, 1, 2, 2), 3.0), False).item() == pytest.approx(9.0)


def test_l1_and_sr_losses_values():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert cycle_loss(a, b).item() == identity_loss(a, b).item() == dual_loss(a, b).item() == pytest.approx(0.5)
    assert sr_loss(a, b, "mse").item() == pytest.approx(0.25)
    assert sr_loss(a, b, "l1").item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="SR_loss must be"):
        sr_loss(a, b, "huber")


@pytest.mark.parametrize("identity", [0.5, 0.0])
def test_generator_objective_is_the_weighted_sum_of_its_terms(identity):
    cfg = get_config("cyclesr-quick", **TINY, lambda_identity=identity, lambda_cycle=3.0, cycleSR_lam=7.0)
    t = CycleSR(cfg)
    losses, _ = t.generator_step(*batch(), joint=True)
    expected = losses["G_gan"] + 3.0 * losses["G_cycle"] + 7.0 * losses["G_sr"]
    if identity:
        expected = expected + identity * 3.0 * losses["G_idt"]
    else:
        assert "G_idt" not in losses
    assert losses["G_total"].item() == pytest.approx(expected.item(), rel=1e-6)
    warm, _ = t.generator_step(*batch(), joint=False)
    assert "G_sr" not in warm


# ---- learning-rate schedule -----------------------------------------------------------
@pytest.mark.parametrize("it, factor", [(0, 1.0), (19, 1.0), (20, 1.0), (25, 0.75), (30, 0.5), (39, 0.05), (40, 0.0)])
def test_lr_factor_constant_then_linear_to_zero(it, factor):
    assert lr_factor(it, n_epoch=2, n_epoch_decay=2, iters_per_epoch=10) == pytest.approx(factor)


def test_lr_factor_without_decay_and_trainer_lrs():
    assert lr_factor(10**6, 3, 0, 10) == 1.0
    t = CycleSR(get_config("cyclesr-quick", **TINY, n_epoch=1, n_epoch_decay=1, iters_per_epoch=10))
    assert t.total_iters == 20
    t.set_learning_rates(15)
    assert t.optimizers["G"].param_groups[0]["lr"] == pytest.approx(t.config.cyc_lr * 0.5)
    assert t.optimizers["D"].param_groups[0]["lr"] == pytest.approx(t.config.cyc_lr * 0.5)
    assert t.optimizers["SR"].param_groups[0]["lr"] == pytest.approx(t.config.SR_lr * 0.5)


# ---- where the gradients go -----------------------------------------------------------
def test_sr_loss_reaches_the_transfer_generator_only_in_its_own_step():
    cfg = get_config("cyclesr-quick", **TINY)
    hr, clean, real = batch()
    grads = {}
    for joint in (False, True):
        seed_everything(0)
        t = CycleSR(cfg)
        sr_before = params(t.sr_net)
        _, fakes = t.generator_step(hr, clean, real, joint=joint)
        grads[joint] = {k: [p.grad.clone() for p in t.nets[k].parameters()] for k in ("G_clean2real", "G_real2clean")}
        # S is frozen in G's step: no gradient stored, weights unchanged
        assert all(p.grad is None for p in t.sr_net.parameters()) and same(sr_before, params(t.sr_net))
    # the SR term changes G(clean->real)'s gradients, and only those (F never feeds S)
    assert not same(grads[True]["G_clean2real"], grads[False]["G_clean2real"])
    assert same(grads[True]["G_real2clean"], grads[False]["G_real2clean"])

    # S's own step: S moves, the transfer generators receive nothing
    t.optimizers["G"].zero_grad(set_to_none=True)
    g_before = params(t.nets.G_clean2real)
    t.sr_step(fakes["fake_real"], hr)
    assert all(p.grad is None for p in t.nets.G_clean2real.parameters())
    assert same(g_before, params(t.nets.G_clean2real)) and not same(sr_before, params(t.sr_net))
    with pytest.raises(ValueError, match="detached"):
        t.sr_step(fakes["fake_real"].requires_grad_(), hr)


def test_discriminator_step_moves_only_the_discriminators_and_fills_the_pools():
    t = CycleSR(get_config("cyclesr-quick", **TINY))
    hr, clean, real = batch()
    _, fakes = t.generator_step(hr, clean, real, joint=True)
    before = {k: params(t.nets[k]) for k in t.nets}
    out = t.discriminator_step(clean, real, fakes["fake_clean"], fakes["fake_real"])
    assert set(out) == {"D_real", "D_clean"}
    for k in t.nets:
        assert same(before[k], params(t.nets[k])) == (k not in ("D_clean", "D_real")), k
    assert len(t.pools["real"].images) == len(t.pools["clean"].images) == 2


def test_vegas_three_phases_train_what_they_should():
    """warmup: the CycleGAN only; sr: S only, on the bicubic LR, with weight 1; then joint."""
    t = CycleSR(get_config("cyclesr-quick", **TINY, cyc_warmup_iters=1, cyc_sr_iters=1, SR_lam=1e6))
    cyclegan = lambda: params(t.nets.G_clean2real) + params(t.nets.D_real)           # noqa: E731
    sr, gan = params(t.sr_net), cyclegan()
    out = t.step(batch(), 0)
    assert t.phase(0) == "warmup" and "SR" not in out and same(sr, params(t.sr_net)) and not same(gan, cyclegan())
    sr, gan = params(t.sr_net), cyclegan()
    hr, clean, _ = batch()
    expected = sr_loss(sr_output(t.sr_net, clean), hr, "mse")          # before the step: L_SR on bicubic LR
    out = t.step(batch(), 1)
    assert t.phase(1) == "sr" and set(out) == {"lr_factor", "SR"} and same(gan, cyclegan())
    assert not same(sr, params(t.sr_net)) and out["SR"].item() == pytest.approx(expected.item(), rel=1e-6)
    out = t.step(batch(), 2)                              # (its weight: the next test)
    assert t.phase(2) == "joint" and "SR" in out and "G_sr" in out and not same(gan, cyclegan())


def test_the_sr_phase_weighs_the_sr_loss_by_one(monkeypatch):
    import course_sr.unpaired.cyclesr as cyclesr

    t = CycleSR(get_config("cyclesr-quick", **TINY, cyc_warmup_iters=0, cyc_sr_iters=1, SR_lam=123.0))
    weights = []
    real = cyclesr.sr_update
    monkeypatch.setattr(cyclesr, "sr_update", lambda *a, weight=None, **k: weights.append(weight) or real(*a, weight=weight, **k))
    t.step(batch(), 0)                                    # sr phase
    t.step(batch(), 1)                                    # joint: S's own step at SR_lam
    assert weights == [1.0, None]


def test_the_cyclesr_preset_has_vegas_phases_sizes_and_schedule():
    """50,000 iterations of batch 64 (480 px HR / 120 px LR): 1,250 CycleGAN-only (Vega's epochs
    1-5 at ~250 iterations each), 250 SR-only (epoch 6), joint from epoch 7; 100 + 100 epochs."""
    cfg = get_config("cyclesr")
    assert CycleSR.stage_bounds(cfg) == {"warmup": (0, 1_250), "sr": (1_250, 1_500), "joint": (1_500, 50_000)}
    assert (cfg.batch_size, cfg.crop_size, cfg.crop_size // cfg.scaling_factor) == (64, 480, 120)
    assert (cfg.n_epoch, cfg.n_epoch_decay, cfg.iters_per_epoch) == (100, 100, 250)
    assert (cfg.sr_net, cfg.SR_nb, cfg.SR_nf, cfg.SR_lr, cfg.cyc_lr, cfg.grad_clip) == ("vdsr", 20, 64, 1e-4, 2e-4, 50.0)
    assert (cfg.SR_lam, cfg.cycleSR_lam, cfg.pool_size, cfg.cyc_n_layers_D) == (1000.0, 1000.0, 50, 3)
    # the like-for-like presets: the same SR updates as CycleSR's S (48,750) on the same batches
    assert PairedSR.stage_bounds(get_config("paired")) == {"paired": (0, 48_750)}
    assert get_config("dual").pretrain_iters == 48_750 and get_config("dual").batch_size == 64
    assert all(o.defaults["betas"] == (0.5, 0.999) for o in CycleSR(get_config("cyclesr-quick", **TINY)).optimizers.values())


def test_each_network_is_clipped_on_its_own():
    """Vega clips G and F (and D_X, D_Y) each at grad_clip, not their joint norm."""
    t = CycleSR(get_config("cyclesr-quick", **TINY, grad_clip=1e-3, lambda_cycle=1e4))
    hr, clean, real = batch()
    t.generator_step(hr, clean, real, joint=False)
    for net in (t.nets.G_clean2real, t.nets.G_real2clean):
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in net.parameters() if p.grad is not None))
        assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_grad_clip_bounds_the_update():
    t = CycleSR(get_config("cyclesr-quick", **TINY, grad_clip=1e-3, SR_lam=1e6))
    hr, clean, real = batch()
    _, fakes = t.generator_step(hr, clean, real, joint=True)
    t.sr_step(fakes["fake_real"], hr)
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in t.sr_net.parameters()))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_dual_regression_terms_and_the_unpaired_loop():
    cfg = get_config("dual-quick", **TINY, dual_lambda=0.1, dual_unpaired_weight=2.0)
    seed_everything(0)
    t = DualRegression(cfg)
    hr, clean, _ = batch()
    primal_l1 = (sr_output(t.sr_net, clean) - hr).abs().mean()          # DRN's primal loss: L1
    out = t.step(batch(), 0)
    assert out["primal"].item() == pytest.approx(primal_l1.item(), rel=1e-6)
    expected = out["primal"] + 0.1 * out["dual"] + 0.1 * 2.0 * out["loop"]
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    # The real LR (no HR) trains the primal net through the loop D(P(r)) ~ r alone.
    _, _, real = batch()
    loss = dual_loss(t.nets.dual(sr_output(t.sr_net, real)), real)
    t.optimizers["primal_dual"].zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is not None for p in t.sr_net.parameters())
    assert sum(p.grad.abs().sum() for p in t.sr_net.parameters()) > 0


# ---- runs, checkpoints, exact resume --------------------------------------------------
def test_phase_resume_is_exact(sample_root, tmp_path):
    from course_sr.training import run

    # Vega's three phases: warmup 0-3, sr 3-5, joint 5-8; windows of one step: the logged means match too
    cfg = run_cfg(sample_root, log_every=1, cyc_sr_iters=2)
    full = run(cfg, tmp_path / "full")
    assert full["finished"] and full["iteration"] == 8 and set(full["stage_ends"]) == {"warmup", "sr", "joint"}
    # stop inside each phase in turn (resuming across each phase change), finish with "auto"
    part = run(cfg, tmp_path / "part", max_iters=2)
    assert not part["finished"] and load_checkpoint(part["last"])["stage"] == "warmup"
    for stop, stage in ((4, "sr"), (6, "joint")):
        run(cfg, tmp_path / "part", max_iters=2, resume="auto")
        mid = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")
        assert (mid["iteration"], mid["stage"]) == (stop, stage)
    end = run(cfg, tmp_path / "part", resume="auto")
    a, b = load_checkpoint(full["last"]), load_checkpoint(end["last"])
    for name, sd in a["models"].items():
        for key, value in sd.items():
            assert torch.equal(value, b["models"][name][key]), f"{name}.{key}"
    for name in a["pools"]:
        assert torch.equal(a["pools"][name]["images"], b["pools"][name]["images"])
    timeless = [{k: v for k, v in c["history"].items() if not k.endswith("it_per_s")} for c in (a, b)]
    assert timeless[0] == timeless[1] and "joint/val_psnr" in timeless[0]
    warm = load_checkpoint(tmp_path / "full" / "checkpoints" / "warmup_end.pt")
    assert (warm["iteration"], warm["stage"]) == (3, "warmup")


@pytest.mark.parametrize("preset, sr_net, stage", [("cyclesr-quick", "vdsr", "joint"), ("dual-quick", "srresnet", "dual")])
def test_checkpoints_load_as_sr_generators(sample_root, tmp_path, preset, sr_net, stage):
    from course_sr.results.inference import super_resolve
    from course_sr.plumbing.train_cli import main

    cfg = run_cfg(sample_root, preset, sr_net=sr_net)
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in cfg.items() if k != "preset"}))
    assert main(["--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 0
    ckpts = tmp_path / "run" / "checkpoints"
    assert (ckpts / f"{stage}_end.pt").exists() and (ckpts / "best.pt").exists()
    model, info = load_generator(ckpts / "best.pt")
    assert (info["arch"], info["method"], info["stage"]) == (sr_net, cfg.method, stage)
    sr = super_resolve(model, torch.rand(3, 8, 8))
    assert sr.shape == (3, 32, 32)


def test_validation_set_degrades_hr_with_the_test_spec(sample_root):
    from course_sr.unpaired.data import degraded_pairs

    cfg = run_cfg(sample_root, val_images=2, val_crop=48)
    pairs = validation_set(cfg)
    assert len(pairs) == 2 and pairs[0][0].shape == (3, 12, 12) and pairs[0][1].shape == (3, 48, 48)
    _, lr, _ = degraded_pairs(cfg, cfg.val_split, cfg.test_degradation, limit=1, crop=48)[0]
    assert torch.equal(pairs[0][0], torch.from_numpy(lr).permute(2, 0, 1).float() / 255)
    real = validation_set(run_cfg(sample_root, degradation=None, val_images=1, val_crop=0))
    assert real[0][1].shape[-1] == 4 * real[0][0].shape[-1] and real[0][0].shape[-1] > 48


def test_bad_resume_and_schedule_values(sample_root, tmp_path):
    from course_sr.training import run

    d = run(run_cfg(sample_root, "dual-quick", pretrain_iters=2), tmp_path / "d")
    with pytest.raises(ValueError, match="'dual' checkpoint"):
        run(run_cfg(sample_root), tmp_path / "c", resume=d["last"])
    assert math.isclose(lr_factor(5, 1, 1, 4), 0.75)


# ---- the comparison ---------------------------------------------------------------------
def test_bicubic_poses_as_an_sr_network():
    from course_sr.unpaired.compare import Bicubic
    from course_sr.imresize import imresize

    lr = torch.rand(1, 3, 6, 5, dtype=torch.float64)
    net = Bicubic(4)
    assert net.output_range == "[0, 1]" and net.scale == 4
    torch.testing.assert_close(net(lr), imresize(lr, scalar_scale=4))


def test_paired_baselines_differ_only_in_their_lr():
    from course_sr.unpaired.compare import PairedSR

    cfg = get_config("cyclesr-quick", **TINY)
    hr, clean, real = batch()
    oracle = PairedSR(cfg, lr_source="oracle")
    lr = oracle.degrade_batch(hr, 3)
    assert lr.shape == clean.shape and not torch.equal(lr, clean)
    assert torch.equal(lr, oracle.degrade_batch(hr, 3))           # seeded by (seed, iteration, i)
    paired = PairedSR(cfg)
    before = params(paired.sr_net)
    out = paired.step((hr, clean, real), 0)
    assert set(out) == {"SR"} and not same(before, params(paired.sr_net))
    with pytest.raises(ValueError, match="lr_source"):
        PairedSR(cfg, lr_source="real")
    with pytest.raises(ValueError, match="needs a synthetic degradation"):
        PairedSR(get_config("cyclesr-quick", **TINY, degradation=None), lr_source="oracle")


def test_compare_methods_trains_each_on_the_same_budget(sample_root):
    from course_sr.unpaired.compare import compare_methods, format_comparison

    cfg = run_cfg(sample_root, sr_net="vdsr", cyc_warmup_iters=2)
    lr, hr = torch.rand(3, 8, 8), torch.rand(3, 32, 32)
    logged = []
    out = compare_methods(cfg, iters=4, sets={"tiny": [(lr, hr)]}, log=logged.append)
    assert list(out["results"]) == ["bicubic", "paired", "oracle", "cyclesr", "dual"] and len(logged) == 5
    assert out["budget"]["iters"] == 4 and out["budget"]["cyc_warmup_iters"] == 2
    assert out["results"]["paired"]["tiny"]["psnr"] != out["results"]["cyclesr"]["tiny"]["psnr"]
    table = format_comparison(out["results"], out["labels"])
    assert "| VDSR trained on bicubic LR |" in table and table.count("\n") == 6
    gain = out["results"]["bicubic"]["tiny"]["psnr"] - out["results"]["paired"]["tiny"]["psnr"]
    assert f"({gain:+.2f})" in table
    with pytest.raises(ValueError, match="unknown method"):
        compare_methods(cfg, iters=2, methods=("srgan",))
    with pytest.raises(ValueError, match="needs a synthetic degradation"):
        compare_methods(run_cfg(sample_root, degradation=None), iters=2)


def test_bench_cyclesr_cli_reports_seed_means_and_gains(sample_root, monkeypatch, capsys, tmp_path):
    """benchmarks/bench_cyclesr.py's interface: --seeds repeats the comparison, the last stdout
    line is one JSON object with the seed means and each method's gain over the bicubic-trained net."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_cyclesr", REPO / "benchmarks" / "bench_cyclesr.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "SHARED", tmp_path / "absent")          # no Set5/Set14: sample only
    sets = {"data_root": json.dumps(str(sample_root)), "csv_folder": json.dumps(str(sample_root / "data_lists")),
            "batch_size": "2", "SR_nb": "2", "SR_nf": "4", "cyc_ngf": "4", "cyc_ndf": "4"}
    before = torch.get_num_threads()
    try:
        assert bench.main(["--iters", "2", "--warmup", "1", "--seeds", "0", "1", "--methods", "bicubic", "paired",
                           "cyclesr", "--set", *(f"{k}={v}" for k, v in sets.items())]) == 0
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert out.count("--- seed") == 2 and summary["budget"]["seeds"] == [0, 1]
    assert summary["budget"]["degradation"] == "sensor" and summary["budget"]["test_degradation"] == "sensor-fixed"
    assert set(summary["results"]) == {"bicubic", "paired", "cyclesr"}
    per_seed = summary["gain_db_per_seed"]["cyclesr"]["sample_test degraded"]
    assert len(per_seed) == 2 and per_seed[0] != per_seed[1]              # the seed changes the run
    assert summary["gain_db_vs_bicubic_trained"]["cyclesr"]["sample_test degraded"] == pytest.approx(
        sum(per_seed) / 2, abs=1e-3)
    assert summary["gain_db_min"]["cyclesr"]["sample_test degraded"] == pytest.approx(min(per_seed), abs=1e-3)
