"""make_train_loader's stream is pinned: the same batches as a stock DataLoader over the kit's
batch sampler, for any number of workers; a resume at any position (also with another number of
processes) continues the unbroken stream; the workers' seeds come from the loader's own
generator (``config.seed + rank``) and the global RNGs are never drawn from."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from course_sr.config import get_config
from course_sr.data.lists import write_data_list
from course_sr.data.loader import ResumableBatchSampler, loader_settings, make_train_loader
from course_sr.datasets import SRDataset

SCALE, CROP, SEED = 4, 16, 7
# 30 batches: the ring (2 workers x prefetch 4 + 2 = 10 slots) is reused three times
N_BATCHES = 30


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    """Three random pairs (HR 4x LR in size) and a config for them: batch 4, crop 16."""
    root = tmp_path_factory.mktemp("loader")
    rng = np.random.default_rng(99)
    rows = []
    for name, (h, w) in (("a", (12, 15)), ("b", (10, 10)), ("c", (9, 13))):
        for rel, (hh, ww) in ((f"HR/{name}.png", (4 * h, 4 * w)), (f"LR/{name}x4.png", (h, w))):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (hh, ww, 3), dtype=np.uint8)).save(root / rel)
        rows.append((f"HR/{name}.png", f"LR/{name}x4.png"))
    write_data_list(root / "lists" / "train_images.csv", rows)
    return SRDataset("train", cfg(root)), root


def cfg(root: Path, **overrides):
    base = dict(data_root=str(root), csv_folder=str(root / "lists"), crop_size=CROP, scaling_factor=SCALE,
                patch_num=3, seed=SEED, workers=0, batch_size=4, device="cpu")
    base.update(overrides)
    return get_config(None, **base)


def take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def same(a, b) -> bool:
    return len(a) == len(b) and all(len(x) == len(y) and all(torch.equal(s, t) for s, t in zip(x, y))
                                    for x, y in zip(a, b))


def stock(dataset, config, workers: int, rank: int = 0, num_replicas: int = 1, start_position=None):
    """A stock DataLoader over the kit's batch sampler, seeded as the kit seeds its loader."""
    sampler = ResumableBatchSampler(len(dataset), int(config.batch_size), SEED, num_replicas=num_replicas,
                                    rank=rank, start_position=start_position)
    more = dict(persistent_workers=True, prefetch_factor=4) if workers else {}
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      generator=torch.Generator().manual_seed(SEED + rank), **more)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_equal_a_stock_dataloaders_over_the_same_sampler(train_set, workers):
    ds, root = train_set
    expect = take(stock(ds, cfg(root), workers=0), N_BATCHES)
    assert same(take(make_train_loader(ds, cfg(root, workers=workers)), N_BATCHES), expect)
    if workers:                   # and a stock loader with workers: same again (order kept)
        assert same(take(stock(ds, cfg(root), workers=workers), N_BATCHES), expect)


def test_stream_is_fixed_for_a_seed(train_set):
    """The first batches for seed 7 over 9 items, written out: a change of the stream (the
    permutation, the batching across the epoch boundary) shows here; each batch is the dataset's
    items for those counters (the dataset maps a counter to its crop)."""
    ds, root = train_set
    counters = [[1, 7, 0, 5], [3, 8, 6, 4], [2, 10, 12, 14], [9, 17, 13, 11]]
    assert take(ResumableBatchSampler(len(ds), 4, SEED), 4) == counters
    for (lr, hr), ks in zip(take(make_train_loader(ds, cfg(root, workers=2)), 4), counters):
        assert torch.equal(lr, torch.stack([ds[k][0] for k in ks]))
        assert torch.equal(hr, torch.stack([ds[k][1] for k in ks]))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop", [1, 5, 13])
def test_resume_at_an_iteration_is_the_tail_of_the_unbroken_stream(train_set, workers, stop):
    ds, root = train_set
    full = take(make_train_loader(ds, cfg(root)), 20)
    resumed = take(make_train_loader(ds, cfg(root, workers=workers), start_iter=stop), 20 - stop)
    assert same(resumed, full[stop:])
    assert same(take(make_train_loader(ds, cfg(root, workers=workers), start_position=4 * stop), 20 - stop),
                full[stop:])


def test_resume_at_any_position_with_another_number_of_processes(train_set):
    """1 process x batch 4 stops after 5 batches (20 samples); 2 processes x batch 2 resume at
    position 20: their shares, side by side, are the unbroken run's batches 5, 6, ...; and a
    position inside a batch (22) continues there."""
    ds, root = train_set
    full = take(make_train_loader(ds, cfg(root)), 12)
    shares = [take(make_train_loader(ds, cfg(root, batch_size=2, workers=2), num_replicas=2, rank=r,
                                     start_position=20), 7) for r in range(2)]
    for i, (a, b) in enumerate(zip(*shares)):
        assert all(torch.equal(torch.cat([x, y]), z) for x, y, z in zip(a, b, full[5 + i]))
    flat = [torch.cat([b[f] for b in full]) for f in range(2)]             # the stream, item by item
    tail = take(make_train_loader(ds, cfg(root, workers=2), start_position=22), 6)
    assert all(torch.equal(torch.cat([b[f] for b in tail]), flat[f][22:22 + 24]) for f in range(2))


class Draws(Dataset):
    """Items drawn from the worker's torch RNG: they show which seed each worker got."""

    def __len__(self):
        return 8

    def __getitem__(self, k):
        return torch.rand(3), torch.zeros(2)


def worker_draws(loader, n=6):
    return torch.cat([b[0].flatten() for b in take(loader, n)])


def test_worker_seeds_come_from_the_loaders_generator_seeded_with_seed_plus_rank(train_set):
    _, root = train_set
    torch.manual_seed(1)
    kit = worker_draws(make_train_loader(Draws(), cfg(root, workers=2), num_replicas=2, rank=1))
    torch.manual_seed(2)                                      # the global RNG plays no part
    again = worker_draws(make_train_loader(Draws(), cfg(root, workers=2), num_replicas=2, rank=1))
    ref = worker_draws(stock(Draws(), cfg(root), workers=2, rank=1, num_replicas=2))
    rank0 = worker_draws(make_train_loader(Draws(), cfg(root, workers=2), num_replicas=2, rank=0))
    assert torch.equal(kit, again) and torch.equal(kit, ref) and not torch.equal(kit, rank0)


@pytest.mark.parametrize("workers", [0, 2])
def test_making_and_iterating_the_loader_leaves_the_global_rngs_alone(train_set, workers):
    """A resumed run restores the RNG states and then makes its loader: were a draw taken from
    the global RNG here, the resumed run would end one draw away from the unbroken one."""
    ds, root = train_set
    torch.manual_seed(123)
    random.seed(4)
    np.random.seed(5)
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()
    take(make_train_loader(ds, cfg(root, workers=workers), start_iter=3), N_BATCHES)
    after = torch.get_rng_state(), random.getstate(), np.random.get_state()
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert all(np.array_equal(x, y) for x, y in zip(before[2], after[2]))


def test_settings_follow_the_config():
    opts = loader_settings(get_config(None, workers=3, device="cpu"))
    assert opts["num_workers"] == 3 and opts["pin_memory"] is False
    assert loader_settings(get_config(None, workers=0))["multiprocessing_context"] is None
