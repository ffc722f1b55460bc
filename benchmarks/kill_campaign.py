"""Random SIGKILLs on a real `python -m course_sr train` subprocess, chained kill -> resume.

What it checks (issue 17: "no run loses progress"): a quick-sized SRGAN run (embedded sample,
tiny networks, both stages) is started with ``--resume auto`` and killed with SIGKILL at a random
moment, again and again, until a start runs to the end. Some kills are aimed at a save: the
script watches ``checkpoints/`` and kills the moment a ``.*.tmp`` file (a save being written)
appears. After each kill it records whether ``last.pt`` loads (checksum verified), whether every
stage that ``last.pt`` has passed has its ``<stage>_end.pt``, and how many stray ``.tmp`` files
the kill left (the next start must remove them). At the end of each chain the run is compared
with one that was never stopped: models, optimiser and scheduler states and the history (its
timing entries aside) of ``last.pt``, and the weights of both end files, must be bit-identical;
whether the stored RNG states also match is reported apart (``chains_rng_state_identical``).

    .venv/bin/python benchmarks/kill_campaign.py --kills 40 [--seed 0] [--work DIR] [--budget-s 900]

The last line printed is one JSON object with the figures. Not part of ``make test`` (minutes);
tests/test_kills.py kills at each kind of save point in-process within the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from course_sr.plumbing.checkpoint import load_checkpoint

SETTINGS = ["pretrain_iters=12", "gan_iters=12", "ckpt_every=3", "val_every=6", "log_every=2", "val_images=1",
            "val_crop=48", "batch_size=4", "crop_size=32", "tensorboard=false", "workers=0"]
ENDS = {"pretrain_end.pt": 12, "gan_end.pt": 24}     # stage end iterations of SETTINGS


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "course_sr", "train", "--config", "quick", "--out", str(out), "--resume", "auto",
            "--set", *SETTINGS]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_SR_")}
    return {**e, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def stray(out: Path) -> int:
    return len(list((out / "checkpoints").glob(".*.tmp"))) if (out / "checkpoints").is_dir() else 0


def same(a: dict, b: dict) -> bool:
    """Models, optimiser/scheduler states and history (without timings) equal, tensor by tensor."""
    def eq(x, y):
        if torch.is_tensor(x) or torch.is_tensor(y):
            return torch.is_tensor(x) and torch.is_tensor(y) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(eq(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            return len(x) == len(y) and all(eq(p, q) for p, q in zip(x, y))
        return x == y
    timeless = [{k: v for k, v in c["history"].items() if not k.endswith("it_per_s")} for c in (a, b)]
    keys = ("iteration", "stage", "models", "optimizers", "schedulers", "scalers", "window", "samples_seen")
    return timeless[0] == timeless[1] and all(eq(a.get(k), b.get(k)) for k in keys)


def same_rng(a: dict, b: dict) -> bool:
    """The RNG states stored in the two checkpoints equal (reported apart: a resumed run's global
    torch generator was seen one draw apart from an unbroken one's while every weight matched)."""
    x, y = a["rng"], b["rng"]
    return x["python"] == y["python"] and torch.equal(x["torch"], y["torch"]) and torch.equal(x["numpy"][1], y["numpy"][1])


def weights_equal(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a), load_checkpoint(b)
    return x["iteration"] == y["iteration"] and all(
        torch.equal(v, y["models"][n][k]) for n, sd in x["models"].items() for k, v in sd.items())


def training_started(out: Path, seen: int, proc) -> float:
    """Wait until this start's log (beyond its first ``seen`` bytes) says the data is ready
    (the "data: ..." line, just before the first iteration); returns that moment."""
    log = out / "log.txt"
    while proc.poll() is None:
        if log.exists() and "\n" in log.read_text()[seen:] and " data: " in log.read_text()[seen:]:
            break
        time.sleep(0.01)
    return time.time()


def after_kill(out: Path) -> dict:
    """The state a kill left: is last.pt loadable, are the end files of passed stages there."""
    last = out / "checkpoints" / "last.pt"
    row = {"stray_tmp": stray(out), "last_exists": last.exists(), "last_loadable": None, "ends_ok": True}
    if last.exists():
        try:
            it = int(load_checkpoint(last)["iteration"])
            row["last_loadable"] = True
        except Exception as err:              # noqa: BLE001 - the figure is what we want
            row.update(last_loadable=False, error=str(err)[:200])
            return row
        row["iteration"] = it
        row["ends_ok"] = all((out / "checkpoints" / name).exists() for name, end in ENDS.items() if it >= end)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=30, help="SIGKILLs in all (chains end when a start finishes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="work folder (default: a temporary one, deleted)")
    p.add_argument("--budget-s", type=float, default=900, help="stop starting new chains after this many seconds")
    p.add_argument("--save-aimed", type=float, default=0.4, help="fraction of kills aimed at a save in progress")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="kill_campaign_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    ref = work / "unbroken"
    shutil.rmtree(ref, ignore_errors=True)
    proc = subprocess.Popen(command(ref), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    begun = training_started(ref, 0, proc)
    if proc.wait() != 0:
        raise SystemExit(f"the unbroken run failed: {' '.join(command(ref))}")
    run_s = time.time() - begun              # the training part: interpreter start-up and data excluded
    ref_last = load_checkpoint(ref / "checkpoints" / "last.pt")

    kills, rows, chains = 0, [], []
    while kills < args.kills and time.time() - t0 < args.budget_s:
        out = work / f"chain{len(chains)}"
        shutil.rmtree(out, ignore_errors=True)
        chain = {"kills": 0, "starts": 0}
        while True:
            chain["starts"] += 1
            seen = len((out / "log.txt").read_text()) if (out / "log.txt").exists() else 0
            proc = subprocess.Popen(command(out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            aimed = kills < args.kills and rng.random() < args.save_aimed
            # a random moment of the training (the clock starts when this start's data is ready)
            deadline = training_started(out, seen, proc) + (rng.uniform(0.0, 1.0) * run_s if kills < args.kills
                                                            else 1e9)
            killed, mid_save = False, False
            while proc.poll() is None:
                if kills < args.kills and (time.time() >= deadline and not aimed or aimed and stray(out)
                                           and time.time() >= deadline - 0.5 * run_s):
                    mid_save = stray(out) > 0
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = True
                    break
                if aimed and time.time() > deadline + run_s:   # no save seen in time: kill anyway
                    aimed = False
                time.sleep(0.0005 if aimed else 0.01)
            if not killed:
                err = proc.stderr.read().decode(errors="replace")
                chain["rc"] = proc.returncode
                if proc.returncode != 0:
                    chain["error"] = err.strip().splitlines()[-1:] if err.strip() else ["(no stderr)"]
                break
            kills += 1
            chain["kills"] += 1
            log = (out / "log.txt").read_text() if (out / "log.txt").exists() else ""
            in_gan = "stage gan:" in log.rsplit("run ", 1)[-1]
            rows.append({**after_kill(out), "mid_save": mid_save, "in_gan": in_gan})
        if chain.get("rc") == 0:
            ck = out / "checkpoints"
            chain["stray_tmp_at_end"] = stray(out)
            chain["ends_present"] = all((ck / n).exists() for n in ENDS)
            last = load_checkpoint(ck / "last.pt")
            chain["bit_identical"] = bool(chain["ends_present"] and same(ref_last, last)
                                          and all(weights_equal(ref / "checkpoints" / n, ck / n) for n in ENDS))
            chain["rng_identical"] = same_rng(ref_last, last)
        chains.append(chain)
        print(json.dumps({"chain": len(chains) - 1, **chain}), flush=True)

    figures = {
        "kills": kills,
        "kills_mid_save": sum(r["mid_save"] for r in rows),
        "kills_in_gan_stage": sum(r["in_gan"] for r in rows),
        "chains": len(chains),
        "starts": sum(c["starts"] for c in chains),
        "last_pt_after_kill_loadable": sum(r["last_loadable"] is True for r in rows),
        "last_pt_after_kill_absent": sum(not r["last_exists"] for r in rows),
        "last_pt_after_kill_unloadable": sum(r["last_loadable"] is False for r in rows),
        "end_files_present_after_kill": sum(r["ends_ok"] for r in rows),
        "stray_tmp_after_kill_max": max((r["stray_tmp"] for r in rows), default=0),
        "chains_finished": sum(c.get("rc") == 0 for c in chains),
        "chains_end_files_present": sum(bool(c.get("ends_present")) for c in chains),
        "chains_bit_identical": sum(bool(c.get("bit_identical")) for c in chains),
        "chains_rng_state_identical": sum(bool(c.get("rng_identical")) for c in chains),
        "stray_tmp_at_end": sum(c.get("stray_tmp_at_end", 0) for c in chains),
        "unbroken_run_s": round(run_s, 1),
        "wall_s": round(time.time() - t0, 1),
    }
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))
    return 0 if figures["chains_bit_identical"] == figures["chains"] else 1


if __name__ == "__main__":
    sys.exit(main())
