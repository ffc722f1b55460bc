"""upscale: gray/RGBA rules, files and folders, comparison sheets, the Set5-style deliverable, bad inputs."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from course_sr.__main__ import main as cli
from course_sr.results import upscale
from course_sr.imresize import imresize
from course_sr.metrics import psnr_ssim
from course_sr.results.upscale import (auto_crop, comparison_figure, crop_hr, super_resolve_set,
                               upscale_array, upscale_file, upscale_folder)


class NearestNet(torch.nn.Module):
    """A stand-in SR network with a known answer: nearest-neighbour upscaling, in a declared range."""

    def __init__(self, scale=4, output_range="[0, 1]"):
        super().__init__()
        self.scale, self.output_range = scale, output_range
        self.dummy = torch.nn.Parameter(torch.zeros(1))       # so .parameters() has a device

    def forward(self, x):
        y = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return y * 2 - 1 if self.output_range == "[-1, 1]" else y


def nearest(a, s=4):
    return np.repeat(np.repeat(a, s, axis=0), s, axis=1)


def rand_image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("output_range", ["[0, 1]", "[-1, 1]"])
@pytest.mark.parametrize("shape", [(5, 7, 3), (5, 7), (1, 1, 3)])
def test_upscale_array_network_ranges_and_gray(shape, output_range):
    img = rand_image(shape)
    sr, alpha = upscale_array(NearestNet(4, output_range), img, device="cpu")
    assert alpha is None and sr.dtype == np.uint8
    np.testing.assert_array_equal(sr, nearest(img))           # gray in -> gray out, values kept


def test_upscale_array_bicubic_and_alpha():
    img, a = rand_image((6, 5, 3)), rand_image((6, 5), seed=1)
    sr, sr_alpha = upscale_array("bicubic", img, a, scale=4)
    np.testing.assert_array_equal(sr, imresize(img, 4))
    np.testing.assert_array_equal(sr_alpha, imresize(a, 4))
    with pytest.raises(ValueError, match="bicubic upscaling needs a scale"):
        upscale_array("bicubic", img)
    with pytest.raises(ValueError, match="x4 model, but x2 was asked"):
        upscale_array(NearestNet(4), img, scale=2)
    with pytest.raises(ValueError, match=r"expects uint8 \(H, W\) or \(H, W, 3\), got float64"):
        upscale_array("bicubic", img.astype(float), scale=4)


def test_gray_output_is_luma_of_network_rgb():
    """A network that colours a gray input: the gray output is BT.601 luma of its RGB output."""
    class Tint(NearestNet):
        def forward(self, x):
            y = super().forward(x)
            return torch.stack([y[:, 0], y[:, 1] * 0.5, y[:, 2] * 0.25], 1)

    img = rand_image((3, 4))
    sr, _ = upscale_array(Tint(2), img)
    v = nearest(img, 2).astype(float)
    np.testing.assert_allclose(sr, np.rint(0.299 * v + 0.587 * np.rint(v * 0.5) + 0.114 * np.rint(v * 0.25)), atol=1)


@pytest.mark.parametrize("mode, out_mode", [("RGB", "RGB"), ("L", "L"), ("RGBA", "RGBA"), ("LA", "LA"),
                                            ("P", "RGBA")])
def test_upscale_file_modes(tmp_path, mode, out_mode):
    rgba = rand_image((4, 6, 4))
    src = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        src = src.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        src.info["transparency"] = 0
    else:
        src = src.convert(mode)
    path = tmp_path / f"in_{mode}.png"
    src.save(path, **({"transparency": 0} if mode == "P" else {}))
    out = upscale_file(NearestNet(4), path, tmp_path / "out" / "x.png")
    res = Image.open(out)
    assert res.mode == out_mode and res.size == (24, 16)
    if mode in ("RGBA", "LA"):
        alpha_in = np.asarray(Image.open(path).convert("RGBA"))[:, :, 3]
        np.testing.assert_array_equal(np.asarray(res.getchannel("A")), imresize(alpha_in, 4))
    if mode in ("RGB", "L"):
        np.testing.assert_array_equal(np.asarray(res), nearest(np.asarray(Image.open(path))))


def test_upscale_folder_and_bad_inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rand_image((3, 4, 3))).save(d / "a.png")
    Image.fromarray(rand_image((2, 2))).save(d / "b.JPG", quality=95)
    (d / "notes.txt").write_text("not an image")
    written = upscale_folder(NearestNet(2), d, tmp_path / "out", progress=False)
    assert [p.name for p in written] == ["a.png", "b.png"]
    assert Image.open(written[0]).size == (8, 6) and Image.open(written[1]).mode == "L"

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images .* in folder .*empty"):
        upscale_folder(NearestNet(2), tmp_path / "empty", tmp_path / "o2")
    with pytest.raises(FileNotFoundError, match="image folder not found: .*absent"):
        upscale_folder(NearestNet(2), tmp_path / "absent", tmp_path / "o2")
    Image.fromarray(rand_image((3, 4, 3))).save(d / "a.bmp")
    with pytest.raises(ValueError, match="a.bmp and a.png would both be written as a.png"):
        upscale_folder(NearestNet(2), d, tmp_path / "o3")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        upscale_file(NearestNet(2), bad, tmp_path / "o4" / "x.png")


def test_crop_hr_rules():
    lr = (5, 6)
    assert crop_hr(np.zeros((22, 27, 3), np.uint8), lr, 4).shape == (20, 24, 3)   # a few px extra: cropped
    with pytest.raises(ValueError, match=r"hr\.png is 23x19 px but the LR image is 6x5 at x4: expected 24x20"):
        crop_hr(np.zeros((19, 23, 3), np.uint8), lr, 4, "hr.png")                   # smaller than LR x scale
    with pytest.raises(ValueError, match="expected 24x20"):
        crop_hr(np.zeros((40, 48, 3), np.uint8), lr, 4)                             # another image's HR


def test_auto_crop_finds_the_detail():
    img = np.full((64, 96), 128, np.uint8)
    img[36:52, 60:76] = rand_image((16, 16))
    top, left, size = auto_crop(img, 4)
    assert size == 16 and top % 4 == 0 and left % 4 == 0
    assert top <= 36 and top + size >= 52 - 4 and left <= 60 and left + size >= 76 - 4
    assert auto_crop(np.zeros((4, 4), np.uint8), 4) == (0, 0, 4)                   # a 1x1 LR still works


def test_comparison_figure(tmp_path):
    hr = rand_image((24, 32, 3))
    lr = imresize(hr, 0.25)
    bic = imresize(lr, 4)
    fig = comparison_figure(lr, {"bicubic": bic, "SR": nearest(lr)}, hr=hr, title="img")
    axes = fig.get_axes()
    assert len(axes) == 8                                    # 4 columns (LR, bicubic, SR, HR) x 2 rows
    titles = [ax.get_title() for ax in axes if ax.get_title()]
    p, s = psnr_ssim(bic, hr, 4)
    assert titles[0] == "LR (nearest)" and titles[1] == f"bicubic\n{p:.2f} dB / {s:.4f}" and titles[3] == "HR"
    fig.savefig(tmp_path / "sheet.png")
    fig = comparison_figure(lr[:, :, 0], {"bicubic": bic[:, :, 0]}, crop=(4, 8, 8))
    assert len(fig.get_axes()) == 4 and "dB" not in fig.get_axes()[1].get_title()
    with pytest.raises(ValueError, match=r"panel 'SR' is 8x6 px, expected 32x24"):
        comparison_figure(lr, {"bicubic": bic, "SR": lr}, scale=4)


def test_super_resolve_set(tmp_path):
    images = []
    for i, name in enumerate(["bird", "head"]):
        hr = rand_image((20 + 4 * i, 24, 3), seed=i)
        if i == 1:
            hr = hr[:, :, 0]                                 # a gray HR/LR pair
        lr = imresize(hr, 0.25)
        Image.fromarray(hr).save(tmp_path / f"{name}.png")
        Image.fromarray(lr).save(tmp_path / f"{name}x4.png")
        images.append((name, tmp_path / f"{name}.png", tmp_path / f"{name}x4.png"))
    res = super_resolve_set({"bicubic": "bicubic", "near": NearestNet(4)}, images, tmp_path / "Set5",
                            device="cpu", progress=False)
    for name, hr_path, lr_path in images:
        lr = np.asarray(Image.open(lr_path))
        for m, expected in [("bicubic", imresize(lr, 4)), ("near", nearest(lr))]:
            got = np.asarray(Image.open(tmp_path / "Set5" / m / f"{name}.png"))
            np.testing.assert_array_equal(got, expected)
            assert res["metrics"][name][m] == pytest.approx(psnr_ssim(expected, np.asarray(Image.open(hr_path)), 4))
        assert (tmp_path / "Set5" / "sheets" / f"{name}.png").is_file()
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "Set5" / "HR" / f"{name}.png")),
                                      np.asarray(Image.open(hr_path)))
    assert res["dirs"] == {m: str(tmp_path / "Set5" / m) for m in ("bicubic", "near", "HR")}
    with open(res["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [(r["image"], r["method"]) for r in rows] == [("bird", "bicubic"), ("bird", "near"),
                                                          ("head", "bicubic"), ("head", "near")]
    assert res["mean"]["bicubic"][0] == pytest.approx(np.mean([res["metrics"][n]["bicubic"][0] for n in ("bird", "head")]))
    with pytest.raises(ValueError, match=r"method names \['HR'\] are reserved"):
        super_resolve_set({"HR": "bicubic"}, images, tmp_path / "x")
    with pytest.raises(ValueError, match="different scales"):
        super_resolve_set({"a": NearestNet(4), "b": NearestNet(2)}, images, tmp_path / "x")
    small_hr = [("bird", tmp_path / "headx4.png", images[0][2])]
    with pytest.raises(ValueError, match=r"headx4\.png is 6x6 px but the LR image is 6x5 at x4"):
        super_resolve_set({"bicubic": "bicubic"}, small_hr, tmp_path / "y", sheets=False)


# ---- the command, with real (tiny) checkpoints --------------------------------------------
def _checkpoint(path, scale):
    from course_sr.plumbing.checkpoint import save_checkpoint
    from course_sr.config import get_config, to_plain
    from course_sr.models import Generator

    cfg = get_config("quick", scaling_factor=scale)
    torch.manual_seed(0)
    g = Generator(cfg)
    save_checkpoint({"format": "course_sr/1", "method": "srgan", "stage": "pretrain", "iteration": 0,
                     "config": to_plain(cfg), "arch": {"generator": "srresnet"},
                     "models": {"generator": g.state_dict()}}, path)
    return path


def test_command(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "g.pt", 2)
    Image.fromarray(rand_image((1, 1, 3))).save(tmp_path / "dot.png")          # a 1x1 image works
    assert upscale.main(["--checkpoint", str(ckpt), "--input", str(tmp_path / "dot.png"),
                         "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "o" / "dot.png").size == (2, 2)
    d = tmp_path / "folder"
    d.mkdir()
    Image.fromarray(rand_image((20, 24, 3))).save(d / "big.png")
    assert upscale.main(["--checkpoint", str(ckpt), "--input", str(d), "--out", str(tmp_path / "o"),
                         "--tile", "8", "--scale", "2"]) == 0
    tiled = np.asarray(Image.open(tmp_path / "o" / "big.png")).astype(int)
    from course_sr.models import load_generator

    whole, _ = upscale_array(load_generator(ckpt)[0], np.asarray(Image.open(d / "big.png")))
    assert tiled.shape == (40, 48, 3) and np.abs(tiled - whole).max() <= 1

    capsys.readouterr()
    cases = [
        (["--checkpoint", str(tmp_path / "missing.pt")], r"checkpoint not found: .*missing\.pt"),
        (["--checkpoint", str(ckpt), "--scale", "4"], "x2 model, but x4 was asked"),
        (["--checkpoint", str(ckpt), "--input", str(tmp_path / "nothing")], "input not found: .*nothing"),
        (["--checkpoint", "bicubic"], "bicubic upscaling needs a scale"),
    ]
    for extra, match in cases:
        argv = ["--input", str(d), "--out", str(tmp_path / "o2"), *extra]
        assert cli(["upscale", *argv]) == 2             # the one error path: python -m course_sr
        err = capsys.readouterr().err
        assert err.startswith("upscale: error: ")
        assert re.search(match, err), err
    (d / "bad.png").write_bytes(b"not an image at all")
    assert cli(["upscale", "--checkpoint", "bicubic", "--scale", "4", "--input", str(d), "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"upscale: error: cannot read image .*bad\.png", err), err


def test_outputs_take_the_hr_names(tmp_path, capsys):
    """babyx4.png -> baby.png (the HR reference's name, which rating-pack pairs by); clashes refused."""
    assert upscale.output_name("LR_bicubic/X4/babyx4.png", 4) == "baby.png"
    assert upscale.output_name("0801x4.PNG", 4) == "0801.png"
    assert upscale.output_name("babyx2.png", 4) == "babyx2.png" and upscale.output_name("x4.png", 4) == "x4.png"
    lr = tmp_path / "LR_bicubic" / "X4"
    lr.mkdir(parents=True)
    for name in ("babyx4.png", "bird.png"):
        Image.fromarray(rand_image((6, 5, 3))).save(lr / name)
    assert upscale.main(["--checkpoint", "bicubic", "--scale", "4", "--input", str(lr), "--out", str(tmp_path / "sr")]) == 0
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == ["baby.png", "bird.png"]
    assert upscale.main(["--checkpoint", "bicubic", "--scale", "4", "--input", str(lr / "babyx4.png"),
                         "--out", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "baby.png").is_file()
    Image.fromarray(rand_image((6, 5, 3))).save(lr / "baby.png")
    capsys.readouterr()
    assert cli(["upscale", "--checkpoint", "bicubic", "--scale", "4", "--input", str(lr), "--out", str(tmp_path / "x")]) == 2
    assert re.search(r"babyx4\.png would both be written as .*baby\.png", capsys.readouterr().err)


def test_set5_deliverable_bicubic_matches_published(shared_benchmarks, tmp_path):
    """The real Set5 through the same path the notebook takes: bicubic lands on 28.42 / 0.8104."""
    from course_sr.results.evaluate import image_pairs

    images = image_pairs("Set5", shared_benchmarks, scale=4)
    res = super_resolve_set({"bicubic": "bicubic"}, images, tmp_path / "Set5", sheets=False, progress=False)
    assert sorted(p.stem for p in (tmp_path / "Set5" / "bicubic").iterdir()) == \
        ["baby", "bird", "butterfly", "head", "woman"]
    p, s = res["mean"]["bicubic"]
    assert p == pytest.approx(28.42, abs=0.015) and s == pytest.approx(0.8104, abs=0.001)
