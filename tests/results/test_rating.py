"""Rating pack round trip (shuffle, key, anonymity), MOS math, and bad sheets."""
from __future__ import annotations

import csv
import errno
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from course_sr.results import rating, rating_pack
from course_sr.plumbing.errors import UserError
from course_sr.results.rating import make_rating_pack, mean_ci95, score_ratings

METHODS = ("bicubic", "SRResNet", "SRGAN")
IMAGES = ("baby", "bird", "butterfly", "head", "woman")


def _method_dirs(tmp_path, methods=METHODS, images=IMAGES):
    """Tiny distinct images: pixel (0, 0) encodes (method, image), so the key can be checked."""
    dirs = {}
    for mi, m in enumerate(methods):
        d = tmp_path / "in" / m
        d.mkdir(parents=True)
        for ii, img in enumerate(images):
            a = np.full((6, 5, 3), 10 * ii, np.uint8)
            a[0, 0] = (mi, ii, 200)
            Image.fromarray(a).save(d / f"{img}.png")
        dirs[m] = d
    return dirs


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _fill(sheet, out, score_of):
    """Copy a sheet, writing score_of(file) (str) into the score column."""
    rows = _read_csv(sheet)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "score"])
        for r in rows:
            w.writerow([r["file"], score_of(r["file"])])
    return out


@pytest.fixture
def pack(tmp_path):
    dirs = _method_dirs(tmp_path)
    info = make_rating_pack(dirs, tmp_path / "pack", seed=3, raters=2)
    return dirs, info


def test_pack_round_trip(pack, tmp_path):
    dirs, info = pack
    out = tmp_path / "pack"
    key = _read_csv(out / "_key" / "key.csv")
    files = sorted(p.name for p in (out / "images").iterdir())
    # a permutation: every (image, method) pair exactly once, one file each
    assert len(files) == len(METHODS) * len(IMAGES) == info["n_files"]
    assert sorted(r["file"] for r in key) == files
    assert sorted((r["image"], r["method"]) for r in key) == sorted((i, m) for i in IMAGES for m in METHODS)
    # the key maps back exactly: the anonymous file holds the source's pixels
    for r in key:
        got = np.asarray(Image.open(out / "images" / r["file"]))
        want = np.asarray(Image.open(dirs[r["method"]] / f"{r['image']}.png"))
        np.testing.assert_array_equal(got, want)
    # names reveal nothing: numbered names only, no metadata carried into the PNGs
    for name in files:
        assert re.fullmatch(r"img_\d{4}\.png", name)
        assert not Image.open(out / "images" / name).info.get("source")
    # shuffled: consecutive numbers are not grouped by method or image
    methods_in_order = [r["method"] for r in sorted(key, key=lambda r: r["file"])]
    assert methods_in_order != sorted(methods_in_order)
    assert methods_in_order != [m for _ in IMAGES for m in METHODS]
    # sheets: template + two raters, each listing every file once, raters in their own orders
    sheets = [out / "sheet_template.csv", out / "ratings_rater01.csv", out / "ratings_rater02.csv"]
    assert info["sheets"] == [str(s) for s in sheets]
    orders = []
    for s in sheets:
        rows = _read_csv(s)
        assert sorted(r["file"] for r in rows) == files and all(r["score"] == "" for r in rows)
        orders.append([r["file"] for r in rows])
    assert len({tuple(o) for o in orders}) == 3
    readme = (out / "README.txt").read_text()
    assert "5  excellent" in readme and "1  bad" in readme and "_key" in readme
    assert not any(m in readme for m in METHODS)


def test_pack_is_deterministic_with_seed(tmp_path):
    dirs = _method_dirs(tmp_path)
    keys = []
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        make_rating_pack(dirs, tmp_path / name, seed=seed, raters=["ann", "bo"])
        keys.append(((tmp_path / name / "_key" / "key.csv").read_text(),
                     (tmp_path / name / "ratings_bo.csv").read_text()))
    assert keys[0] == keys[1]
    assert keys[0][0] != keys[2][0] and keys[0][1] != keys[2][1]


def test_scores_known_values(pack, tmp_path):
    """Rater 1 gives bicubic 2, SRResNet 3, SRGAN 4 + image index parity; rater 2 leaves SRGAN blank."""
    _, info = pack
    out = tmp_path / "pack"
    key = {r["file"]: (r["method"], r["image"]) for r in _read_csv(out / "_key" / "key.csv")}
    base = {"bicubic": 2, "SRResNet": 3, "SRGAN": 4}

    def rater1(f):
        m, img = key[f]
        return str(base[m] + IMAGES.index(img) % 2)

    def rater2(f):
        m, _ = key[f]
        return "" if m == "SRGAN" else "5"

    s1 = _fill(out / "ratings_rater01.csv", tmp_path / "r1.csv", rater1)
    s2 = _fill(out / "ratings_rater02.csv", tmp_path / "r2.csv", rater2)
    res = score_ratings([s1, s2], out)              # the pack folder works as the key path
    assert list(res) == list(METHODS)                # the order the methods were given in
    for m in METHODS:
        vals = [base[m] + i % 2 for i in range(len(IMAGES))] + ([5] * len(IMAGES) if m != "SRGAN" else [])
        mos, ci = mean_ci95(vals)
        assert res[m]["mos"] == pytest.approx(np.mean(vals))
        assert res[m]["ci95"] == pytest.approx(ci)
        assert res[m]["n"] == len(vals)
        assert res[m]["blank"] == (len(IMAGES) if m == "SRGAN" else 0)
    # SRGAN from rater 1 alone: values 4,5,4,5,4 -> mean 4.4, s = sqrt(0.3), t(0.975, 4) = 2.7764451
    half = 2.7764451052 * math.sqrt(0.3) / math.sqrt(5)
    assert res["SRGAN"]["ci95"] == pytest.approx((4.4 - half, 4.4 + half), abs=1e-6)


def test_mean_ci95_edge_cases():
    assert mean_ci95([3, 3, 3]) == (3.0, (3.0, 3.0))
    mos, (lo, hi) = mean_ci95([4])
    assert mos == 4.0 and math.isnan(lo) and math.isnan(hi)
    # large n: t quantile tends to the normal 1.96
    x = np.tile([1, 5], 5000)
    mos, (lo, hi) = mean_ci95(x)
    assert mos == 3.0 and hi - mos == pytest.approx(1.96 * np.std(x, ddof=1) / 100, rel=1e-3)


@pytest.mark.parametrize("cell", ["6", "0", "3.5", "good", "-1", "4 stars"])
def test_bad_score_names_sheet_and_line(pack, tmp_path, cell):
    out = tmp_path / "pack"
    bad_file = _read_csv(out / "ratings_rater01.csv")[3]["file"]        # 4th row: line 5 of the file
    s = _fill(out / "ratings_rater01.csv", tmp_path / "bad.csv", lambda f: cell if f == bad_file else "4")
    with pytest.raises(ValueError, match=rf"bad\.csv line 5: score '{re.escape(cell)}' is not a whole number from 1 to 5"):
        score_ratings([s], out / "_key" / "key.csv")


def test_bad_sheets(pack, tmp_path):
    out = tmp_path / "pack"
    key = out / "_key" / "key.csv"
    with pytest.raises(ValueError, match="no scores in this sheet .*template"):
        score_ratings([out / "sheet_template.csv"], key)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("file,score\nimg_0001.png,3\nimg_9999.png,4\n")
    with pytest.raises(ValueError, match=r"unknown\.csv line 3: file 'img_9999\.png' is not in the rating key"):
        score_ratings([unknown], key)
    twice = tmp_path / "twice.csv"
    twice.write_text("file,score\nimg_0001.png,3\nimg_0001.png,4\n")
    with pytest.raises(ValueError, match=r"twice\.csv line 3: .* appears twice"):
        score_ratings([twice], key)
    cols = tmp_path / "cols.csv"
    cols.write_text("name,rating\nimg_0001.png,3\n")
    with pytest.raises(ValueError, match=r"cols\.csv: a rating sheet needs columns 'file' and 'score'"):
        score_ratings([cols], key)
    with pytest.raises(FileNotFoundError, match="rating sheet not found: .*nope.csv"):
        score_ratings([tmp_path / "nope.csv"], key)
    with pytest.raises(FileNotFoundError, match="rating key not found"):
        score_ratings([twice], tmp_path / "nokey.csv")


def test_partial_sheet_counts_blanks_and_tolerates_excel(pack, tmp_path):
    """Rows left out, blank cells, spaces, an Excel BOM and upper-case headers are fine."""
    out = tmp_path / "pack"
    key = {r["file"]: r["method"] for r in _read_csv(out / "_key" / "key.csv")}
    files = sorted(key)
    sheet = tmp_path / "excel.csv"
    sheet.write_text("\ufeffFile,Score\n" + f"{files[0]}, 5 \n{files[1]},\n\n", encoding="utf-8")
    res = score_ratings([sheet], out / "_key" / "key.csv")
    assert res[key[files[0]]]["n"] == 1 and res[key[files[0]]]["mos"] == 5.0
    assert sum(r["n"] for r in res.values()) == 1
    assert sum(r["blank"] for r in res.values()) == len(files) - 1


def test_pack_input_errors(tmp_path):
    dirs = _method_dirs(tmp_path)
    (dirs["SRGAN"] / "head.png").unlink()
    with pytest.raises(ValueError, match=r"method 'SRGAN' .* missing \['head'\]"):
        make_rating_pack(dirs, tmp_path / "p1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images .* in folder .*empty"):
        make_rating_pack({"x": tmp_path / "empty"}, tmp_path / "p2")
    with pytest.raises(FileNotFoundError, match="image folder not found: .*absent"):
        make_rating_pack({"x": tmp_path / "absent"}, tmp_path / "p3")
    (dirs["bicubic"] / "broken.png").write_bytes(b"not a png")
    for m in ("SRResNet", "SRGAN"):
        Image.new("RGB", (3, 3)).save(dirs[m] / "broken.png")
    Image.new("RGB", (3, 3)).save(dirs["SRGAN"] / "head.png")
    with pytest.raises(ValueError, match=r"cannot read image .*bicubic.broken\.png"):
        make_rating_pack(dirs, tmp_path / "p4")
    (dirs["bicubic"] / "broken.png").unlink()
    for m in ("SRResNet", "SRGAN"):
        (dirs[m] / "broken.png").unlink()
    make_rating_pack(dirs, tmp_path / "p5")
    with pytest.raises(FileExistsError, match="already holds a rating pack"):
        make_rating_pack(dirs, tmp_path / "p5")
    with pytest.raises(ValueError, match="rater name 'a b'"):
        make_rating_pack(dirs, tmp_path / "p6", raters=["a b"])


def test_commands(tmp_path, capsys):
    dirs = _method_dirs(tmp_path, methods=("bicubic", "SRGAN"), images=("a", "b"))
    out = tmp_path / "pack"
    argv = ["--out", str(out), "--seed", "1", "--raters", "3"]
    for m, d in dirs.items():
        argv += ["--method", f"{m}={d}"]
    assert rating.main_rating_pack(argv) == 0
    assert "keep this" in capsys.readouterr().out
    sheets = [_fill(out / f"ratings_rater0{i}.csv", tmp_path / f"f{i}.csv", lambda f: "3") for i in (1, 2, 3)]
    assert rating.main_rating_score(["--key", str(out / "_key" / "key.csv"), "--sheets", *map(str, sheets),
                                     "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    data = json.loads(lines[-1])
    assert data == {"bicubic": {"mos": 3.0, "ci95": [3.0, 3.0], "n": 6, "blank": 0},
                    "SRGAN": {"mos": 3.0, "ci95": [3.0, 3.0], "n": 6, "blank": 0}}
    assert any("Student t" in line for line in lines)
    with pytest.raises(SystemExit):
        rating.main_rating_pack(["--out", str(tmp_path / "x"), "--method", "nofolder"])


def test_command_errors_are_user_errors(tmp_path):
    """The verbs raise one-line UserErrors (``python -m course_sr`` prints them, exit 2)."""
    with pytest.raises(UserError, match=r"^image folder not found: .*absent$"):
        rating.main_rating_pack(["--out", str(tmp_path / "p"), "--method", f"x={tmp_path / 'absent'}"])
    with pytest.raises(UserError, match=r"^rating key not found: .*k\.csv$"):
        rating.main_rating_score(["--key", str(tmp_path / "k.csv"), "--sheets", "s.csv"])
    assert not (tmp_path / "p").exists()


def test_simulated_ratings_score_near_three(pack, tmp_path):
    sheets = rating.simulate_ratings(tmp_path / "pack", tmp_path / "sim", n_raters=4, seed=1)
    assert [p.name for p in sheets] == ["filled_01.csv", "filled_02.csv", "filled_03.csv", "filled_04.csv"]
    assert sheets[0].read_text() != sheets[1].read_text()
    res = score_ratings(sheets, tmp_path / "pack")
    for r in res.values():
        assert r["n"] == 4 * len(IMAGES) and r["blank"] == 0
        assert r["ci95"][0] < 3 < r["ci95"][1] and 1 <= r["mos"] <= 5


# --------------------------------------------------------------------------------------
# A pack appears whole or not at all; a random, recorded seed
# --------------------------------------------------------------------------------------
def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_partials(parent):
    return [p.name for p in parent.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("failure", ["bad-image", "disk-full", "read-only", "kill"])
def test_failed_pack_leaves_nothing_and_the_retry_works(tmp_path, monkeypatch, failure):
    dirs = _method_dirs(tmp_path)
    out = tmp_path / "pack"
    real_write, calls = rating_pack._write_png, []   # the pack's writer, where it is defined

    def failing(pixels, path):
        calls.append(path)
        if len(calls) == 7:                              # midway: six images already written
            path.write_bytes(b"half a png")
            if failure == "disk-full":
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            if failure == "read-only":
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            raise KeyboardInterrupt("simulated kill")
        real_write(pixels, path)

    if failure == "bad-image":                           # an unreadable file among good ones
        good = (dirs["SRGAN"] / "head.png").read_bytes()
        (dirs["SRGAN"] / "head.png").write_bytes(b"not a png")
        error, match = rating.RatingError, r"^cannot read image .*SRGAN.head\.png"
    else:
        monkeypatch.setattr(rating_pack, "_write_png", failing)
        error, match = {"disk-full": (rating.PackWriteError, r"^disk full while writing the rating pack .*pack "
                                                             r"\(.*img_\d+\.png\): free some space"),
                        "read-only": (rating.PackWriteError, r"^cannot write the rating pack .*pack: Permission "
                                                             r"denied \(.*img_\d+\.png\); nothing of the pack"),
                        "kill": (KeyboardInterrupt, "simulated kill")}[failure]
    with pytest.raises(error, match=match) as info:
        make_rating_pack(dirs, out, seed=5, raters=2)
    if failure != "kill":
        assert isinstance(info.value, UserError) and len(str(info.value).splitlines()) == 1
    assert not out.exists() and _no_partials(tmp_path) == []
    # the retry (image fixed, space freed) builds the same pack a clean first run would have
    monkeypatch.setattr(rating_pack, "_write_png", real_write)
    if failure == "bad-image":
        (dirs["SRGAN"] / "head.png").write_bytes(good)
    info = make_rating_pack(dirs, out, seed=5, raters=2)
    assert info["n_files"] == len(METHODS) * len(IMAGES) and _no_partials(tmp_path) == []
    make_rating_pack(dirs, tmp_path / "clean", seed=5, raters=2)
    assert _snapshot(out) == _snapshot(tmp_path / "clean")


def test_killed_build_leftover_is_replaced(tmp_path):
    """A hard kill leaves only the hidden sibling; it never blocks, and is cleared by the next build."""
    dirs = _method_dirs(tmp_path)
    stale = tmp_path / ".pack.rating-pack.partial"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "img_0001.png").write_bytes(b"half")
    make_rating_pack(dirs, tmp_path / "pack", seed=1)
    assert _no_partials(tmp_path) == [] and len(list((tmp_path / "pack" / "images").iterdir())) == 15


def test_complete_pack_is_never_touched_by_a_rebuild(tmp_path, monkeypatch):
    dirs = _method_dirs(tmp_path)
    out = tmp_path / "pack"
    make_rating_pack(dirs, out, raters=2)
    before = _snapshot(out)
    monkeypatch.setattr(rating_pack, "_write_png", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    for seed in (None, 3):
        with pytest.raises(rating.PackExistsError, match=r"pack already holds a rating pack; choose a new folder"):
            make_rating_pack(dirs, out, seed=seed, raters=2)
    assert _snapshot(out) == before and _no_partials(tmp_path) == []


def test_pack_into_an_existing_folder(tmp_path):
    """An empty or unrelated folder takes the pack (its files kept); an unfinished old pack is named."""
    dirs = _method_dirs(tmp_path)
    (tmp_path / "empty").mkdir()
    make_rating_pack(dirs, tmp_path / "empty", seed=1)
    assert (tmp_path / "empty" / "_key" / "key.csv").is_file()
    other = tmp_path / "other"
    (other / "filled").mkdir(parents=True)
    (other / "filled" / "notes.txt").write_text("mine")
    make_rating_pack(dirs, other, seed=1)
    assert (other / "filled" / "notes.txt").read_text() == "mine"
    assert _snapshot(other) == {**_snapshot(tmp_path / "empty"), "filled/notes.txt": b"mine"}
    old = tmp_path / "old"                             # what a failed build of an older version left
    (old / "images").mkdir(parents=True)
    (old / "images" / "img_0001.png").write_bytes(b"x")
    with pytest.raises(rating.PackExistsError, match=r"old holds images but no _key/key\.csv: an unfinished"):
        make_rating_pack(dirs, old, seed=1)
    assert (old / "images" / "img_0001.png").read_bytes() == b"x"


def test_default_seed_is_random_printed_stored_and_rebuilds_the_pack(tmp_path, capsys):
    dirs = _method_dirs(tmp_path)
    a = make_rating_pack(dirs, tmp_path / "a", raters=["ann"])
    b = make_rating_pack(dirs, tmp_path / "b", raters=["ann"])
    assert a["seed"] != b["seed"] and a["seed"] != 0            # not the public default any more
    assert _snapshot(tmp_path / "a") != _snapshot(tmp_path / "b")
    stored = json.loads((tmp_path / "a" / "_key" / "pack.json").read_text())
    assert stored["seed"] == a["seed"] and a["seed_file"] == str(tmp_path / "a" / "_key" / "pack.json")
    assert stored["methods"] == {m: str(d) for m, d in dirs.items()} and stored["raters"] == ["ann"]
    # the seed in the key folder rebuilds the very same pack (images, key, sheets, page)
    make_rating_pack(stored["methods"], tmp_path / "again", seed=stored["seed"], raters=stored["raters"])
    assert _snapshot(tmp_path / "again") == _snapshot(tmp_path / "a")
    # the key folder is the only place that holds it: raters' files never mention the seed
    for name, data in _snapshot(tmp_path / "a").items():
        if not name.startswith("_key/"):
            assert str(a["seed"]).encode() not in data, name
    # the command prints it, and --seed gives it back
    argv = [f"--method={m}={d}" for m, d in dirs.items()]
    assert rating.main_rating_pack(["--out", str(tmp_path / "c"), *argv]) == 0
    seed = int(re.search(r"seed:\s+(\d+)\s+\(in .*pack\.json; --seed \1 rebuilds", capsys.readouterr().out).group(1))
    assert rating.main_rating_pack(["--out", str(tmp_path / "d"), "--seed", str(seed), *argv]) == 0
    assert _snapshot(tmp_path / "c") == _snapshot(tmp_path / "d")


@pytest.mark.parametrize("seed", ["-1", "1.5", "abc"])
def test_bad_seed_is_refused_when_parsing(tmp_path, seed, capsys):
    dirs = _method_dirs(tmp_path, methods=("a", "b"), images=("x",))
    with pytest.raises(SystemExit) as info:
        rating.main_rating_pack(["--out", str(tmp_path / "p"), "--seed", seed] + [f"--method={m}={d}" for m, d in dirs.items()])
    assert info.value.code == 2
    assert f"argument --seed: expected a whole number >= 0, got '{seed}'" in capsys.readouterr().err
    with pytest.raises(rating.RatingError, match="seed must be a whole number >= 0, got -1"):
        make_rating_pack(dirs, tmp_path / "p", seed=-1)
    assert not (tmp_path / "p").exists()


def test_sheet_that_is_not_utf8_names_the_file(pack, tmp_path):
    sheet = tmp_path / "latin1.csv"
    sheet.write_bytes("file,score\nimg_0001.png,3\nimg_0002.png,4 \xe9\n".encode("latin-1"))
    with pytest.raises(rating.RatingError, match=r"latin1\.csv: the rating sheet is not UTF-8 text \(byte \d+\); "
                                                 r"save it as 'CSV UTF-8'"):
        score_ratings([sheet], tmp_path / "pack")
