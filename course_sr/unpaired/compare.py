"""The comparison behind ``benchmarks/bench_cyclesr.py`` and ``cyclesr.ipynb``: bicubic, the SR
network trained on bicubic LR (:class:`PairedSR`), an oracle trained on the true synthetic
degradation, CycleSR and dual regression, on the same batches and number of SR-network updates,
scored on degraded test images whose HR is known (:func:`compare_methods`).

Scores are mean Y-channel PSNR/SSIM with ``scale`` pixels shaved (``metrics.psnr_ssim``, the
convention of SR papers), through the training loop's own validation
(``course_sr.training.validate``). Every image here is in [0, 1].
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import torch
from easydict import EasyDict
from torch import nn

from course_sr.data.loader import make_train_loader
from course_sr.datasets import SRDataset
from course_sr.imresize import imresize
from course_sr.training import data_config, validate
from course_sr.unpaired.cyclesr import CycleSR, DualRegression, PairedSR
from course_sr.unpaired.data import UnpairedDataset, degraded_pairs, tensor_pairs
from course_sr.utils import seed_everything


# --------------------------------------------------------------------------------------
# The comparison: bicubic, SR trained on bicubic LR, CycleSR, dual regression (and an oracle)
# --------------------------------------------------------------------------------------
class Bicubic(nn.Module):
    """Bicubic upsampling (the kit's MATLAB-exact ``imresize``, float path) posing as an SR
    network, so tables treat it like the others: LR [0, 1] -> SR [0, 1]; no weights."""

    output_range = "[0, 1]"

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int(scale)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return imresize(lr, scalar_scale=self.scale)


COMPARED = ("bicubic", "paired", "oracle", "cyclesr", "dual")
LABELS = {"bicubic": "bicubic", "paired": "{net} trained on bicubic LR", "cyclesr": "CycleSR ({net})",
          "dual": "dual regression ({net})", "oracle": "{net} on the true degradation (oracle)"}


def comparison_sets(config: Mapping[str, Any], split: str | None = None) -> dict[str, list]:
    """``{"<split> degraded": [(lr, hr)], "<split> clean": [(lr, hr)]}``: whole images of ``split``
    (default ``val_split``) as tensors in [0, 1], HR degraded with ``test_degradation``, and with
    the list's own bicubic LR files. ``config`` must have its data paths filled in."""
    split = split or config["val_split"]
    clean = SRDataset(split, config, train=False)
    return {f"{split} degraded": tensor_pairs(degraded_pairs(config, split, config["test_degradation"])),
            f"{split} clean": [clean[i] for i in range(len(clean))]}


def compare_methods(config: Mapping[str, Any], iters: int, methods=COMPARED, sets: Mapping[str, list] | None = None,
                    device="cpu", log=print) -> dict[str, Any]:
    """Train each method for the same ``iters`` iterations on the same data stream and score it.

    Every learned method uses the same SR network (``config.sr_net``, same sizes and seed), the
    same batches of :class:`~course_sr.unpaired.data.UnpairedDataset` (a synthetic ``degradation`` is
    needed, so that the degraded test set has ground truth), Adam at ``SR_lr`` for the SR network,
    and the schedule squeezed into ``iters`` (constant for half, then linear decay to zero).
    CycleSR runs ``cyc_warmup_iters`` CycleGAN-only iterations BEFORE those ``iters`` (so its SR
    network gets the same number of updates as the others; the warm-up's time is in its
    ``train_s``); the first ``cyc_sr_iters`` of its ``iters`` are Vega's SR-only phase on bicubic
    LR. Dual regression (DRN's L1 losses) uses ``lr_pretrain``, constant. ``sets``: ``{name: [(lr, hr)]}``
    tensors in [0, 1] (default :func:`comparison_sets`); scores are mean Y-PSNR/SSIM, ``scale``
    pixels shaved (``metrics.psnr_ssim``).

    Returns ``{"results": {method: {set: {"psnr", "ssim"}, "train_s": s}}, "nets": {method: SR
    network}, "labels": {method: label}, "budget": {...}}``.
    """
    unknown = set(methods) - set(COMPARED)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {COMPARED}")
    cfg = data_config(config)
    if cfg.get("degradation") is None:
        raise ValueError("compare_methods needs a synthetic degradation (config.degradation): the degraded "
                         "test images need their ground truth")
    half, warm = max(1, iters // 2), int(cfg.cyc_warmup_iters)
    cfg.update(n_epoch=1, n_epoch_decay=1, iters_per_epoch=half, pretrain_iters=2 * half)
    # CycleSR: the warm-up, then the same schedule as the others (counted in single iterations)
    cyc_cfg = EasyDict({**cfg, "n_epoch": warm + half, "n_epoch_decay": half, "iters_per_epoch": 1})
    sets = dict(sets) if sets is not None else comparison_sets(cfg)
    dataset = UnpairedDataset(cfg)
    net_name = {"srresnet": "SRResNet", "vdsr": "VDSR"}.get(cfg.sr_net, cfg.sr_net)
    out: dict[str, Any] = {"results": {}, "nets": {}, "labels": {},
                           "budget": {"iters": 2 * half, "cyc_warmup_iters": warm, "cyc_sr_iters": int(cfg.cyc_sr_iters),
                                      "batch_size": cfg.batch_size,
                                      "crop_size": cfg.crop_size, "sr_net": cfg.sr_net,
                                      "clean_images": dataset.n_clean, "real_images": len(dataset.real),
                                      "test_images": {k: len(v) for k, v in sets.items()}}}
    for m in methods:
        seed_everything(int(cfg.seed))
        t0 = time.perf_counter()
        if m == "bicubic":
            net = Bicubic(cfg.scaling_factor)
        else:
            t = {"paired": lambda: PairedSR(cfg, device, "clean"), "oracle": lambda: PairedSR(cfg, device, "oracle"),
                 "cyclesr": lambda: CycleSR(cyc_cfg, device), "dual": lambda: DualRegression(cfg, device)}[m]()
            batches = iter(make_train_loader(dataset, cfg))
            for i in range(t.total_iters):
                t.step(next(batches), i)
            net = t.sr_net.eval()
        train_s = time.perf_counter() - t0
        out["results"][m] = {**score_methods({m: net}, sets, device)[m], "train_s": train_s}
        out["nets"][m], out["labels"][m] = net, LABELS[m].format(net=net_name)
        log(f"{out['labels'][m]:<42} " + "   ".join(f"{k} {v['psnr']:6.2f} / {v['ssim']:.4f}"
                                                    for k, v in out["results"][m].items() if k != "train_s")
            + f"   ({train_s:.0f} s)")
    return out


def score_methods(nets: Mapping[str, nn.Module], sets: Mapping[str, list], device="cpu") -> dict[str, dict]:
    """``{method: {set: {"psnr", "ssim"}}}``: mean Y-PSNR/SSIM (shave = scale) of each SR network
    (``Bicubic``, or one from ``models.load_generator``) on each set of ``[(lr, hr)]`` tensors."""
    out = {}
    for m, net in nets.items():
        out[m] = {}
        for name, pairs in sets.items():
            scores = validate(net, pairs, device, grid=False)[0]
            out[m][name] = {"psnr": scores["val_psnr"], "ssim": scores["val_ssim"]}
    return out


def format_comparison(results: Mapping[str, Mapping], labels: Mapping[str, str] | None = None,
                      baseline: str = "paired") -> str:
    """A Markdown table of ``results`` (``compare_methods(...)["results"]`` or ``score_methods``):
    PSNR / SSIM per set, with each method's PSNR gain over ``baseline`` (the network trained on
    bicubic LR) in parentheses, and the training time when known."""
    labels = labels or {}
    names = [k for k in next(iter(results.values())) if k != "train_s"]
    timed = any("train_s" in r for r in results.values())
    base = results.get(baseline)
    head = "| method | " + " | ".join(f"{n} PSNR / SSIM" for n in names) + (" | train s |" if timed else " |")
    lines = [head, "|---" * (len(names) + 1 + timed) + "|"]
    for m, r in results.items():
        cells = []
        for n in names:
            gain = f" ({r[n]['psnr'] - base[n]['psnr']:+.2f})" if base is not None and m != baseline else ""
            cells.append(f"{r[n]['psnr']:.2f}{gain} / {r[n]['ssim']:.4f}")
        time_cell = f" | {r['train_s']:.0f}" if timed else ""
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(cells) + time_cell + " |")
    return "\n".join(lines)
