"""The distributed path on CPU: gloo, 2 processes started by torchrun, 127.0.0.1 only.

CI has no GPU, so the multi-process tests run this file itself as torchrun's worker script
(``python -m torch.distributed.run --nproc_per_node=2 tests/test_distributed.py worker OUT ROOT``):
each rank joins the group through :func:`course_sr.plumbing.distributed.init_distributed` exactly as the
``train`` command does, runs every case, and saves what it saw to ``OUT/rank<r>.pt``. The tests
then compare those with single-process references computed here, in the pytest process:

- ``AllReduceBatchNorm`` on each rank's share == ``nn.BatchNorm`` on the concatenated batch
  (outputs, input gradients, weight/bias gradients, running statistics; uneven shares too);
- one SRResNet step (solver.pretrain_step, SGD so gradient magnitudes count) with DDP on
  2 processes x batch b == one process with batch 2b, with ``sync_bn=True``; and, the documented
  choice, NOT equal without sync BN (per-process BatchNorm statistics).

The runner is run the way a user runs it, ``torchrun --nproc_per_node=2 -m course_sr train``
(1 SRResNet + 1 of 2 SRGAN iterations, batch b per process, sync_bn): rank 0 alone logs,
validates and writes; its first step equals one process with batch 2b through the runner (Adam);
its mid-stage checkpoint resumes on 1 process, with batch 2b ending where the single-process run
ends (G and D), and with its own config continuing the data stream after the samples used.
"""
from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from course_sr.plumbing import distributed as D
from course_sr.config import get_config

THIS = Path(__file__).resolve()
REPO = THIS.parents[2]
WORLD = 2
B = 2                                  # per-process batch of the training-step case


# --------------------------------------------------------------------------------------
# Launching torchrun on this machine only
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], nproc: int = WORLD, timeout: int = 180) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node=nproc ARGS`` on 127.0.0.1, checked."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


# --------------------------------------------------------------------------------------
# Cases shared by the worker and the references (pure functions of their arguments)
# --------------------------------------------------------------------------------------
# name -> (BatchNorm dims, per-rank batch sizes, channels, momentum, affine)
BN_CASES = {
    "2d": (2, (3, 3), 4, 0.1, True),
    "2d-uneven-shares": (2, (1, 4), 3, 0.1, True),
    "1d-cumulative-average": (1, (4, 2), 3, None, True),
    "3d-no-affine": (3, (2, 3), 2, 0.3, False),
}
BN_STEPS = 2                          # two training forwards: running statistics move twice


def bn_module(dims: int, channels: int, momentum, affine: bool) -> nn.Module:
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
    bn = cls(channels, momentum=momentum, affine=affine)
    if affine:
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(channels, generator=g))
    return bn


def bn_batch(dims: int, n: int, channels: int, step: int):
    """Global input ``(n, C, *)`` (mean far from 0, as activations are) and output weights."""
    g = torch.Generator().manual_seed(100 + step)
    spatial = {1: (), 2: (3, 5), 3: (2, 3, 2)}[dims]
    x = torch.randn(n, channels, *spatial, generator=g) * 2 + 3
    return x, torch.randn(x.shape, generator=g)


def bn_trace(bn: nn.Module, dims, sizes, channels, rank: int | None) -> dict:
    """Train ``bn`` for BN_STEPS on the global batch (rank None) or on rank's share of it.

    Loss: sum(y * w), so a share's loss is its part of the global loss and input gradients
    compare directly; parameter gradients of the shares are summed over ranks.
    """
    lo = 0 if rank is None else sum(sizes[:rank])
    hi = sum(sizes) if rank is None else lo + sizes[rank]
    out = {}
    for step in range(BN_STEPS):
        x, w = bn_batch(dims, sum(sizes), channels, step)
        x = x[lo:hi].clone().requires_grad_(True)
        bn.zero_grad()
        y = bn(x)
        (y * w[lo:hi]).sum().backward()
        out[f"y{step}"], out[f"grad_x{step}"] = y.detach(), x.grad
        for name, p in bn.named_parameters():
            grad = p.grad.clone()
            if rank is not None:
                torch.distributed.all_reduce(grad)
            out[f"grad_{name}{step}"] = grad
    out.update({f"buffer_{k}": v.clone() for k, v in bn.named_buffers()})
    bn.eval()
    out["y_eval"] = bn(bn_batch(dims, 3, channels, 99)[0]).detach()
    return out


def step_config(sample_root, batch_size: int):
    from course_sr.data.sample import resolve_data

    # bicubic_residual off: its last conv starts at zero, so one step would not reach the BatchNorms.
    return resolve_data(get_config("quick", data_root=str(sample_root), batch_size=batch_size,
                                   bicubic_residual=False))


def srresnet_step(cfg, info: D.DistInfo, sync_bn: bool) -> dict[str, torch.Tensor]:
    """One ``pretrain_step`` (pixel MSE, SGD lr 0.5) of the quick SRResNet on the first batch of
    this process's share; returns the plain network's state dict afterwards."""
    from course_sr.datasets import SRDataset
    from course_sr.data.loader import make_train_loader
    from course_sr.models import Generator
    from course_sr.solver import pretrain_step
    from course_sr.utils import convert_image, seed_everything

    seed_everything(cfg.seed)
    model = D.wrap_model(Generator(cfg).train(), info, sync_bn=sync_bn)
    data = SRDataset(cfg.train_split, cfg)
    lr, hr = next(iter(make_train_loader(data, cfg, num_replicas=info.world_size, rank=info.rank)))
    # SGD, not the runner's Adam: Adam's first step is ~lr * sign(grad), blind to gradient scale.
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    pretrain_step(lr, convert_image(hr, "[0, 1]", "[-1, 1]"), model, opt)
    return {k: v.clone() for k, v in D.unwrap(model).state_dict().items()}


# --------------------------------------------------------------------------------------
# The torchrun worker (this file run as a script)
# --------------------------------------------------------------------------------------
def worker(out_dir: str, sample_root: str) -> None:
    info = D.init_distributed({"device": "cpu"})
    res: dict = {"info": [info.rank, info.world_size, info.local_rank, str(info.device), info.is_main],
                 "backend": torch.distributed.get_backend()}
    res["broadcast"] = D.broadcast_object({"from": info.rank, "items": [info.rank] * 3})
    res["mean"] = D.all_reduce_mean(torch.tensor([float(info.rank), 10.0 * info.rank]))
    D.barrier()
    for name, (dims, sizes, channels, momentum, affine) in BN_CASES.items():
        bn = D.convert_sync_batchnorm(bn_module(dims, channels, momentum, affine))
        res[f"bn/{name}/class"] = type(bn).__name__
        res[f"bn/{name}"] = bn_trace(bn, dims, sizes, channels, info.rank)
    cfg = step_config(sample_root, B)
    res["step/sync_bn"] = srresnet_step(cfg, info, sync_bn=True)
    res["step/plain_bn"] = srresnet_step(cfg, info, sync_bn=False)
    res.update(runner_rng_case(Path(out_dir), Path(sample_root), info))
    res.update(runner_non_finite_case(Path(out_dir), Path(sample_root), info))
    torch.save(res, Path(out_dir) / f"rank{info.rank}.pt")
    D.cleanup()


def runner_rng_case(out: Path, sample_root, info: D.DistInfo) -> dict:
    """Each rank draws a different number of values per step, so the ranks' RNG streams differ;
    a checkpoint must give each rank its own back (the CUDA generator travels the same way)."""
    import shutil

    from course_sr import training
    from course_sr.solver import SRGANTrainer

    cfg = get_config("quick", **run_overrides(sample_root))
    real_step, real_restore = SRGANTrainer.step, training.restore_rng_state
    restored = {}

    def step(self, batch, iteration):
        torch.rand(1 + self.info.rank)
        return real_step(self, batch, iteration)

    def restore(state, device="cpu"):
        real_restore(state, device)
        restored["torch"] = torch.get_rng_state().clone()

    SRGANTrainer.step, training.restore_rng_state = step, restore
    try:
        training.run(cfg, out / "rng", max_iters=2)
        saved = torch.get_rng_state().clone()            # nothing draws after the last save
        D.barrier()
        if info.is_main:
            shutil.copy(out / "rng" / "checkpoints" / "last.pt", out / "rng_last.pt")
        D.barrier()
        torch.manual_seed(12345)                          # forget the streams
        training.run(cfg, out / "rng", max_iters=1, resume=out / "rng" / "checkpoints" / "last.pt")
    finally:
        SRGANTrainer.step, training.restore_rng_state = real_step, real_restore
    return {"rng/saved": saved, "rng/restored": restored["torch"]}


def runner_non_finite_case(out: Path, sample_root, info: D.DistInfo) -> dict:
    """Rank 1 alone gets a NaN weight right after iteration 2's step: the save that follows
    must stop BOTH ranks (one rank stopping alone would hang the other in its next all-reduce)
    and write nothing."""
    from course_sr import training
    from course_sr.plumbing.checkpoint import NonFiniteError
    from course_sr.solver import SRGANTrainer

    cfg = get_config("quick", **run_overrides(sample_root))
    real_step = SRGANTrainer.step

    def step(self, batch, iteration):
        out_ = real_step(self, batch, iteration)
        if self.info.rank == 1 and iteration == 1:      # the step that makes iteration 2
            with torch.no_grad():
                self.generator.conv_block1[0].weight[0, 0, 0, 0] = float("nan")
        return out_

    SRGANTrainer.step = step
    try:
        training.run(cfg, out / "nan")
        error = ""
    except NonFiniteError as err:
        error = str(err)
    finally:
        SRGANTrainer.step = real_step
    D.barrier()                                           # both ranks got here: nobody hung
    return {"nan/error": error}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, sample_root) -> list[dict]:
    """Run the worker on 2 gloo processes once; what each rank saved."""
    out = tmp_path_factory.mktemp("gloo")
    torchrun([str(THIS), "worker", str(out), str(sample_root)])
    return [{**torch.load(out / f"rank{r}.pt"), "out": out} for r in range(WORLD)]


# --------------------------------------------------------------------------------------
# Multi-process tests
# --------------------------------------------------------------------------------------
def test_init_distributed_reads_torchruns_environment(ranks):
    for r, res in enumerate(ranks):
        assert res["info"] == [r, WORLD, r, "cpu", r == 0]
        assert res["backend"] == "gloo"
        assert res["broadcast"] == {"from": 0, "items": [0, 0, 0]}
        torch.testing.assert_close(res["mean"], torch.tensor([0.5, 5.0]))


def test_each_rank_resumes_with_its_own_rng_streams(ranks, tmp_path_factory):
    from course_sr.plumbing.checkpoint import load_checkpoint, rank_rng_state

    saved = [res["rng/saved"] for res in ranks]
    assert not torch.equal(saved[0], saved[1])                     # the streams really differ
    ckpt = load_checkpoint(ranks[0]["out"] / "rng_last.pt")
    assert len(ckpt["rng_ranks"]) == WORLD and torch.equal(ckpt["rng"]["torch"], saved[0])
    for r, res in enumerate(ranks):
        assert torch.equal(rank_rng_state(ckpt, r)["torch"], saved[r])
        assert torch.equal(res["rng/restored"], saved[r]), f"rank {r} resumed with another rank's stream"
    assert rank_rng_state(ckpt, WORLD)["torch"].equal(saved[0])     # more ranks than saved: rank 0's


def test_a_nan_on_one_rank_stops_every_rank_before_any_save(ranks):
    from course_sr.plumbing.checkpoint import load_checkpoint

    for res in ranks:
        assert "conv_block1.0.weight has NaN/inf values on rank 1 at iteration 2" in res["nan/error"]
        assert "stopping stage gan" in res["nan/error"]
    last = load_checkpoint(ranks[0]["out"] / "nan" / "checkpoints" / "last.pt")
    assert last["iteration"] == 1                                   # iteration 2 was never written
    assert all(bool(torch.isfinite(v).all()) for v in last["models"]["generator"].values())


@pytest.mark.parametrize("case", list(BN_CASES))
def test_sync_batchnorm_equals_batchnorm_on_the_concatenated_batch(ranks, case):
    dims, sizes, channels, momentum, affine = BN_CASES[case]
    ref = bn_trace(bn_module(dims, channels, momentum, affine), dims, sizes, channels, rank=None)
    assert all(res[f"bn/{case}/class"] == "AllReduceBatchNorm" for res in ranks)
    got = [res[f"bn/{case}"] for res in ranks]
    tol = dict(rtol=1e-5, atol=1e-5)
    for key, value in ref.items():
        if key.startswith(("y", "grad_x")) and key != "y_eval":      # per-sample: concatenate shares
            torch.testing.assert_close(torch.cat([g[key] for g in got]), value, **tol, msg=key)
        else:                                                         # shared: the same on every rank
            for g in got:
                torch.testing.assert_close(g[key], value, **tol, msg=key)


def test_one_step_on_2_processes_x_b_equals_one_process_with_2b(ranks, sample_root):
    ref = srresnet_step(step_config(sample_root, WORLD * B), D.DistInfo(), sync_bn=False)
    assert any("running_var" in k for k in ref)                       # SRResNet has BatchNorm
    for res in ranks:
        got = res["step/sync_bn"]
        assert got.keys() == ref.keys()                               # plain keys: no "module."
        for k, v in ref.items():
            torch.testing.assert_close(got[k], v, rtol=0, atol=1e-6, msg=k)


def test_without_sync_bn_each_process_normalises_its_own_share(ranks, sample_root):
    # The deliberate choice documented in course_sr.plumbing.distributed: plain DDP is NOT batch 2b.
    ref = srresnet_step(step_config(sample_root, WORLD * B), D.DistInfo(), sync_bn=False)
    got = ranks[0]["step/plain_bn"]
    gap = max(float((got[k].float() - v.float()).abs().max()) for k, v in ref.items() if "weight" in k)
    assert gap > 1e-4
    # DDP still keeps the weights identical; the running statistics differ until the next
    # forward, where DDP broadcasts rank 0's (the ones rank 0 writes to checkpoints).
    params = [k for k in got if "running" not in k and "num_batches" not in k]
    for k in params:
        torch.testing.assert_close(ranks[1]["step/plain_bn"][k], got[k], rtol=0, atol=1e-6, msg=k)
    assert not torch.equal(ranks[1]["step/plain_bn"]["conv_block2.1.running_mean"], got["conv_block2.1.running_mean"])


# --------------------------------------------------------------------------------------
# Single-process behaviour (no process group)
# --------------------------------------------------------------------------------------
def test_single_process_without_torchrun(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = D.init_distributed({"device": "cpu"})
    assert info == D.DistInfo() and info.is_main and not info.distributed
    assert not torch.distributed.is_initialized()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert D.wrap_model(model, info, sync_bn=True) is model and D.unwrap(model) is model
    t = torch.tensor([1.5])
    assert D.all_reduce_mean(t) is not t and torch.equal(D.all_reduce_mean(t), t)
    assert D.broadcast_object({"a": 1}) == {"a": 1}
    D.barrier()
    D.cleanup()


@pytest.mark.parametrize("missing", ["RANK", "LOCAL_RANK", "MASTER_PORT"])
def test_world_size_without_torchruns_other_variables_is_a_clear_error(monkeypatch, missing):
    env = dict(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(missing)
    with pytest.raises(RuntimeError, match=f"{missing} is not.*torchrun"):
        D.init_distributed({"device": "cpu"})


def test_world_size_one_is_a_single_process(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not D.init_distributed({"device": "cpu"}).distributed
    assert not torch.distributed.is_initialized()


def test_converted_batchnorm_keeps_parameters_buffers_and_state_dict_keys():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(4)))
    model.eval()
    keys = list(model.state_dict())
    weight, running = model[1].weight, model[1].running_mean
    out = D.convert_sync_batchnorm(model)
    assert out is model and list(model.state_dict()) == keys
    assert isinstance(model[1], D.AllReduceBatchNorm) and isinstance(model[2][0], D.AllReduceBatchNorm)
    assert model[1].weight is weight and model[1].running_mean is running and not model[1].training
    root = D.convert_sync_batchnorm(nn.BatchNorm2d(5))
    assert isinstance(root, D.AllReduceBatchNorm)
    assert D.convert_sync_batchnorm(root) is root


@pytest.mark.parametrize("training", [True, False])
def test_allreduce_batchnorm_alone_is_plain_batchnorm(training):
    plain = bn_module(2, 3, 0.1, True).train(training)
    mine = D.convert_sync_batchnorm(copy.deepcopy(plain))
    x = bn_batch(2, 4, 3, 0)[0]
    torch.testing.assert_close(mine(x), plain(x))
    torch.testing.assert_close(mine.running_var, plain.running_var)


def test_allreduce_batchnorm_rejects_inputs_without_channels():
    with pytest.raises(ValueError, match=r"expects \(N, C, \*\) input, got shape \(4,\)"):
        D.AllReduceBatchNorm(4)(torch.zeros(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.nn.SyncBatchNorm is CUDA-only")
def test_cuda_modules_get_torchs_syncbatchnorm():
    model = D.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(4)).cuda())
    assert isinstance(model[0], nn.SyncBatchNorm)


# --------------------------------------------------------------------------------------
# The data side: R processes x batch b see exactly the single-process batch R*b
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("replicas, start_iter", [(2, 0), (3, 0), (2, 7)])
def test_sampler_shares_are_the_single_process_batch(replicas, start_iter):
    from course_sr.data.loader import ResumableBatchSampler

    n, b = 10, 3                                          # batches straddle epoch boundaries
    single = iter(ResumableBatchSampler(n, replicas * b, seed=5, start_iter=start_iter))
    shares = [iter(ResumableBatchSampler(n, b, 5, start_iter, replicas, r)) for r in range(replicas)]
    for _ in range(12):
        assert next(single) == [i for s in shares for i in next(s)]


def test_loader_shares_are_the_single_process_batch(sample_root):
    from course_sr.datasets import SRDataset
    from course_sr.data.loader import make_train_loader

    cfg = step_config(sample_root, WORLD * B)
    data = SRDataset(cfg.train_split, cfg)
    single = iter(make_train_loader(data, cfg, start_iter=5))
    shares = [iter(make_train_loader(data, step_config(sample_root, B), 5, WORLD, r)) for r in range(WORLD)]
    for _ in range(3):
        lr, hr = next(single)
        parts = [next(s) for s in shares]
        assert torch.equal(lr, torch.cat([p[0] for p in parts])) and torch.equal(hr, torch.cat([p[1] for p in parts]))


# --------------------------------------------------------------------------------------
# The runner under torchrun: `torchrun --nproc_per_node=2 -m course_sr train ...` on gloo
# --------------------------------------------------------------------------------------
def run_overrides(sample_root, **overrides) -> dict:
    """Tiny networks on the embedded sample; 1 SRResNet + 2 SRGAN iterations; validation, logs
    and checkpoints at every iteration, so every rank-0-only path runs. The learning rates are
    the paper's (1e-4), stated here rather than taken from the quick preset: the 1e-6 weight
    tolerance below is float noise scaled by Adam's step size."""
    base = dict(data_root=str(sample_root), csv_folder=str(sample_root / "data_lists"),
                n_channels=8, n_blocks=1, d_n_channels=4, d_n_blocks=4, d_fc_size=8, crop_size=16,
                batch_size=B, val_images=1, val_crop=32, pretrain_iters=1, gan_iters=2,
                lr_pretrain=1e-4, lr_g=1e-4, lr_d=1e-4,
                log_every=1, val_every=1, ckpt_every=1, tensorboard=False, sync_bn=True)
    return {**base, **overrides}


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, sample_root):
    """2 processes x batch B via the real command: stage 1 (1 iteration), then resumed under
    torchrun for 1 iteration of stage 2 (stopped mid-stage at iteration 2). The full state at the
    end of stage 1 (last.pt then; *_end.pt hold weights only) is kept as ``pretrain_last.pt``."""
    import shutil

    import yaml

    root = tmp_path_factory.mktemp("torchrun")
    (root / "run.yaml").write_text(yaml.safe_dump({"preset": "quick", **run_overrides(sample_root)}))
    command = ["-m", "course_sr", "train", "--config", str(root / "run.yaml"), "--out", str(root / "run")]
    torchrun([*command, "--max-iters", "1"])
    shutil.copy(root / "run" / "checkpoints" / "last.pt", root / "pretrain_last.pt")
    proc = torchrun([*command, "--max-iters", "1", "--resume", "auto"])
    return root / "run", proc.stdout


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, sample_root):
    """The same schedule in one process with batch WORLD * B, run to its end (in two calls, so
    that the full state at the end of stage 1 is kept too: resuming is bit-exact on CPU)."""
    import shutil

    from course_sr.training import run

    root = tmp_path_factory.mktemp("reference")
    cfg = get_config("quick", **run_overrides(sample_root, batch_size=WORLD * B, sync_bn=False))
    run(cfg, root / "run", stop_after="pretrain")
    shutil.copy(root / "run" / "checkpoints" / "last.pt", root / "pretrain_last.pt")
    run(cfg, root / "run", resume="auto")
    return root / "run"


def checkpoint(run_dir: Path, name: str) -> dict:
    from course_sr.plumbing.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "checkpoints" / f"{name}.pt")


def full_state(run_dir: Path, stage: str) -> dict:
    """The full state (optimisers included) at the end of ``stage``: the fixtures' copy of
    last.pt at the end of stage 1, or last.pt of the finished run."""
    from course_sr.plumbing.checkpoint import load_checkpoint

    return load_checkpoint(run_dir.parent / "pretrain_last.pt" if stage == "pretrain"
                           else run_dir / "checkpoints" / "last.pt")


def adam_noise(ckpt: dict, net: str) -> dict[str, torch.Tensor]:
    """Per parameter of ``net``: True where Adam's steps in the checkpoint's stage were decided by
    float noise.

    Adam moves a weight by about lr * g / (|g| + eps), eps = 1e-8, so where the true gradient is
    0 the rounding of the gradient sum (different for 1 and 2 processes) is amplified up to a
    full step of lr. That is so for every conv bias right before a BatchNorm (the BatchNorm
    subtracts any constant, so the loss does not depend on it; their BatchNorm's running mean
    follows them) and for the odd weight whose gradient RMS (Adam's second moment) is < 10 eps.
    """
    from course_sr.models import build_discriminator, build_generator

    cfg = get_config(None, **{k: v for k, v in ckpt["config"].items() if k != "preset"})
    model = build_generator(cfg) if net == "generator" else build_discriminator(cfg)
    state, beta2 = ckpt["optimizers"]["g" if net == "generator" else "d"]["state"], cfg.adam_betas[1]
    noise = {name: (state[i]["exp_avg_sq"] / (1 - beta2 ** float(state[i]["step"]))).sqrt() < 1e-7
             for i, (name, _) in enumerate(model.named_parameters())}
    for key in model.state_dict():                        # ConvBlock: conv at .0, BatchNorm at .1
        if key.endswith(".1.running_mean") and key[:-len("1.running_mean")] + "0.bias" in noise:
            bias = key[:-len("1.running_mean")] + "0.bias"
            noise[bias] = noise[key] = torch.ones_like(noise[bias])
    return noise


def assert_same_networks(got: dict, refs: list[dict], atol: float = 1e-6) -> None:
    """Every weight and buffer of ``got`` within ``atol`` of ``refs[-1]``, except the entries
    Adam moved by noise in any stage (``refs``: the reference's stage-end checkpoints; see
    :func:`adam_noise`): those within the most Adam can move a weight (lr per step)."""
    ref = refs[-1]
    cfg = ref["config"]
    bound = ref["iteration"] * max(cfg["lr_pretrain"], cfg["lr_g"], cfg["lr_d"])
    assert got["models"].keys() == ref["models"].keys()
    for net, sd in ref["models"].items():
        assert got["models"][net].keys() == sd.keys()                  # plain keys, no "module."
        noise: dict[str, torch.Tensor] = {}
        for r in refs:
            if net in r["models"]:
                for k, m in adam_noise(r, net).items():
                    noise[k] = noise[k] | m if k in noise else m
        for k, v in sd.items():
            diff = (got["models"][net][k].double() - v.double()).abs()
            mask = noise.get(k, torch.zeros_like(diff, dtype=torch.bool))
            worst = float(diff[~mask].max()) if (~mask).any() else 0.0
            noisy = float(diff[mask].max()) if mask.any() else 0.0
            assert worst <= atol, f"{net}.{k} differs by {worst:.3g}"
            assert noisy <= bound, f"{net}.{k} moved {noisy:.3g}, more than Adam's steps can ({bound:.3g})"


def test_torchrun_train_logs_validates_and_saves_once(two_process_run):
    run_dir, stdout = two_process_run
    log = (run_dir / "log.txt").read_text()
    assert "batch 2 per process x 2 process(es) = 4 in total" in log
    assert "torchrun: rank 0 of 2 (local 0), cpu, backend gloo; BatchNorm statistics synchronised" in log
    assert log.count("stage pretrain done at iteration 1") == 1                 # rank 1 writes nothing
    assert log.count("val PSNR") == 2 and "stopped at iteration 2" in log       # rank 0 validated twice
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt", "pretrain_end.pt"]
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["gan_2.png", "pretrain_1.png"]
    assert stdout.count("iteration 2 (stopped)") == 1                            # one summary line
    last = checkpoint(run_dir, "last")
    assert last["iteration"] == 2 and last["stage"] == "gan" and last["samples_seen"] == 2 * WORLD * B


def test_one_step_on_2_processes_x_b_is_one_step_with_2b_through_the_runner(two_process_run, reference_run):
    got, ref = full_state(two_process_run[0], "pretrain"), full_state(reference_run, "pretrain")
    assert got["iteration"] == ref["iteration"] == 1
    # The gradient of the global batch, from Adam's first moment after one step (0.1 * grad).
    for i, st in ref["optimizers"]["g"]["state"].items():
        torch.testing.assert_close(got["optimizers"]["g"]["state"][i]["exp_avg"], st["exp_avg"],
                                   rtol=1e-4, atol=1e-8, msg=f"gradient of parameter {i}")
    assert_same_networks(got, [ref])
    # the logged loss is the mean over both processes, i.e. the loss of the global batch
    torch.testing.assert_close(torch.tensor(got["history"]["pretrain/loss"])[:, 1],
                               torch.tensor(ref["history"]["pretrain/loss"])[:, 1], rtol=1e-5, atol=0)


def test_checkpoint_of_2_processes_resumes_on_1_with_the_same_global_batch(two_process_run, reference_run, tmp_path,
                                                                         sample_root):
    from course_sr.training import run

    cfg = get_config("quick", **run_overrides(sample_root, batch_size=WORLD * B))
    result = run(cfg, tmp_path, resume=two_process_run[0] / "checkpoints" / "last.pt")
    assert result["finished"] and result["iteration"] == 3
    got, ref = checkpoint(tmp_path, "gan_end"), checkpoint(reference_run, "gan_end")
    # G and D, as if the run had never been split
    assert_same_networks(got, [full_state(reference_run, "pretrain"), full_state(reference_run, "gan")])
    for key in ("gan/loss_g", "gan/loss_d"):
        torch.testing.assert_close(torch.tensor(got["history"][key]), torch.tensor(ref["history"][key]),
                                   rtol=1e-5, atol=1e-7, msg=key)


def test_checkpoint_of_2_processes_resumes_with_its_own_config_on_1(two_process_run, tmp_path):
    import shutil

    from course_sr.plumbing.train_cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(two_process_run[0], run_dir)
    assert main(["--resume", "auto", "--out", str(run_dir)]) == 0
    final = checkpoint(run_dir, "gan_end")
    assert final["iteration"] == 3
    # the stream goes on after the 8 samples the 2 processes used (one process takes 2 per step)
    assert final["samples_seen"] == 2 * WORLD * B + B
    assert "batch 2 per process x 1 process(es) = 2 in total" in (run_dir / "log.txt").read_text()


if __name__ == "__main__":            # torchrun runs this file as the worker of the tests above
    if sys.argv[1:2] == ["worker"]:
        worker(*sys.argv[2:4])
    else:
        sys.exit(f"usage: torchrun ... {THIS.name} worker OUT_DIR SAMPLE_ROOT")
