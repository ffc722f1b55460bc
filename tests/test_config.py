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
        from course_sr.cyclesr import CycleSR, DualRegression

        trainer = (CycleSR if cfg.method == "cyclesr" else DualRegression)(cfg, "cpu")
        joint = int(cfg.get("cyc_warmup_iters", 0))          # CycleSR: the joint phase, all three updates
        real = torch.rand(1, 3, crop // s, crop // s, generator=g)
        out = trainer.train_step((hr01, lr, real), joint)
        assert finite(out)
        sr = trainer.sr_net.eval()(lr)
        assert sr.shape == (1, 3, crop, crop)
