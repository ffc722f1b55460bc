"""Training-step speed at the paper's sizes: course_sr's steps against a plain fp32 step.

Networks: SRResNet (16 blocks, 64 channels, x4), the full discriminator, VGG54 (random weights:
the values do not change the cost, and nothing downloads). Batch 16 of 96 x 96 HR crops on a
GPU (fewer on CPU, see flags), synthetic tensors (this measures compute, not data loading).
For each stage, in the same run, timed alternately step by step:

- kit:   ``course_sr.solver.pretrain_step`` / ``gan_step`` as the training loop uses them with the
         default config: mixed precision (``solver.amp_dtype``: bf16, or fp16 + a grad scaler per
         optimiser) + cudnn.benchmark on CUDA (+ channels_last when ``config.channels_last``),
         VGG frozen, D frozen during G's step, HR features without a graph;
- plain: the template's loop body on the same networks: float32, NCHW, VGG parameters
         requiring grad (computed and thrown away), D not frozen during G's step.

On CPU the kit's speed-ups are off by design (no AMP / channels_last there), so the ratio only
shows what freezing saves. ``benchmarks/gpu_check.py`` measures each CUDA option on its own.
Last stdout line: one JSON object.

    python benchmarks/bench_train.py [--device auto|cpu|cuda] [--batch N] [--iters N] [--warmup N]
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch
import torch.nn.functional as F

from course_sr.config import get_config
from course_sr.models import Discriminator, Generator, TruncatedVGG19, count_parameters
from course_sr.solver import ContentLoss, Precision, gan_step, make_gan_optimizers, pretrain_step


def plain_pretrain_step(lr, hr, generator, optimizer):
    sr = generator(lr)
    loss = F.mse_loss(sr, hr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def plain_gan_step(lr, hr, generator, discriminator, vgg, optimizer_g, optimizer_d, beta=1e-3, rescale=1.0):
    """The template's SRGAN iteration (sgrvinod's train loop body), float32, nothing frozen."""
    sr = generator(lr)
    sr_features = vgg(sr) * rescale
    hr_features = (vgg(hr) * rescale).detach()
    sr_logits = discriminator(sr)
    content = F.mse_loss(sr_features, hr_features)
    adversarial = F.binary_cross_entropy_with_logits(sr_logits, torch.ones_like(sr_logits))
    optimizer_g.zero_grad()
    (content + beta * adversarial).backward()
    optimizer_g.step()
    hr_logits, sr_logits = discriminator(hr), discriminator(sr.detach())
    loss_d = (F.binary_cross_entropy_with_logits(sr_logits, torch.zeros_like(sr_logits))
              + F.binary_cross_entropy_with_logits(hr_logits, torch.ones_like(hr_logits)))
    optimizer_d.zero_grad()
    loss_d.backward()
    optimizer_d.step()
    return loss_d


def timed_pair(kit, plain, iters, warmup, device) -> tuple[float, float]:
    """Iterations per second of ``kit()`` and ``plain()`` from each one's fastest step (as timeit
    does: on a shared machine, slower steps measure the neighbours), timed alternately so a
    change of load hits both alike, after ``warmup`` untimed calls of each."""
    def once(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        value = float(out.detach())          # waits for the GPU; and checks it is a number
        if device.type == "cuda":
            torch.cuda.synchronize()
        assert value == value, "NaN loss in the benchmark"
        return time.perf_counter() - start

    for _ in range(warmup):
        once(kit), once(plain)
    kit_s, plain_s = [], []
    for _ in range(iters):
        kit_s.append(once(kit))
        plain_s.append(once(plain))
    return 1 / min(kit_s), 1 / min(plain_s)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=None, help="default 16 on CUDA, 2 on CPU")
    p.add_argument("--crop", type=int, default=96, help="HR crop side (paper: 96)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default 30 CUDA, 3 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations (default 10 CUDA, 1 CPU)")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    batch = args.batch or (16 if cuda else 2)
    iters = args.iters or (30 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    cfg = get_config("paper", vgg_weights="random", allow_random_vgg=True, crop_size=args.crop)
    if cuda:
        torch.backends.cudnn.benchmark = bool(cfg.cudnn_benchmark)

    torch.manual_seed(0)
    lr = torch.rand(batch, 3, args.crop // 4, args.crop // 4, device=device)     # [0, 1]
    hr = torch.rand(batch, 3, args.crop, args.crop, device=device) * 2 - 1       # [-1, 1]
    g_plain, d_plain = Generator(cfg).to(device), Discriminator(cfg).to(device)
    vgg_plain = TruncatedVGG19(5, 4, weights="random").to(device)
    vgg_plain.requires_grad_(True)                 # as the template: its grads are computed, unused
    g_kit, d_kit, vgg_kit = (copy.deepcopy(m) for m in (g_plain, d_plain, vgg_plain))
    vgg_kit.requires_grad_(False)
    channels_last = cuda and bool(cfg.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g_kit, d_kit, vgg_kit = (m.to(memory_format=fmt) for m in (g_kit, d_kit, vgg_kit))
    lr_kit, hr_kit = lr.contiguous(memory_format=fmt), hr.contiguous(memory_format=fmt)
    precision = Precision(device, enabled=True)
    content = ContentLoss(vgg_kit, cfg.vgg_rescale)

    opt_pre_plain = torch.optim.Adam(g_plain.parameters(), lr=1e-4)
    opt_pre_kit = torch.optim.Adam(g_kit.parameters(), lr=1e-4)
    opt_g_plain, opt_d_plain, _, _ = make_gan_optimizers(g_plain, d_plain, cfg)
    opt_g_kit, opt_d_kit, _, _ = make_gan_optimizers(g_kit, d_kit, cfg)

    print(f"device {device} ({torch.cuda.get_device_name(device) if cuda else f'{torch.get_num_threads()} threads'}), "
          f"batch {batch}, HR crop {args.crop}, {iters} timed + {warmup} warm-up iterations; kit {precision}; "
          f"G {count_parameters(g_kit):,} / D {count_parameters(d_kit):,} parameters", file=sys.stderr)
    results = {}
    steps = {
        "stage1": (lambda: pretrain_step(lr_kit, hr_kit, g_kit, opt_pre_kit, precision)["loss"],
                   lambda: plain_pretrain_step(lr, hr, g_plain, opt_pre_plain)),
        "stage2": (lambda: gan_step(lr_kit, hr_kit, g_kit, d_kit, opt_g_kit, opt_d_kit, content, precision,
                                    beta=cfg.beta)["loss_d"],
                   lambda: plain_gan_step(lr, hr, g_plain, d_plain, vgg_plain, opt_g_plain, opt_d_plain,
                                          rescale=cfg.vgg_rescale)),
    }
    for stage, (kit, plain) in steps.items():
        kit_rate, plain_rate = timed_pair(kit, plain, iters, warmup, device)
        results[stage] = {"kit_it_per_s": round(kit_rate, 3), "plain_it_per_s": round(plain_rate, 3),
                          "speedup": round(kit_rate / plain_rate, 2)}
        print(f"{stage}: kit {kit_rate:.3f} it/s, plain {plain_rate:.3f} it/s, x{kit_rate / plain_rate:.2f}",
              file=sys.stderr)
    summary = {"benchmark": "bench_train", "device": str(device),
               "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
               "threads": torch.get_num_threads(), "batch": batch, "crop": args.crop, "iters": iters,
               "amp_dtype": str(precision.dtype).replace("torch.", ""), "channels_last": channels_last,
               "torch": torch.__version__, **results}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
