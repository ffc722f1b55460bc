"""Where a dataset's decoded pixels live: one RAM buffer, one memory-mapped ``.npy``, or none.

:class:`ImageStore` holds N uint8 ``(H, W, 3)`` images, decoded once at construction (threads:
PIL releases the GIL), so that a training patch is a numpy slice instead of two PNG decodes.
``SRDataset`` and the unpaired dataset choose the mode from ``config.cache`` (the modes, their
costs and why: the ``course_sr.datasets`` docstring):

- ``"memory"``: one flat buffer, filled before DataLoader workers fork, shared copy-on-write;
- ``"disk"``: one raw ``.npy`` per store, named by a hash of its sources' paths, sizes and
  modification times, written once (to a temporary name, then renamed) and mapped read-only;
  a pickled store reopens the mapping instead of carrying the pixels;
- ``"none"``: decode on every access.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from course_sr.utils import load_image

log = logging.getLogger(__name__)

CACHE_MODES = ("memory", "disk", "none")
_DISK_FORMAT = 1                          # bump when the disk cache's content rules change
_GB = 1e9


class ImageStore:
    """N uint8 ``(H, W, 3)`` images: ``store[i]`` returns image i (a view for cached modes).

    Build with :meth:`build`. ``mode`` is "memory" (one flat RAM buffer), "disk" (one
    memory-mapped ``.npy`` file) or "none" (decode on every access). ``shapes[i]`` is the shape
    ``store[i]`` will have; ``replace[i]``, when given, is a function that makes image i instead of
    decoding ``paths[i]`` (used for regenerated LR files).
    """

    def __init__(self, paths, shapes, mode, buffer=None, offsets=None, npy_path=None, replace=None):
        self.paths = [str(p) for p in paths]
        self.shapes = [tuple(s) for s in shapes]
        self.mode = mode
        self.offsets = offsets
        self.npy_path = npy_path
        self.replace = replace or {}
        self._buf = buffer

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, i: int) -> np.ndarray:
        if i in self.replace:
            img = self.replace[i]()
        else:
            img = load_image(self.paths[i])
        if img.shape != self.shapes[i]:
            raise ValueError(f"{self.paths[i]}: decoded shape {img.shape} differs from its header "
                             f"{self.shapes[i]}")
        return img

    def __getitem__(self, i: int) -> np.ndarray:
        if self.mode == "none":
            return self._decode(i)
        if self._buf is None:                      # a worker that received a pickled disk store
            self._buf = np.load(self.npy_path, mmap_mode="r")
        off = self.offsets[i]
        h, w, c = self.shapes[i]
        return self._buf[off:off + h * w * c].reshape(h, w, c)

    def __getstate__(self):
        state = self.__dict__.copy()
        if self.mode == "disk":
            state["_buf"] = None                   # reopen the mapping, never pickle the pixels
        if self.mode != "none":
            state["replace"] = {}                  # already decoded into the buffer
        return state

    def _fill(self, buf: np.ndarray, threads: int) -> None:
        """Decode every image into ``buf`` at its offset (threads: PIL releases the GIL)."""
        def one(i):
            h, w, c = self.shapes[i]
            buf[self.offsets[i]:self.offsets[i] + h * w * c] = self._decode(i).reshape(-1)

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(one, range(len(self))))

    @classmethod
    def build(cls, paths, shapes, mode="memory", cache_dir=None, tag="images", replace=None,
              threads=None) -> "ImageStore":
        """Decode ``paths`` (with header ``shapes`` ``(H, W, 3)``) into a store of this mode."""
        if mode not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {mode!r}")
        store = cls(paths, shapes, mode, replace=replace)
        if mode == "none":   # made images: make each once now, not on every access
            store.replace = {i: _Const(f()) for i, f in store.replace.items()}
            return store
        sizes = [h * w * c for h, w, c in store.shapes]
        store.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64).tolist()
        threads = threads or min(4, os.cpu_count() or 1)
        if mode == "memory":
            buf = np.empty(sum(sizes), dtype=np.uint8)
            store._fill(buf, threads)
            store._buf = buf
            return store
        # disk: one raw .npy per store, named by what it was made from
        if cache_dir is None:
            raise ValueError("cache='disk' needs a cache_dir")
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha1(json.dumps(
            [_DISK_FORMAT, sorted(store.replace)] +
            [[os.path.abspath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns, list(s)]
             for p, s in zip(store.paths, store.shapes)]).encode()).hexdigest()[:16]
        final = cache_dir / f"{tag}-{key}.npy"
        if not final.is_file():
            tmp = cache_dir / f".{final.name}.tmp-{os.getpid()}"
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(max(1, sum(sizes)),))
            store._fill(mm, threads)
            mm.flush()
            del mm
            os.replace(tmp, final)
            log.info("disk cache written: %s (%.2f GB)", final, sum(sizes) / _GB)
        store.npy_path = str(final)
        store._buf = np.load(final, mmap_mode="r")
        if store._buf.shape[0] < sum(sizes):
            raise ValueError(f"disk cache {final} is shorter than expected; delete it and retry")
        return store


class _Const:
    """A picklable zero-argument function returning a fixed array."""

    def __init__(self, value):
        self.value = value

    def __call__(self):
        return self.value
