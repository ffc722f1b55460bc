"""The unpaired dataset and degraded test sets: shapes, determinism, disjoint domains, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_sr.config import get_config
from course_sr.data.lists import write_data_list
from course_sr.unpaired.degradations import degrade
from course_sr.unpaired.data import UnpairedDataset, degraded_pairs, image_seed


def _image(rng, h, w) -> np.ndarray:
    smooth = np.cumsum(np.cumsum(rng.normal(size=(h, w, 3)), 0), 1)
    return ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """4 HR images (64x64 .. 80x72) with x4 LR files, an LR-only real list, bad lists."""
    root = tmp_path_factory.mktemp("unpaired")
    rng = np.random.default_rng(0)
    rows, real_rows = [], []
    for i, (h, w) in enumerate([(64, 64), (72, 64), (64, 80), (80, 72)]):
        hr = _image(rng, h, w)
        Image.fromarray(hr).save(root / f"hr{i}.png")
        Image.fromarray(hr).resize((w // 4, h // 4), Image.BICUBIC).save(root / f"lr{i}.png")
        rows.append((f"hr{i}.png", f"lr{i}.png"))
        Image.fromarray(_image(rng, 20, 24)).save(root / f"real{i}.png")
        real_rows.append(("", f"real{i}.png"))
    Image.fromarray(_image(rng, 6, 30)).save(root / "tiny.png")
    big = _image(rng, 96, 96)
    Image.fromarray(big).save(root / "big.png")
    Image.fromarray(big).resize((24, 24), Image.BICUBIC).save(root / "big_lr.png")
    write_data_list(root / "lists" / "big_images.csv", [("big.png", "big_lr.png")])
    write_data_list(root / "lists" / "tr_images.csv", rows)
    write_data_list(root / "lists" / "one_images.csv", rows[:1])
    write_data_list(root / "lists" / "real_images.csv", real_rows)
    write_data_list(root / "lists" / "small_images.csv", real_rows[:1] + [("", "tiny.png")])
    (root / "lists" / "empty_images.csv").write_text("")
    return root


def cfg(root, **kw):
    base = dict(data_root=str(root), csv_folder=str(root / "lists"), train_split="tr", real_lr_split="real",
                crop_size=32, patch_num=3, seed=5, cache="memory")
    return get_config(**{**base, **kw})


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_items_are_aligned_triples_in_unit_range(root, cache):
    ds = UnpairedDataset(cfg(root, cache=cache))
    assert len(ds) == 4 * 3 and ds.n_clean == 4
    hr, clean, real = ds[7]
    assert hr.shape == (3, 32, 32) and clean.shape == real.shape == (3, 8, 8)
    assert all(t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1 for t in (hr, clean, real))
    # the clean LR is the bicubic patch of this HR patch (PIL bicubic here): close, not equal
    down = torch.nn.functional.avg_pool2d(hr[None], 4)[0]
    assert (down - clean).abs().mean() < 0.05


def test_item_depends_only_on_seed_and_index(root):
    a, b = UnpairedDataset(cfg(root)), UnpairedDataset(cfg(root, cache="none"))
    for k in (0, 5, 11, 12, 1000):                    # k may exceed len (later epochs)
        assert all(torch.equal(x, y) for x, y in zip(a[k], b[k]))
    assert not torch.equal(a[1][0], a[13][0])           # same slot next epoch: a fresh crop
    other = UnpairedDataset(cfg(root, seed=6))
    assert not all(torch.equal(x, y) for x, y in zip(a[3], other[3]))


def test_real_patches_come_from_the_real_list(root):
    ds = UnpairedDataset(cfg(root))
    assert [Path(p).name for p in ds.real.paths] == [f"real{i}.png" for i in range(4)]
    used = {ds.real_params(k)[0] for k in range(50)}
    assert used == {0, 1, 2, 3}


def test_synthetic_real_domain_is_the_other_half(root):
    ds = UnpairedDataset(cfg(root, degradation="fixed", real_lr_split="tr"))
    assert ds.n_clean == 2 and len(ds) == 6
    assert [Path(p).name for p in ds.real.paths] == ["hr2.png", "hr3.png"]   # never hr0/hr1
    from course_sr.utils import load_image

    expected = degrade(load_image(root / "hr3.png"), "fixed", seed=image_seed("hr3.png"))
    assert np.array_equal(ds.real[1], expected)
    for k in range(len(ds)):                                   # clean crops only from hr0/hr1
        assert ds.paired.crop_params(ds.clean_index(k))[0] in (0, 1)


def test_synthetic_real_domain_from_another_list(root):
    ds = UnpairedDataset(cfg(root, degradation="default", train_split="one", real_lr_split="tr"))
    assert ds.n_clean == 1 and len(ds.real) == 4


def test_empty_real_domain_is_a_clear_error(root):
    with pytest.raises(ValueError, match=r"real-LR domain is empty: .*empty_images\.csv"):
        UnpairedDataset(cfg(root, real_lr_split="empty"))
    with pytest.raises(ValueError, match="real-LR domain is empty: split 'one'"):
        UnpairedDataset(cfg(root, train_split="one", real_lr_split="one", degradation="fixed"))
    with pytest.raises(FileNotFoundError, match="nope_images.csv"):
        UnpairedDataset(cfg(root, real_lr_split="nope"))


def test_real_lr_smaller_than_the_patch_is_a_clear_error(root):
    with pytest.raises(ValueError, match=r"real-LR split 'small'.*tiny\.png is 30x6, smaller than the 8x8"):
        UnpairedDataset(cfg(root, real_lr_split="small"))
    with pytest.raises(ValueError, match=r"real-LR split 'tr': degraded LR of .*hr0\.png is 16x16, smaller"):
        UnpairedDataset(cfg(root, real_lr_split="tr", train_split="big", degradation="fixed", crop_size=72))



def test_a_config_without_data_paths_is_the_datasets_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_SR_SAMPLE_DIR", str(tmp_path / "sample"))
    unresolved = get_config("cyclesr-quick", data_root=None)
    assert unresolved.data_root is None and unresolved.HR_data_folder is None
    with pytest.raises(ValueError, match=r"data_root and config\.HR_data_folder are both None.*"
                                         r"course_sr\.training\.data_config\(config\)"):
        UnpairedDataset(unresolved)
    assert not (tmp_path / "sample").exists()                     # a dataset builds nothing on disk

def test_lr_only_rows_cannot_be_synthesised(root):
    with pytest.raises(ValueError, match="no HR file"):
        UnpairedDataset(cfg(root, degradation="fixed"))


def test_degraded_pairs_are_fixed_and_aligned(root):
    c = cfg(root)
    a = degraded_pairs(c, "tr", "fixed")
    b = degraded_pairs(c, "tr", "fixed", limit=2, crop=48)
    assert [n for n, _, _ in a] == ["hr0", "hr1", "hr2", "hr3"] and len(b) == 2
    name, lr, hr = a[3]
    assert hr.shape == (80, 72, 3) and lr.shape == (20, 18, 3)
    assert np.array_equal(lr, degraded_pairs(c, "tr", "fixed")[3][1])
    assert b[0][2].shape == (48, 48, 3) and b[0][1].shape == (12, 12, 3)
    with pytest.raises(ValueError, match="no HR file"):
        degraded_pairs(c, "real", "fixed")
    with pytest.raises(ValueError, match="needs a degradation spec"):
        degraded_pairs(c, "tr", None)


def test_image_seed_depends_on_the_file_name_only():
    assert image_seed("benchmark/Set5/HR/baby.png") == image_seed("/elsewhere/baby.png") != image_seed("bird.png")
