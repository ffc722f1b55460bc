"""Losses on known inputs, one step per stage lowering its loss, the template's epoch functions."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from course_sr.checkpoint import NonFiniteError
from course_sr.config import get_config
from course_sr.models import Discriminator, Generator, TruncatedVGG19
from course_sr.solver import (ContentLoss, Precision, adversarial_loss, discriminator_loss, gan_step,
                              make_gan_optimizers, make_pretrain_optimizer, pixel_loss, pretrain, pretrain_step,
                              train)

CFG = get_config("quick", n_channels=8, n_blocks=1, d_n_channels=4, d_n_blocks=2, d_fc_size=8,
                 lr_pretrain=1e-3, lr_g=1e-3, lr_d=1e-3)


def batch(n=2, lr_size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(n, 3, lr_size, lr_size, generator=g)
    hr = torch.rand(n, 3, lr_size * 4, lr_size * 4, generator=g) * 2 - 1
    return lr, hr


# ---------------------------------------------------------------- losses on known inputs
def test_pixel_loss_known_value():
    assert pixel_loss(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)).item() == pytest.approx(0.25)


def test_content_loss_rescales_features_and_only_pred_gets_gradients():
    pred = torch.full((1, 3, 2, 2), 2.0, requires_grad=True)
    target = torch.zeros(1, 3, 2, 2, requires_grad=True)
    loss = ContentLoss(nn.Identity(), rescale=0.5)(pred, target)
    assert loss.item() == pytest.approx(1.0)             # (0.5 * 2)^2
    loss.backward()
    assert pred.grad is not None and target.grad is None


def test_content_loss_paper_rescale_is_1_over_12_75_squared():
    vgg = TruncatedVGG19(2, 2, weights="random")
    a, b = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    plain = ContentLoss(vgg, rescale=1.0)(a, b)
    paper = ContentLoss(vgg)(a, b)
    assert paper.item() == pytest.approx(plain.item() / 12.75 ** 2, rel=1e-5)


@pytest.mark.parametrize("logit, real, expected", [(0.0, True, math.log(2)), (0.0, False, math.log(2)),
                                                   (math.log(3), True, -math.log(0.75)),   # D = 0.75
                                                   (math.log(3), False, -math.log(0.25))])
def test_adversarial_loss_is_minus_log_d(logit, real, expected):
    assert adversarial_loss(torch.tensor([logit, logit]), real).item() == pytest.approx(expected)


def test_discriminator_loss_is_the_sum_of_real_and_fake_terms():
    real, fake = torch.tensor([math.log(3)]), torch.tensor([-math.log(3)])   # D(HR)=0.75, D(SR)=0.25
    assert discriminator_loss(real, fake).item() == pytest.approx(-2 * math.log(0.75))


# ---------------------------------------------------------------- one step per stage
def test_pretrain_step_lowers_the_pixel_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    g = Generator(CFG)
    lr, hr = batch()
    before = pixel_loss(g(lr), hr).item()
    out = pretrain_step(lr, hr, g, make_pretrain_optimizer(g, CFG))
    assert out["loss"].item() == pytest.approx(before)
    assert pixel_loss(g(lr), hr).item() < before


def g_loss(g, d, content, lr, hr, beta):
    sr = g(lr)
    return (content(sr, hr) + beta * adversarial_loss(d(sr), True)).item()


@pytest.mark.parametrize("pixel_weight, d_steps", [(0.0, 1), (1.0, 2)])
def test_gan_step_lowers_each_players_loss_on_a_fixed_batch(pixel_weight, d_steps):
    torch.manual_seed(0)
    g, d = Generator(CFG), Discriminator(CFG)
    content = ContentLoss(TruncatedVGG19(2, 2, weights="random"))
    opt_g, opt_d, _, _ = make_gan_optimizers(g, d, CFG)
    lr, hr = batch()
    beta = 0.1                                  # large enough that the adversarial term matters
    g0, d0 = copy.deepcopy(g), copy.deepcopy(d)
    sr0 = g0(lr).detach()
    d_before = discriminator_loss(copy.deepcopy(d0)(hr), copy.deepcopy(d0)(sr0)).item()
    out = gan_step(lr, hr, g, d, opt_g, opt_d, content, beta=beta, pixel_weight=pixel_weight, d_steps=d_steps)

    # G against the judge it was trained against (D before its own step):
    assert g_loss(g, copy.deepcopy(d0), content, lr, hr, beta) < g_loss(g0, copy.deepcopy(d0), content, lr, hr, beta)
    # D on the very images it was trained on:
    assert discriminator_loss(d(hr), d(sr0)).item() < d_before
    assert ("loss_pixel" in out) == bool(pixel_weight)
    assert 0 <= out["d_hr"].item() <= 1 and 0 <= out["d_sr"].item() <= 1
    assert all(p.requires_grad for p in d.parameters())      # D unfrozen again after G's step


def test_gan_step_freezes_d_for_the_generator_step_only():
    torch.manual_seed(0)
    g, d = Generator(CFG), Discriminator(CFG)
    opt_g, opt_d, _, _ = make_gan_optimizers(g, d, CFG)
    frozen = []                                   # per D call: are D's weights frozen?
    d.register_forward_hook(lambda m, i, o: frozen.append(not any(p.requires_grad for p in m.parameters())))
    gan_step(*batch(), g, d, opt_g, opt_d, pixel_loss, beta=1.0, d_steps=2)
    assert frozen == [True, False, False, False, False]   # G step; then 2 D steps x (HR, SR)


def test_gan_schedule_drops_lr_at_lr_decay_at():
    cfg = get_config("quick", gan_iters=10, lr_decay_at=0.5, lr_g=1e-4, lr_d=2e-4)
    g, d = Generator(cfg), Discriminator(cfg)
    opt_g, opt_d, sched_g, sched_d = make_gan_optimizers(g, d, cfg)
    lrs = []
    for _ in range(10):
        lrs.append((opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]))
        opt_g.step(), opt_d.step(), sched_g.step(), sched_d.step()
    assert lrs[:5] == [(1e-4, 2e-4)] * 5
    assert all(a == pytest.approx(1e-5) and b == pytest.approx(2e-5) for a, b in lrs[5:])


def test_precision_is_off_on_cpu():
    p = Precision("cpu")
    assert not p.enabled and p.dtype == torch.float32 and not p.scaler.is_enabled()


# ---------------------------------------------------------------- the template's functions
def loader(n_batches=2):
    # what SRDataset gives: (lr, hr), both in [0, 1]
    return [(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)) for _ in range(n_batches)]


def test_template_train_signature_runs_one_epoch(capsys):
    torch.manual_seed(0)
    g, d = Generator(CFG), Discriminator(CFG)
    vgg = TruncatedVGG19(2, 2, weights="random")
    opt_g, opt_d, _, _ = make_gan_optimizers(g, d, CFG)
    perceptual, loss_d = train(loader(), g, d, vgg, nn.MSELoss(), nn.BCEWithLogitsLoss(),
                               opt_g, opt_d, 1, "cpu", 1e-3, 1)
    assert math.isfinite(perceptual) and math.isfinite(loss_d)
    assert "Cont. Loss" in capsys.readouterr().out


def test_template_pretrain_runs_and_stops_on_nan(capsys):
    torch.manual_seed(0)
    g = Generator(CFG)
    opt = make_pretrain_optimizer(g, CFG)
    assert math.isfinite(pretrain(loader(), g, nn.MSELoss(), opt, 0, "cpu", 1))
    bad = loader(1) + [(torch.full((2, 3, 8, 8), float("nan")), torch.rand(2, 3, 32, 32))]
    with pytest.raises(NonFiniteError, match="pixel loss became nan at epoch 3, batch 1"):
        pretrain(bad, g, nn.MSELoss(), opt, 3, "cpu", 1)
