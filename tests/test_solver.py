"""Losses on known inputs, one step per stage lowering its loss, the template's epoch functions."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from course_sr.plumbing.checkpoint import NonFiniteError
from course_sr.config import get_config
from course_sr.models import Discriminator, Generator, TruncatedVGG19
from course_sr.solver import (ContentLoss, Precision, adversarial_loss, amp_dtype, cudnn_benchmark,
                              discriminator_loss, gan_step, loss_balance, make_gan_optimizers,
                              make_pretrain_optimizer, pixel_loss, pretrain, pretrain_step, train)

# The paper's output layer (bicubic_residual off): the steps below should move every layer of G at
# once, and a zero-started residual conv lets only itself move in the first step.
CFG = get_config("quick", n_channels=8, n_blocks=1, d_n_channels=4, d_n_blocks=2, d_fc_size=8,
                 lr_pretrain=1e-3, lr_g=1e-3, lr_d=1e-3, bicubic_residual=False)


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


def test_content_loss_default_is_the_torchvision_reference_and_the_paper_rescale_an_option():
    vgg = TruncatedVGG19(2, 2, weights="random")
    a, b = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    plain = torch.nn.functional.mse_loss(vgg(a), vgg(b))
    assert ContentLoss(vgg)(a, b).item() == pytest.approx(plain.item(), rel=1e-6)
    paper = ContentLoss(vgg, rescale=1 / 12.75)(a, b)
    assert paper.item() == pytest.approx(plain.item() / 12.75 ** 2, rel=1e-5)


def test_config_and_template_train_agree_on_the_content_loss_default():
    import inspect

    from course_sr.config import DEFAULTS

    assert DEFAULTS["vgg_rescale"] == 1.0 and DEFAULTS["beta"] == 1e-3
    assert inspect.signature(train).parameters["vgg_rescale"].default == DEFAULTS["vgg_rescale"]
    assert inspect.signature(ContentLoss).parameters["rescale"].default == DEFAULTS["vgg_rescale"]


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


# ---------------------------------------------------------------- mixed precision, every CUDA decision on CPU
@pytest.mark.parametrize("capability, dtype", [((6, 0), torch.float16), ((7, 5), torch.float16),
                                               ((8, 0), torch.bfloat16), ((8, 6), torch.bfloat16),
                                               ((9, 0), torch.bfloat16)])
def test_amp_dtype_is_bf16_from_compute_capability_8(capability, dtype):
    assert amp_dtype(capability) == dtype


def test_precision_is_off_on_cpu():
    p = Precision("cpu")
    opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    assert not p.enabled and p.dtype == torch.float32 and not p.scaling and not p.scaler(opt).is_enabled()
    assert p.state_dict({"g": opt}) == {} and "float32" in p.describe()


@pytest.mark.parametrize("gpu, capability, dtype, scaling", [("Tesla T4", (7, 5), torch.float16, True),
                                                             ("NVIDIA A100-SXM4-40GB", (8, 0), torch.bfloat16, False)])
def test_precision_on_a_monkeypatched_gpu(monkeypatch, gpu, capability, dtype, scaling):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu)
    # What fooled the old code: on a T4 this answers True (bf16 is emulated there).
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    p = Precision("cuda:0")
    assert asked == [torch.device("cuda:0")]
    assert p.enabled and p.dtype == dtype and p.scaling == scaling and p.device_type == "cuda"
    g, d = nn.Linear(2, 1), nn.Linear(2, 1)
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    sg, sd = p.scaler(opt_g), p.scaler(opt_d)
    assert sg is p.scaler(opt_g) and sg is not sd                   # one scaler per optimiser
    assert sg.is_enabled() == sd.is_enabled() == scaling
    cc = f"compute capability {capability[0]}.{capability[1]}"
    assert cc in p.describe() and ("grad scaler per optimiser" in p.describe()) == scaling
    assert not Precision("cuda:0", enabled=False).enabled           # amp=False


def tiny_gan():
    torch.manual_seed(0)
    g, d = Generator(CFG), Discriminator(CFG)
    opt_g, opt_d, _, _ = make_gan_optimizers(g, d, CFG)
    return g, d, opt_g, opt_d


def test_fp16_autocast_and_grad_scalers_run_for_real_on_cpu():
    """The T4 path (float16 autocast + a GradScaler per optimiser), on CPU: GradScaler("cpu")."""
    g, d, opt_g, opt_d = tiny_gan()
    p = Precision("cpu", dtype=torch.float16)
    assert p.enabled and p.scaling and p.scaler(opt_g).is_enabled()
    content = ContentLoss(TruncatedVGG19(2, 2, weights="random"))
    g0, d0 = copy.deepcopy(g.state_dict()), copy.deepcopy(d.state_dict())
    out = gan_step(*batch(), g, d, opt_g, opt_d, content, p, beta=1e-3)
    assert all(bool(torch.isfinite(v)) for v in out.values())
    assert not torch.equal(g.state_dict()["conv_block1.0.weight"], g0["conv_block1.0.weight"])
    assert not torch.equal(d.state_dict()["fc2.weight"], d0["fc2.weight"])
    assert p.scaler(opt_g).get_scale() == p.scaler(opt_d).get_scale() == 2.0 ** 16   # no overflow, no skip
    state = p.state_dict({"g": opt_g, "d": opt_d})
    assert set(state) == {"g", "d"} and state["g"]["scale"] == 2.0 ** 16


def test_an_overflow_in_d_halves_ds_scale_only():
    g, d, opt_g, opt_d = tiny_gan()
    p = Precision("cpu", dtype=torch.float16)
    lr, hr = batch()
    d_before = copy.deepcopy(d.state_dict())
    with p.autocast():
        sr = g(lr)
        loss_g = pixel_loss(sr.float(), hr)
    p.step(loss_g, opt_g)
    with p.autocast():
        loss_d = discriminator_loss(d(hr), d(sr.detach())) * 1e30      # fp16 gradients overflow
    p.step(loss_d, opt_d)
    assert p.scaler(opt_d).get_scale() == 2.0 ** 15                      # D's step skipped, scale halved
    assert p.scaler(opt_g).get_scale() == 2.0 ** 16                      # G's untouched
    assert all(torch.equal(v, d_before[k]) for k, v in d.state_dict().items() if "running" not in k
               and "num_batches" not in k)


def test_fp16_step_unscales_before_clipping():
    g, d, opt_g, opt_d = tiny_gan()
    lr, hr = batch()
    ref = copy.deepcopy(g)
    pixel_loss(ref(lr), hr).backward()                                   # float32 reference gradient
    ref_grad = torch.cat([q.grad.flatten() for q in ref.parameters()])
    for clip, expect in [(1e9, ref_grad.norm()), (1e-3, torch.tensor(1e-3))]:
        model = copy.deepcopy(ref)
        model.zero_grad()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)                  # lr 0: look at the gradients only
        p = Precision("cpu", dtype=torch.float16)
        with p.autocast():
            loss = pixel_loss(model(lr).float(), hr)
        p.step(loss, opt, clip=clip)
        grad = torch.cat([q.grad.flatten() for q in model.parameters()])
        # unscaled (not 65536x the true gradient), then clipped to norm `clip`
        assert grad.norm().item() == pytest.approx(float(expect), rel=2e-2)
        if clip > 1:
            assert torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0) > 0.999


def test_precision_state_round_trip_by_optimiser_name():
    g, d, opt_g, opt_d = tiny_gan()
    p = Precision("cpu", dtype=torch.float16)
    state = p.state_dict({"g": opt_g, "d": opt_d})
    state["d"]["scale"] = 512.0                                          # as after 7 overflows in D
    q = Precision("cpu", dtype=torch.float16)
    g2, d2, opt_g2, opt_d2 = tiny_gan()
    q.load_state_dict(state, {"g": opt_g2, "d": opt_d2})
    assert q.scaler(opt_d2).get_scale() == 512.0 and q.scaler(opt_g2).get_scale() == 2.0 ** 16
    # a bf16 / float32 run saved no scalers: a float16 run starts with fresh ones
    q.load_state_dict({}, {"g": opt_g2})
    Precision("cpu").load_state_dict(state, {"g": opt_g2})              # nothing to restore: no error


def test_bf16_content_loss_of_an_image_against_itself_is_zero():
    """Under autocast SR is bfloat16 and HR float32: the VGG must normalise both alike."""
    vgg = TruncatedVGG19(2, 2, weights="random")
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ContentLoss(vgg)(x, x.float()).item() == 0.0


def test_cudnn_benchmark_is_scoped():
    before = torch.backends.cudnn.benchmark
    with cudnn_benchmark(not before):
        assert torch.backends.cudnn.benchmark == (not before)
    assert torch.backends.cudnn.benchmark == before
    with pytest.raises(RuntimeError):
        with cudnn_benchmark(not before):
            raise RuntimeError("a failing step")
    assert torch.backends.cudnn.benchmark == before


@pytest.mark.parametrize("means, weights, dominates", [
    (dict(loss_content=0.01, loss_adv=0.7), dict(beta=1e-3), False),               # 0.01 vs 7e-4
    (dict(loss_content=0.01 / 162.56, loss_adv=0.7), dict(beta=1e-3), True),      # the paper's 1/12.75 twice
    (dict(loss_content=0.001, loss_adv=0.7, loss_pixel=0.01), dict(beta=1e-3, pixel_weight=1.0), False),
])
def test_loss_balance(means, weights, dominates):
    line, flag = loss_balance(means, **weights)
    assert flag == dominates and ("WARNING: the adversarial term dominates" in line) == dominates
    assert f"beta x l_Gen = {weights['beta'] * means['loss_adv']:.4g}" in line
    assert ("pixel_weight x l_MSE" in line) == ("pixel_weight" in weights)


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
