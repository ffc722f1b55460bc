"""Every preset builds its networks at their real sizes and takes one step (batch 1, random tensors).

A preset that only fails on the GPU machine (a size that does not divide, a network that cannot
take its own crop) would cost a Colab session to find; here each one runs on CPU in CI.
"""
from __future__ import annotations

import pytest
import torch

from course_sr.config import PRESETS, get_config


def finite(values) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in values.values())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_at_its_real_sizes_and_steps(preset):
    from course_sr.models import build_discriminator, build_generator, build_vgg, count_parameters
    from course_sr.solver import (ContentLoss, Precision, gan_step, make_gan_optimizers, make_pretrain_optimizer,
                                  pretrain_step)

    # Nothing downloads in CI: the VGG of the real presets gets random weights at its real size.
    cfg = get_config(preset, vgg_weights="random", allow_random_vgg=True, device="cpu")
    s, crop = cfg.scaling_factor, cfg.crop_size
    g = torch.Generator().manual_seed(0)
    hr01 = torch.rand(1, 3, crop, crop, generator=g)
    lr = torch.rand(1, 3, crop // s, crop // s, generator=g)
    torch.manual_seed(0)
    if cfg.method == "srgan":
        gen, disc = build_generator(cfg).train(), build_discriminator(cfg).train()
        vgg = build_vgg(cfg)
        if preset in ("paper", "colab"):
            assert (count_parameters(gen), count_parameters(disc)) == (1_549_462, 23_565_505)
            assert (vgg.i, vgg.j) == (5, 4)
        precision = Precision("cpu", enabled=bool(cfg.amp))
        hr = hr01 * 2 - 1
        out = pretrain_step(lr, hr, gen, make_pretrain_optimizer(gen, cfg), precision)
        assert finite(out)
        opt_g, opt_d, _, _ = make_gan_optimizers(gen, disc, cfg)
        out = gan_step(lr, hr, gen, disc, opt_g, opt_d, ContentLoss(vgg, cfg.vgg_rescale), precision,
                       beta=cfg.beta, content_weight=cfg.content_weight, pixel_weight=cfg.pixel_weight,
                       g_steps=int(cfg.g_steps), d_steps=int(cfg.d_steps))
        assert finite(out) and {"loss_content", "loss_adv", "loss_d"} <= out.keys()
    else:
        from course_sr.unpaired.cyclesr import CycleSR, DualRegression

        trainer = (CycleSR if cfg.method == "cyclesr" else DualRegression)(cfg, "cpu")
        joint = int(cfg.get("cyc_warmup_iters", 0))          # CycleSR: the joint phase, all three updates
        real = torch.rand(1, 3, crop // s, crop // s, generator=g)
        out = trainer.step((hr01, lr, real), joint)
        assert finite(out)
        sr = trainer.sr_net.eval()(lr)
        assert sr.shape == (1, 3, crop, crop)


# ------------------------------------------------------------------ values checked at the boundary
@pytest.mark.parametrize("override, match", [
    ({"scaling_factor": 3}, r"scaling_factor=3: must be one of 2, 4, 8"),
    ({"batch_size": 0}, r"batch_size=0: must be a whole number > 0"),
    ({"batch_size": 2.5}, r"batch_size=2.5: must be a whole number > 0"),
    ({"batch_size": True}, r"batch_size=True"),
    ({"pretrain_iters": -3}, r"pretrain_iters=-3: must be a whole number >= 0"),
    ({"ckpt_every": 0}, r"ckpt_every=0"), ({"log_every": 0}, r"log_every=0"), ({"val_every": 0}, r"val_every=0"),
    ({"lr_pretrain": 0}, r"lr_pretrain=0: must be a number > 0"),
    ({"lr_g": float("nan")}, r"lr_g=nan"),
    ({"lr_decay_at": 1.5}, r"lr_decay_at=1.5: must be a fraction"),
    ({"beta": -1}, r"beta=-1"), ({"workers": -1}, r"workers=-1"),
    ({"cache": "ram"}, r"cache='ram': must be one of 'memory', 'disk', 'none'"),
    ({"device": "banana"}, r"device='banana': must be auto, cpu, cuda or cuda:N"),
    ({"adam_betas": (0.9, 1.5)}, r"adam_betas"),
    ({"amp": "yes"}, r"amp='yes': must be true or false"),
    ({"crop_size": 30}, r"crop_size=30 is not a multiple of scaling_factor=4"),
])
def test_bad_values_are_refused_naming_key_and_value(override, match):
    from course_sr.config import ConfigError
    from course_sr.plumbing.errors import UserError

    with pytest.raises(ConfigError, match=match) as err:
        get_config("quick", **override)
    assert isinstance(err.value, ValueError) and isinstance(err.value, UserError)   # old except clauses


def test_a_notebook_edit_is_checked_when_the_run_starts():
    """runner.run calls finalize on the config it is given, so cfg.batch_size = 0 in a notebook
    stops there too, not as a ZeroDivisionError later."""
    from course_sr.config import ConfigError, finalize

    cfg = get_config("quick")
    cfg.val_every = 0
    with pytest.raises(ConfigError, match="val_every=0"):
        finalize(cfg)


def test_whole_numbers_written_as_floats_are_accepted():
    cfg = get_config("quick", pretrain_iters=1e3, gan_iters=0, amp=1)      # --set pretrain_iters=1e3
    assert cfg.pretrain_iters == 1000 and type(cfg.pretrain_iters) is int and cfg.gan_iters == 0


def test_unknown_keys_and_presets_suggest_the_close_ones(tmp_path):
    from course_sr.config import ConfigKeyError

    with pytest.raises(ConfigKeyError, match=r"unknown config key 'batch_sise' \(from overrides\); did you mean "
                                             r"'batch_size'\?") as err:
        get_config("quick", batch_sise=4)
    assert isinstance(err.value, KeyError) and str(err.value).startswith("unknown")      # no KeyError quotes
    with pytest.raises(KeyError, match=r"'LR_PRETRAIN'.*did you mean 'lr_pretrain'"):
        get_config(None, LR_PRETRAIN=1e-3)
    with pytest.raises(KeyError, match=r"unknown config 'quik': not a preset \(colab, .*quick\).*did you mean 'quick'"):
        get_config("quik")
    (tmp_path / "exp.yaml").write_text("preset: quikc\n")
    with pytest.raises(KeyError, match=r"exp\.yaml: unknown preset 'quikc'; choose one of colab, "):
        get_config(tmp_path / "exp.yaml")


@pytest.mark.parametrize("text, match", [
    ("batch_size: [16\n", r"cannot read config file .*exp\.yaml: "),
    ("- just\n- a list\n", r"exp\.yaml must hold a mapping"),
])
def test_unreadable_config_files_name_the_file(tmp_path, text, match):
    from course_sr.config import ConfigError

    (tmp_path / "exp.yaml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        get_config(tmp_path / "exp.yaml")
    (tmp_path / "exp.yaml").write_bytes(b"batch_size: 8 # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: not UTF-8"):
        get_config(tmp_path / "exp.yaml")
    with pytest.raises(FileNotFoundError, match=r"config file not found: .*nope\.yaml"):
        get_config(tmp_path / "nope.yaml")
