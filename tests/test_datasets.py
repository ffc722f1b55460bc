"""SRDataset, ResumableBatchSampler, make_train_loader: contracts, alignment, determinism,
caches, and bad input (each case a test)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_sr.config import get_config
from course_sr.data.lists import write_data_list
from course_sr.datasets import SRDataset, augment, to_tensor
from course_sr.data.loader import ResumableBatchSampler, make_train_loader
from course_sr.imresize import imresize
from course_sr.utils import save_image

SCALE, CROP = 4, 16          # LR patch 4 px
RNG = np.random.default_rng(1234)


def random_image(h, w):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_set(root: Path, pairs, split="train") -> Path:
    """Write ``[(name, hr, lr)]`` (arrays or PIL images) as PNGs + ``lists/<split>_images.csv``."""
    rows = []
    for name, hr, lr in pairs:
        for rel, img in ((f"HR/{name}.png", hr), (f"LR/{name}x4.png", lr)):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(root / rel)
        rows.append((f"HR/{name}.png", f"LR/{name}x4.png"))
    write_data_list(root / "lists" / f"{split}_images.csv", rows)
    return root


def config(root: Path, **overrides):
    base = dict(data_root=str(root), csv_folder=str(root / "lists"), crop_size=CROP, scaling_factor=SCALE,
                patch_num=5, seed=3, workers=0, batch_size=4, device="cpu", cache_dir=str(root / "cache"))
    base.update(overrides)
    return get_config(None, **base)


def u8(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8 (exact for tensors made from uint8)."""
    return (t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def kron_set(tmp_path_factory):
    """Two images whose HR is the LR blown up 4x4 (nearest): any aligned crop pair satisfies
    hr == kron(lr), whatever the flip/rotation; a misaligned one does not (random content)."""
    root = tmp_path_factory.mktemp("kron")
    pairs = []
    for name, (h, w) in (("a", (10, 13)), ("b", (9, 8))):
        lr = random_image(h, w)
        pairs.append((name, np.kron(lr, np.ones((SCALE, SCALE, 1), dtype=np.uint8)), lr))
    return make_set(root, pairs)


@pytest.fixture(scope="module")
def random_set(tmp_path_factory):
    """Two pairs with unrelated random HR and LR (HR = 4 x LR in size)."""
    root = tmp_path_factory.mktemp("random")
    return make_set(root, [("x", random_image(48, 56), random_image(12, 14)),
                           ("y", random_image(40, 40), random_image(10, 10))])


# ---- training items -----------------------------------------------------------------------
@pytest.mark.parametrize("cache", ["memory", "disk", "none"])
def test_train_item_contract(random_set, cache):
    ds = SRDataset("train", config(random_set, cache=cache))
    assert len(ds) == 2 * 5 and ds.train and ds.cache == cache
    lr, hr = ds[7]
    assert lr.shape == (3, CROP // SCALE, CROP // SCALE) and hr.shape == (3, CROP, CROP)
    assert lr.dtype == hr.dtype == torch.float32 and lr.is_contiguous() and hr.is_contiguous()
    assert 0 <= float(hr.min()) and float(hr.max()) <= 1


def test_crops_are_aligned_for_every_augmentation(kron_set):
    ds = SRDataset("train", config(kron_set))
    seen = set()
    for k in range(300):
        lr, hr = ds[k]
        assert np.array_equal(u8(hr), np.kron(u8(lr), np.ones((SCALE, SCALE, 1), dtype=np.uint8))), k
        seen.add(ds.crop_params(k)[3])
    assert seen == set(range(8))


def test_items_are_the_crops_that_crop_params_names(random_set):
    ds = SRDataset("train", config(random_set))
    p = CROP // SCALE
    for k in range(0, 200, 7):
        image, y, x, t = ds.crop_params(k)
        assert image == (k % len(ds)) // ds.patch_num
        hr_full, lr_full = ds.hr[image], ds.lr[image]
        lr, hr = ds[k]
        assert np.array_equal(u8(lr), augment(lr_full[y:y + p, x:x + p], t))
        assert np.array_equal(u8(hr), augment(hr_full[SCALE * y:SCALE * (y + p), SCALE * x:SCALE * (x + p)], t))


def test_augment_is_rot90_of_a_flip_in_either_layout():
    a = random_image(5, 7)
    for t in range(8):
        ref = np.rot90(a[:, ::-1] if t & 4 else a, t & 3)
        assert np.array_equal(augment(a, t), ref)
        assert np.array_equal(augment(a.transpose(2, 0, 1), t, (1, 2)), ref.transpose(2, 0, 1))


def test_randomness_is_a_pure_function_of_seed_and_index(random_set):
    a = SRDataset("train", config(random_set, cache="memory"))
    b = SRDataset("train", config(random_set, cache="none"))
    for k in (0, 3, 9, 10, 10_000_003):
        assert all(torch.equal(x, y) for x, y in zip(a[k], b[k]))
    n = len(a)
    assert a.crop_params(2)[0] == a.crop_params(2 + n)[0] == a.crop_params(2 + 7 * n)[0]   # same image
    assert len({a.crop_params(2 + e * n)[1:] for e in range(20)}) > 10                        # fresh crops
    c = SRDataset("train", config(random_set, seed=4))
    assert sum(a.crop_params(k) != c.crop_params(k) for k in range(50)) > 40


def test_get_batch_equals_stacked_items(random_set):
    ds = SRDataset("train", config(random_set))
    idx = [5, 0, 42, 10**7 + 1]
    lr, hr = ds.get_batch(idx)
    assert torch.equal(lr, torch.stack([ds[k][0] for k in idx]))
    assert torch.equal(hr, torch.stack([ds[k][1] for k in idx]))


# ---- test splits -----------------------------------------------------------------------------
def test_test_split_whole_images_hr_cropped_top_left(tmp_path):
    hr = random_image(30, 41)                                  # neither side a multiple of 4
    lr = imresize(hr[:28, :40], scalar_scale=0.25)             # how the MATLAB LR files are made
    root = make_set(tmp_path, [("odd", hr, lr)], split="Set14")
    ds = SRDataset("Set14", config(root))
    assert not ds.train and len(ds) == 1 and ds.cache == "none"
    lr_t, hr_t = ds[0]
    assert np.array_equal(u8(lr_t), lr) and np.array_equal(u8(hr_t), hr[:28, :40])
    with pytest.raises(IndexError):
        ds[1]


# ---- caches ---------------------------------------------------------------------------------
def test_disk_cache_is_one_mmap_per_store_reused_and_pickles_small(random_set):
    cfg = config(random_set, cache="disk")
    ds = SRDataset("train", cfg)
    files = sorted((random_set / "cache").glob("*.npy"))
    assert len(files) == 2 and isinstance(ds.hr._buf, np.memmap)
    stamps = [f.stat().st_mtime_ns for f in files]
    again = SRDataset("train", cfg)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    blob = pickle.dumps(again)
    assert len(blob) < 10_000                                  # paths, not pixels
    clone = pickle.loads(blob)
    assert all(torch.equal(x, y) for x, y in zip(clone[13], ds[13]))


def test_memory_cache_size_is_stated_and_can_be_capped(random_set):
    ds = SRDataset("train", config(random_set))
    assert ds.cache_bytes == 3 * (48 * 56 + 40 * 40 + 12 * 14 + 10 * 10)
    assert "cache memory" in ds.describe()
    with pytest.raises(ValueError, match=r"needs 0\.00 GB .* over cache_max_gb=1e-06; use cache='disk'"):
        SRDataset("train", config(random_set, cache_max_gb=1e-6))


def test_a_memory_cache_larger_than_the_ram_is_refused_before_decoding(random_set, monkeypatch):
    import course_sr.datasets as datasets

    need = 3 * (48 * 56 + 40 * 40 + 12 * 14 + 10 * 10)
    monkeypatch.setattr(datasets, "_available_ram", lambda: need - 1)
    decoded = []
    with monkeypatch.context() as m:
        m.setattr(datasets.ImageStore, "_fill", lambda self, buf, threads: decoded.append(self))
        with pytest.raises(datasets.CacheTooLargeError,
                           match=r"memory cache of 2 image pairs needs 0\.00 GB .* only 0\.00 GB of RAM is "
                                 r"available, so nothing was decoded\. Alternatives: cache='disk' .*cache='none'"):
            SRDataset("train", config(random_set))
    assert decoded == []
    for fine in (dict(cache="disk"), dict(cache="none")):       # the alternatives it names work
        assert len(SRDataset("train", config(random_set, **fine))) == 10
    monkeypatch.setattr(datasets, "_available_ram", lambda: need + need // 10)  # fits, but over 80%: a warning
    with pytest.warns(UserWarning, match="consider cache='disk'"):
        SRDataset("train", config(random_set))


def test_edited_file_makes_a_new_disk_cache(tmp_path):
    root = make_set(tmp_path, [("x", random_image(40, 40), random_image(10, 10))])
    SRDataset("train", config(root, cache="disk"))
    save_image(root / "LR/xx4.png", random_image(10, 10))
    ds = SRDataset("train", config(root, cache="disk"))
    assert len(list((root / "cache").glob("*.npy"))) == 3
    from course_sr.utils import load_image
    assert np.array_equal(ds.lr[0], load_image(root / "LR/xx4.png"))


# ---- sampler and loader --------------------------------------------------------------------
def take(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_epochs_are_permutations_with_unique_counters():
    s = ResumableBatchSampler(10, 3, seed=5)
    flat = [k for b in take(s, 10) for k in b]                  # 30 = 3 epochs
    assert len(set(flat)) == 30
    for e in range(3):
        assert sorted(k % 10 for k in flat[10 * e:10 * (e + 1)]) == list(range(10))
        assert all(10 * e <= k < 10 * (e + 1) for k in flat[10 * e:10 * (e + 1)])
    assert take(ResumableBatchSampler(10, 3, seed=5), 10) == take(s, 10)
    assert take(ResumableBatchSampler(10, 3, seed=6), 10) != take(s, 10)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_sampler_resumes_at_any_iteration(k):
    full = take(ResumableBatchSampler(10, 4, seed=1), 12)
    assert take(ResumableBatchSampler(10, 4, seed=1, start_iter=k), 12 - k) == full[k:]


def test_rank_shares_partition_the_single_process_batch():
    single = take(ResumableBatchSampler(10, 6, seed=2, start_iter=1), 8)
    r0 = take(ResumableBatchSampler(10, 3, seed=2, start_iter=1, num_replicas=2, rank=0), 8)
    r1 = take(ResumableBatchSampler(10, 3, seed=2, start_iter=1, num_replicas=2, rank=1), 8)
    assert [a + b for a, b in zip(r0, r1)] == single
    # 2 processes x 3 resumed on 1 process x 6 at the same iteration: the same stream
    assert take(ResumableBatchSampler(10, 6, seed=2, start_iter=3), 2) == single[2:4]
    assert take(ResumableBatchSampler(10, 3, seed=2, start_position=21), 1) == [single[2][3:]]   # (1 + 2) * 6 + 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0, batch_size=2), "non-empty"), (dict(n=5, batch_size=0), "batch_size"),
    (dict(n=5, batch_size=2, num_replicas=2, rank=2), "rank"), (dict(n=5, batch_size=2, start_iter=-1), ">= 0"),
])
def test_sampler_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResumableBatchSampler(**kwargs)


def test_loader_batches_do_not_depend_on_workers_and_resume(random_set):
    ds = SRDataset("train", config(random_set))
    # 25 batches: the ring of 2 workers x prefetch 4 + 2 slots is reused twice
    expect = [ds.get_batch(b) for b in take(ResumableBatchSampler(len(ds), 4, seed=3), 25)]
    for workers in (0, 2):
        it = iter(make_train_loader(ds, config(random_set, workers=workers)))
        got = [next(it) for _ in range(25)]
        assert all(torch.equal(g[0], e[0]) and torch.equal(g[1], e[1]) for g, e in zip(got, expect)), workers
    it = iter(make_train_loader(ds, config(random_set), start_iter=4))
    assert all(torch.equal(x, y) for x, y in zip(next(it), expect[4]))


def test_loader_accepts_datasets_without_get_batch(random_set):
    ds = SRDataset("train", config(random_set))

    class Triples(torch.utils.data.Dataset):          # e.g. an unpaired (hr, lr, other) dataset
        def __len__(self):
            return len(ds)

        def __getitem__(self, k):
            lr, hr = ds[k]
            return hr, lr, lr + 1

    it = iter(make_train_loader(Triples(), config(random_set, workers=1)))
    hr, lr, other = next(it)
    first = take(ResumableBatchSampler(len(ds), 4, seed=3), 1)[0]
    assert torch.equal(lr, ds.get_batch(first)[0]) and torch.equal(other, lr + 1) and hr.shape == (4, 3, CROP, CROP)


# ---- bad input -----------------------------------------------------------------------------
def gray16(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a.astype(np.uint16))               # Pillow: mode "I;16"


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_image_modes_are_converted_to_rgb(tmp_path, mode):
    g_hr, g_lr = RNG.integers(0, 256, (40, 44)), RNG.integers(0, 256, (10, 11))
    if mode == "L":
        make = lambda g: Image.fromarray(g.astype(np.uint8), "L")
        expect = lambda g: np.repeat(g.astype(np.uint8)[:, :, None], 3, 2)
    elif mode == "RGBA":
        make = lambda g: Image.fromarray(np.dstack([g, 255 - g, g // 2, g]).astype(np.uint8), "RGBA")
        expect = lambda g: np.dstack([g, 255 - g, g // 2]).astype(np.uint8)           # alpha dropped
    elif mode == "P":
        palette = np.array([[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]], dtype=np.uint8)

        def make(g):
            im = Image.fromarray((g % 4).astype(np.uint8), "P")
            im.putpalette(palette.reshape(-1).tolist())
            return im
        expect = lambda g: palette[g % 4]
    else:
        make = lambda g: gray16(g * 256 + 37)                                         # 16-bit gray
        expect = lambda g: np.repeat(np.rint((g * 256 + 37) / 257).astype(np.uint8)[:, :, None], 3, 2)
    root = make_set(tmp_path, [("m", make(g_hr), make(g_lr))])
    assert Image.open(root / "HR/m.png").mode == mode
    ds = SRDataset("train", config(root, patch_num=1))
    image, y, x, t = ds.crop_params(0)
    lr, hr = ds[0]
    assert np.array_equal(u8(lr), augment(expect(g_lr)[y:y + 4, x:x + 4], t))
    assert np.array_equal(u8(hr), augment(expect(g_hr)[4 * y:4 * y + 16, 4 * x:4 * x + 16], t))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_truncated_file_fails_at_construction_naming_it(tmp_path, cache):
    root = make_set(tmp_path, [("t", random_image(40, 40), random_image(10, 10))])
    truncate(root / "HR/t.png")
    with pytest.raises(ValueError, match=r"cannot read image .*HR/t\.png"):
        SRDataset("train", config(root, cache=cache))


def test_truncated_file_without_cache_fails_when_read_naming_it(tmp_path):
    root = make_set(tmp_path, [("t", random_image(40, 40), random_image(10, 10))])
    truncate(root / "LR/tx4.png")
    ds = SRDataset("train", config(root, cache="none"))
    with pytest.raises(ValueError, match=r"cannot read image .*LR/tx4\.png"):
        ds[0]


def test_not_an_image_fails_at_construction(tmp_path):
    root = make_set(tmp_path, [("t", random_image(40, 40), random_image(10, 10))])
    (root / "HR/t.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*HR/t\.png"):
        SRDataset("train", config(root, cache="none"))


def test_missing_files_are_counted_and_named_in_one_line_at_construction(tmp_path):
    root = make_set(tmp_path, [("a", random_image(40, 40), random_image(10, 10)),
                               ("b", random_image(40, 40), random_image(10, 10))])
    (root / "HR/a.png").unlink()
    (root / "LR/bx4.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"2 of the 4 files listed in .*train_images.csv are missing: "
                                                r".*HR/a\.png, .*LR/bx4\.png\. .*data-lists --data-root"):
        SRDataset("train", config(root))


def test_image_smaller_than_the_crop_fails_at_construction(tmp_path):
    root = make_set(tmp_path, [("ok", random_image(40, 40), random_image(10, 10)),
                               ("tiny", random_image(12, 40), random_image(3, 10))])
    with pytest.raises(ValueError, match=r"LR/tinyx4\.png is 10x3 .* smaller than the LR patch 4x4"):
        SRDataset("train", config(root))
    assert len(SRDataset("train", config(root), train=False)) == 2      # whole images are fine


@pytest.mark.parametrize("content", ["", "\n"])
def test_empty_list_is_a_clear_error(tmp_path, content):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train_images.csv").write_text(content)
    with pytest.raises(ValueError, match="is empty"):
        SRDataset("train", config(tmp_path))


def test_missing_list_names_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data list not found: .*lists/train_images\.csv"):
        SRDataset("train", config(tmp_path))


def test_lr_only_rows_are_refused(tmp_path):
    save_image(tmp_path / "LR/0401x4.png", random_image(10, 10))
    write_data_list(tmp_path / "lists" / "unpaired_real_lr_images.csv", [("", "LR/0401x4.png")])
    with pytest.raises(ValueError, match="LR-only list of unpaired real LR"):
        SRDataset("unpaired_real_lr", config(tmp_path))



@pytest.mark.parametrize("as_dict", [False, True])
def test_a_config_without_data_paths_is_one_clear_error_and_builds_nothing(tmp_path, monkeypatch, as_dict):
    """data_root and HR_data_folder both None: the dataset names the settings and what to call; the
    embedded sample is resolved by the entry points (training.data_config), never by a dataset."""
    monkeypatch.setenv("COURSE_SR_SAMPLE_DIR", str(tmp_path / "sample"))
    cfg = get_config(None, data_root=None, crop_size=CROP, scaling_factor=SCALE)
    assert cfg.data_root is None and cfg.HR_data_folder is None
    with pytest.raises(ValueError) as info:
        SRDataset("train", dict(cfg) if as_dict else cfg)
    message = str(info.value)
    assert "data_root" in message and "HR_data_folder" in message and "both None" in message
    assert "course_sr.training.data_config(config)" in message
    assert "course_sr.data.sample.resolve_data(config)" in message
    assert not (tmp_path / "sample").exists()                     # nothing built on disk

@pytest.mark.parametrize("cache", ["memory", "none"])
def test_size_mismatch_regenerates_lr_with_a_warning(tmp_path, cache):
    hr = random_image(30, 41)
    wrong = random_image(8, 11)                       # ceil(30/4) x ceil(41/4): an uncropped LR
    root = make_set(tmp_path, [("odd", hr, wrong)])
    with pytest.warns(UserWarning, match=r"LR/oddx4\.png is 11x8, not HR/4 = 10x7 .* regenerated"):
        ds = SRDataset("train", config(root, cache=cache, crop_size=8))
    expected = imresize(hr[:28, :40], scalar_scale=0.25)
    assert np.array_equal(ds.lr[0], expected)
    with pytest.warns(UserWarning, match="regenerated"):
        test = SRDataset("train", config(root, cache=cache), train=False)
    lr_t, hr_t = test[0]
    assert np.array_equal(u8(lr_t), expected) and np.array_equal(u8(hr_t), hr[:28, :40])


def test_wrong_scale_is_an_error_naming_files_and_sizes(tmp_path):
    root = make_set(tmp_path, [("x2", random_image(40, 48), random_image(20, 24))])
    with pytest.raises(ValueError, match=r"LR/x2x4\.png is 24x20 but .*HR/x2\.png is 48x40 \(scale about 2\.00, expected 4"):
        SRDataset("train", config(root))


@pytest.mark.parametrize("overrides, match", [(dict(patch_num=0), "patch_num"), (dict(cache="ram"), "cache must be")])
def test_bad_settings(random_set, overrides, match):
    cfg = config(random_set)
    cfg.update(overrides)                  # edited after get_config, which refuses cache="ram" itself
    with pytest.raises(ValueError, match=match):
        SRDataset("train", cfg)


def test_to_tensor_matches_torchvision():
    from torchvision.transforms.functional import to_tensor as tv_to_tensor

    a = random_image(7, 9)
    assert torch.equal(to_tensor(a), tv_to_tensor(a))
    assert torch.equal(to_tensor(augment(a, 5)), tv_to_tensor(np.ascontiguousarray(augment(a, 5))))
