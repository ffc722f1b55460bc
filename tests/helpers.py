"""What several test files share: small configs, run folders and checkpoint surgery.

Imported as ``from helpers import ...``: pytest puts ``tests/`` (the folder of the root
conftest.py) on ``sys.path``, also for the test files in its subfolders.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from course_sr.config import get_config, to_plain
from course_sr.plumbing.records import config_yaml


def tiny(sample_root, **overrides):
    base = dict(data_root=str(sample_root), csv_folder=str(sample_root / "data_lists"),
                n_channels=8, n_blocks=1, d_n_channels=4, d_n_blocks=4, d_fc_size=8,
                crop_size=16, batch_size=2, val_images=1, val_crop=32,
                pretrain_iters=3, gan_iters=3, lr_pretrain=1e-3, log_every=2, val_every=100, ckpt_every=2,
                tensorboard=False)
    return get_config("quick", **{**base, **overrides})


def assert_same_state(a, b):
    assert a["iteration"] == b["iteration"] and a["stage"] == b["stage"]
    for net in ("generator", "discriminator"):
        assert a["models"][net].keys() == b["models"][net].keys()
        for k, v in a["models"][net].items():
            assert torch.equal(v, b["models"][net][k]), f"{net}.{k} differs"
    for name, opt in a["optimizers"].items():
        for pid, st in opt["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b["optimizers"][name]["state"][pid][k]), f"optimizer {name} {pid} {k}"
    assert a["schedulers"] == b["schedulers"]
    # The RNG states too: nothing in training may draw from them differently after a resume.
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"]), "global torch RNG state differs"
    assert a["rng"]["python"] == b["rng"]["python"], "python RNG state differs"
    assert torch.equal(a["rng"]["numpy"][1], b["rng"]["numpy"][1]) and a["rng"]["numpy"][2:] == b["rng"]["numpy"][2:]


def without_timing(history):
    return {k: v for k, v in history.items() if not k.endswith("it_per_s")}


TINY = dict(cyc_ngf=4, cyc_ndf=4, cyc_n_blocks=1, n_channels=4, n_blocks=1, SR_nb=2, SR_nf=4, dual_nf=4,
            pool_size=2, device="cpu")


def run_cfg(sample_root, preset="cyclesr-quick", **kw):
    base = dict(data_root=str(sample_root), csv_folder=str(sample_root / "data_lists"), tensorboard=False,
                n_epoch=1, n_epoch_decay=1, iters_per_epoch=4, cyc_warmup_iters=3, pretrain_iters=6,
                val_every=4, val_images=1, val_crop=64, log_every=2, ckpt_every=100, batch_size=2)
    return get_config(preset, **{**TINY, "cyc_n_layers_D": 2, **base, **kw})


def make_run(root: Path, name: str, stage="srgan", ckpt_name="last.pt", **overrides) -> Path:
    """A run directory as the runner leaves it: config.yaml + a checkpoint with a history."""
    cfg = get_config("quick", **overrides)
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(config_yaml(cfg))
    p = cfg.pretrain_iters
    history = {"srresnet/loss": [[s, 1.0 / (s + 1)] for s in range(0, p, 5)],
               "srresnet/val_psnr": [[s, 20.0 + s / 30] for s in range(15, p + 1, 15)],
               "srgan/loss_g": [[s, 0.5] for s in range(p, p + cfg.gan_iters, 5)],
               "srgan/val_psnr": [[p + 15, 20.5]], "srgan/val_ssim": [[p + 15, 0.61]]}
    history = {k: v for k, v in history.items() if v}  # no pretraining: no stage-1 series
    state = {"format": "course_sr/1", "method": cfg.method, "stage": stage,
             "iteration": p + cfg.gan_iters, "config": to_plain(cfg),
             "arch": {"generator": "srresnet"},
             "models": {"generator": {"w": torch.zeros(2, 2)}}, "optimizers": {}, "schedulers": {},
             "scaler": None, "history": history, "rng": {}, "best_psnr": 21.0}
    torch.save(state, run / "checkpoints" / ckpt_name)
    (run / "samples").mkdir()
    for it in (15, 45):  # the newest grid (by iteration) goes in the report
        Image.fromarray(np.full((6, 6, 3), it, np.uint8)).save(run / "samples" / f"{stage}_{it}.png")
    return run


def flip_bytes_inside(path, tensor, n=16):
    """Flip ``n`` bytes in the middle of ``tensor``'s stored bytes in the file at ``path``."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().view(torch.uint8).numpy().tobytes()
    at = data.find(raw)
    assert at > 0, "the tensor's bytes are stored verbatim in the zip"
    start = at + len(raw) // 2 - n // 2
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
