"""evaluate: published bicubic table through the command, image discovery, outputs, bad input."""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from course_sr.__main__ import main as cli
from course_sr.results.degraded import DegradationSpecError, read_degradation
from course_sr.results.evaluate import (bicubic_bases, evaluate, format_table, image_pairs, main, parse_method,
                                        scored_images)
from course_sr.metrics import psnr_ssim
from course_sr.plumbing.errors import UserError
from course_sr.results.specs import DEPRECATED_ORDER, MethodSpecError, read_checkpoint_spec
from course_sr.unpaired.degradations import degrade, get_degradation
from course_sr.utils import load_image, save_image

PINNED = {"Set5": (28.4290, 0.8111, 5), "Set14": (25.9940, 0.7029, 14)}


def _smooth(h, w, seed, gray=False):
    """A smooth random image (so bicubic scores are finite and plausible)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2) + (() if gray else (3,))).astype(np.float64)
    big = np.kron(small, np.ones((8, 8) + (() if gray else (1,))))[:h, :w]
    return np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)


def make_set(root, name="Tiny", scale=4, sizes=((44, 52), (48, 40)), gray_last=False, layout="benchmark"):
    """<root>/<layout>/<name>/HR/imgK.png + LR_bicubic/X<s>/imgKx<s>.png (LR = HR subsampled)."""
    set_dir = (root / layout / name) if layout else root / name
    for k, (h, w) in enumerate(sizes):
        hr = _smooth(h, w, k, gray=gray_last and k == len(sizes) - 1)
        save_image(set_dir / "HR" / f"img{k}.png", hr)
        lr = hr[: h - h % scale: scale, : w - w % scale: scale]
        save_image(set_dir / "LR_bicubic" / f"X{scale}" / f"img{k}x{scale}.png", lr)
    return set_dir


def test_bicubic_table_on_shared_sets_via_command(shared_benchmarks, capsys):
    assert main(["--method", "bicubic", "--sets", "Set5", "Set14", "--data-root", str(shared_benchmarks),
                 "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    results = json.loads(out[-1])
    assert list(results) == ["Set5", "Set14"]
    for set_name, (p, s, n) in PINNED.items():
        entry = results[set_name]["bicubic"]
        assert (round(entry["psnr"], 4), round(entry["ssim"], 4), entry["n"]) == (p, s, n)
    table = "\n".join(out[:-1])
    assert "28.43 / 0.8111" in table and "25.99 / 0.7029" in table
    assert "4 px shaved" in table and "rgb2ycbcr" in table


@pytest.mark.parametrize("layout", ["benchmark", None])
def test_bicubic_on_folder_layouts_and_outputs(tmp_path, layout):
    make_set(tmp_path, layout=layout, gray_last=True)
    results = evaluate(["bicubic"], ["Tiny"], tmp_path, out_dir=tmp_path / "eval")
    entry = results["Tiny"]["bicubic"]
    assert entry["n"] == 2 and 10 < entry["psnr"] < 60 and 0 < entry["ssim"] < 1
    per_image = (tmp_path / "eval" / "per_image.csv").read_text().splitlines()
    assert per_image[0] == "set,method,image,psnr,ssim,y_shift" and len(per_image) == 3
    assert json.loads((tmp_path / "eval" / "summary.json").read_text()) == results
    assert "4 px shaved" in (tmp_path / "eval" / "table.txt").read_text()
    assert (tmp_path / "eval" / "per_set.csv").read_text().startswith("set,method,psnr,ssim,n,y_shift_max\nTiny,bicubic,")
    assert 0 <= entry["y_shift_max"] < 5         # |mean Y(SR) - mean Y(HR)|, worst image


def test_per_image_values_are_the_metric_of_the_rounded_bicubic(tmp_path):
    from course_sr.imresize import imresize

    set_dir = make_set(tmp_path, sizes=((45, 51),))            # HR not a multiple of 4: cropped
    evaluate(["bicubic"], ["Tiny"], tmp_path, out_dir=tmp_path / "eval")
    row = (tmp_path / "eval" / "per_image.csv").read_text().splitlines()[1].split(",")
    hr = load_image(set_dir / "HR" / "img0.png")[:44, :48]
    sr = imresize(load_image(set_dir / "LR_bicubic" / "X4" / "img0x4.png"), 4)
    assert (float(row[3]), float(row[4])) == pytest.approx(psnr_ssim(sr, hr, 4), abs=1e-12)


def test_data_list_and_div2k_valid(tmp_path):
    make_set(tmp_path / "data", name="DIV2K_valid_HR_src")     # files to point a list at
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "mine_images.csv").write_text(
        "benchmark/DIV2K_valid_HR_src/HR/img1.png,benchmark/DIV2K_valid_HR_src/LR_bicubic/X4/img1x4.png\n")
    pairs = image_pairs("mine", tmp_path / "data", lists)
    assert [p[0] for p in pairs] == ["img1"]
    # DIV2K valid layout
    div2k = tmp_path / "data" / "DIV2K"
    save_image(div2k / "DIV2K_valid_HR" / "0801.png", _smooth(40, 48, 3))
    save_image(div2k / "DIV2K_valid_LR_bicubic" / "X4" / "0801x4.png", _smooth(10, 12, 4))
    results = evaluate(["bicubic"], ["valid", "mine"], tmp_path / "data", csv_folder=lists)
    assert results["valid"]["bicubic"]["n"] == 1 and results["mine"]["bicubic"]["n"] == 1


def test_missing_set_folder(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="Nope.*looked for"):
        evaluate(["bicubic"], ["Nope"], tmp_path)
    assert cli(["evaluate", "--sets", "Nope", "--data-root", str(tmp_path)]) == 2
    assert "evaluate: error: set 'Nope' not found" in capsys.readouterr().err


def test_missing_lr_files_are_listed(tmp_path):
    set_dir = make_set(tmp_path, sizes=((40, 40), (40, 40), (40, 40)))
    (set_dir / "LR_bicubic" / "X4" / "img0x4.png").unlink()
    (set_dir / "LR_bicubic" / "X4" / "img2x4.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"2 missing(.|\n)*img0x4.png(.|\n)*img2x4.png"):
        evaluate(["bicubic"], ["Tiny"], tmp_path)


def test_corrupt_image_is_named(tmp_path):
    set_dir = make_set(tmp_path)
    (set_dir / "HR" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="img1.png"):
        evaluate(["bicubic"], ["Tiny"], tmp_path)


def test_lr_of_wrong_size_is_named(tmp_path):
    set_dir = make_set(tmp_path)
    save_image(set_dir / "LR_bicubic" / "X4" / "img0x4.png", _smooth(20, 20, 9))
    with pytest.raises(ValueError, match="img0x4.png.*not its x4 LR"):
        evaluate(["bicubic"], ["Tiny"], tmp_path)


def test_parse_method(tmp_path):
    assert parse_method("bicubic") == ("bicubic", None)
    assert parse_method("runs/a/checkpoints/best.pt") == ("a/best", Path("runs/a/checkpoints/best.pt"))
    assert parse_method("SRGAN=x/g.pt") == ("SRGAN", Path("x/g.pt"))           # NAME=PATH
    assert parse_method("x/g.pt=SRGAN") == ("SRGAN", Path("x/g.pt"))           # the old order, still read
    with pytest.raises(ValueError, match="two methods are named 'bicubic'"):
        evaluate(["bicubic", "bicubic"], ["Tiny"], tmp_path)


def test_the_order_of_a_checkpoint_spec_follows_one_rule(tmp_path):
    """results.specs: a whole spec naming a file is a bare PATH; else the side naming an existing
    file is the path, else the side ending in .pt/.pth; anything else is one error naming the spec."""
    weights = tmp_path / "weights"                        # an existing file without a torch suffix
    weights.write_bytes(b"")
    odd = tmp_path / "lr=1e-4" / "g.pt"                   # a path holding '='
    odd.parent.mkdir()
    odd.write_bytes(b"")
    assert read_checkpoint_spec(f"mine={weights}") == ("mine", weights, False)
    assert read_checkpoint_spec(f"{weights}=mine") == ("mine", weights, True)
    assert read_checkpoint_spec(f"SRGAN={odd}") == ("SRGAN", odd, False)
    assert read_checkpoint_spec(f"{odd}=SRGAN") == ("SRGAN", odd, True)
    assert read_checkpoint_spec(str(odd)) == ("", odd, False)
    assert read_checkpoint_spec("SRGAN=runs/x/G.PTH") == ("SRGAN", Path("runs/x/G.PTH"), False)
    assert read_checkpoint_spec("runs/x/g.pt=SRGAN") == ("SRGAN", Path("runs/x/g.pt"), True)
    assert read_checkpoint_spec(f"{weights}=other.pt") == ("other.pt", weights, True)    # existence first
    for spec, why in [("SRGAN=runs/x", "neither side names an existing file or ends in .pt/.pth"),
                      ("a.pt=b.pt", "both sides could be the checkpoint"),
                      ("=runs/x/g.pt", "expected NAME=PATH")]:
        with pytest.raises(MethodSpecError, match=re.escape(f"checkpoint spec {spec!r}: ") + ".*" + re.escape(why)):
            parse_method(spec)
    assert issubclass(MethodSpecError, ValueError) and issubclass(MethodSpecError, UserError)


def test_the_old_checkpoint_order_still_works_with_one_deprecation_line(tmp_path, tiny_checkpoint, capsys):
    path, _ = tiny_checkpoint(4)
    make_set(tmp_path)
    common = ["--sets", "Tiny", "--data-root", str(tmp_path), "--device", "cpu", "--json"]
    assert cli(["evaluate", "--checkpoint", f"{path}=a", "--checkpoint", f"{path}=b", *common]) == 0
    old = capsys.readouterr()
    assert old.err.splitlines() == [DEPRECATED_ORDER]          # once, for two old-order specs
    assert DEPRECATED_ORDER == ("evaluate: --checkpoint PATH=NAME is deprecated; write NAME=PATH "
                                "(e.g. srgan=runs/x/checkpoints/gan_end.pt)")
    assert cli(["evaluate", "--checkpoint", f"a={path}", "--checkpoint", f"b={path}", *common]) == 0
    new = capsys.readouterr()
    assert new.err == "" and json.loads(new.out.splitlines()[-1]) == json.loads(old.out.splitlines()[-1])


def test_lpips_is_never_a_made_up_number(tmp_path):
    try:
        import lpips  # noqa: F401
        pytest.skip("lpips is installed here; this test covers its absence")
    except ImportError:
        pass
    make_set(tmp_path)
    results = evaluate(["bicubic"], ["Tiny"], tmp_path, lpips=True)
    assert results["Tiny"]["bicubic"]["lpips"].startswith("not computed")
    assert "not computed" in format_table(results)


# ---- checkpoints ----------------------------------------------------------------------------
@pytest.fixture
def tiny_checkpoint(tmp_path):
    pytest.importorskip("course_sr.models")
    from course_sr.plumbing.checkpoint import save_checkpoint
    from course_sr.config import get_config, to_plain
    from course_sr.models import build_generator

    def make(scale=4):
        cfg = get_config("quick", scaling_factor=scale)
        torch.manual_seed(0)
        gen = build_generator(cfg)
        path = tmp_path / f"run{scale}" / "checkpoints" / "best.pt"
        state = {"method": "srgan", "stage": "pretrain", "iteration": 0, "config": to_plain(cfg),
                 "arch": {"generator": cfg.generator}, "models": {"generator": gen.state_dict()}}
        return save_checkpoint(state, path), gen.eval()
    return make


def test_checkpoint_method(tmp_path, tiny_checkpoint):
    from course_sr.results.inference import super_resolve
    from course_sr.utils import convert_image

    path, gen = tiny_checkpoint(4)
    set_dir = make_set(tmp_path, gray_last=True)
    results = evaluate(["bicubic", f"tiny={path}", str(path)], ["Tiny"], tmp_path, device="cpu",
                       out_dir=tmp_path / "eval")
    assert list(results["Tiny"]) == ["bicubic", "tiny", "run4/best"]
    assert results["Tiny"]["tiny"] == results["Tiny"]["run4/best"]
    # the gray image: LR replicated to RGB, SR rounded to uint8, scored against gray HR as Y
    lr = load_image(set_dir / "LR_bicubic" / "X4" / "img1x4.png")
    sr = super_resolve(gen, convert_image(torch.from_numpy(lr).permute(2, 0, 1), "[0, 255]", "[0, 1]"))
    sr = (sr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    hr = load_image(set_dir / "HR" / "img1.png", keep_gray=True)[:48, :40]
    row = [r.split(",") for r in (tmp_path / "eval" / "per_image.csv").read_text().splitlines()
           if r.startswith("Tiny,tiny,img1")][0]
    assert (float(row[3]), float(row[4])) == pytest.approx(psnr_ssim(sr, hr, 4), abs=1e-9)


def test_checkpoint_of_another_scale(tmp_path, tiny_checkpoint, capsys):
    path, _ = tiny_checkpoint(2)
    make_set(tmp_path)
    with pytest.raises(ValueError, match=r"best\.pt is a x2 model, but scale x4"):
        evaluate([str(path)], ["Tiny"], tmp_path)
    assert cli(["evaluate", "--checkpoint", str(path), "--sets", "Tiny", "--data-root", str(tmp_path)]) == 2
    assert "x2 model" in capsys.readouterr().err


def test_missing_checkpoint(tmp_path):
    make_set(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        evaluate([str(tmp_path / "nothing.pt")], ["Tiny"], tmp_path)


def test_torch_bicubic_is_the_base_an_untrained_residual_network_gives(tmp_path, tiny_checkpoint):
    """torch-bicubic scores exactly what an untrained bicubic_residual SRResNet gives (its last
    conv starts at zero), sets may come from different roots, and bicubic_bases asks for it."""
    from course_sr.plumbing.checkpoint import load_checkpoint, save_checkpoint

    path, _ = tiny_checkpoint(4)
    make_set(tmp_path / "a")
    make_set(tmp_path / "b", name="Other", sizes=((40, 44),))
    results = evaluate(["bicubic", "torch-bicubic", f"untrained={path}"], ["Tiny", "Other"],
                       {"Tiny": tmp_path / "a", "Other": tmp_path / "b"}, device="cpu")
    for set_name in ("Tiny", "Other"):
        assert results[set_name]["torch-bicubic"] == results[set_name]["untrained"]
        assert results[set_name]["torch-bicubic"]["psnr"] != results[set_name]["bicubic"]["psnr"]
    assert "torch-bicubic" in format_table(results) and "mean Y shift" in format_table(results)
    assert parse_method("torch-bicubic") == ("torch-bicubic", None)
    assert bicubic_bases([path]) == ["torch-bicubic"]
    paper = load_checkpoint(path)
    paper["config"]["bicubic_residual"] = False
    assert bicubic_bases([save_checkpoint(paper, tmp_path / "paper.pt", check=False)]) == []


# ---- --degradation: a fixed synthetic camera instead of the LR files --------------------------
def test_degraded_lr_is_degrade_of_the_hr_seeded_by_its_file_name(tmp_path):
    """LR = degrade(HR cropped to a multiple of 4, spec, seed=CRC-32 of the HR file name); the LR
    files are neither read nor needed; a gray HR is degraded as RGB and scored as Y."""
    from course_sr.imresize import imresize

    set_dir = make_set(tmp_path, sizes=((45, 51), (48, 40)), gray_last=True)
    for lr_file in (set_dir / "LR_bicubic" / "X4").iterdir():
        lr_file.unlink()
    spec = get_degradation("sensor-fixed", 4)
    images = list(scored_images(image_pairs("Tiny", tmp_path, lr_files=False), 4, spec))
    results = evaluate(["bicubic"], ["Tiny"], tmp_path, out_dir=tmp_path / "eval", degradation="sensor-fixed")
    rows = [r.split(",") for r in (tmp_path / "eval" / "per_image.csv").read_text().splitlines()[1:]]
    for (image, hr_path, lr, hr), row in zip(images, rows):
        hr_rgb = load_image(hr_path)[:44, :48] if image == "img0" else load_image(hr_path)
        expected = degrade(hr_rgb, "sensor-fixed", seed=zlib.crc32(f"{image}.png".encode("utf-8")))
        assert np.array_equal(lr, expected) and lr.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)
        assert hr.ndim == (2 if image == "img1" else 3)                  # the gray HR stays gray (Y)
        assert row[:3] == ["Tiny (sensor-fixed)", "bicubic", image] and row[-1] == "sensor-fixed"
        assert (float(row[3]), float(row[4])) == pytest.approx(psnr_ssim(imresize(expected, 4), hr, 4), abs=1e-12)
    assert results["Tiny (sensor-fixed)"]["bicubic"]["n"] == 2


def test_bicubic_scores_lower_through_the_fixed_camera_same_numbers_twice(sample_root, tmp_path, capsys):
    common = ["evaluate", "--sets", "sample_test", "--data-root", str(sample_root), "--json"]
    assert cli(common) == 0
    clean = json.loads(capsys.readouterr().out.splitlines()[-1])["sample_test"]["bicubic"]
    runs = []
    for k in range(2):
        assert cli([*common, "--degradation", "sensor-fixed", "--out", str(tmp_path / f"eval{k}")]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1].replace(str(tmp_path / "eval1"), str(tmp_path / "eval0"))
    for name in ("per_image.csv", "per_set.csv", "summary.json", "table.txt"):
        assert (tmp_path / "eval0" / name).read_bytes() == (tmp_path / "eval1" / name).read_bytes()
    results = json.loads(runs[0].splitlines()[-1])
    assert list(results) == ["sample_test (sensor-fixed)"]
    degraded = results["sample_test (sensor-fixed)"]["bicubic"]
    assert degraded["degradation"] == "sensor-fixed" and degraded["n"] == clean["n"]
    assert degraded["psnr"] < clean["psnr"] - 1 and degraded["ssim"] < clean["ssim"]


def test_the_set_label_carries_the_spec_in_every_output(sample_root, tmp_path):
    spec = '{"preset": "fixed", "noise": 10}'
    results = evaluate(["bicubic"], ["sample_test"], sample_root, out_dir=tmp_path, degradation=spec)
    label = 'sample_test ({"noise":10,"preset":"fixed"})'
    assert list(results) == [label] and json.loads((tmp_path / "summary.json").read_text()) == results
    assert (tmp_path / "per_set.csv").read_text().splitlines()[0].endswith(",degradation")
    assert (tmp_path / "per_image.csv").read_text().splitlines()[1].startswith(f'"{label.replace(chr(34), 2 * chr(34))}",')
    table = " ".join((tmp_path / "table.txt").read_text().split())          # unwrapped
    assert label in table and "not the standard bicubic benchmark" in table and "noise=(10.0, 10.0)" in table
    assert read_degradation(results[label]["bicubic"]["degradation"], 4) == read_degradation(spec, 4)


def test_bicubic_on_set5_through_sensor_fixed(shared_benchmarks):
    results = evaluate(["bicubic"], ["Set5"], shared_benchmarks, degradation="sensor-fixed")
    entry = results["Set5 (sensor-fixed)"]["bicubic"]
    assert entry["n"] == 5 and 20 < entry["psnr"] < PINNED["Set5"][0] - 1 and entry["ssim"] < PINNED["Set5"][1]
    assert "Set5 (sensor-fixed) (n=5)" in format_table(results)


@pytest.mark.parametrize("spec, why", [("blurry", "not a preset name"), ('{"preset": "x"}', "unknown preset 'x'"),
                                       ('{"nois": 3}', "nois"), ("{bad", "Expecting"),
                                       ('{"noise": [1]}', "[lo, hi]"), ('{"jpeg": 200}', "1..95")])
def test_a_bad_degradation_is_one_line_naming_it_and_the_presets(tmp_path, spec, why):
    make_set(tmp_path)
    with pytest.raises(DegradationSpecError) as caught:
        evaluate(["bicubic"], ["Tiny"], tmp_path, degradation=spec)
    message = str(caught.value)
    assert "\n" not in message and repr(spec) in message and why in message
    assert "clean, default, fixed, sensor, sensor-fixed" in message and isinstance(caught.value, ValueError)
