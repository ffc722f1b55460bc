"""The training batch stream: an infinite, resumable, distributable sampler and a fast loader.

``make_train_loader(dataset, config)`` pairs ``ResumableBatchSampler`` (infinite, resumable at
any iteration or sample position, each of R processes its share of every global batch) with
``TrainLoader``, whose workers build whole batches (``dataset.get_batch`` when the dataset has
one, e.g. ``course_sr.datasets.SRDataset``) straight into a shared ring of batch buffers allocated
once. Works for any dataset whose items are tuples of fixed-shape float32 tensors (the CycleSR
unpaired dataset uses it too). The stream is the batch sampler's: a stock DataLoader over the
same sampler yields the same batches (``tests/data/test_loader.py``).

Why a ring and not a stock DataLoader (issue 14: the ring had to earn its place, kept only at
>= 1.5x): ``python benchmarks/bench_data.py --compare-loaders --rounds 6 --batches 1000``, the
embedded sample in a memory cache, batch 16, crop 96, 2 forked workers, no pinning (no CUDA),
every batch read whole by the consumer, alternating rounds in one run, on a 2-core CPU shared
with other jobs (noisy; 2 workers + the main process oversubscribe the 2 cores):

    ring                      19530 17570 15914 15926 16347 17963  median 16959 patches/s
    stock, item by item        4513  4630  4036  4238  4838  4414  median  4464  (ring 3.87x)
    stock, whole batches       4347  4282  4626  5303  4718  4101  median  4487  (ring 3.78x)

(ratios: median of the per-round ratios). A second run, on a busier machine: medians 12768 /
3879 / 3996 patches/s, ring 3.75x / 3.69x, lowest single round 2.23x.

The stock loader with whole batches does the workers' work of the ring (``get_batch``) and gains
nothing, so what differs is the transport: the stock way moves each batch (~1.9 MB) through
fresh shared memory, allocated and faulted in by the worker, mapped and faulted in again by the
main process. On 2 cores that keeps it below the ~5,000 patches/s a fast GPU consumes; the ring
reaches 3x that. (Not measured: pinned memory on a CUDA machine, where both copy into pinned
buffers in the main process.)
"""
from __future__ import annotations

import multiprocessing
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from course_sr.utils import config_get


# --------------------------------------------------------------------------------------
# Sampling: an infinite, resumable, distributable stream of batches
# --------------------------------------------------------------------------------------
class ResumableBatchSampler(Sampler):
    """Infinite batches of item counters, resumable at any iteration, split across processes.

    The global stream: epoch ``e`` is a permutation ``perm_e`` of ``range(n)`` drawn from
    ``(seed, e)``; position ``p = e*n + i`` of the stream holds the counter ``e*n + perm_e[i]``
    (unique over the whole run; ``SRDataset`` takes the image/patch from ``counter % n`` and the
    crop from the counter, so each epoch visits every (image, patch slot) once with fresh crops).
    Batches run across epoch boundaries without dropping or repeating anything.

    ``batch_size`` is PER PROCESS. Global batch ``g`` is stream positions
    ``[g*B, (g+1)*B)`` with ``B = batch_size * num_replicas``; rank ``r`` takes the contiguous
    share ``[g*B + r*batch_size, g*B + (r+1)*batch_size)``. So R processes with batch b see
    exactly the samples of one process with batch R*b, in the same order, and a run resumed at
    iteration ``start_iter`` continues where it stopped. (Resuming with a different number of
    processes continues the stream exactly when the global batch ``batch_size * num_replicas``
    is kept; otherwise pass ``start_position`` = samples consumed so far.)
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, start_iter: int = 0,
                 num_replicas: int = 1, rank: int = 0, start_position: int | None = None):
        if n < 1:
            raise ValueError(f"ResumableBatchSampler needs a non-empty dataset, got n={n}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        if start_iter < 0 or (start_position is not None and start_position < 0):
            raise ValueError("start_iter and start_position must be >= 0")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.global_batch = self.batch_size * self.num_replicas
        self.start_iter = int(start_iter)
        self.start_position = (self.start_iter * self.global_batch if start_position is None
                               else int(start_position))

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of epoch ``epoch`` (int64 array, a function of ``(seed, epoch)`` only)."""
        return np.random.default_rng([self.seed, epoch, 0x5A3D]).permutation(self.n)

    def counters(self, start: int, count: int) -> list[int]:
        """Counters at stream positions ``[start, start + count)``."""
        out, pos = [], start
        while len(out) < count:
            epoch, i = divmod(pos, self.n)
            if getattr(self, "_epoch", None) != epoch:
                self._epoch, self._perm = epoch, self.permutation(epoch)
            take = min(count - len(out), self.n - i)
            out.extend((epoch * self.n + self._perm[i:i + take]).tolist())
            pos += take
        return out

    def __iter__(self):
        pos = self.start_position + self.rank * self.batch_size
        while True:
            yield self.counters(pos, self.batch_size)
            pos += self.global_batch


class _Numbered:
    """Batches of a batch sampler, numbered: ``(fetch number, indices)``."""

    def __init__(self, batch_sampler):
        self.batch_sampler = batch_sampler

    def __iter__(self):
        return enumerate(iter(self.batch_sampler))


def _identity(x):
    return x


class _RingFetcher(Dataset):
    """Worker side of ``TrainLoader``: fetch ``(f, indices)`` writes its batch into ring slot
    ``f % slots`` and returns the slot number (with no ring: returns the batch itself)."""

    def __init__(self, dataset, ring, fields):
        self.dataset, self.ring, self.fields = dataset, ring, fields

    def __len__(self):
        return len(self.dataset)

    def views(self, slot: int, batch: int) -> list[torch.Tensor]:
        """The ring slot as one tensor per item field, ``(batch, *field_shape)``."""
        out, off = [], 0
        for shape in self.fields:
            n = batch * int(np.prod(shape))
            out.append(self.ring[slot, off:off + n].view(batch, *shape))
            off += n
        return out

    def batch(self, indices, out=None):
        if hasattr(self.dataset, "get_batch"):
            return tuple(self.dataset.get_batch(indices, out=out))
        fields = list(zip(*(self.dataset[k] for k in indices)))
        if out is None:
            return tuple(torch.stack(f) for f in fields)
        for dst, f in zip(out, fields):
            torch.stack(f, out=dst)
        return tuple(out)

    def __getitem__(self, job):
        f, indices = job
        if self.ring is None:
            return self.batch(indices)
        slot = f % self.ring.shape[0]
        self.batch(indices, self.views(slot, len(indices)))
        return slot


class TrainLoader(DataLoader):
    """A DataLoader of training batches that passes them from workers through a shared ring.

    Why: a standard DataLoader allocates fresh shared memory for every batch in the worker and
    maps it again in the main process; on a 2-CPU machine that, not the cropping, caps it at
    ~4,500 patches/s (96 px, batch 16; this ring: ~17,000, see the module docstring). Here a
    ring of ``prefetch_factor * workers + 2`` batch-sized slots is allocated once, before the
    workers start; a worker writes batch number ``f`` into slot ``f % slots`` and returns only the
    slot number; the main process copies the slot out (into pinned memory when ``pin_memory``)
    before asking for the next batch. The DataLoader never has more than ``prefetch_factor *
    workers`` fetches outstanding, so a slot is never rewritten before it has been copied. Batches are exactly ``dataset.get_batch(indices)``
    (or the stacked items, for datasets without ``get_batch``), in the batch sampler's order.
    Items must be tuples of float32 tensors of fixed shape (probed on ``dataset[0]``).
    """

    def __init__(self, dataset, batch_sampler, num_workers: int = 0, pin_memory: bool = False,
                 prefetch_factor: int = 4, multiprocessing_context=None, seed: int = 0):
        fields = [tuple(t.shape) for t in dataset[0]]
        ring = None
        if num_workers > 0:
            per_batch = batch_sampler.batch_size * sum(int(np.prod(f)) for f in fields)
            ring = torch.zeros(prefetch_factor * num_workers + 2, per_batch).share_memory_()
        kwargs = {}
        if num_workers > 0:
            kwargs = dict(persistent_workers=True, prefetch_factor=prefetch_factor,
                          multiprocessing_context=multiprocessing_context)
        self.fetcher = _RingFetcher(dataset, ring, fields)
        self.train_sampler, self.pin = batch_sampler, pin_memory
        # Its own generator: making an iterator draws the workers' base seed, and from the global
        # torch RNG that draw would come after a resume's RNG restore but before the unbroken run's
        # first step, leaving the two runs' RNG states one draw apart (tests/test_runner.py).
        super().__init__(self.fetcher, batch_size=None, sampler=_Numbered(batch_sampler),
                         num_workers=num_workers, collate_fn=_identity,
                         generator=torch.Generator().manual_seed(seed), **kwargs)

    def __iter__(self):
        ring_batch = self.train_sampler.batch_size
        for got in super().__iter__():
            if self.fetcher.ring is None:
                batch = got
            else:                                   # copy out now: the slot is reused later
                batch = tuple(torch.empty(v.shape, dtype=v.dtype, pin_memory=self.pin).copy_(v)
                              for v in self.fetcher.views(got, ring_batch))
            if self.pin and self.fetcher.ring is None:
                batch = tuple(t.pin_memory() for t in batch)
            yield batch


def make_train_loader(dataset, config, start_iter: int = 0, num_replicas: int = 1, rank: int = 0,
                      start_position: int | None = None) -> TrainLoader:
    """An infinite loader of training batches for ``dataset`` (a tuple per batch, e.g. ``(lr, hr)``).

    ``config.batch_size`` items per process and batch, ``config.workers`` worker processes,
    order from ``ResumableBatchSampler(len(dataset), batch_size, config.seed, start_iter,
    num_replicas, rank)``. Batches come in pinned memory when CUDA is used; workers persist and
    prefetch 4 batches each, passed through a shared ring (see ``TrainLoader``). On Linux the
    workers are forked (even where Python's default start method is no longer "fork"), so a
    memory cache is shared, not copied. Use ``next(it)`` on ``it = iter(loader)``; ``len(loader)``
    is undefined (the stream never ends).
    """
    seed = int(config_get(config, "seed", 0))
    sampler = ResumableBatchSampler(len(dataset), int(config.batch_size), seed, start_iter, num_replicas, rank,
                                    start_position)
    opts = loader_settings(config)
    return TrainLoader(dataset, sampler, num_workers=opts["num_workers"], pin_memory=opts["pin_memory"],
                       multiprocessing_context=opts["multiprocessing_context"], seed=seed + rank)


def loader_settings(config) -> dict:
    """The worker and memory settings the kit uses for ``config``: ``config.workers`` workers,
    forked on Linux (a memory cache is then shared, not pickled into each worker), pinned batches
    when CUDA is used. Also what ``benchmarks/bench_data.py`` gives the stock DataLoader it
    compares against, so both run as the kit would run them."""
    workers = int(config_get(config, "workers", 0))
    device = str(config_get(config, "device", "auto"))
    context = None
    if workers > 0 and sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        context = "fork"
    return dict(num_workers=workers, multiprocessing_context=context,
                pin_memory=torch.cuda.is_available() and not device.startswith("cpu"))
