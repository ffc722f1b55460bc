"""Data for super-resolution without pairs: the unpaired training set and degraded test sets.

Two domains that never meet in a pair:

- **clean**: HR images of ``config.train_split`` and their bicubic LR (the list's LR files,
  MATLAB ``imresize`` made) -- what ordinary SR training uses;
- **real LR**: low-resolution images with an unknown degradation and no HR counterpart.
  Either files (``degradation=None``: the LR column of ``config.real_lr_split``, e.g. DIV2K
  track-2 "unknown" x4 images 0401-0800 against HR 0001-0400), or synthesised from HR images
  with :mod:`course_sr.unpaired.degradations` (``degradation="default"`` or a spec) so that the
  ground truth is known. When ``real_lr_split == train_split`` the list's images are split in
  two disjoint halves (first half clean, second half real), so no image is in both domains.

``UnpairedDataset[k]`` returns ``(hr, clean_lr, real_lr)``: an HR patch, the aligned patch of
its bicubic LR, and a patch of an unrelated real-LR image. Like ``SRDataset`` (which it uses for
the clean pairs), item ``k`` depends only on ``(config.seed, k)`` (``k`` may exceed ``len``), so a
resumed run or any number of workers sees the same data.

:func:`degraded_pairs` makes a *paired* test set from HR images and a fixed degradation
("Set5 with a fixed degradation"): the way to measure an unpaired method.
"""
from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from course_sr.data.listfiles import find_data_list, list_path, read_data_list
from course_sr.data.store import ImageStore
from course_sr.datasets import SRDataset, augment, check_data_paths, crop_params, image_size, item_random, to_tensor
from course_sr.unpaired.degradations import Degradation, degrade, get_degradation
from course_sr.utils import config_get, load_image

_REAL_SALT = 0x7EA1  # the real-LR draws of item k use seed + salt: independent of its clean crop


def image_seed(path: str | os.PathLike) -> int:
    """A stable seed from an image's file NAME (CRC-32 of its UTF-8 bytes): its degraded version
    never depends on the list order, the folder layout, the training seed or the machine, so
    "baby.png with the fixed degradation" is the same image for every tool and student."""
    return zlib.crc32(Path(path).name.encode("utf-8"))


class DegradedImage:
    """A picklable zero-argument function: the HR file, degraded with ``spec`` and ``seed``
    (an ``ImageStore`` ``replace`` entry, so synthetic LR is made once and cached like files)."""

    def __init__(self, hr_path: str, spec: Degradation, seed: int):
        self.hr_path, self.spec, self.seed = hr_path, spec, seed

    def __call__(self) -> np.ndarray:
        return degrade(load_image(self.hr_path), self.spec, seed=self.seed)


def _list_folder(config: Mapping[str, Any], split: str) -> Path:
    """The folder holding ``split``'s list, by the kit's one rule (``data.lists.find_data_list``)."""
    return find_data_list(split, config_get(config, "data_root"), config_get(config, "csv_folder"),
                          int(config_get(config, "scaling_factor", 4))).parent


class UnpairedDataset(torch.utils.data.Dataset):
    """``(hr, clean_lr, real_lr)`` float32 tensors in [0, 1]:
    ``(3, crop, crop)``, ``(3, crop/s, crop/s)``, ``(3, crop/s, crop/s)`` with
    ``crop = config.crop_size`` and ``s = config.scaling_factor``.

    The clean pair is ``SRDataset``'s (same crops, flips, cache and checks) restricted to the
    clean images; the real-LR patch is a random crop, with its own flip/rotation, of a random
    real-LR image. ``len = clean images * patch_num``. Item ``k`` is a pure function of
    ``(config.seed, k)``. Real-LR images are decoded (or synthesised) once at construction, into
    the same kind of cache as ``config.cache`` says. ``config`` has its data paths filled in
    (``course_sr.training.data_config``): a dataset builds nothing on disk.

    Raises (at construction, naming the split and file): ``ValueError`` when the real-LR domain
    is empty or one of its images is smaller than the LR patch, or when ``data_root`` and
    ``HR_data_folder`` are both None; ``FileNotFoundError`` for a missing list or image.
    """

    def __init__(self, config: Mapping[str, Any], split: str | None = None, real_split: str | None = None):
        check_data_paths(config)                                # the caller resolves the paths
        split = split or config["train_split"]
        real_split = real_split or config["real_lr_split"]
        self.paired = SRDataset(split, config, train=True)      # the clean domain (all its checks)
        self.scale, self.seed = self.paired.scale, self.paired.seed
        self.patch_num, self.lr_patch = self.paired.patch_num, self.paired.lr_patch
        self.spec = get_degradation(config.get("degradation"), self.scale)
        csv = _list_folder(config, split)
        hr_root, lr_root = Path(config["HR_data_folder"]), Path(config["LR_data_folder"])

        rows = read_data_list(csv, split)
        self.n_clean = len(rows)
        if self.spec is not None and real_split == split:
            self.n_clean = (len(rows) + 1) // 2              # disjoint halves: first clean, second real
            real_rows = rows[self.n_clean:]
            if not real_rows:
                raise ValueError(f"real-LR domain is empty: split {split!r} ({list_path(csv, split)}) has "
                                 f"{len(rows)} image; its second half would be the synthetic real-LR "
                                 "domain, so it needs at least 2")
        else:
            try:
                csv = _list_folder(config, real_split)
                real_rows = read_data_list(csv, real_split)
            except ValueError as err:                          # the list exists but has no rows
                raise ValueError(f"real-LR domain is empty: {err}") from err

        # Real-LR images: files (LR column), or HR files degraded with the spec.
        paths, shapes, replace = [], [], {}
        for i, (h, l) in enumerate(real_rows):
            if self.spec is None:
                paths.append(str(lr_root / l))
                shapes.append((*image_size(lr_root / l), 3))
            else:
                if not h:
                    raise ValueError(f"real-LR split {real_split!r} ({list_path(csv, real_split)}): the row "
                                     f"with LR {l!r} has no HR file to synthesise a degraded image from")
                H, W = image_size(hr_root / h)
                paths.append(str(hr_root / h))
                shapes.append((H // self.scale, W // self.scale, 3))
                replace[i] = DegradedImage(str(hr_root / h), self.spec, image_seed(h))
            if min(shapes[-1][:2]) < self.lr_patch:
                what = "LR image" if self.spec is None else "degraded LR of"
                raise ValueError(f"real-LR split {real_split!r}: {what} {paths[-1]} is {shapes[-1][1]}x"
                                 f"{shapes[-1][0]}, smaller than the {self.lr_patch}x{self.lr_patch} LR patch "
                                 f"(crop_size {self.paired.crop_size} / scale {self.scale})")
        mode = self.paired.cache
        tag = f"{real_split}-real-x{self.scale}"
        if self.spec is not None:   # the synthetic images depend on the spec: so does their cache name
            tag += "-" + hashlib.sha1(repr(self.spec).encode()).hexdigest()[:8]
        self.real = ImageStore.build(paths, shapes, mode, self.paired.cache_dir, tag, replace=replace)

    def __len__(self) -> int:
        return self.n_clean * self.patch_num

    def clean_index(self, index: int) -> int:
        """The ``SRDataset`` item for our item ``index``: same image slot (so only clean images)
        and epoch, and a counter unique to ``index`` (fresh crops every epoch, like SRDataset)."""
        epoch, i = divmod(int(index), len(self))
        return epoch * len(self.paired) + i

    def real_params(self, index: int) -> tuple[int, int, int, int]:
        """``(image, y, x, t)`` of item ``index``'s real-LR patch (a function of (seed, index))."""
        j = item_random(self.seed + _REAL_SALT, int(index)) % len(self.real)
        h, w, _ = self.real.shapes[j]
        return (j, *crop_params(self.seed + _REAL_SALT + 1, int(index), h, w, self.lr_patch))

    def __getitem__(self, index: int):
        if int(index) < 0:
            raise IndexError(f"negative index {index}")
        clean_lr, hr = self.paired[self.clean_index(index)]
        j, y, x, t = self.real_params(index)
        p = self.lr_patch
        real = augment(self.real[j][y:y + p, x:x + p], t)
        return hr, clean_lr, to_tensor(real)


def degraded_pairs(config: Mapping[str, Any], split: str, spec="fixed", limit: int | None = None,
                   crop: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """A paired test set made from HR images: ``[(name, lr, hr), ...]``, uint8 ``(h, w, 3)`` and
    ``(s*h, s*w, 3)``.

    The HR images of ``split`` (the first ``limit`` when given; centre-cropped to a ``crop``-pixel
    square when ``crop > 0``) through :func:`degrade_images`. This is "Set5 with a fixed
    degradation". (Real LR files with HR, e.g. DIV2K valid "unknown", need no synthesis:
    ``SRDataset(split, config, train=False)``.)
    """
    images = []
    csv = _list_folder(config, split)
    for h, l in read_data_list(csv, split)[: limit or None]:
        if not h:
            raise ValueError(f"split {split!r} ({list_path(csv, split)}): the row with LR "
                             f"{l!r} has no HR file, so there is nothing to degrade or compare with")
        images.append(Path(config["HR_data_folder"]) / h)
    return degrade_images(images, spec, int(config["scaling_factor"]), crop)


def degrade_images(hr_paths, spec="fixed", scale: int = 4, crop: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, lr, hr)]`` from HR image files, each through :func:`degrade_image` (default
    ``"fixed"``): the same set every time, for every method and every folder layout."""
    spec = get_degradation(spec, scale)
    if spec is None:
        raise ValueError("degrading a test set needs a degradation spec (e.g. 'fixed'), got None")
    return [degrade_image(path, spec, scale, crop) for path in hr_paths]


def degrade_image(path, spec, scale: int = 4, crop: int = 0,
                  keep_gray: bool = False) -> tuple[str, np.ndarray, np.ndarray]:
    """``(name, lr, hr)`` of one HR image file: the HR (centre-cropped to a ``crop``-pixel square
    when ``crop > 0``) cropped top-left to a multiple of ``scale`` and degraded with ``spec``
    (a ``Degradation`` or what ``get_degradation`` reads), seeded by its file name
    (:func:`image_seed`), so "baby.png with the fixed degradation" is one image everywhere:
    ``degrade(hr, spec, seed=image_seed(path))``. ``name`` is the file's stem.

    ``keep_gray``: a gray file's ``hr`` stays ``(H, W)`` (what the metrics score as Y); it is
    degraded as RGB all the same (gray copied to R, G, B), so its ``lr`` is ``(h, w, 3)``.
    A ``ValueError`` from ``degrade`` (image too small for the kernel) names the file.
    """
    hr = load_image(path, keep_gray=keep_gray)
    if crop:
        c = min(crop, hr.shape[0], hr.shape[1])
        top, left = (hr.shape[0] - c) // 2, (hr.shape[1] - c) // 2
        hr = hr[top: top + c, left: left + c]
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    rgb = np.repeat(hr[:, :, None], 3, axis=2) if hr.ndim == 2 else hr
    try:
        lr = degrade(rgb, get_degradation(spec, scale), seed=image_seed(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return Path(path).stem, lr, hr


def tensor_pairs(triples) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(lr, hr)]`` float32 ``(3, h, w)`` tensors in [0, 1] from :func:`degraded_pairs` /
    :func:`degrade_images` triples ``(name, lr, hr)`` (what validation and the comparison score)."""
    return [(to_tensor(lr), to_tensor(hr)) for _, lr, hr in triples]
