"""Paired SR datasets in the course format, fast: decode every image once, crop from memory.

``SRDataset(split, config)`` keeps the course template's interface and returns what it returns:
``(lr, hr)`` float32 tensors ``(3, h, w)`` and ``(3, h*scale, w*scale)`` in [0, 1] (torchvision's
``to_tensor`` convention). What changes is where the pixels come from.

Why: the template opens and decodes two full PNGs for every 96 px training patch. A DIV2K PNG
takes ~55 ms to decode, so two CPUs (Colab) deliver ~35 patches/s and the GPU waits. Here each
image is decoded ONCE, then a patch is a numpy slice (microseconds). ``config.cache`` picks where
the decoded pixels live (``course_sr.data.store.ImageStore``):

- ``"memory"`` (default): one flat uint8 buffer in RAM, filled before the DataLoader workers fork,
  so workers share it copy-on-write (one Python object, the pages are never written: no copies).
  Cost: H*W*3 bytes per HR image + 1/16 of that for its x4 LR. DIV2K train (800 HR + 800 LR x4)
  is about 7 GB (~6.6 HR + ~0.4 LR at ~2040x1360 px each); the exact figure, from the file
  headers, is logged (and kept in ``cache_bytes``) before decoding; a cache larger than the RAM
  available then is refused before anything is decoded (``CacheTooLargeError``, with the sizes
  and the alternatives), a warning is given above 80% of it, and ``config.cache_max_gb`` sets a
  limit of your own. When RAM is short use ``"disk"``. (Workers started with "spawn"/
  "forkserver" would each receive a pickled COPY; ``loader.make_train_loader`` uses "fork" on Linux.)
- ``"disk"``: a one-time conversion to ONE raw ``.npy`` file per (split, HR|LR) under
  ``config.cache_dir`` (default ``<data_root>/.cache_npy``), memory-mapped read-only
  (``mmap_mode='r'``): pages are read on demand and shared by all workers via the OS page cache,
  so it works with little RAM. One file (not one per image) keeps one open mapping instead of
  1600 (the usual open-file limit is 1024). The file name is a hash of the source files' paths,
  sizes and modification times, so an edited image makes a new cache. ~7 GB of disk for DIV2K.
- ``"none"``: the template's behaviour (decode two files per item); for comparison and tiny sets.

Training splits (``split == "train"`` or ``config.train_split``; or ``train=True``): an item is a
random aligned crop, LR ``crop_size/scale`` square at (y, x) and HR ``crop_size`` square at
(scale*y, scale*x), then one of the 8 flips/90-degree rotations applied to both. ``len`` is
images * ``patch_num``. The randomness of item ``k`` is a pure function of ``(config.seed, k)``,
and ``k`` may exceed ``len`` (image and patch slot are taken from ``k % len``, the crop and
augmentation from ``k`` itself): ``ResumableBatchSampler`` hands out ever-growing counters, so
every epoch draws fresh crops, and a resumed run or any number of workers reproduces the same
batches exactly.

Batches: ``course_sr.data.loader.make_train_loader`` (also importable from here) streams them;
``SRDataset.get_batch`` builds a whole batch at once for its workers.

Test splits: whole images; HR is cropped TOP-LEFT to ``scale * LR size`` (a multiple of the
scale). Top-left is how the MATLAB LR files of the benchmarks were made (HR cropped top-left,
then imresize); the course template centre-cropped, which misaligns LR and HR by up to
(scale-1)/2 HR pixels whenever a side is not a multiple of the scale (Set14's comic, zebra ...).
Test splits use ``cache="none"`` unless told otherwise (each image is read once per pass).

Bad input, checked at construction so a run never dies mid-epoch: missing files (all listed),
unreadable headers, LR-only rows, LR smaller than the crop, and LR/HR sizes that do not match the
scale. An LR within one pixel of HR/scale (e.g. made from an uncropped HR) is REGENERATED from
the HR, cropped top-left to a multiple of the scale, with the kit's MATLAB-exact imresize, with a
warning (as the template does); an LR whose size implies another scale is an error. Image modes
(grayscale, RGBA, palette, 16-bit) are converted by ``course_sr.utils.load_image`` (its docstring
gives the rules). Truncated data fails when decoded (at construction for cached modes), naming the
file.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from course_sr.data.listfiles import check_listed_files, find_data_list, list_path, read_data_list
# The batch stream (sampler + shared-ring loader) is its own idea: course_sr/data/loader.py. Its names
# stay importable from here, where course material and older code look for them.
from course_sr.data.loader import ResumableBatchSampler, TrainLoader, make_train_loader  # noqa: F401
from course_sr.data.store import _GB, CACHE_MODES, ImageStore
from course_sr.imresize import matlab_lr
from course_sr.plumbing.errors import UserError
from course_sr.utils import config_get, load_image

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------------------
# Small pieces shared with other datasets (e.g. CycleSR's unpaired one)
# --------------------------------------------------------------------------------------
def check_data_paths(config) -> None:
    """Raise one ``ValueError`` when ``config`` says nowhere where the images are (``data_root``
    and ``HR_data_folder`` both None).

    Datasets build nothing on disk: the embedded sample (``data_root=None``) is built and its
    paths filled in where paths are resolved, by ``course_sr.training.data_config(config)`` or
    ``course_sr.data.sample.resolve_data(config)``, before a dataset is made.
    """
    if config_get(config, "data_root") is None and config_get(config, "HR_data_folder") is None:
        raise ValueError(
            "config.data_root and config.HR_data_folder are both None, so the dataset does not know where "
            "the images are (a dataset builds nothing on disk). Resolve the data paths first: "
            "config = course_sr.training.data_config(config) (data_root None: the embedded sample), or "
            "course_sr.data.sample.resolve_data(config); or set data_root to your data folder")


def image_size(path) -> tuple[int, int]:
    """``(height, width)`` from the file header (no decoding). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return h, w


def augment(a: np.ndarray, t: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """One of the 8 symmetries of the square, as a view (no copy).

    Bit 2 of ``t`` flips left-right, bits 0-1 then rotate by ``90 * (t & 3)`` degrees
    counter-clockwise (``np.rot90``). ``axes``: the (row, column) axes of ``a``: ``(0, 1)`` for
    ``(H, W, C)``, ``(1, 2)`` for ``(C, H, W)``; the result is the same image either way.
    """
    row, col = axes

    def flipped(x, axis):
        index = [slice(None)] * x.ndim
        index[axis] = slice(None, None, -1)
        return x[tuple(index)]

    if t & 4:
        a = flipped(a, col)
    k = t & 3
    if k == 1:                                  # np.rot90(a, 1): flip columns, then transpose
        a = flipped(a, col).swapaxes(row, col)
    elif k == 2:
        a = flipped(flipped(a, row), col)
    elif k == 3:                                # np.rot90(a, 3): flip rows, then transpose
        a = flipped(a, row).swapaxes(row, col)
    return a


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` (any strides) -> contiguous float32 ``(3, H, W)`` in [0, 1]."""
    chw = np.ascontiguousarray(a.transpose(2, 0, 1))
    return torch.from_numpy(chw).float().div_(255)


_MASK64 = (1 << 64) - 1


def item_random(seed: int, index: int) -> int:
    """64 random bits that are a pure function of ``(seed, index)`` (splitmix64 finaliser).

    Plain integer arithmetic: the same on every machine, worker and Python version, and ~1 us.
    """
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    for mult, shift in ((0xBF58476D1CE4E5B9, 30), (0x94D049BB133111EB, 27)):
        z = ((z ^ (z >> shift)) * mult) & _MASK64
    return z ^ (z >> 31)


def crop_params(seed: int, index: int, lr_h: int, lr_w: int, lr_patch: int) -> tuple[int, int, int]:
    """``(y, x, t)``: LR top-left corner of item ``index``'s patch and its augmentation (0-7)."""
    r = item_random(seed, index)
    y = (r & 0xFFFFFF) % (lr_h - lr_patch + 1)
    x = ((r >> 24) & 0xFFFFFF) % (lr_w - lr_patch + 1)
    return y, x, (r >> 48) & 7


def _available_ram() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# --------------------------------------------------------------------------------------
# Image stores: where decoded pixels live
# --------------------------------------------------------------------------------------
class CacheTooLargeError(UserError, ValueError):
    """A memory cache larger than the available RAM, refused before decoding (sizes in the message)."""




# --------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------
class SRDataset(Dataset):
    """The course's paired dataset: ``SRDataset(split, config)`` -> items ``(lr, hr)``.

    Args:
        split: a data list name: ``<config.csv_folder>/<split>_images.csv``.
        config: EasyDict with ``csv_folder``, ``HR_data_folder``/``LR_data_folder`` (or
            ``data_root``), ``scaling_factor``,
            ``crop_size``, ``patch_num``, ``seed``, ``cache``, ``cache_dir``, ``cache_max_gb``.
        train: random patches (True) or whole images (False). Default: True when split is
            "train" or ``config.train_split``.
        cache: override ``config.cache`` ("memory" | "disk" | "none"). Default for test splits:
            "none".

    Items:
        train: ``lr`` float32 ``(3, crop/scale, crop/scale)``, ``hr`` float32 ``(3, crop, crop)``,
        both in [0, 1]; whole images otherwise (``hr`` exactly ``scale`` times ``lr``).
    """

    def __init__(self, split: str, config, train: bool | None = None, cache: str | None = None):
        check_data_paths(config)
        self.split = split
        self.scale = int(config_get(config, "scaling_factor", 4))
        self.crop_size = int(config_get(config, "crop_size", 96))
        self.patch_num = int(config_get(config, "patch_num", 100))
        self.seed = int(config_get(config, "seed", 0))
        if train is None:
            train = split in ("train", config_get(config, "train_split", "train"))
        self.train = bool(train)
        if self.train and self.patch_num < 1:
            raise ValueError(f"patch_num must be >= 1, got {self.patch_num}")
        if self.crop_size % self.scale or self.crop_size < self.scale:
            raise ValueError(f"crop_size {self.crop_size} must be a positive multiple of scaling_factor {self.scale}")
        self.lr_patch = self.crop_size // self.scale

        data_root = config_get(config, "data_root")
        hr_folder = config_get(config, "HR_data_folder", data_root)
        lr_folder = config_get(config, "LR_data_folder", data_root)
        # The kit's one rule for where a list lives (course_sr.data.lists.find_data_list).
        csv_folder = find_data_list(split, data_root if data_root is not None else hr_folder,
                                    config_get(config, "csv_folder"), self.scale).parent
        rows = read_data_list(csv_folder, split)
        lr_only = [lr for hr, lr in rows if not hr]
        if lr_only:
            raise ValueError(f"{list_path(csv_folder, split)} has {len(lr_only)} row(s) without an HR "
                             f"file (e.g. {lr_only[0]!r}): an LR-only list of unpaired real LR images; "
                             "SRDataset needs pairs (use the unpaired dataset for CycleSR)")
        self.pairs = [(os.path.join(hr_folder, hr), os.path.join(lr_folder, lr)) for hr, lr in rows]
        self.hr_paths = [p for p, _ in self.pairs]
        self.lr_paths = [p for _, p in self.pairs]

        check_listed_files(split, list_path(csv_folder, split), [p for pair in self.pairs for p in pair],
                           data_root)
        hr_sizes = [image_size(p) for p in self.hr_paths]
        lr_sizes = [image_size(p) for p in self.lr_paths]
        self.regenerated = self._check_sizes(hr_sizes, lr_sizes)
        # Train crops never read HR beyond scale*LR; test items crop HR top-left to it.
        lr_shapes = [(H // self.scale, W // self.scale, 3) if i in self.regenerated else (h, w, 3)
                     for i, ((H, W), (h, w)) in enumerate(zip(hr_sizes, lr_sizes))]

        mode = cache if cache is not None else (config_get(config, "cache", "memory") if self.train else "none")
        if mode not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {mode!r}")
        self.cache = mode
        hr_shapes = [(H, W, 3) for H, W in hr_sizes]
        self.cache_bytes = 0 if mode == "none" else sum(h * w * 3 for h, w, _ in hr_shapes + lr_shapes)
        if mode != "none":
            self._check_memory(mode, config_get(config, "cache_max_gb"))
        self.cache_dir = config_get(config, "cache_dir")     # where "disk" stores live (None: unused)
        if self.cache_dir is None and mode == "disk":
            self.cache_dir = Path(config_get(config, "data_root", hr_folder)) / ".cache_npy"
        t0 = time.perf_counter()
        replace = {i: _RegeneratedLR(self.hr_paths[i], self.scale) for i in self.regenerated}
        self.hr = ImageStore.build(self.hr_paths, hr_shapes, mode, self.cache_dir, f"{split}-HR")
        self.lr = ImageStore.build(self.lr_paths, lr_shapes, mode, self.cache_dir,
                                   f"{split}-LR-x{self.scale}", replace=replace)
        if mode != "none":
            log.info("%s: decoded %d image pairs into %s cache, %.2f GB, in %.1f s", split,
                     len(self.pairs), mode, self.cache_bytes / _GB, time.perf_counter() - t0)

    # ---- construction checks ----
    def _check_sizes(self, hr_sizes, lr_sizes) -> set[int]:
        """Indices whose LR must be regenerated; raises on wrong scale or too-small images."""
        s, regenerate, wrong, small = self.scale, set(), [], []
        for i, ((H, W), (h, w)) in enumerate(zip(hr_sizes, lr_sizes)):
            if (h, w) != (H // s, W // s):
                if abs(h - H / s) <= 1 and abs(w - W / s) <= 1 and H >= s and W >= s:
                    regenerate.add(i)
                else:
                    wrong.append(f"{self.lr_paths[i]} is {w}x{h} but {self.hr_paths[i]} is {W}x{H} "
                                 f"(scale about {W / max(w, 1):.2f}, expected {s}: LR {W // s}x{H // s})")
                    continue
            lh, lw = (H // s, W // s) if i in regenerate else (h, w)
            if self.train and (lh < self.lr_patch or lw < self.lr_patch):
                small.append(f"{self.lr_paths[i]} is {lw}x{lh} (HR {self.hr_paths[i]} {W}x{H}), "
                             f"smaller than the LR patch {self.lr_patch}x{self.lr_patch} "
                             f"(crop_size {self.crop_size} / scale {s})")
        if wrong:
            raise ValueError(f"split {self.split!r}: LR/HR sizes do not match scaling_factor {s}:\n  "
                             + "\n  ".join(wrong))
        if small:
            raise ValueError(f"split {self.split!r}: images smaller than the training crop:\n  "
                             + "\n  ".join(small))
        for i in sorted(regenerate):
            warnings.warn(f"{self.lr_paths[i]} is {lr_sizes[i][1]}x{lr_sizes[i][0]}, not HR/{s} = "
                          f"{hr_sizes[i][1] // s}x{hr_sizes[i][0] // s} ({self.hr_paths[i]} is "
                          f"{hr_sizes[i][1]}x{hr_sizes[i][0]}): using LR regenerated from the HR "
                          "cropped top-left to a multiple of the scale (MATLAB-exact imresize)",
                          stacklevel=3)
        return regenerate

    def _check_memory(self, mode: str, limit_gb) -> None:
        """Before anything is decoded: refuse a cache over ``cache_max_gb``, or a memory cache
        larger than the RAM available now (it could only end in swapping or the OOM killer, e.g.
        a Colab runtime restart); warn above 80% of it. Sizes come from the file headers."""
        gb = self.cache_bytes / _GB
        where = "RAM" if mode == "memory" else f"disk ({mode} cache)"
        if limit_gb is not None and gb > float(limit_gb):
            raise ValueError(f"split {self.split!r}: the {mode} cache needs {gb:.2f} GB of {where}, "
                             f"over cache_max_gb={limit_gb}; use cache='disk' (or 'none'), fewer "
                             "images, or raise cache_max_gb")
        avail = _available_ram()
        if mode == "memory" and avail is not None and self.cache_bytes > avail:
            raise CacheTooLargeError(
                f"split {self.split!r}: the memory cache of {len(self.pairs)} image pairs needs {gb:.2f} GB "
                f"(uint8 HR + LR, sizes from the file headers) but only {avail / _GB:.2f} GB of RAM is "
                f"available, so nothing was decoded. Alternatives: cache='disk' (decoded once to "
                f"memory-mapped .npy files, {gb:.2f} GB of disk, little RAM), cache='none' (decode per "
                "patch: slow), fewer images in the list, or free RAM (another dataset or process?)")
        if mode == "memory" and avail is not None and self.cache_bytes > 0.8 * avail:
            warnings.warn(f"split {self.split!r}: the memory cache needs {gb:.2f} GB but only "
                          f"{avail / _GB:.2f} GB of RAM is available; consider cache='disk'",
                          stacklevel=3)
        log.info("%s: %s cache of %d pairs needs %.2f GB of %s", self.split, mode,
                 len(self.pairs), gb, where)

    # ---- items ----
    def __len__(self) -> int:
        return len(self.pairs) * self.patch_num if self.train else len(self.pairs)

    def describe(self) -> str:
        """One line for logs: images, patches, cache and its size."""
        what = (f"{len(self)} patches/epoch ({self.patch_num}/image, HR {self.crop_size} px)"
                if self.train else "whole images")
        cache = self.cache if self.cache == "none" else f"{self.cache} {self.cache_bytes / _GB:.2f} GB"
        return f"{self.split}: {len(self.pairs)} image pairs, x{self.scale}, {what}, cache {cache}"

    def crop_params(self, index: int) -> tuple[int, int, int, int]:
        """``(image, y, x, t)`` of training item ``index``: image number, LR top-left corner of
        the patch (HR corner: ``scale*y, scale*x``) and augmentation (see :func:`augment`)."""
        index = int(index)
        if index < 0:
            raise IndexError(f"negative index {index}")
        image = (index % len(self)) // self.patch_num
        h, w, _ = self.lr.shapes[image]
        return (image, *crop_params(self.seed, index, h, w, self.lr_patch))

    def __getitem__(self, index: int):
        if not self.train:
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} images of {self.split!r}")
            lr = self.lr[index]
            hr = self.hr[index][: lr.shape[0] * self.scale, : lr.shape[1] * self.scale]
            return to_tensor(lr), to_tensor(hr)
        image, y, x, t = self.crop_params(index)
        p, s = self.lr_patch, self.scale
        lr = self.lr[image][y:y + p, x:x + p]
        hr = self.hr[image][s * y:s * (y + p), s * x:s * (x + p)]
        return to_tensor(augment(lr, t)), to_tensor(augment(hr, t))

    def get_batch(self, indices, out=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training items ``indices`` stacked, equal to ``torch.stack`` of ``self[k]``:
        ``lr`` ``(B, 3, crop/scale, crop/scale)``, ``hr`` ``(B, 3, crop, crop)``, float32 in [0, 1].

        ``out``: optional ``(lr, hr)`` float32 tensors of those shapes to fill (the loader passes
        views of its shared ring). One uint8 gather, then one conversion per tensor.
        """
        if not self.train:
            raise ValueError(f"get_batch is for training splits; {self.split!r} holds whole images")
        b, p, c, s = len(indices), self.lr_patch, self.crop_size, self.scale
        # (C, H, W) uint8 staging: the augmented copy and the float conversion are then fast
        # (an (H, W, C) rotation would copy 3 bytes at a time).
        lr_u8 = np.empty((b, 3, p, p), dtype=np.uint8)
        hr_u8 = np.empty((b, 3, c, c), dtype=np.uint8)
        for j, k in enumerate(indices):
            image, y, x, t = self.crop_params(k)
            lr_u8[j] = augment(self.lr[image][y:y + p, x:x + p].transpose(2, 0, 1), t, (1, 2))
            hr_u8[j] = augment(self.hr[image][s * y:s * y + c, s * x:s * x + c].transpose(2, 0, 1), t, (1, 2))
        if out is None:
            out = (torch.empty(b, 3, p, p), torch.empty(b, 3, c, c))
        for dst, src in zip(out, (lr_u8, hr_u8)):
            dst.copy_(torch.from_numpy(src)).div_(255)
        return out[0], out[1]


class _RegeneratedLR:
    """LR made from an HR file: top-left crop to a multiple of scale, MATLAB-exact imresize."""

    def __init__(self, hr_path, scale):
        self.hr_path, self.scale = hr_path, scale

    def __call__(self) -> np.ndarray:
        return matlab_lr(load_image(self.hr_path), self.scale)
