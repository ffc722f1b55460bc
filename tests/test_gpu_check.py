"""benchmarks/gpu_check.py --cpu-smoke: every configuration of the first GPU session's script runs.

The GPU session gets one try at it, so CI runs the whole script on CPU (small networks, a step
or two each); speed is not looked at here, only that every path runs and reports.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_smoke_runs_every_configuration(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-smoke",
                           "--out", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])          # the last line is the JSON
    assert summary == json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["benchmark"] == "gpu_check" and summary["cpu_smoke"] and summary["errors"] == 0
    configs = summary["configs"]
    names = {(c["stage"], c["name"]) for c in configs}
    assert len(configs) == len(names) == 16                             # 2 stages x fp32/amp x format x compile
    assert {n for _, n in names} == {f"{a}+{f}+{c}" for a in ("fp32", "amp") for f in ("nchw", "channels_last")
                                     for c in ("eager", "compile")}
    for c in configs:
        assert c["status"] == "ok" and c["it_per_s"] > 0, c
        assert c["amp_dtype"] == ("float16" if c["amp"] else "float32") and c["grad_scaler"] == c["amp"]
        if c["amp"]:                                                     # one scale per optimiser
            assert len(c["loss_scales"]) == (1 if c["stage"] == "stage1" else 2)
        assert c["speedup_vs_fp32_nchw_eager"] > 0
    runner = summary["runner"]
    assert runner["finished"] and runner["stopped_at"] == 3 and runner["resumed_to"] == 4
    assert runner["resume_repeat_max_abs_diff"] == 0.0                   # resuming on CPU is bit-exact
    sizes = runner["checkpoint_mb"]
    assert set(sizes) == {"best.pt", "gan_end.pt", "last.pt", "pretrain_end.pt"}
    assert sizes["last.pt"] > 2 * sizes["gan_end.pt"]                     # only last.pt carries Adam states
    assert "autocast is for CUDA" in " ".join(runner["log_head"])
    for source in summary["projections"].values():
        assert set(source["s_per_1000_iters"]) == {"stage1", "stage2"}
        assert source["colab_hours"] > 0 and source["paper_hours"] > source["colab_hours"]
    assert any(k.startswith("kit default (amp+nchw+eager)") for k in summary["projections"])
