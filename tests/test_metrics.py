"""PSNR/SSIM convention: Y of MATLAB rgb2ycbcr, shaved border, Wang et al. SSIM, published numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from course_sr import metrics
from course_sr.utils import load_image

# Published bicubic x4 baselines (PSNR dB / SSIM, Y channel, 4 px shaved) and this kit's values.
PUBLISHED = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)}
PINNED = {"Set5": (28.4290, 0.8111), "Set14": (25.9940, 0.7029)}


def _rand(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("rgb, y", [((0, 0, 0), 16.0), ((255, 255, 255), 235.0),
                                    ((255, 0, 0), 16 + 65.481), ((0, 255, 0), 16 + 128.553),
                                    ((0, 0, 255), 16 + 24.966), ((10, 20, 30), 16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255)])
def test_rgb_to_y_is_matlab_rgb2ycbcr_unrounded(rgb, y):
    img = np.full((2, 3, 3), rgb, dtype=np.uint8)
    out = metrics.rgb_to_y(img)
    assert out.shape == (2, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-12)


def test_gray_image_is_luma_already():
    g = _rand((5, 6))
    np.testing.assert_array_equal(metrics.rgb_to_y(g), g.astype(np.float64))


def test_psnr_known_value_and_identical_images():
    hr = np.zeros((20, 20), np.uint8)
    assert metrics.psnr(hr + 1, hr, scale=0) == pytest.approx(10 * math.log10(255**2), abs=1e-12)
    assert metrics.psnr(hr, hr, scale=2) == math.inf
    assert metrics.ssim(hr, hr, scale=2) == pytest.approx(1.0, abs=1e-12)


def test_border_is_shaved():
    hr = _rand((30, 30, 3))
    sr = hr.copy()
    sr[:3], sr[-3:], sr[:, :3], sr[:, -3:] = 0, 255, 7, 9      # damage only a 3 px border
    assert metrics.psnr(sr, hr, scale=3) == math.inf
    assert metrics.psnr(sr, hr, scale=2) < 40


def test_ssim_matches_wang_et_al_gaussian_valid_window():
    # skimage with the Gaussian window of Wang et al. (sigma 1.5 -> 11 x 11), population
    # covariance and L = 255 crops the same border as MATLAB's 'valid' filtering.
    a, b = _rand((40, 37), 1).astype(np.float64), _rand((40, 37), 2).astype(np.float64)
    b = 0.7 * a + 0.3 * b                                       # correlated, SSIM well inside (0, 1)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255)
    assert metrics.ssim(b, a, scale=0, input_range="[0, 255]") == pytest.approx(ref, abs=1e-12)


def test_input_kinds_agree():
    hr, sr = _rand((24, 20, 3), 3), _rand((24, 20, 3), 4)
    ref = metrics.psnr_ssim(sr, hr, 4)
    t_sr = torch.from_numpy(sr).permute(2, 0, 1)
    t_hr = torch.from_numpy(hr).permute(2, 0, 1)
    variants = [
        (Image.fromarray(sr), Image.fromarray(hr), None),
        (t_sr, t_hr, None),                                      # uint8 tensors are [0, 255]
        (t_sr[None].float() / 255, t_hr[None].float() / 255, "[0, 1]"),
        (t_sr.double() / 127.5 - 1, t_hr.double() / 127.5 - 1, "[-1, 1]"),
        (sr / 255.0, hr / 255.0, "[0, 1]"),
    ]
    for a, b, rng in variants:
        assert metrics.psnr_ssim(a, b, 4, input_range=rng) == pytest.approx(ref, abs=1e-6)


def test_gray_hr_against_rgb_sr_uses_full_range_luma():
    g_sr, g_hr = _rand((30, 30), 5), _rand((30, 30), 6)
    rgb_sr = np.repeat(g_sr[:, :, None], 3, axis=2)
    assert metrics.psnr_ssim(rgb_sr, g_hr, 4) == pytest.approx(metrics.psnr_ssim(g_sr, g_hr, 4), abs=1e-9)
    # ... whereas the same gray pixels stored as RGB go through rgb2ycbcr (range 16..235):
    rgb_hr = np.repeat(g_hr[:, :, None], 3, axis=2)
    gap = metrics.psnr(rgb_sr, rgb_hr, 4) - metrics.psnr(g_sr, g_hr, 4)
    assert gap == pytest.approx(-20 * math.log10(219 / 255), abs=1e-9)


def test_rgb_variant():
    hr, sr = _rand((30, 30, 3), 7), _rand((30, 30, 3), 8)
    mse = np.mean((sr[4:-4, 4:-4].astype(float) - hr[4:-4, 4:-4]) ** 2)
    assert metrics.psnr(sr, hr, 4, y_channel=False) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    per_channel = [metrics.ssim(sr[:, :, c], hr[:, :, c], 4) for c in range(3)]
    assert metrics.ssim(sr, hr, 4, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-12)


@pytest.mark.parametrize("sr, hr, kwargs, match", [
    (np.zeros((20, 20, 3), np.uint8), np.zeros((20, 24, 3), np.uint8), {}, "sizes differ"),
    (np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), {}, "range declared"),
    (torch.zeros(3, 20, 20), torch.zeros(3, 20, 20), {}, "range declared"),
    (torch.zeros(2, 3, 20, 20), torch.zeros(2, 3, 20, 20), {"input_range": "[0, 1]"}, "batch"),
    (np.zeros((20, 20, 4), np.uint8), np.zeros((20, 20, 4), np.uint8), {}, r"\(H, W, 3\)"),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), {}, "cannot shave"),
    (np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20), np.uint8), {"y_channel": False}, "gray"),
])
def test_bad_input(sr, hr, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        metrics.psnr(sr, hr, 4, **kwargs)


def test_ssim_needs_a_full_window():
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), 4)


def bicubic_x4_scores(set_dir):
    """Mean (PSNR, SSIM) of MATLAB-bicubic x4 of each MATLAB LR file, HR cropped top-left."""
    from course_sr.imresize import imresize

    scores = []
    for hr_path in sorted((set_dir / "HR").glob("*.png")):
        hr = load_image(hr_path, keep_gray=True)
        lr = load_image(set_dir / "LR_bicubic" / "X4" / f"{hr_path.stem}x4.png", keep_gray=True)
        sr = imresize(lr, 4)                                     # uint8 in, uint8 out (rounded)
        assert sr.dtype == np.uint8 and sr.shape[:2] == (4 * lr.shape[0], 4 * lr.shape[1])
        scores.append(metrics.psnr_ssim(sr, hr[: sr.shape[0], : sr.shape[1]], 4))
    return np.mean(scores, axis=0)


@pytest.mark.parametrize("set_name", ["Set5", "Set14"])
def test_bicubic_x4_reproduces_published_baseline(shared_benchmarks, set_name):
    p, s = bicubic_x4_scores(shared_benchmarks / set_name)
    assert abs(p - PUBLISHED[set_name][0]) <= 0.015
    assert abs(s - PUBLISHED[set_name][1]) <= 0.001
    assert (round(p, 4), round(s, 4)) == PINNED[set_name]


def test_mean_y_shift_sees_a_brightness_cast_not_texture():
    from course_sr.metrics import mean_y_shift

    rng = np.random.default_rng(0)
    hr = rng.integers(20, 200, (32, 32, 3)).astype(np.uint8)
    brighter = hr + np.uint8(10)                              # +10 in R, G and B
    assert mean_y_shift(brighter, hr, 4) == pytest.approx(10 * 219 / 255)    # Y weights sum to 219/255
    shuffled = hr.reshape(-1, 3)[rng.permutation(32 * 32)].reshape(32, 32, 3)
    assert abs(mean_y_shift(shuffled, hr, 0)) < 1e-9          # other texture, same colours: no shift


def test_size_errors_name_the_image():
    """evaluate passes the HR file: "cannot shave ... (8, 8)" then says which image of a set it is."""
    from course_sr.plumbing.errors import UserError

    small = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UserError, match=r"^data/Set5/HR/tiny\.png: cannot shave 4 px .*\(8, 8\)"):
        metrics.psnr_ssim(small, small, 4, name="data/Set5/HR/tiny.png")
    with pytest.raises(ValueError, match=r"^hr\.png: SSIM needs at least 11x11"):
        metrics.ssim(np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), 4, name="hr.png")
    with pytest.raises(ValueError, match=r"^hr\.png: SR and HR sizes differ"):
        metrics.mean_y_shift(np.zeros((20, 20), np.uint8), np.zeros((20, 24), np.uint8), 4, name="hr.png")
