"""convert_image ranges, image file reading rules and errors, AverageMeter, seeding, config lookups,
file hashes and the image extensions."""
from __future__ import annotations

import hashlib
import random
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from easydict import EasyDict

from course_sr.utils import (IMAGE_EXTENSIONS, AverageMeter, config_get, convert_image, file_sha256, list_images,
                             load_image, save_image, seed_everything)


@pytest.fixture
def rgb01():
    return torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("source, target", [("[0, 1]", "[-1, 1]"), ("[0, 1]", "[0, 255]"),
                                            ("[-1, 1]", "[0, 1]"), ("[0, 255]", "[0, 1]")])
@pytest.mark.parametrize("batched", [False, True])
def test_range_round_trips(rgb01, source, target, batched):
    x = convert_image(rgb01, "[0, 1]", source)
    x = x if batched else x[0]
    back = convert_image(convert_image(x, source, target), target, source)
    torch.testing.assert_close(back, x)


def test_range_values(rgb01):
    torch.testing.assert_close(convert_image(rgb01, "[0, 1]", "[-1, 1]"), rgb01 * 2 - 1)
    torch.testing.assert_close(convert_image(rgb01, "[-1, 1]", "[0, 255]"), (rgb01 + 1) * 127.5)
    u8 = (rgb01 * 255).round().to(torch.uint8)
    torch.testing.assert_close(convert_image(u8, "[0, 255]", "[0, 1]"), u8.float() / 255)


@pytest.mark.parametrize("batched", [False, True])
def test_imagenet_norm(rgb01, batched):
    x = rgb01 if batched else rgb01[0]
    out = convert_image(x, "[0, 1]", "imagenet-norm")
    c = 1 if batched else 0
    for i, (m, s) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        torch.testing.assert_close(out.select(c, i), (x.select(c, i) - m) / s)


def test_y_channel_is_matlab_luma_without_crop(rgb01):
    y = convert_image(rgb01, "[0, 1]", "y-channel")
    assert y.shape == (2, 5, 7)                       # no hidden border crop
    r, g, b = rgb01.unbind(1)
    torch.testing.assert_close(y, 16 + 65.481 * r + 128.553 * g + 24.966 * b)
    assert convert_image(rgb01[0], "[0, 1]", "y-channel").shape == (5, 7)
    white = torch.ones(3, 1, 1)
    assert convert_image(white, "[0, 1]", "y-channel").item() == pytest.approx(235.0)


def test_pil_round_trip_rounds(rgb01):
    arr = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = convert_image(Image.fromarray(arr), "pil", "[0, 1]")
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32
    assert np.array_equal(np.asarray(convert_image(t, "[0, 1]", "pil")), arr)
    # rounding, not truncation: 0.999/255 becomes 1
    img = convert_image(torch.full((1, 2, 2), 0.999 / 255), "[0, 1]", "pil")
    assert img.mode == "L" and np.asarray(img).max() == 1
    gray = convert_image(Image.fromarray(arr[:, :, 0]), "pil", "[-1, 1]")
    assert gray.shape == (1, 5, 7)


@pytest.mark.parametrize("img, source, target, error, match", [
    (torch.zeros(3, 4, 4), "[0, 2]", "[0, 1]", ValueError, "unknown source"),
    (torch.zeros(3, 4, 4), "[0, 1]", "lab", ValueError, "unknown target"),
    (np.zeros((4, 4, 3)), "[0, 1]", "[-1, 1]", TypeError, "needs a tensor"),
    (torch.zeros(3, 4, 4), "pil", "[0, 1]", TypeError, "PIL image"),
    (torch.zeros(4, 4), "[0, 1]", "[-1, 1]", ValueError, "shape"),
    (torch.zeros(3, 4, 4, dtype=torch.uint8), "[0, 1]", "[-1, 1]", TypeError, "float"),
    (torch.zeros(1, 4, 4), "[0, 1]", "y-channel", ValueError, "3 channels"),
    (torch.zeros(2, 3, 4, 4), "[0, 1]", "pil", ValueError, "batch"),
])
def test_convert_image_errors(img, source, target, error, match):
    with pytest.raises(error, match=match):
        convert_image(img, source, target)


# ---- image files --------------------------------------------------------------------------
def _png16_rgb(path, arr):
    """Write a 16-bit RGB PNG by hand (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_load_modes(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    gray = rgb[:, :, 0]
    alpha = np.full((4, 6, 1), 7, np.uint8)

    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(np.concatenate([rgb, alpha], 2), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.concatenate([gray[:, :, None], alpha], 2), "LA").save(tmp_path / "la.png")
    Image.fromarray(rgb).quantize(colors=256).save(tmp_path / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    g16 = np.array([[0, 128, 129, 257, 40000, 65535]], np.uint16)
    Image.fromarray(g16).save(tmp_path / "gray16.png")
    _png16_rgb(tmp_path / "rgb16.png", np.array([[[0, 40000, 65535], [256, 511, 512]]], np.uint16))

    for name in ["rgb", "gray", "rgba", "la", "palette", "gray16", "rgb16"]:
        out = load_image(tmp_path / f"{name}.png")
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, name
    assert np.array_equal(load_image(tmp_path / "rgb.png"), rgb)
    assert load_image(tmp_path / "gray.png", keep_gray=True).flags.writeable
    assert np.array_equal(load_image(tmp_path / "rgba.png"), rgb)                 # alpha dropped
    assert np.array_equal(load_image(tmp_path / "gray.png"), np.repeat(gray[:, :, None], 3, 2))
    assert np.array_equal(load_image(tmp_path / "gray.png", keep_gray=True), gray)
    assert np.array_equal(load_image(tmp_path / "la.png", keep_gray=True), gray)  # alpha dropped
    palette = Image.open(tmp_path / "palette.png").convert("RGB")
    assert np.array_equal(load_image(tmp_path / "palette.png"), np.asarray(palette))
    assert load_image(tmp_path / "gray16.png", keep_gray=True).tolist() == [[0, 0, 1, 1, 156, 255]]
    assert load_image(tmp_path / "rgb16.png").tolist() == [[[0, 156, 255], [1, 1, 2]]]   # x >> 8
    assert np.abs(load_image(tmp_path / "cmyk.jpg").astype(int) - rgb).mean() < 12   # JPEG, lossy


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        load_image(tmp_path / "notes.png")
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.png"):
        load_image(tmp_path / "truncated.png")


def test_save_round_trip_and_errors(tmp_path):
    arr = np.random.default_rng(4).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    path = save_image(tmp_path / "sub" / "x.png", arr)
    assert np.array_equal(load_image(path), arr)
    save_image(tmp_path / "g.png", arr[:, :, :1])
    assert np.array_equal(load_image(tmp_path / "g.png", keep_gray=True), arr[:, :, 0])
    with pytest.raises(TypeError, match="bad.png.*uint8"):
        save_image(tmp_path / "bad.png", arr.astype(np.float32))
    with pytest.raises(ValueError, match="bad.png.*shape"):
        save_image(tmp_path / "bad.png", arr[:, :, :2])


def test_average_meter():
    m = AverageMeter()
    m.update(2.0, n=3)
    m.update(4.0)
    assert (m.val, m.sum, m.count, m.avg) == (4.0, 10.0, 4, 2.5)
    m.reset()
    assert m.count == 0 and m.avg == 0.0


def test_seed_everything_repeats():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert seed_everything(5) == 5
    first = draw()
    seed_everything(5)
    assert draw() == first


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("source", ["[-1, 1]", "[0, 1]"])
def test_imagenet_norm_is_computed_in_float32_for_half_inputs(dtype, source):
    x = torch.rand(2, 3, 4, 4).to(dtype)
    x = x * 2 - 1 if source == "[-1, 1]" else x
    out = convert_image(x, source, "imagenet-norm")
    assert out.dtype == torch.float32
    assert torch.equal(out, convert_image(x.float(), source, "imagenet-norm"))


def test_config_get_reads_dicts_easydicts_and_objects_and_treats_none_as_unset():
    class Plain:
        crop_size = 24
        cache = None

    for config in ({"crop_size": 24, "cache": None}, EasyDict(crop_size=24, cache=None), Plain()):
        assert config_get(config, "crop_size") == 24
        assert config_get(config, "cache", "memory") == "memory"      # None: the default applies
        assert config_get(config, "absent", 7) == 7
        assert config_get(config, "absent") is None


def test_file_sha256_is_hashlib_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 20_000                                  # over one 4 MiB read block
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == file_sha256(path)


def test_webp_is_an_image_extension_load_image_reads(tmp_path):
    """One extension list for every scan; WebP is in it because Pillow decodes it."""
    assert IMAGE_EXTENSIONS[0] == ".png" and ".webp" in IMAGE_EXTENSIONS
    pixels = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.webp", lossless=True)
    assert list_images(tmp_path) == [tmp_path / "a.webp"]
    assert np.array_equal(load_image(tmp_path / "a.webp"), pixels)
