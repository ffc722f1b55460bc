"""The degradation synthesiser: determinism, geometry, each step doing what it says."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from course_sr.unpaired.degradations import Degradation, degrade, gaussian_kernel, get_degradation, sample_params


@pytest.fixture(scope="module")
def hr() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(48, 40, 3)), 0), 1)   # textured, not white noise
    return np.clip((smooth - smooth.min()) / np.ptp(smooth) * 255, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("spec", ["default", "fixed", "sensor", "sensor-fixed"])
def test_same_image_and_seed_give_the_same_lr(hr, spec):
    a = degrade(hr, spec, seed=(0, 7))
    b = degrade(hr.copy(), spec, seed=(0, 7))
    assert a.dtype == np.uint8 and a.shape == (12, 10, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, degrade(hr, spec, seed=(0, 8)))   # the seed matters (noise)


@pytest.mark.parametrize("name, base", [("sensor", "default"), ("sensor-fixed", "fixed")])
def test_sensor_presets_are_their_base_without_jpeg(hr, name, base):
    spec = get_degradation(name)
    assert spec.jpeg is None and dataclasses.replace(spec, jpeg=get_degradation(base).jpeg) == get_degradation(base)
    p, q = sample_params(spec, 5), sample_params(get_degradation(base), 5)
    assert p["quality"] is None and {k: p[k] for k in ("sigma", "sigma2", "theta", "noise")} == \
        {k: q[k] for k in ("sigma", "sigma2", "theta", "noise")}      # same camera draws, minus the JPEG


def test_params_depend_on_seed_only_and_stay_in_range():
    spec = get_degradation("default")
    p = sample_params(spec, 3)
    assert p == sample_params(spec, 3)
    for _ in range(20):
        p = sample_params(spec, _)
        assert spec.sigma[0] <= p["sigma"] <= spec.sigma[1]
        assert spec.noise[0] <= p["noise"] <= spec.noise[1]
        assert spec.jpeg[0] <= p["quality"] <= spec.jpeg[1]
    fixed = sample_params(get_degradation("fixed"), 1)
    assert (fixed["sigma"], fixed["sigma2"], fixed["noise"], fixed["quality"]) == (2.0, 1.6, 15.0, 80)
    assert fixed["theta"] == pytest.approx(math.pi / 4)


def test_hr_is_cropped_to_a_multiple_of_scale(hr):
    lr = degrade(hr[:47, :43], "fixed", seed=0)
    assert lr.shape == (11, 10, 3)
    assert np.array_equal(lr, degrade(hr[:44, :40], "fixed", seed=0))


def test_blur_and_stride_keep_a_constant_image_and_centre_each_block():
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert np.all(degrade(flat, dict(sigma=2.0), seed=0) == 77)
    # A bright dot at HR pixel (4i+1.5, 4j+1.5) (between four pixels) lands in LR pixel (i, j)
    # with symmetric neighbours: the kernel sits on the LR pixel's centre, as MATLAB's bicubic.
    dot = np.zeros((32, 32, 3), np.uint8)
    dot[13:15, 13:15] = 255                                   # centre 13.5 = 4*3 + 1.5
    lr = degrade(dot, dict(sigma=1.5), seed=0)[..., 0].astype(int)
    assert np.unravel_index(lr.argmax(), lr.shape) == (3, 3)
    assert lr[2, 3] == lr[4, 3] == lr[3, 2] == lr[3, 4]


def test_kernel_is_normalised_rotated_and_anisotropic():
    k = gaussian_kernel(20, 3.0, 1.0, 0.0)
    assert k.shape == (20, 20) and k.sum() == pytest.approx(1.0)
    assert k[10, :].std() > k[:, 10].std()                    # wide along x at theta=0
    np.testing.assert_allclose(gaussian_kernel(20, 3.0, 1.0, math.pi / 2), k.T, atol=1e-12)


def test_noise_and_jpeg_only_when_asked(hr):
    base = dict(sigma=2.0)
    clean = degrade(hr, base, seed=0)
    assert np.array_equal(clean, degrade(hr, base, seed=99))     # no random step: seed irrelevant
    noisy = degrade(hr, dict(base, noise=10.0), seed=0).astype(float)
    assert 6 < np.std(noisy - clean) < 14
    jpeg = degrade(hr, dict(base, jpeg=10), seed=0)
    assert not np.array_equal(jpeg, clean) and np.abs(jpeg.astype(float) - clean).mean() < 20


def test_spec_resolution_and_bad_specs():
    assert get_degradation(None) is None
    assert get_degradation("fixed", scale=2).scale == 2
    spec = get_degradation({"preset": "fixed", "noise": [1, 3], "jpeg": None})
    assert spec.noise == (1.0, 3.0) and spec.jpeg is None and spec.sigma == (2.0, 2.0)
    with pytest.raises(KeyError, match="unknown degradation preset 'nope'"):
        get_degradation("nope")
    with pytest.raises(KeyError, match="blurr"):
        get_degradation({"blurr": 2})
    with pytest.raises(ValueError, match="sigma > 0"):
        Degradation(sigma=0.0)
    with pytest.raises(ValueError, match="kernel_size=21"):
        Degradation(sigma=1.0, kernel_size=21)
    with pytest.raises(ValueError, match="lo <= hi"):
        Degradation(sigma=(3.0, 1.0))
    with pytest.raises(ValueError, match="too small"):
        degrade(np.zeros((6, 6, 3), np.uint8), "fixed")
    with pytest.raises(TypeError, match="uint8"):
        degrade(np.zeros((16, 16, 3)), "fixed")
