"""The first GPU session's check: what the kit's CUDA paths cost and whether they work (~4 min).

Everything runs on data that needs no download: random tensors for the step timings, the
embedded sample (scikit-image's photos, ``course_sr.data.sample``) for the runner; the VGG54 of the
content loss has random weights (the values do not change the cost). In order:

1. **Steps** at the paper's sizes (SRResNet 16 x 64, the full discriminator, VGG54; batch 16 of
   96 x 96 HR crops): stage 1 (``solver.pretrain_step``) and stage 2 (``solver.gan_step``) for
   each configuration of fp32 / amp (the kit's ``Precision``: bf16 from compute capability 8.0,
   else fp16 + a grad scaler per optimiser), NCHW / ``channels_last``, eager / ``torch.compile``
   (the generator, as ``config.compile`` does), under cuDNN autotuning as the runner steps are.
   it/s over the timed steps (one sync at the end), peak memory, and the ratio to the fp32 NCHW
   eager step of the same stage, measured in the same run (the plain baseline).
2. **The runner** on the ``colab`` preset (paper networks, its batch and crops, its data loader)
   for ``--run-iters`` iterations of each stage, stopped ``--resume-iters`` before the end, then
   resumed from ``last.pt`` on the GPU (save + resume); resumed twice from the same file, to see
   whether resuming on this GPU repeats itself (on CPU it is bit-exact; with cuDNN autotuning
   it need not be). Checkpoint sizes and the time to write ``last.pt``.
3. **Projections**: seconds per 1,000 iterations of each stage and hours for the ``colab`` and
   ``paper`` schedules, from the kit's default configuration, from the fastest configuration, and
   from the runner's own it/s (data loading and logging included: the realistic one). These are
   for THIS GPU (``device_name`` in the JSON).

The configurations without compile and the runner come first; the compiled ones (each compiles
for about a minute) run while ``--budget-s`` lasts, and those that do not fit are listed as
skipped. A configuration that fails is recorded with its error and the rest go on. The last
stdout line is one JSON object (``configs``: one entry per configuration).

    python benchmarks/gpu_check.py [--budget-s 240] [--run-iters 300] [--out DIR]
    python benchmarks/gpu_check.py --cpu-smoke     # every configuration for a step or two on CPU (CI)

``--cpu-smoke``: CPU, batch 1, 32 x 32 crops, small networks (``SMOKE_NETS``: float16 on CPU
is slow); "amp" runs float16 autocast with ``GradScaler("cpu")`` (the T4 path), compile uses the
``aot_eager`` backend (graph capture without a C++ build; tests/test_runner.py compiles with
inductor), the runner 2 + 2 iterations. Its numbers say nothing about speed; it checks that every
path of this script runs.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from course_sr.config import get_config
from course_sr.models import Discriminator, Generator, TruncatedVGG19
from course_sr.solver import (ContentLoss, Precision, cudnn_benchmark, gan_step, make_gan_optimizers,
                              make_pretrain_optimizer, pretrain_step)

STAGES = ("stage1", "stage2")
SMOKE_NETS = dict(n_channels=16, n_blocks=2, d_n_channels=8, d_n_blocks=4, d_fc_size=32, vgg_i=2, vgg_j=2)
# (amp, channels_last, compile), most informative first; the compiled ones run last, in budget.
GRID = [(False, False, False), (True, False, False), (True, True, False), (False, True, False),
        (True, False, True), (True, True, True), (False, False, True), (False, True, True)]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def config_name(amp: bool, channels_last: bool, compiled: bool) -> str:
    return "+".join(["amp" if amp else "fp32", "channels_last" if channels_last else "nchw",
                     "compile" if compiled else "eager"])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------
# 1. Step timings
# --------------------------------------------------------------------------------------
class StepBench:
    """The paper's networks once (on CPU), copied to the device for each configuration."""

    def __init__(self, device: torch.device, batch: int, crop: int, smoke: bool, compile_backend: str):
        self.device, self.batch, self.crop, self.smoke = device, batch, crop, smoke
        self.compile_backend = compile_backend
        self.cfg = get_config("paper", vgg_weights="random", allow_random_vgg=True, crop_size=crop,
                              **(SMOKE_NETS if smoke else {}))
        torch.manual_seed(0)
        self.nets = (Generator(self.cfg), Discriminator(self.cfg),
                     TruncatedVGG19(self.cfg.vgg_i, self.cfg.vgg_j, weights="random"))
        g = torch.Generator().manual_seed(1)
        self.lr = torch.rand(batch, 3, crop // 4, crop // 4, generator=g)        # [0, 1]
        self.hr = torch.rand(batch, 3, crop, crop, generator=g) * 2 - 1          # [-1, 1]

    def precision(self, amp: bool) -> Precision:
        if amp and self.device.type == "cpu":
            return Precision("cpu", dtype=torch.float16)    # the fp16 + GradScaler path, on CPU
        return Precision(self.device, enabled=amp)            # the kit's decision (amp_dtype)

    def run(self, stage: str, amp: bool, channels_last: bool, compiled: bool, warmup: int, iters: int) -> dict:
        device, fmt = self.device, (torch.channels_last if channels_last else torch.contiguous_format)
        g, d, vgg = (copy.deepcopy(m).to(device, memory_format=fmt) for m in self.nets)
        lr, hr = (t.to(device).contiguous(memory_format=fmt) for t in (self.lr, self.hr))
        precision = self.precision(amp)
        g_forward = torch.compile(g, backend=self.compile_backend) if compiled else g
        if stage == "stage1":
            opt = make_pretrain_optimizer(g, self.cfg)

            def step():
                return pretrain_step(lr, hr, g_forward, opt, precision)["loss"]
        else:
            opt_g, opt_d, _, _ = make_gan_optimizers(g, d, self.cfg)
            content = ContentLoss(vgg, self.cfg.vgg_rescale)

            def step():
                return gan_step(lr, hr, g_forward, d, opt_g, opt_d, content, precision, beta=self.cfg.beta)["loss_d"]

        with cudnn_benchmark(True):
            sync(device)
            start = time.perf_counter()
            first = float(step())                    # compiles / autotunes here
            sync(device)
            first_s = time.perf_counter() - start
            for _ in range(max(0, warmup - 1)):
                step()
            sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            for _ in range(iters):
                out = step()
            last = float(out)                        # waits for the device
            sync(device)
            elapsed = time.perf_counter() - start
        if not (first == first and last == last):
            raise FloatingPointError(f"NaN loss in {stage} {config_name(amp, channels_last, compiled)}")
        result = {"it_per_s": round(iters / elapsed, 3), "first_step_s": round(first_s, 3),
                  "amp_dtype": str(precision.dtype).replace("torch.", ""),
                  "grad_scaler": precision.scaling}
        if device.type == "cuda":
            result["peak_mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
        if precision.scaling:
            result["loss_scales"] = [precision.scaler(o).get_scale() for o in
                                     ((opt,) if stage == "stage1" else (opt_g, opt_d))]
        del g, d, vgg, g_forward
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return result


def run_configs(bench: StepBench, combos, warmup: int, iters: int, deadline: float, configs: list) -> None:
    for amp, cl, compiled in combos:
        for stage in STAGES:
            entry = {"stage": stage, "name": config_name(amp, cl, compiled), "amp": amp, "channels_last": cl,
                     "compile": compiled, "batch": bench.batch, "crop": bench.crop, "iters": iters}
            if time.perf_counter() > deadline:
                entry["status"] = "skipped: --budget-s reached"
            else:
                try:
                    entry.update(bench.run(stage, amp, cl, compiled, warmup, iters), status="ok")
                except Exception as err:             # a failing configuration is a finding, not the end
                    entry["status"] = f"error: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                    log(traceback.format_exc())
            log(f"{stage} {entry['name']}: {entry.get('it_per_s', entry['status'])}"
                + (f" it/s, peak {entry['peak_mem_mb']} MB" if "peak_mem_mb" in entry else ""))
            configs.append(entry)


def add_ratios(configs: list) -> None:
    base = {c["stage"]: c["it_per_s"] for c in configs
            if c["name"] == "fp32+nchw+eager" and c.get("status") == "ok"}
    for c in configs:
        if c.get("status") == "ok" and c["stage"] in base:
            c["speedup_vs_fp32_nchw_eager"] = round(c["it_per_s"] / base[c["stage"]], 3)


# --------------------------------------------------------------------------------------
# 2. The runner on the colab preset: a short run, save + resume, resumed twice
# --------------------------------------------------------------------------------------
def runner_check(work: Path, device: str, iters: int, resume_iters: int, smoke: bool) -> dict:
    import shutil

    from course_sr.plumbing.checkpoint import load_checkpoint, save_checkpoint
    from course_sr.training import run
    from course_sr.data.sample import ensure_sample

    root = ensure_sample(work / "sample")
    overrides = dict(data_root=str(root), csv_folder=str(root / "data_lists"), train_split="sample_train",
                     val_split="sample_test", val_images=2, vgg_weights="random", allow_random_vgg=True,
                     pretrain_iters=iters, gan_iters=iters, val_every=iters, log_every=max(1, iters // 6),
                     tensorboard=False, device=device)
    if smoke:
        overrides.update(batch_size=1, crop_size=32, val_crop=32, workers=0, cache="none", **SMOKE_NETS)
    cfg = get_config("colab", **overrides)
    total = 2 * iters
    resume_iters = min(resume_iters, iters - 1) if iters > 1 else 0
    out = work / "colab"
    start = time.perf_counter()
    first = run(cfg, out, max_iters=total - resume_iters, overwrite=True)   # --out reused: a fresh run
    first_s = time.perf_counter() - start
    ckpt_dir = out / "checkpoints"
    shutil.copy(ckpt_dir / "last.pt", work / "mid_last.pt")
    start = time.perf_counter()
    resumed = run(None, out, resume=ckpt_dir / "last.pt")
    resume_s = time.perf_counter() - start
    again = work / "colab_again"
    shutil.copytree(out, again)
    run(None, again, resume=work / "mid_last.pt")
    a = load_checkpoint(ckpt_dir / "gan_end.pt")["models"]
    b = load_checkpoint(again / "checkpoints" / "gan_end.pt")["models"]
    diff = max(float((a[n][k].double() - v.double()).abs().max()) for n in a for k, v in b[n].items()
               if v.is_floating_point())
    history = resumed["history"]
    rates = {}
    for stage, key in (("stage1", "pretrain/it_per_s"), ("stage2", "gan/it_per_s")):
        values = [v for _, v in history.get(key, [])]
        steady = values[1:] or values              # the first window compiles/autotunes/fills the cache
        rates[stage] = round(sum(steady) / len(steady), 3) if steady else None
    full = load_checkpoint(ckpt_dir / "last.pt")
    start = time.perf_counter()
    save_checkpoint(full, work / "save_probe.pt")
    save_s = time.perf_counter() - start
    sizes = {p.name: round(p.stat().st_size / 2 ** 20, 1) for p in sorted(ckpt_dir.iterdir()) if p.suffix == ".pt"}
    return {"preset": "colab", "iters_per_stage": iters, "batch": cfg.batch_size, "crop": cfg.crop_size,
            "stopped_at": first["iteration"], "resumed_to": resumed["iteration"], "finished": resumed["finished"],
            "first_run_s": round(first_s, 2), "resumed_run_s": round(resume_s, 2), "runner_it_per_s": rates,
            "resume_repeat_max_abs_diff": diff, "checkpoint_mb": sizes, "save_last_s": round(save_s, 3),
            "log_head": [line.split("  ", 1)[-1] for line in (out / "log.txt").read_text().splitlines()[:4]]}


# --------------------------------------------------------------------------------------
# 3. Projections
# --------------------------------------------------------------------------------------
def projections(configs: list, runner_rates: dict | None) -> dict:
    default = get_config()
    kit = config_name(bool(default.amp), bool(default.channels_last), bool(default.compile))
    sources: dict[str, dict[str, float]] = {}
    ok = [c for c in configs if c.get("status") == "ok"]
    by_stage = {s: [c for c in ok if c["stage"] == s] for s in STAGES}
    if all(any(c["name"] == kit for c in by_stage[s]) for s in STAGES):
        sources[f"kit default ({kit})"] = {s: next(c["it_per_s"] for c in by_stage[s] if c["name"] == kit)
                                           for s in STAGES}
    if all(by_stage[s] for s in STAGES):
        best = {s: max(by_stage[s], key=lambda c: c["it_per_s"]) for s in STAGES}
        sources["fastest: " + ", ".join(f"{s} {best[s]['name']}" for s in STAGES)] = {
            s: best[s]["it_per_s"] for s in STAGES}
    if runner_rates and all(runner_rates.get(s) for s in STAGES):
        sources["runner (colab preset, data loading included)"] = dict(runner_rates)
    out = {}
    for name, rates in sources.items():
        entry = {"s_per_1000_iters": {s: round(1000 / rates[s], 1) for s in STAGES}}
        for preset in ("colab", "paper"):
            cfg = get_config(preset)
            entry[f"{preset}_hours"] = round((cfg.pretrain_iters / rates["stage1"]
                                              + cfg.gan_iters / rates["stage2"]) / 3600, 2)
        out[name] = entry
    return out


# --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="every configuration for a step or two on CPU")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --cpu-smoke)")
    p.add_argument("--budget-s", type=float, default=240.0, help="stop starting new configurations after this")
    p.add_argument("--batch", type=int, default=None, help="default 16 (1 with --cpu-smoke)")
    p.add_argument("--crop", type=int, default=None, help="HR crop side, default 96 (32 with --cpu-smoke)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps, default 10 (1 with --cpu-smoke)")
    p.add_argument("--iters", type=int, default=None, help="timed steps, default 30 (1 with --cpu-smoke)")
    p.add_argument("--run-iters", type=int, default=None, help="runner iterations per stage, default 300 (2)")
    p.add_argument("--resume-iters", type=int, default=None, help="runner iterations after the resume, default 20 (1)")
    p.add_argument("--compile-backend", default=None, help="default inductor (aot_eager with --cpu-smoke)")
    p.add_argument("--out", default=None, help="keep the runner's files and gpu_check.json here (default: a temp dir)")
    args = p.parse_args(argv)
    smoke = args.cpu_smoke
    device = torch.device(args.device or ("cpu" if smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_check", "error": "no CUDA device (use --cpu-smoke on CPU)",
                          "configs": []}))
        return 2
    pick = (lambda value, gpu, cpu: value if value is not None else (cpu if smoke else gpu))
    batch, crop = pick(args.batch, 16, 1), pick(args.crop, 96, 32)
    warmup, iters = pick(args.warmup, 10, 1), pick(args.iters, 30, 1)
    run_iters, resume_iters = pick(args.run_iters, 300, 2), pick(args.resume_iters, 20, 1)
    backend = pick(args.compile_backend, "inductor", "aot_eager")
    t0 = time.perf_counter()
    deadline = t0 + args.budget_s
    summary = {"benchmark": "gpu_check", "cpu_smoke": smoke, "device": str(device), "torch": torch.__version__,
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "threads": torch.get_num_threads(), "budget_s": args.budget_s, "compile_backend": backend}
    if device.type == "cuda":
        cap = torch.cuda.get_device_capability(device)
        summary.update(capability=f"{cap[0]}.{cap[1]}", cudnn=torch.backends.cudnn.version(),
                       kit_precision=Precision(device).describe())
    log(f"gpu_check on {summary['device_name']} (torch {torch.__version__}): batch {batch}, crop {crop}, "
        f"{warmup} warm-up + {iters} timed steps per configuration; budget {args.budget_s:.0f} s")
    errors = 0
    configs: list = []
    summary["configs"] = configs
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(args.out) if args.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bench = StepBench(device, batch, crop, smoke, backend)
        run_configs(bench, [c for c in GRID if not c[2]], warmup, iters, float("inf"), configs)
        try:
            summary["runner"] = runner_check(work, str(device), run_iters, resume_iters, smoke)
        except Exception as err:
            errors += 1
            summary["runner"] = {"status": f"error: {type(err).__name__}: {err}"}
            log(traceback.format_exc())
        run_configs(bench, [c for c in GRID if c[2]], warmup, iters, float("inf") if smoke else deadline, configs)
        add_ratios(configs)
        summary["projections"] = projections(configs, summary["runner"].get("runner_it_per_s"))
        errors += sum(c["status"].startswith("error") for c in configs)
        summary["errors"] = errors
        summary["elapsed_s"] = round(time.perf_counter() - t0, 1)
        if args.out:
            (work / "gpu_check.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
