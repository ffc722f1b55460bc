"""The course's splits and where each one's image folders live under a data root.

The standard layouts (what ``python -m course_sr download`` extracts)::

    <root>/DIV2K/DIV2K_train_HR/0001.png          <root>/DIV2K/DIV2K_train_LR_bicubic/X4/0001x4.png
    <root>/DIV2K/DIV2K_valid_HR/0801.png          <root>/DIV2K/DIV2K_valid_LR_bicubic/X4/0801x4.png
    <root>/benchmark/<Set>/HR/<name>.png          <root>/benchmark/<Set>/LR_bicubic/X4/<name>x4.png
    <root>/DIV2K/DIV2K_train_LR_unknown/X4/0401x4.png    (NTIRE 2017 track 2, "unknown" degradation)
    <root>/DIV2K/DIV2K_valid_LR_unknown/X4/0801x4.png

Splits (``SPLITS``):

==================  ================================================  ==============================
split               HR column                                         LR column
==================  ================================================  ==============================
train               DIV2K train HR (0001-0800)                        bicubic x4
valid               DIV2K valid HR (0801-0900)                        bicubic x4
Set5, Set14,        ``benchmark/<Set>/HR``                            bicubic x4
B100, Urban100
unpaired_hr         DIV2K train HR 0001-0400 (CycleSR's clean domain)  bicubic x4 of the same image
unpaired_real_lr    EMPTY: real LR images have no HR counterpart      track-2 unknown x4, 0401-0800
valid_unknown       DIV2K valid HR                                    track-2 unknown x4 (paired)
==================  ================================================  ==============================

HR 0001-0400 and real LR 0401-0800 come from different images, so no pair leaks between
CycleSR's two domains.

Layouts the folder scan accepts (:func:`find_layout`, the same in ``data-lists`` and
``evaluate``): the standard ones above; for a benchmark set or any other set name,
``<root>/benchmark/<Set>/`` or ``<root>/<Set>/`` holding ``HR/`` and ``LR_bicubic/X<scale>/``
(folder names matched case-insensitively, so ``--data-root ../shared/benchmarks`` works).

Names and paths only: the scan looks at folder names, it opens no file and writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
STANDARD_SPLITS = ("train", "valid") + BENCHMARK_SETS
UNPAIRED_SPLITS = ("unpaired_hr", "unpaired_real_lr", "valid_unknown")
SPLITS = STANDARD_SPLITS + UNPAIRED_SPLITS
# The `python -m course_sr download --what` group(s) that bring each split's files.
DOWNLOAD_GROUPS = {"train": "div2k", "valid": "div2k", **{s: "benchmark" for s in BENCHMARK_SETS},
                   "unpaired_hr": "div2k", "unpaired_real_lr": "unknown", "valid_unknown": "div2k unknown"}


@dataclass(frozen=True)
class Layout:
    """Where one split's files live, relative to the data root.

    ``hr_dir`` None: an LR-only (unpaired) split. ``ids``: inclusive range of DIV2K image numbers
    to keep (None: every image in the folder). ``lr_makeable``: bicubic LR can be regenerated
    from HR; the track-2 "unknown" degradation cannot.
    """

    hr_dir: str | None
    lr_dir: str
    ids: tuple[int, int] | None = None
    lr_makeable: bool = True


def layouts(scale: int = 4) -> dict[str, Layout]:
    """The standard layout of every split in ``SPLITS`` at this scale."""
    x = f"X{scale}"
    out = {
        "train": Layout("DIV2K/DIV2K_train_HR", f"DIV2K/DIV2K_train_LR_bicubic/{x}"),
        "valid": Layout("DIV2K/DIV2K_valid_HR", f"DIV2K/DIV2K_valid_LR_bicubic/{x}"),
    }
    for s in BENCHMARK_SETS:
        out[s] = Layout(f"benchmark/{s}/HR", f"benchmark/{s}/LR_bicubic/{x}")
    out["unpaired_hr"] = Layout("DIV2K/DIV2K_train_HR", f"DIV2K/DIV2K_train_LR_bicubic/{x}", (1, 400))
    out["unpaired_real_lr"] = Layout(None, f"DIV2K/DIV2K_train_LR_unknown/{x}", (401, 800), False)
    out["valid_unknown"] = Layout("DIV2K/DIV2K_valid_HR", f"DIV2K/DIV2K_valid_LR_unknown/{x}", None, False)
    return out


def find_dir(parent, name: str) -> Path | None:
    """``parent/name``, or a folder differing only in case (``set5`` -> ``Set5``); None if neither."""
    parent = Path(parent)
    if (parent / name).is_dir():
        return parent / name
    if parent.is_dir():
        for p in sorted(parent.iterdir()):
            if p.is_dir() and p.name.lower() == name.lower():
                return p
    return None


def find_layout(data_root, split: str, scale: int = 4) -> Layout | None:
    """The folders of ``split`` under ``data_root``, as the scan finds them (module docstring).

    DIV2K splits: their standard layout. A benchmark set, or any other name: the first of
    ``<root>/benchmark/<split>/`` and ``<root>/<split>/`` (case-insensitive) that holds ``HR/``,
    with ``LR_bicubic/X<scale>/`` beside it. None when the split has no folder there.
    """
    root = Path(data_root)
    standard = layouts(scale)
    if split in standard and split not in BENCHMARK_SETS:
        return standard[split]
    for parent in (root / "benchmark", root):
        folder = find_dir(parent, split)
        if folder is not None and (folder / "HR").is_dir():
            rel = folder.relative_to(root).as_posix()
            return Layout(f"{rel}/HR", f"{rel}/LR_bicubic/X{scale}")
    return standard.get(split)
