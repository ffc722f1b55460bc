"""A run and its results in words: what was trained, and what the numbers mean.

The demo prints these lines and the experiment report (``course_sr.results.report``) writes them, so a
reader of either learns the same three things: what was trained (data, sizes, budget, the
variant, every departure from the paper), how each network compares with bicubic, and how far
that is from the paper.

- :func:`schedule_lines`: one Markdown bullet per part of a run (data and network, then each
  stage), from the run's config alone;
- :func:`results_notes`: bullets that read an evaluation summary (``course_sr.results.evaluate``):
  each network's gain over MATLAB bicubic and, where the table has it, over the bicubic base a
  ``bicubic_residual`` network adds to (``torch-bicubic``), the colour check (largest mean-Y
  shift), and the paper's figures beside them.
"""
from __future__ import annotations

from typing import Any, Mapping

from easydict import EasyDict

from course_sr.config import DEFAULTS
from course_sr.models import build_generator, count_parameters

# Ledig et al., CVPR 2017, Table 2: x4 PSNR (dB) on Y, their own evaluation. Their SSIM used
# another convention (bicubic Set5 0.8211 there, 0.8104 in the papers that followed), so only
# PSNR is quoted beside the kit's numbers.
PAPER_X4_PSNR = {"Set5": {"bicubic": 28.43, "SRResNet": 32.05, "SRGAN": 29.40},
                 "Set14": {"bicubic": 25.99, "SRResNet": 28.49, "SRGAN": 26.02}}
BASELINES = {"bicubic": "MATLAB bicubic (imresize)",
             "torch-bicubic": "PyTorch bicubic (a = -0.75), the base a bicubic_residual network adds to"}


def fmt(v: Any) -> str:
    """A setting as the report prints it: floats in 6 significant digits, tuples in brackets."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(fmt(x) for x in v) + ")"
    return "None" if v is None else str(v)


def _generator_parameters(cfg: Mapping[str, Any]) -> int:
    return count_parameters(build_generator(EasyDict({**DEFAULTS, **cfg})))


def _srresnet_words(g) -> str:
    """SRResNet sizes beside the paper's, and the bicubic-residual departure when it is on."""
    paper = {k: DEFAULTS[k] for k in ("n_blocks", "n_channels", "large_kernel_size")}
    mine = {k: g(k) for k in paper}
    words = (f"generator `srresnet`: {g('n_blocks')} residual blocks of {g('n_channels')} channels, "
             f"{g('large_kernel_size')}x{g('large_kernel_size')} first/last convs, "
             f"{_generator_parameters({k: g(k) for k in DEFAULTS}):,} parameters")
    if mine != paper:
        words += (f" (the paper's: {paper['n_blocks']} blocks of {paper['n_channels']}, "
                  f"{paper['large_kernel_size']}x{paper['large_kernel_size']}, "
                  f"{_generator_parameters(DEFAULTS):,})")
    if g("bicubic_residual"):
        words += ("; **bicubic residual** (not in the paper): SR = bicubic(LR) + G(LR), so the network "
                  "only adds what PyTorch's bicubic upscale (`torch-bicubic` in the results) misses")
    return words


def schedule_lines(cfg: Mapping[str, Any]) -> list[str]:
    """A run's training schedule in words, one Markdown bullet per stage (from its config)."""
    g = lambda k: cfg.get(k, DEFAULTS.get(k))  # noqa: E731 - configs of older runs may lack keys
    data = (f"batch {g('batch_size')} of {g('crop_size')} px HR crops from `{g('train_split')}`, "
            f"x{g('scaling_factor')}, seed {g('seed')}")
    net = (_srresnet_words(g) if g("generator") == "srresnet" else f"generator `{g('generator')}`")
    method = g("method")
    if method == "srgan":
        if (g("batch_size"), g("crop_size")) != (DEFAULTS["batch_size"], DEFAULTS["crop_size"]):
            data += f" (paper: batch {DEFAULTS['batch_size']} of {DEFAULTS['crop_size']} px)"
        d_keys = ("d_n_blocks", "d_n_channels", "d_fc_size")
        if any(g(k) != DEFAULTS[k] for k in d_keys):
            net += (f"; discriminator: {g('d_n_blocks')} convs from {g('d_n_channels')} channels, dense "
                    f"{g('d_fc_size')} (paper: {DEFAULTS['d_n_blocks']} from {DEFAULTS['d_n_channels']}, "
                    f"dense {DEFAULTS['d_fc_size']})")
        stage1 = (f"**Stage 1, SRResNet**: {g('pretrain_iters')} iterations of pixel MSE, "
                  f"Adam lr {fmt(g('lr_pretrain'))} (paper: 10^6 at 1e-4)" if g("pretrain_iters") else
                  "**Stage 1, SRResNet**: skipped (no pretraining: the GAN starts from random weights"
                  + (f" or from `{g('init_from')}`" if g("init_from") else "") + ")")
        if g("content_loss") == "mse":
            variant = ("**Stage 2, SRGAN-MSE** (the paper's variant with the pixel MSE as content loss; "
                       "needs no ImageNet VGG; the paper's SRGAN proper uses VGG54)")
            terms = [f"{fmt(g('content_weight'))} x pixel MSE content"]
        else:
            variant = "**Stage 2, SRGAN**"
            terms = [f"{fmt(g('content_weight'))} x VGG{g('vgg_i')}{g('vgg_j')} content ({g('vgg_weights')} weights)"]
        terms.append(f"{fmt(g('beta'))} x adversarial")
        if g("pixel_weight"):
            terms.append(f"{fmt(g('pixel_weight'))} x pixel MSE")
        decay_at = int(round(g("lr_decay_at") * g("gan_iters")))
        start = (f"`{g('init_from')}`" if g("init_from") else
                 "this run's stage 1" if g("pretrain_iters") else "random weights")
        stage2 = (f"{variant} from {start}: {g('gan_iters')} iterations; G loss = "
                  + " + ".join(terms) + f"; G{g('g_steps')}D{g('d_steps')} (generator / discriminator "
                  f"steps per iteration); Adam lr G {fmt(g('lr_g'))}, D {fmt(g('lr_d'))}, "
                  f"both x{fmt(g('lr_decay_gamma'))} after {decay_at} of them (paper: 10^5 at 1e-4, then 10^5 at 1e-5)")
        return [f"- Data: {data}; {net}", f"- {stage1}", f"- {stage2}"]
    if method == "cyclesr":
        return [f"- Data: {data}; SR net `{g('sr_net')}`; real-LR domain `{g('real_lr_split')}`"
                + (f", synthetic degradation `{g('degradation')}`" if g("degradation") else ""),
                f"- **Warm-up**: {g('cyc_warmup_iters')} CycleGAN-only iterations",
                f"- **Joint CycleSR**: {g('n_epoch')} epochs at constant lr + {g('n_epoch_decay')} "
                f"epochs of linear decay to 0, {g('iters_per_epoch')} iterations each; Adam lr "
                f"CycleGAN {fmt(g('cyc_lr'))}, SR {fmt(g('SR_lr'))}; lambda_cycle "
                f"{fmt(g('lambda_cycle'))}, lambda_identity {fmt(g('lambda_identity'))}, SR_lam "
                f"{fmt(g('SR_lam'))}, cycleSR_lam {fmt(g('cycleSR_lam'))}, grad clip {fmt(g('grad_clip'))}"]
    if method == "dual":
        return [f"- Data: {data}; {net}; real-LR domain `{g('real_lr_split')}`"
                + (f", synthetic degradation `{g('degradation')}`" if g("degradation") else ""),
                f"- **Dual regression**: {g('pretrain_iters')} iterations, Adam lr "
                f"{fmt(g('lr_pretrain'))}; loss = pixel + {fmt(g('dual_lambda'))} x dual (SR -> LR), "
                f"+ {fmt(g('dual_unpaired_weight'))} x loop loss on unpaired real LR"]
    return [f"- method `{method}`: {data}"]


def results_notes(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Markdown bullets reading an evaluation summary (``{set: {method: {"psnr", "ssim", ...}}}``).

    Per set, every network against MATLAB ``bicubic`` (dB and SSIM) and, when the summary has
    ``torch-bicubic``, against that base too (the part of the gain the network learned); the
    largest mean-Y shift of any image (``y_shift_max``: a colour or brightness cast shows here);
    the paper's PSNR for the sets it reports. Empty when no set has a ``bicubic`` row.
    """
    lines: list[str] = []
    for set_name, rows in summary.items():
        ref, base = rows.get("bicubic"), rows.get("torch-bicubic")
        nets = {m: r for m, r in rows.items() if m not in BASELINES}
        if ref is None or not nets:
            continue
        parts = []
        for m, r in nets.items():
            text = (f"{m} {r['psnr']:.2f} dB ({r['psnr'] - ref['psnr']:+.2f} over bicubic; SSIM "
                    f"{r['ssim']:.4f}, {r['ssim'] - ref['ssim']:+.4f}")
            if base is not None:
                text += f"; {r['psnr'] - base['psnr']:+.2f} dB over the torch-bicubic base"
            parts.append(text + ")")
        head = f"MATLAB bicubic {ref['psnr']:.2f} dB"
        if base is not None:
            head += f", torch-bicubic base {base['psnr']:.2f} dB"
        lines.append(f"- **{set_name}**: {head}; " + "; ".join(parts) + ".")
        shifts = {m: r["y_shift_max"] for m, r in rows.items() if "y_shift_max" in r}
        if shifts:
            lines.append(f"  Largest mean-Y shift of one image (SR - HR, levels of 255; a colour or brightness "
                         "cast shows here, a few tenths is noise): "
                         + ", ".join(f"{m} {v:.2f}" for m, v in shifts.items()) + ".")
        paper = PAPER_X4_PSNR.get(set_name)
        if paper:
            lines.append(f"  The SRGAN paper (Ledig et al. 2017, Table 2; 16 blocks of 64 channels, 10^6 "
                         f"iterations on ImageNet) reports bicubic {paper['bicubic']:.2f}, SRResNet "
                         f"{paper['SRResNet']:.2f}, SRGAN {paper['SRGAN']:.2f} dB here.")
    if lines and any("torch-bicubic" in rows for rows in summary.values()):
        lines.append("- The torch-bicubic row is what a `bicubic_residual` network starts from (its last "
                     "layer begins at zero): the gain it *learned* is its PSNR minus that row, not minus "
                     "MATLAB bicubic.")
    if lines:
        lines.append("- PSNR and SSIM reward matching pixels. With the VGG content loss and a real budget "
                     "the adversarial stage trades PSNR for texture (in the paper SRGAN is 2.65 dB below "
                     "SRResNet on Set5, yet people rated it far higher); a short SRGAN-MSE stage at the "
                     "paper's lr, as in quick mode, stays close to the SRResNet it starts from.")
    return lines
