"""The experiment report from fabricated run directories (checkpoint in the BRIEF format)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_sr.__main__ import main as cli
from course_sr.config import DEFAULTS, get_config, to_plain
from course_sr.plumbing.records import config_yaml
from course_sr.results.markdown_html import markdown_to_html
from course_sr.results.report import (STUDENT_END, differing_settings, main,
                              results_table, write_report)
from helpers import make_run

SECTIONS = ["## Runs at a glance", "## Schedule and settings", "## Training curves",
            "## Test-set results", "## Set5 comparison sheets", "## Your notes"]


def make_eval(root: Path) -> Path:
    ev = root / "eval"
    (ev / "Set5" / "sheets").mkdir(parents=True)
    summary = {"Set5": {"bicubic": {"psnr": 28.42, "ssim": 0.8104, "n": 5},
                        "srgan": {"psnr": 29.10, "ssim": 0.8300, "n": 5}},
               "Set14": {"bicubic": {"psnr": 26.00, "ssim": 0.7027, "n": 14},
                         "srgan": {"psnr": 26.50, "ssim": 0.7100, "n": 14}}}
    (ev / "summary.json").write_text(json.dumps(summary))
    (ev / "Set5.csv").write_text("image,method,psnr,ssim\nbaby,bicubic,31.7,0.86\n")
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(ev / "Set5" / "sheets" / "baby.png")
    return ev


def referenced_files(md_path: Path) -> list[Path]:
    targets = re.findall(r"\]\(([^)]+)\)", md_path.read_text())
    return [md_path.parent / t for t in targets]


def test_report_has_every_section_and_its_images(tmp_path):
    run, ev = make_run(tmp_path, "srgan_run"), make_eval(tmp_path)
    out = write_report([run], eval_dir=ev, out=tmp_path / "rep" / "report.md", html=True)
    text = out.read_text()
    for section in SECTIONS:
        assert section in text
    assert "## Settings that differ" not in text  # one run: nothing to compare
    q = get_config("quick")  # the fabricated run uses the preset's own schedule
    assert f"| crop_size | `{q.crop_size}` | `{DEFAULTS['crop_size']}` |" in text  # non-default + its default
    assert f"**Stage 1, SRResNet**: {q.pretrain_iters} iterations" in text and "G1D1" in text
    assert "Preset `quick`, changed on top of it: nothing." in text
    total, val_at = q.pretrain_iters + q.gan_iters, q.pretrain_iters + 15
    best1 = max(range(15, q.pretrain_iters + 1, 15))      # stage 1's fabricated PSNR grows: best = last
    assert (f"| srgan_run | srgan | `../srgan_run/checkpoints/last.pt` | srgan | {total} of {total} "
            f"| srresnet {20 + best1 / 30:.2f} (it {best1}); srgan 20.50 (it {val_at}) "
            f"| 20.50 (it {val_at}) | 0.6100 (it {val_at}) |") in text          # each stage's best
    settings = text[text.index("## Schedule and settings"):text.index("## Training curves")]
    assert "CycleSR keys left out" in settings and "cyc_ngf" not in settings and "SR_nb" not in settings
    assert "VGG keys (SRGAN-MSE has no VGG)" in settings and "vgg_weights" not in settings   # quick: mse
    notes = text[text.index("### What the numbers mean"):text.index("## Set5 comparison sheets")]
    assert "srgan 29.10 dB (+0.68 over bicubic; SSIM 0.8300, +0.0196)" in notes   # Set5 of make_eval
    assert "SRResNet 32.05, SRGAN 29.40 dB" in notes                             # the paper beside it
    assert "| srgan | **29.10** / **0.8300** | **26.50** / **0.7100** |" in text
    assert "_28.42 / 0.8104_" in text and "rgb2ycbcr" in text  # published row + convention
    files = referenced_files(out)
    assert any(f.name == "curves_srgan_run.png" for f in files)
    assert any(f.name == "baby.png" and "report_files" in str(f) for f in files)
    assert any(f.name == "Set5.csv" for f in files)
    assert "Latest validation grid (`srgan_45.png`)" in text
    assert np.asarray(Image.open(out.parent / "report_files" / "grid_srgan_run.png"))[0, 0, 0] == 45
    assert all(f.is_file() for f in files), [f for f in files if not f.is_file()]
    page = out.with_suffix(".html").read_text()
    assert "<table>" in page and '<img alt="baby" src="report_files/sheets/baby.png">' in page


def test_student_section_survives_regeneration(tmp_path):
    run = make_run(tmp_path, "r")
    out = write_report([run], out=tmp_path / "report.md")
    assert "No evaluation given" in out.read_text()
    notes = "## What I tried\n\n- G1D2 with pixel_weight 1.0 | a pipe\n\nIt got sharper.\n"
    text = out.read_text()
    begin = text.index("-->", text.index("<!-- student:begin")) + 4
    out.write_text(text[:begin] + notes + text[text.index(STUDENT_END):])
    for _ in range(2):  # regenerating twice changes nothing in the student's text
        write_report([run], out=out)
        again = out.read_text()
        assert notes + STUDENT_END in again and again.count("What I tried") == 1


def test_report_without_markers_backs_up_old_file(tmp_path, capsys):
    run = make_run(tmp_path, "r")
    out = tmp_path / "report.md"
    out.write_text("my hand-written report\n")
    write_report([run], out=out)
    assert (tmp_path / "report.md.bak").read_text() == "my hand-written report\n"
    assert "no student markers" in capsys.readouterr().err


def test_newest_checkpoint_is_used_without_last(tmp_path):
    run = make_run(tmp_path, "r", stage="srresnet", ckpt_name="srresnet_end.pt")
    out = write_report([run], out=tmp_path / "report.md")
    assert "`r/checkpoints/srresnet_end.pt` | srresnet" in out.read_text()


def test_run_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"run directory .*not_a_run has no checkpoint"):
        write_report([empty], out=tmp_path / "report.md")
    assert cli(["report", "--run", str(empty), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("report: error: run directory") and "not_a_run has no checkpoint" in err
    with pytest.raises(FileNotFoundError, match="has no summary.json"):
        write_report([make_run(tmp_path, "ok")], eval_dir=empty, out=tmp_path / "report.md")


def test_two_runs_compare_side_by_side(tmp_path, capsys):
    a = make_run(tmp_path, "pretrained")
    b = make_run(tmp_path, "no_pretrain_G1D2", pretrain_iters=0, d_steps=2)
    ev = make_eval(tmp_path)
    md = tmp_path / "cmp.md"
    assert main(["--run", str(a), "--run", str(b), "--eval", str(ev), "--out", str(md)]) == 0
    assert "| srgan | **29.10**" in capsys.readouterr().out  # the table is printed too
    text = md.read_text()
    diff = text[text.index("## Settings that differ"):text.index("## Training curves")]
    assert "| setting | pretrained | no_pretrain_G1D2 |" in diff
    assert f"| pretrain_iters | `{get_config('quick').pretrain_iters}` | `0` |" in diff
    assert "| d_steps | `1` | `2` |" in diff
    assert "batch_size" not in diff  # shared settings are not listed
    assert "skipped (no pretraining" in text and "from random weights" in text and "G1D2" in text
    assert (f"Preset `quick`, changed on top of it: `pretrain_iters` = `0` (preset `{get_config('quick').pretrain_iters}`), "
            "`d_steps` = `2`") in text
    assert "![runs overlaid](cmp_files/curves_compared.png)" in text
    assert all(f.is_file() for f in referenced_files(md))


def test_differing_settings_and_results_table_units():
    assert differing_settings({"a": {"x": 1, "t": (1, 2)}, "b": {"x": 2, "t": [1, 2]}}) == {"x": [1, 2]}
    table = results_table({"Urban100": {"bicubic": {"psnr": 23.1, "ssim": 0.65, "n": 100}},
                           "Set5": {"bicubic": {"psnr": 28.4, "ssim": 0.81, "n": 5}}}, scale=2)
    assert table.splitlines()[0] == "| method | Set5 (5) | Urban100 (100) |"  # course order
    assert "published" not in table  # published row only for x4


def test_markdown_to_html_subset():
    page = markdown_to_html("# T\n\n| a | b \\| c |\n|---|---|\n| `x` | **y** |\n\n- one\n- two\n\n"
                            "text with <tag> and _it_\n```\ncode <b>\n```\n")
    assert "<h1>T</h1>" in page and "<th>b | c</th>" in page
    assert "<td><code>x</code></td><td><strong>y</strong></td>" in page
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in page
    assert "&lt;tag&gt;" in page and "<em>it</em>" in page and "code &lt;b&gt;" in page


def test_report_from_a_real_quick_run_stopped_and_resumed(sample_root, tmp_path):
    """The runner's own records: a run stopped at iteration 3, resumed, evaluated, reported."""
    from course_sr.results.evaluate import evaluate
    from course_sr.training import run

    cfg = get_config("quick", data_root=str(sample_root), csv_folder=str(sample_root / "data_lists"),
                     pretrain_iters=4, gan_iters=2, log_every=1, val_every=3, ckpt_every=3,
                     val_images=1, tensorboard=True)
    out_dir = tmp_path / "quick"
    run(cfg, out_dir, max_iters=3)
    result = run(cfg, out_dir, resume="auto")
    history = result["history"]
    for key, series in history.items():  # each step once, none missing, across the resume
        steps = [s for s, _ in series]
        assert steps == sorted(set(steps)), key
    assert [s for s, _ in history["pretrain/loss"]] == [1, 2, 3, 4]
    assert "resumed from" in (out_dir / "log.txt").read_text()

    ev = tmp_path / "eval"
    evaluate(["bicubic", f"SRGAN={out_dir / 'checkpoints' / 'gan_end.pt'}"], ["sample_test"],
             sample_root, out_dir=ev)
    md = write_report([out_dir], eval_dir=ev, out=tmp_path / "report.md")
    text = md.read_text()
    for section in SECTIONS:
        assert section in text
    assert "| quick | srgan | `quick/checkpoints/last.pt` | gan | 6 of 6 |" in text
    assert re.search(r"\| SRGAN \| [\d.*]+ / [\d.*]+ \|", text)
    assert all(f.is_file() for f in referenced_files(md))
