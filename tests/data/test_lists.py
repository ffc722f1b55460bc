"""create_data_lists / read_data_list: layouts, names, missing LR, unpaired splits, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from course_sr.__main__ import main as cli
from course_sr.data import lists as dl
from course_sr.imresize import imresize
from course_sr.utils import load_image, save_image

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "data_lists"


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()


def csv_text(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_benchmark_and_div2k_layouts(tmp_path):
    root = tmp_path / "data"
    touch(root, "benchmark/Set5/HR/bird.png", "benchmark/Set5/HR/baby.png",
          "benchmark/Set5/LR_bicubic/X4/birdx4.png", "benchmark/Set5/LR_bicubic/X4/babyx4.png",
          "DIV2K/DIV2K_valid_HR/0802.png", "DIV2K/DIV2K_valid_HR/0801.png",
          "DIV2K/DIV2K_valid_LR_bicubic/X4/0801x4.png", "DIV2K/DIV2K_valid_LR_bicubic/X4/0802x4.png")
    written = dl.create_data_lists(root, tmp_path / "lists")
    assert set(written) == {"Set5", "valid"}                # splits=None: what is there
    assert csv_text(written["Set5"]) == [
        "benchmark/Set5/HR/baby.png,benchmark/Set5/LR_bicubic/X4/babyx4.png",
        "benchmark/Set5/HR/bird.png,benchmark/Set5/LR_bicubic/X4/birdx4.png"]
    assert dl.read_data_list(tmp_path / "lists", "valid") == [
        ("DIV2K/DIV2K_valid_HR/0801.png", "DIV2K/DIV2K_valid_LR_bicubic/X4/0801x4.png"),
        ("DIV2K/DIV2K_valid_HR/0802.png", "DIV2K/DIV2K_valid_LR_bicubic/X4/0802x4.png")]


def test_names_with_dots_upper_case_extensions_and_commas(tmp_path):
    root = tmp_path / "data"
    touch(root, "benchmark/Set14/HR/img.v2.PNG", "benchmark/Set14/LR_bicubic/X4/img.v2x4.png",
          "benchmark/Set14/HR/a,b.png", "benchmark/Set14/LR_bicubic/X4/a,bx4.PNG",
          "benchmark/Set14/HR/.hidden.png", "benchmark/Set14/HR/notes.txt")
    dl.create_data_lists(root, tmp_path / "lists", splits=["Set14"])
    assert dl.read_data_list(tmp_path / "lists", "Set14") == [
        ("benchmark/Set14/HR/a,b.png", "benchmark/Set14/LR_bicubic/X4/a,bx4.PNG"),
        ("benchmark/Set14/HR/img.v2.PNG", "benchmark/Set14/LR_bicubic/X4/img.v2x4.png")]



def test_webp_files_are_listed_like_any_image_the_kit_reads(tmp_path):
    """The folder scan uses the kit's one extension list (course_sr.utils.IMAGE_EXTENSIONS), which
    has .webp because load_image reads it; a .png partner is still preferred to a .webp one."""
    root = tmp_path / "data"
    touch(root, "benchmark/Set5/HR/bird.webp", "benchmark/Set5/LR_bicubic/X4/birdx4.webp",
          "benchmark/Set5/HR/baby.png", "benchmark/Set5/LR_bicubic/X4/babyx4.webp",
          "benchmark/Set5/LR_bicubic/X4/babyx4.png")
    dl.create_data_lists(root, tmp_path / "lists", splits=["Set5"])
    assert dl.read_data_list(tmp_path / "lists", "Set5") == [
        ("benchmark/Set5/HR/baby.png", "benchmark/Set5/LR_bicubic/X4/babyx4.png"),
        ("benchmark/Set5/HR/bird.webp", "benchmark/Set5/LR_bicubic/X4/birdx4.webp")]

def test_missing_lr_error_lists_every_file(tmp_path):
    root = tmp_path / "data"
    touch(root, "benchmark/Set5/HR/a.png", "benchmark/Set5/HR/b.png", "benchmark/Set5/HR/c.png",
          "benchmark/Set5/LR_bicubic/X4/bx4.png", "benchmark/Set14/HR/d.png")
    with pytest.raises(FileNotFoundError, match="3 LR file") as err:
        dl.create_data_lists(root, tmp_path / "lists", splits=["Set5", "Set14"])
    for name in ("Set5/LR_bicubic/X4/ax4.png", "Set5/LR_bicubic/X4/cx4.png", "Set14/LR_bicubic/X4/dx4.png"):
        assert name in str(err.value)
    assert not (tmp_path / "lists").exists()               # nothing half-written


def test_make_missing_lr_uses_matlab_imresize(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)          # not multiples of 4
    save_image(root / "benchmark/Set5/HR/x.png", hr)
    dl.create_data_lists(root, tmp_path / "lists", splits=["Set5"], make_missing_lr=True)
    lr = load_image(root / "benchmark/Set5/LR_bicubic/X4/xx4.png")
    np.testing.assert_array_equal(lr, imresize(hr[:28, :40], scalar_scale=0.25))
    assert dl.read_data_list(tmp_path / "lists", "Set5") == [
        ("benchmark/Set5/HR/x.png", "benchmark/Set5/LR_bicubic/X4/xx4.png")]


def test_unpaired_splits_are_disjoint_and_lr_only_rows_have_empty_hr(tmp_path):
    root = tmp_path / "data"
    for i in (1, 2, 400, 401, 402, 800):
        touch(root, f"DIV2K/DIV2K_train_HR/{i:04d}.png", f"DIV2K/DIV2K_train_LR_bicubic/X4/{i:04d}x4.png",
              f"DIV2K/DIV2K_train_LR_unknown/X4/{i:04d}x4.png")
    touch(root, "DIV2K/DIV2K_valid_HR/0801.png", "DIV2K/DIV2K_valid_LR_unknown/X4/0801x4.png")
    written = dl.create_data_lists(root, tmp_path / "lists")
    assert set(written) == {"train", "unpaired_hr", "unpaired_real_lr", "valid_unknown"}
    hr = dl.read_data_list(tmp_path / "lists", "unpaired_hr")
    real = dl.read_data_list(tmp_path / "lists", "unpaired_real_lr")
    assert [Path(h).stem for h, _ in hr] == ["0001", "0002", "0400"]
    assert [l for _, l in hr][0] == "DIV2K/DIV2K_train_LR_bicubic/X4/0001x4.png"
    assert real == [("", f"DIV2K/DIV2K_train_LR_unknown/X4/{i:04d}x4.png") for i in (401, 402, 800)]
    assert csv_text(written["unpaired_real_lr"])[0] == ",DIV2K/DIV2K_train_LR_unknown/X4/0401x4.png"
    assert dl.read_data_list(tmp_path / "lists", "valid_unknown") == [
        ("DIV2K/DIV2K_valid_HR/0801.png", "DIV2K/DIV2K_valid_LR_unknown/X4/0801x4.png")]


def test_unknown_degradation_is_never_synthesised(tmp_path):
    root = tmp_path / "data"
    touch(root, "DIV2K/DIV2K_valid_HR/0801.png")
    with pytest.raises(FileNotFoundError, match="DIV2K_valid_LR_unknown/X4/0801x4.png"):
        dl.create_data_lists(root, tmp_path / "lists", splits=["valid_unknown"], make_missing_lr=True)


@pytest.mark.parametrize("setup, splits, error, match", [
    (lambda r: None, None, FileNotFoundError, "no image folders"),
    (lambda r: (r / "benchmark/Set5/HR").mkdir(parents=True), ["Set5"], FileNotFoundError, "no HR images in"),
    (lambda r: None, ["Set6"], ValueError, "unknown split"),
])
def test_empty_or_wrong_requests(tmp_path, setup, splits, error, match):
    setup(tmp_path)
    with pytest.raises(error, match=match):
        dl.create_data_lists(tmp_path, tmp_path / "lists", splits=splits)


def test_missing_data_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="data root not found"):
        dl.create_data_lists(tmp_path / "nope", tmp_path / "lists")


@pytest.mark.parametrize("content, error, match", [
    (None, FileNotFoundError, r"data list not found: .*Set5_images\.csv"),
    ("", ValueError, "is empty"),
    ("\n\n", ValueError, "is empty"),
    ("a.png,ax4.png\nb.png\n", ValueError, r"line 2: expected 2 fields"),
    ("a.png,ax4.png,extra\n", ValueError, r"line 1: expected 2 fields"),
    ("a.png,\n", ValueError, r"line 1: the LR_file field is empty"),
])
def test_read_data_list_errors(tmp_path, content, error, match):
    if content is not None:
        (tmp_path / "Set5_images.csv").write_text(content)
    with pytest.raises(error, match=match):
        dl.read_data_list(tmp_path, "Set5")


def test_main_writes_lists_and_reports_errors(tmp_path, capsys):
    touch(tmp_path, "benchmark/Set5/HR/a.png", "benchmark/Set5/LR_bicubic/X4/ax4.png")
    assert dl.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "lists")]) == 0
    assert "Set5:     1 rows" in capsys.readouterr().out
    assert cli(["data-lists", "--data-root", str(tmp_path / "nope"), "--out", str(tmp_path / "lists")]) == 2
    assert "data-lists: error: data root not found" in capsys.readouterr().err


# ---- the committed lists -------------------------------------------------------------
EXPECTED_ROWS = {"train": 800, "valid": 100, "Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100,
                 "unpaired_hr": 400, "unpaired_real_lr": 400, "valid_unknown": 100}


def test_committed_lists_are_what_create_data_lists_writes(tmp_path):
    """Rebuild a placeholder tree from the committed lists (plus the LR-unknown files outside
    the unpaired range, as the real archive has them) and regenerate: byte-identical."""
    root = tmp_path / "data"
    for split in EXPECTED_ROWS:
        for hr, lr in dl.read_data_list(COMMITTED, split):
            touch(root, *(p for p in (hr, lr) if p))
    touch(root, *(f"DIV2K/DIV2K_train_LR_unknown/X4/{i:04d}x4.png" for i in range(1, 401)))
    written = dl.create_data_lists(root, tmp_path / "lists")
    assert set(written) == set(EXPECTED_ROWS)
    for split, path in written.items():
        assert path.read_text() == (COMMITTED / f"{split}_images.csv").read_text(), split
        assert len(csv_text(path)) == EXPECTED_ROWS[split], split


def test_committed_lists_name_the_standard_images():
    stems = {s: [Path(hr).stem for hr, _ in dl.read_data_list(COMMITTED, s)] for s in EXPECTED_ROWS}
    assert stems["train"] == [f"{i:04d}" for i in range(1, 801)]
    assert stems["valid"] == stems["valid_unknown"] == [f"{i:04d}" for i in range(801, 901)]
    assert stems["unpaired_hr"] == [f"{i:04d}" for i in range(1, 401)]
    assert stems["Urban100"] == [f"img_{i:03d}" for i in range(1, 101)]
    assert sorted(stems["Set5"]) == ["baby", "bird", "butterfly", "head", "woman"]
    b100 = stems["B100"]          # BSDS300 test ids (iids_test.txt), e.g. 3096, 8023, 101085
    assert len(set(b100)) == 100 and all(s.isdigit() for s in b100)
    assert {"3096", "8023", "12084", "101085", "385039"} <= set(b100)


def test_committed_set14_matches_the_shared_benchmark(shared_benchmarks):
    names = sorted(p.stem for p in (shared_benchmarks / "Set14" / "HR").glob("*.png"))
    assert sorted(Path(hr).stem for hr, _ in dl.read_data_list(COMMITTED, "Set14")) == names


# ---- the one rule for where a list lives ----------------------------------------------
def test_canonical_lists_are_the_repository_folder_in_a_checkout():
    assert dl.canonical_dir() == COMMITTED
    assert len(dl.read_data_list(dl.canonical_dir(), "train")) == 800


def test_find_data_list_order(tmp_path):
    root = tmp_path / "data"
    # no data at all: says which folder is absent and the download command
    with pytest.raises(dl.MissingDataError, match=r"split 'train': no data in .*DIV2K/DIV2K_train_HR does not "
                                                   r"exist.*download --root .*data --what div2k"):
        dl.find_data_list("train", root)
    # the standard folder present: the course's list applies, from any working directory
    touch(root, "DIV2K/DIV2K_train_HR/0001.png")
    assert dl.find_data_list("train", root) == COMMITTED / "train_images.csv"
    # the data root's own list takes precedence
    dl.write_data_list(root / "data_lists" / "train_images.csv", [("a.png", "ax4.png")])
    assert dl.find_data_list("train", root) == root / "data_lists" / "train_images.csv"
    # an explicit csv_folder is used as given (no fallback), with the command that makes it
    with pytest.raises(dl.MissingDataError, match=r"data list not found: .*elsewhere/train_images.csv.*data-lists"):
        dl.find_data_list("train", root, tmp_path / "elsewhere")
    # canonical lists are x4 only, and only for the course's splits
    (root / "data_lists" / "train_images.csv").unlink()
    with pytest.raises(dl.MissingDataError, match=r"no data list for split 'train'.*data-lists --data-root"):
        dl.find_data_list("train", root, scale=2)
    with pytest.raises(dl.MissingDataError, match=r"split 'mine'.*not one of the course's splits"):
        dl.find_data_list("mine", root)


def test_missing_files_are_one_line_with_the_fix(tmp_path):
    root = tmp_path / "data"
    for i in (1, 2):
        touch(root, f"DIV2K/DIV2K_train_HR/{i:04d}.png", f"DIV2K/DIV2K_train_LR_bicubic/X4/{i:04d}x4.png")
    rows = dl.read_data_list(COMMITTED, "train")
    files = [str(root / p) for row in rows for p in row]
    with pytest.raises(dl.MissingDataError) as err:
        dl.check_listed_files("train", COMMITTED / "train_images.csv", files, root)
    msg = str(err.value)
    assert "\n" not in msg and "1596 of the 1600 files listed in" in msg and "and 1593 more" in msg
    assert "the course's list of the whole set" in msg and f"data-lists --data-root {root}" in msg
    # the partial root with its own lists (what data-lists writes) passes
    dl.create_data_lists(root)
    cfg = dict(data_root=str(root), csv_folder=None, scaling_factor=4)
    assert dl.check_splits(cfg, ["train"]) == {"train": root / "data_lists" / "train_images.csv"}


def test_data_lists_go_to_the_data_root_from_any_directory(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    touch(root, "benchmark/Set5/HR/a.png", "benchmark/Set5/LR_bicubic/X4/ax4.png")
    monkeypatch.chdir(REPO)                     # even from the repository root: never data_lists/ there
    before = (COMMITTED / "Set5_images.csv").read_text()
    assert dl.main(["--data-root", str(root)]) == 0
    assert (root / "data_lists" / "Set5_images.csv").read_text() == \
        "benchmark/Set5/HR/a.png,benchmark/Set5/LR_bicubic/X4/ax4.png\n"
    assert (COMMITTED / "Set5_images.csv").read_text() == before
    assert dl.find_data_list("Set5", root) == root / "data_lists" / "Set5_images.csv"
    touch(root, "benchmark/Set5/HR/b.png", "benchmark/Set5/LR_bicubic/X4/bx4.png")
    capsys.readouterr()
    assert dl.main(["--data-root", str(root)]) == 0
    assert "Set5:     2 rows" in (out := capsys.readouterr().out) and "(replaced a list of 1 rows)" in out


def test_the_canonical_lists_are_never_silently_replaced(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"                    # a partial data root: 8 training images
    for i in range(1, 9):
        touch(root, f"DIV2K/DIV2K_train_HR/{i:04d}.png", f"DIV2K/DIV2K_train_LR_bicubic/X4/{i:04d}x4.png")
    touch(root, "benchmark/B100/HR/3096.png", "benchmark/B100/LR_bicubic/X4/3096x4.png")
    before = {p.name: p.read_text() for p in COMMITTED.glob("*.csv")}
    monkeypatch.chdir(REPO)
    assert cli(["data-lists", "--data-root", str(root), "--out", "data_lists"]) == 2
    err = capsys.readouterr().err
    assert "refusing to change the course's canonical lists" in err and "train (800 rows -> 8)" in err
    assert "B100 (100 rows -> 1)" in err and "--replace-canonical" in err
    assert {p.name: p.read_text() for p in COMMITTED.glob("*.csv")} == before
    with pytest.raises(dl.CanonicalListError):
        dl.create_data_lists(root, COMMITTED, splits=["train"])
    # the same content is not a change: regenerating from the complete data works without the flag
    full = tmp_path / "full"
    for hr, lr in dl.read_data_list(COMMITTED, "Set5"):
        touch(full, hr, lr)
    monkeypatch.setattr(dl, "write_data_list", lambda path, rows: path)     # keep the checkout untouched
    assert dl.create_data_lists(full, COMMITTED, splits=["Set5"]) == {"Set5": COMMITTED / "Set5_images.csv"}
    assert dl.create_data_lists(root, COMMITTED, splits=["train"], replace_canonical=True)


@pytest.mark.parametrize("folder", ["Set5", "set5", "benchmark/SET5"])
def test_data_lists_accept_the_layouts_evaluate_accepts(tmp_path, folder):
    from course_sr.results.evaluate import image_pairs

    root = tmp_path / "shared"
    touch(root, f"{folder}/HR/baby.png", f"{folder}/LR_bicubic/X4/babyx4.png",
          "Mine/HR/x.png", "Mine/LR_bicubic/X4/xx4.png")
    written = dl.create_data_lists(root)
    assert set(written) == {"Set5"}
    assert dl.read_data_list(root / "data_lists", "Set5") == [(f"{folder}/HR/baby.png", f"{folder}/LR_bicubic/X4/babyx4.png")]
    assert dl.create_data_lists(root, splits=["Mine"])["Mine"].read_text() == "Mine/HR/x.png,Mine/LR_bicubic/X4/xx4.png\n"
    # evaluate finds the same files with the lists and without them
    pairs = image_pairs("Set5", root)
    (root / "data_lists" / "Set5_images.csv").unlink()
    assert image_pairs("Set5", root) == pairs == [("baby", root / folder / "HR/baby.png",
                                                   root / folder / "LR_bicubic/X4/babyx4.png")]
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['Nope'\].*no <Set>/HR folder"):
        dl.create_data_lists(root, splits=["Nope"])
