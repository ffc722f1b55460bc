"""Fixtures shared by the whole suite.

- ``shared_benchmarks``: ``../shared/benchmarks`` beside the repository (Set5/Set14 with
  MATLAB-made LR files). A user's clone has no ``../shared``: tests using it skip, never fail.
- ``sample_root``: the embedded sample dataset (scikit-image photos, no download), built once
  per test session in a temporary folder.
- ``imagenet_vgg_home``: a ``TORCH_HOME`` holding a VGG19 state dict with RANDOM weights under
  torchvision's own file name (``hub/checkpoints/vgg19-dcbb9e9d.pth``, about 550 MB), so the real
  ``vgg_weights="imagenet"`` loading path runs offline. Made once per session in a temporary
  folder (never in the repository), and only by the tests that ask for it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = Path(os.environ.get("COURSE_SR_SHARED", REPO.parent / "shared")) / "benchmarks"


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    if not (SHARED_BENCHMARKS / "Set5" / "HR").is_dir():
        pytest.skip(f"{SHARED_BENCHMARKS} is absent (only the course's dev checkout has ../shared)")
    return SHARED_BENCHMARKS


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    from course_sr.data.sample import ensure_sample

    return ensure_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def imagenet_vgg_home(tmp_path_factory) -> Path:
    import torch
    from torchvision.models import VGG19_Weights, vgg19

    home = tmp_path_factory.mktemp("torch_home")
    name = Path(VGG19_Weights.IMAGENET1K_V1.url).name              # vgg19-dcbb9e9d.pth
    target = home / "hub" / "checkpoints" / name
    target.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(vgg19().state_dict(), target)
    return home
