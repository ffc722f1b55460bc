"""The embedded sample: layout, lists, MATLAB-path LR, one atomic build, reuse, config hook."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from easydict import EasyDict

from course_sr.data import sample
from course_sr.data.lists import read_data_list
from course_sr.imresize import imresize
from course_sr.utils import load_image

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("split, n", [("sample_train", 6), ("sample_test", 4), ("sample_unpaired_clean", 6),
                                      ("sample_unpaired_real", 6)])
def test_lists_point_at_existing_pairs(sample_root, split, n):
    rows = read_data_list(sample_root / "data_lists", split)
    assert len(rows) == n and rows == sorted(rows)
    for hr, lr in rows:
        assert (sample_root / hr).is_file() and (sample_root / lr).is_file()
        assert lr.endswith(f"{Path(hr).stem}x4.png")


def test_train_and_test_photos_are_disjoint(sample_root):
    names = {split: {Path(hr).stem for hr, _ in read_data_list(sample_root / "data_lists", split)}
             for split in ("sample_train", "sample_test")}
    assert not names["sample_train"] & names["sample_test"]
    sources = {split: {sample.TRAIN_IMAGES.get(n, sample.TEST_IMAGES.get(n))[0] for n in names[split]}
               for split in names}
    assert not sources["sample_train"] & sources["sample_test"]


@pytest.mark.parametrize("split", sample.SPLITS)
def test_lr_is_matlab_imresize_of_top_left_crop(sample_root, split):
    for hr_rel, lr_rel in read_data_list(sample_root / "data_lists", split):
        hr, lr = load_image(sample_root / hr_rel), load_image(sample_root / lr_rel)
        h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
        np.testing.assert_array_equal(lr, imresize(hr[:h, :w], scalar_scale=0.25), err_msg=lr_rel)
        if split != "sample_test":
            assert hr.shape[0] % 4 == 0 and hr.shape[1] % 4 == 0 and max(hr.shape) <= 512
        else:
            assert max(hr.shape) <= 512


def test_unpaired_halves_are_disjoint_and_make_up_each_train_photo(sample_root):
    """The clean and real domains share no pixel, and together they are exactly the train photos."""
    lists = {split: read_data_list(sample_root / "data_lists", split) for split in sample.HALVES}
    for (train_hr, _), (left_hr, _), (right_hr, _) in zip(read_data_list(sample_root / "data_lists", "sample_train"),
                                                          lists["sample_unpaired_clean"], lists["sample_unpaired_real"]):
        name = Path(train_hr).stem
        assert Path(left_hr).stem == f"{name}_left" and Path(right_hr).stem == f"{name}_right"
        left, right = load_image(sample_root / left_hr), load_image(sample_root / right_hr)
        np.testing.assert_array_equal(np.concatenate([left, right], axis=1), load_image(sample_root / train_hr))
        assert abs(left.shape[1] - right.shape[1]) <= 4 and left.shape[1] % 4 == 0


def test_test_split_has_a_side_that_is_not_a_multiple_of_4(sample_root):
    shapes = [load_image(sample_root / hr).shape for hr, _ in read_data_list(sample_root / "data_lists", "sample_test")]
    assert any(h % 4 or w % 4 for h, w, _ in shapes)      # exercises the top-left crop


def test_marker_lists_every_file_with_its_hash(sample_root):
    info = json.loads((sample_root / sample.MARKER).read_text())
    assert info["version"] == sample.SAMPLE_VERSION
    files = {p.relative_to(sample_root).as_posix() for p in sample_root.rglob("*") if p.is_file()}
    assert files - {sample.MARKER} == set(info["files"])


def test_committed_reference_lists_match_the_build(sample_root):
    for split in sample.SPLITS:
        name = f"{split}_images.csv"
        assert (REPO / "data_lists" / name).read_text() == (sample_root / "data_lists" / name).read_text()


def test_build_is_deterministic_and_reused(tmp_path, sample_root):
    root = sample.ensure_sample(tmp_path / "again")
    marker = root / sample.MARKER
    assert json.loads(marker.read_text())["files"] == json.loads((sample_root / sample.MARKER).read_text())["files"]
    stamp = marker.stat().st_mtime_ns
    assert sample.ensure_sample(root) == root and marker.stat().st_mtime_ns == stamp   # reused
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]               # no temp left


def test_outdated_or_incomplete_sample_is_rebuilt(tmp_path, sample_root):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(sample_root, root)
    info = json.loads((root / sample.MARKER).read_text())
    info["version"] = -1
    (root / sample.MARKER).write_text(json.dumps(info))
    (root / "sample/train/HR/astronaut.png").unlink()
    assert sample.ensure_sample(root) == root
    assert json.loads((root / sample.MARKER).read_text())["version"] == sample.SAMPLE_VERSION
    assert (root / "sample/train/HR/astronaut.png").is_file()


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("student data")
    with pytest.raises(FileExistsError, match="not empty and holds no course_sr sample"):
        sample.ensure_sample(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "student data"


def test_default_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(sample.ENV_DIR, str(tmp_path / "cache"))
    assert sample.default_root() == tmp_path / "cache"
    monkeypatch.delenv(sample.ENV_DIR)
    assert sample.default_root() == Path.home() / ".cache" / "course_sr" / "sample"


def test_resolve_data_fills_folders_only_for_the_sample(monkeypatch, sample_root):
    monkeypatch.setenv(sample.ENV_DIR, str(sample_root))
    cfg = sample.resolve_data(EasyDict(data_root=None, csv_folder=None, HR_data_folder=None, LR_data_folder=None))
    assert cfg.data_root == str(sample_root) and cfg.csv_folder == str(sample_root / "data_lists")
    assert cfg.HR_data_folder == cfg.LR_data_folder == str(sample_root)
    mine = EasyDict(data_root="/data", csv_folder="lists", HR_data_folder="/data", LR_data_folder="/data")
    assert sample.resolve_data(EasyDict(mine)) == mine


def test_quick_config_reads_the_sample_through_srdataset(monkeypatch, sample_root):
    from course_sr.config import get_config
    from course_sr.datasets import SRDataset

    monkeypatch.setenv(sample.ENV_DIR, str(sample_root))
    cfg = sample.resolve_data(get_config("quick"))      # the entry points resolve; datasets build nothing
    assert cfg.data_root == str(sample_root)
    ds = SRDataset(cfg.train_split, cfg)
    lr, hr = ds[0]
    assert lr.shape == (3, cfg.crop_size // 4, cfg.crop_size // 4) and hr.shape == (3, cfg.crop_size, cfg.crop_size)
    assert len(SRDataset(cfg.val_split, cfg)) == 4


def test_main_prints_the_root(capsys, sample_root):
    assert sample.main(["--root", str(sample_root)]) == 0
    out = capsys.readouterr().out
    assert str(sample_root) in out and "sample_train: 6 images" in out
