"""course_sr.imresize: MATLAB-exact against MATLAB's own files, and the same through every path.

Acceptance (needs ../shared, skips without it): every LR file of Set5/Set14 rebuilt with zero
differing pixels, and MATLAB's double-precision outputs matched within 1e-10. The rest runs
anywhere on tiny arrays: the fast BLAS path against a plain first-to-last reference, torch against
numpy, batches, borders, sizes, pass order and bad input.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from course_sr.imresize import _plan, _resize_torch_taps, imresize

RNG = np.random.default_rng(0)


def _load(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _crop(hr: np.ndarray, scale: int) -> np.ndarray:
    return hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]


def _reference(image: np.ndarray, out_hw, scales, method="bicubic", antialiasing=True, border="symmetric"):
    """The definition, written plainly: per output pixel, taps added first to last in float64;
    uint8 rounded half away from zero and clipped after each pass; smaller scale first."""
    x = image.astype(np.float64)
    for d in sorted(range(2), key=lambda d: scales[d]):
        plan = _plan(x.shape[d], out_hw[d], scales[d], method, antialiasing, border)
        moved = np.moveaxis(x, d, 0)
        acc = np.zeros((plan.weights.shape[0],) + moved.shape[1:])
        for k in range(plan.weights.shape[1]):
            w = plan.weights[:, k].reshape((-1,) + (1,) * (moved.ndim - 1))
            acc = acc + w * moved[plan.indices[:, k]]
        if image.dtype == np.uint8:
            acc = np.floor(np.clip(acc, 0, 255) + 0.5)
        x = np.moveaxis(acc, 0, d)
    return x.astype(image.dtype)


def _to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a.transpose(2, 0, 1) if a.ndim == 3 else a, order="C"))


def _from_chw(t: torch.Tensor) -> np.ndarray:
    a = t.cpu().numpy()
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


# ---------------------------------------------------------------------------------------
# Acceptance against MATLAB's files
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("set_name", ["Set5", "Set14"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_lr_file_is_reproduced_exactly(shared_benchmarks, set_name, scale):
    lr_files = sorted((shared_benchmarks / set_name / "LR_bicubic" / f"X{scale}").glob("*.png"))
    assert len(lr_files) == {"Set5": 5, "Set14": 14}[set_name]
    for lr_path in lr_files:
        hr = _crop(_load(shared_benchmarks / set_name / "HR" / lr_path.name.replace(f"x{scale}.png", ".png")), scale)
        lr = _load(lr_path)
        ours = imresize(hr, scalar_scale=1 / scale)
        assert ours.shape == lr.shape and ours.dtype == np.uint8, lr_path.name
        assert np.count_nonzero(ours != lr) == 0, f"{lr_path.name}: {np.count_nonzero(ours != lr)} pixels differ"


def test_lr_files_through_torch_paths(shared_benchmarks):
    """The tensor routes (numpy-backed on the CPU, tap loop elsewhere) give the same files."""
    for name in ["bridge", "ppt3", "comic"]:  # grayscale; flat areas with sharp edges; odd size
        hr = _crop(_load(shared_benchmarks / "Set14" / "HR" / f"{name}.png"), 4)
        lr = _load(shared_benchmarks / "Set14" / "LR_bicubic" / "X4" / f"{name}x4.png")
        assert np.array_equal(_from_chw(imresize(_to_chw(hr), 1 / 4)), lr), name
        taps = _resize_torch_taps(_to_chw(hr), lr.shape[:2], (0.25, 0.25), "bicubic", True, "symmetric")
        assert np.array_equal(_from_chw(taps), lr), name


def test_set5_x8_is_double_resize_rounded_once(shared_benchmarks):
    """X8 was made from a double image: imresize(double(hr), 1/8), then one round to uint8."""
    for lr_path in sorted((shared_benchmarks / "Set5" / "LR_bicubic" / "X8").glob("*.png")):
        hr = _crop(_load(shared_benchmarks / "Set5" / "HR" / lr_path.name.replace("x8.png", ".png")), 8)
        lr = _load(lr_path)
        double = imresize(hr.astype(np.float64), scalar_scale=1 / 8)
        ours = np.floor(np.clip(double, 0, 255) + 0.5).astype(np.uint8)
        assert np.count_nonzero(ours != lr) == 0, lr_path.name


def _matlab_inputs(refs) -> dict[str, np.ndarray]:
    topleft = np.zeros((4, 4))
    topleft[0, 0], topleft[1, 0], topleft[0, 1], topleft[0, 3] = 100, 10, 1, 100
    bottomright = np.zeros((4, 4))
    bottomright[3, 3], bottomright[2, 3], bottomright[3, 2], bottomright[3, 0] = 100, 10, 1, 100
    return {
        "small": np.arange(16.0).reshape(4, 4),
        "square": np.arange(64.0).reshape(8, 8),
        "15x15": np.arange(225.0).reshape(15, 15),
        "topleft": topleft,
        "bottomright": bottomright,
        "butterfly": _load(refs / "example" / "butterfly.png").astype(np.float64) / 255,
    }


MATLAB_CASES = {  # file: (input, antialiasing), from matlab_refs/bicubic_pytorch/CASES.md
    "down_down_small_noaa": ("small", False),
    "down_down_small_aa": ("small", True),
    "down_down_noaa": ("square", False),
    "down_down_aa": ("square", True),
    "down_down_irregular_noaa": ("square", False),
    "down_down_irregular_aa": ("square", True),
    "up_up_topleft_noaa": ("topleft", False),
    "up_up_bottomright_noaa": ("bottomright", False),
    "up_up_irregular_noaa": ("square", False),
    "up_up_irregular_aa": ("square", True),
    "down_down_butterfly_irregular_noaa": ("butterfly", False),
    "down_down_butterfly_irregular_aa": ("butterfly", True),
    "down_down_x2_aa": ("square", True),
    "down_down_x4_aa": ("square", True),
    "down_down_x3_aa": ("15x15", True),
    "down_down_x5_aa": ("15x15", True),
}


@pytest.mark.parametrize("case", sorted(MATLAB_CASES))
def test_matlab_double_outputs(shared_benchmarks, case):
    scipy_io = pytest.importorskip("scipy.io")
    refs = shared_benchmarks / "matlab_refs" / "bicubic_pytorch"
    expected = scipy_io.loadmat(refs / f"{case}.mat")[case]
    source, antialiasing = MATLAB_CASES[case]
    image = _matlab_inputs(refs)[source]
    ours = imresize(image, output_shape=expected.shape[:2], antialiasing=antialiasing)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)
    tensor = _from_chw(imresize(_to_chw(image), output_shape=expected.shape[:2], antialiasing=antialiasing))
    np.testing.assert_allclose(tensor, expected, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------
# The fast path against the plain definition
# ---------------------------------------------------------------------------------------
RESIZES = [  # (input HxW, scalar_scale or None, output_shape or None)
    ((37, 29), 1 / 4, None),
    ((36, 30), 1 / 3, None),
    ((20, 21), 4, None),
    ((15, 11), 3, None),
    ((40, 31), None, (13, 50)),  # shrink height, enlarge width
    ((23, 40), None, (23, 17)),  # height unchanged
    ((50, 44), None, (7, 9)),
]


@pytest.mark.parametrize("in_hw, scale, shape", RESIZES)
@pytest.mark.parametrize("method", ["bicubic", "bilinear"])
@pytest.mark.parametrize("border", ["symmetric", "replicate"])
def test_fast_path_equals_plain_definition(in_hw, scale, shape, method, border):
    image = RNG.integers(0, 256, in_hw + (3,), dtype=np.uint8)
    out_hw = shape or tuple(math.ceil(n * scale) for n in in_hw)
    scales = (scale, scale) if scale else tuple(o / n for o, n in zip(out_hw, in_hw))
    for antialiasing in (True, False):
        ours = imresize(image, scale, shape, method=method, antialiasing=antialiasing, border=border)
        assert np.array_equal(ours, _reference(image, out_hw, scales, method, antialiasing, border))
        as_float = imresize(image.astype(np.float64), scale, shape, method, antialiasing, border)
        np.testing.assert_allclose(
            as_float, _reference(image.astype(np.float64), out_hw, scales, method, antialiasing, border), atol=1e-10
        )


def test_rounding_ties_follow_matlab_order():
    """A ramp shrunk by 1/6 lands exactly on x.5 in exact arithmetic; a BLAS sum rounds some of those
    the other way. The fast path must agree with first-to-last addition everywhere."""
    image = np.repeat((np.arange(120) * 3 % 256).astype(np.uint8)[:, None], 5, axis=1)
    plan = _plan(120, 20, 1 / 6, "bicubic", True, "symmetric")
    assert not plan.order_free
    dense = np.zeros((20, 120))
    for k in range(plan.weights.shape[1]):
        np.add.at(dense, (np.arange(20), plan.indices[:, k]), plan.weights[:, k])
    blas = np.floor(np.clip(dense @ image.astype(np.float64), 0, 255) + 0.5)
    expected = _reference(image, (20, 5), (1 / 6, 1.0))
    assert np.count_nonzero(blas != expected) > 0  # the trap is real
    assert np.array_equal(imresize(image, output_shape=(20, 5)), expected)


def test_order_free_only_for_binary_fraction_weights():
    assert _plan(64, 16, 0.25, "bicubic", True, "symmetric").order_free
    assert _plan(16, 64, 4.0, "bicubic", True, "symmetric").order_free
    assert not _plan(63, 21, 1 / 3, "bicubic", True, "symmetric").order_free


@pytest.mark.parametrize("border, pad_mode", [("symmetric", "symmetric"), ("replicate", "edge")])
def test_border_rule_is_padding(border, pad_mode):
    """Enlarging by 2 a padded image and cropping equals enlarging with the border rule: mirror
    with the edge pixel repeated (MATLAB today), or the edge pixel repeated (older MATLAB)."""
    image = RNG.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    padded = np.pad(image, ((3, 3), (3, 3), (0, 0)), mode=pad_mode)
    expected = imresize(padded, 2, border=border)[6:-6, 6:-6]
    assert np.array_equal(imresize(image, 2, border=border), expected)
    assert not np.array_equal(imresize(image, 2, border="symmetric"), imresize(image, 2, border="replicate"))


# ---------------------------------------------------------------------------------------
# Sizes, order, kinds and dtypes
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "in_hw, kwargs, out_hw",
    [
        ((7, 9), dict(scalar_scale=0.5), (4, 5)),
        ((7, 9), dict(scalar_scale=3), (21, 27)),
        ((255, 255), dict(scalar_scale=1 / 3), (85, 85)),
        ((8, 8), dict(output_shape=(5, 13)), (5, 13)),
    ],
)
def test_output_size_is_matlab_ceil(in_hw, kwargs, out_hw):
    assert imresize(np.zeros(in_hw, np.uint8), **kwargs).shape == out_hw


def test_smaller_scale_is_resized_first():
    image = RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    ours = imresize(image, output_shape=(15, 7))  # width scale 0.35 < height scale 0.75
    width_first = _reference(image, (15, 7), (15 / 20, 7 / 20))
    w_plan, h_plan = _plan(20, 7, 0.35, "bicubic", True, "symmetric"), _plan(20, 15, 0.75, "bicubic", True, "symmetric")
    height_first = image.astype(np.float64)
    for plan, axis in ((h_plan, 0), (w_plan, 1)):
        moved = np.moveaxis(height_first, axis, 0)
        summed = sum(plan.weights[:, k].reshape(-1, 1, 1) * moved[plan.indices[:, k]] for k in range(plan.weights.shape[1]))
        height_first = np.moveaxis(np.floor(np.clip(summed, 0, 255) + 0.5), 0, axis)
    assert not np.array_equal(width_first, height_first)  # the order is visible
    assert np.array_equal(ours, width_first)


def test_scale_one_returns_an_equal_copy():
    image = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    out = imresize(image, 1)
    assert np.array_equal(out, image) and out is not image


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 1), (17, 23, 3), (17, 23, 4)])
def test_numpy_keeps_dtype_and_channels(dtype, shape):
    image = (RNG.random(shape) * 255).astype(dtype)
    before = image.copy()
    out = imresize(image, 1 / 2)
    assert out.dtype == dtype and out.shape == (9, 12) + shape[2:]
    assert np.array_equal(image, before)  # the input is never written


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
@pytest.mark.parametrize("shape", [(17, 23), (3, 17, 23), (1, 17, 23)])
def test_torch_equals_numpy(dtype, shape):
    array = RNG.integers(0, 256, shape[-2:] + shape[:-2][::-1], dtype=np.uint8)  # HxW or HxWxC
    array = array if dtype == torch.uint8 else array.astype(np.float64) / 255
    tensor = _to_chw(array)
    for kwargs in (dict(scalar_scale=1 / 3), dict(scalar_scale=2), dict(output_shape=(5, 31))):
        expected = imresize(array, **kwargs)
        out_hw = expected.shape[:2]
        scales = tuple(kwargs.get("scalar_scale") or o / n for o, n in zip(out_hw, array.shape[:2]))
        for out in (imresize(tensor, **kwargs), _resize_torch_taps(tensor, out_hw, scales, "bicubic", True, "symmetric")):
            assert out.dtype == dtype and tuple(out.shape) == shape[:-2] + out_hw
            if dtype == torch.uint8:
                assert np.array_equal(_from_chw(out), expected)
            else:
                np.testing.assert_allclose(_from_chw(out), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_batch_equals_one_image_at_a_time(dtype):
    batch = torch.from_numpy(RNG.integers(0, 256, (4, 3, 21, 18), dtype=np.uint8)).to(dtype)
    for kwargs in (dict(scalar_scale=1 / 4), dict(output_shape=(30, 11))):
        out = imresize(batch, **kwargs)
        assert out.dtype == dtype and out.shape[:2] == (4, 3)
        for i in range(4):
            assert torch.equal(out[i], imresize(batch[i].clone(), **kwargs))
        taps = _resize_torch_taps(batch, tuple(out.shape[-2:]), tuple(o / n for o, n in zip(out.shape[-2:], (21, 18))), "bicubic", True, "symmetric")
        if dtype == torch.uint8 and "output_shape" in kwargs:
            assert torch.equal(taps, out)


def test_non_contiguous_inputs():
    image = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = imresize(np.ascontiguousarray(image[::-1, 1::2]), 1 / 2)
    assert np.array_equal(imresize(image[::-1, 1::2], 1 / 2), expected)
    tensor = _to_chw(image).flip(1)[:, :, 1::2]
    assert np.array_equal(_from_chw(imresize(tensor, 1 / 2)), expected)


def test_float_tensor_gradients_flow():
    image = torch.rand(2, 3, 12, 16, dtype=torch.float64, requires_grad=True)
    out = imresize(image, 1 / 2)
    assert torch.allclose(out, imresize(image.detach(), 1 / 2), atol=1e-10, rtol=0)
    out.sum().backward()
    assert image.grad is not None and image.grad.shape == image.shape and image.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_matches_cpu():
    batch = torch.from_numpy(RNG.integers(0, 256, (16, 3, 64, 48), dtype=np.uint8))
    for scale in (1 / 4, 4, 1 / 3):
        on_gpu = imresize(batch.cuda(), scale)
        assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.uint8
        assert torch.equal(on_gpu.cpu(), imresize(batch, scale))
    as_float = batch.double().cuda() / 255
    assert torch.allclose(imresize(as_float, 1 / 3).cpu(), imresize(batch.double() / 255, 1 / 3), atol=1e-10, rtol=0)


def test_weights_are_cached():
    _plan.cache_clear()
    image = np.zeros((33, 35), np.uint8)
    imresize(image, 1 / 4)
    misses = _plan.cache_info().misses
    imresize(image, 1 / 4)
    imresize(torch.zeros(2, 3, 33, 35, dtype=torch.uint8), 1 / 4)
    assert _plan.cache_info().misses == misses and _plan.cache_info().hits >= 4


# ---------------------------------------------------------------------------------------
# Bad input: a ValueError that names the value
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (np.zeros(5, np.uint8), dict(scalar_scale=2), r"HxW or HxWxC, got shape \(5,\)"),
        (np.zeros((1, 4, 4, 3), np.uint8), dict(scalar_scale=2), r"got shape \(1, 4, 4, 3\)"),
        (torch.zeros(5), dict(scalar_scale=2), r"CxHxW or NxCxHxW .*got shape \(5,\)"),
        (torch.zeros(1, 1, 1, 4, 4), dict(scalar_scale=2), r"got shape \(1, 1, 1, 4, 4\)"),
        (np.zeros((4, 4), np.int16), dict(scalar_scale=2), "int16"),
        (np.zeros((0, 4), np.uint8), dict(scalar_scale=2), r"empty, shape \(0, 4\)"),
        ([[1, 2], [3, 4]], dict(scalar_scale=2), "got list"),
        (np.zeros((4, 4)), dict(scalar_scale=0), "scalar_scale .* got 0"),
        (np.zeros((4, 4)), dict(scalar_scale=-0.5), "got -0.5"),
        (np.zeros((4, 4)), dict(scalar_scale=float("nan")), "got nan"),
        (np.zeros((4, 4)), dict(scalar_scale="2"), "got '2'"),
        (np.zeros((4, 4)), dict(), "scalar_scale=None, output_shape=None"),
        (np.zeros((4, 4)), dict(scalar_scale=2, output_shape=(8, 8)), r"scalar_scale=2, output_shape=\(8, 8\)"),
        (np.zeros((4, 4)), dict(output_shape=(8, 0)), r"got \(8, 0\)"),
        (np.zeros((4, 4)), dict(output_shape=(8, 8, 3)), r"got \(8, 8, 3\)"),
        (np.zeros((4, 4)), dict(output_shape=(8, 2.5)), r"got \(8, 2.5\)"),
        (np.zeros((4, 4)), dict(output_shape=8), "got 8"),
        (np.zeros((4, 4)), dict(scalar_scale=2, method="lanczos3"), "lanczos3"),
        (np.zeros((4, 4)), dict(scalar_scale=2, border="circular"), "circular"),
    ],
)
def test_bad_input_raises_naming_the_value(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        imresize(image, **kwargs)
