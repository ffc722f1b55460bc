"""The bad-input suite (issue 17): every verb, given a user's mistake, says so in one line.

Each case runs ``python -m course_sr <verb> ...`` (in-process through ``course_sr.__main__.main``,
or as a subprocess where the case needs a read-only folder) and pins the one error path:

- exit status 2;
- stderr is ONE line, ``<verb>: error: <message>``, and the message names the file or value;
- no traceback;
- nothing already saved changed: every file under the test's folder (a prepared run, data root,
  earlier outputs) has the same bytes afterwards, and no file was added.

Read-only folders: a test running as root ignores file modes, so there the subprocess drops the
capabilities that let root write anywhere (``setpriv``); without ``setpriv`` those cases skip.
Cases owned by other parts of issue 17 (download archives, checkpoints) live in their modules'
tests until they give this one line too.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_sr.__main__ import main as cli
from course_sr.plumbing.errors import UserError

REPO = Path(__file__).resolve().parents[1]
ROOT_CAPS = ("dac_override", "dac_read_search", "fowner")       # what lets root ignore file modes


# ----------------------------------------------------------------------------------- the world
def _image(path: Path, h: int, w: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def world(tmp_path):
    """A prepared folder: a data root with a scorable set (Tiny) and one too small to score
    (Small), a run folder, earlier outputs, a plain file and a read-only folder."""
    data = tmp_path / "data"
    for k in range(2):
        _image(data / "benchmark/Tiny/HR" / f"im{k}.png", 24, 24, k)
        _image(data / "benchmark/Tiny/LR_bicubic/X4" / f"im{k}x4.png", 6, 6, 10 + k)
    _image(data / "benchmark/Small/HR/s.png", 8, 8, 20)
    _image(data / "benchmark/Small/LR_bicubic/X4/sx4.png", 2, 2, 21)
    bad = tmp_path / "latin1"                                   # a data root whose list is not UTF-8
    _image(bad / "benchmark/Tiny/HR/im0.png", 24, 24, 0)
    _image(bad / "benchmark/Tiny/LR_bicubic/X4/im0x4.png", 6, 6, 10)
    (bad / "data_lists").mkdir()
    (bad / "data_lists/Tiny_images.csv").write_bytes("benchmark/Tiny/HR/im0.png,benchmark/Tiny/LR_bicubic/"
                                                     "X4/im0x4.png\nbenchmark/Tiny/HR/caf\xe9.png,x.png\n"
                                                     .encode("latin-1"))
    run = tmp_path / "run"                                      # a run's saved state, byte for byte
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.pt").write_bytes(os.urandom(4096))
    (run / "checkpoints/best.pt").write_bytes(os.urandom(2048))
    (run / "config.yaml").write_text("preset: quick\nbatch_size: 16\n")
    out = tmp_path / "out"                                      # earlier outputs of every kind
    out.mkdir()
    (out / "summary.json").write_text('{"Tiny": {}}\n')
    (out / "Tiny_images.csv").write_text("a,b\n")
    _image(out / "im0.png", 24, 24, 3)
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "foreign").mkdir()                              # someone else's non-empty folder
    (tmp_path / "foreign/notes.txt").write_text("mine\n")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro/kept.txt").write_text("kept\n")
    (tmp_path / "ro").chmod(0o555)
    yield tmp_path
    (tmp_path / "ro").chmod(0o755)                              # let pytest clean up


def snapshot(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fill(argv, world: Path) -> list[str]:
    return [a.replace("{w}", str(world)) for a in argv]


def _setpriv_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    tool = shutil.which("setpriv")
    if tool is None:
        pytest.skip("running as root without setpriv: file modes cannot make a folder read-only")
    caps = ",".join(f"-{c}" for c in ROOT_CAPS)
    return [tool, f"--bounding-set={caps}", f"--inh-caps={caps}"]


def run_verb(argv: list[str], capsys, read_only: bool = False) -> tuple[int, str]:
    """``(exit status, stderr)`` of ``python -m course_sr *argv``."""
    if not read_only:
        rc = cli(argv)
        return rc, capsys.readouterr().err
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    env.pop("COURSE_SR_DEBUG", None)
    proc = subprocess.run([*_setpriv_prefix(), sys.executable, "-m", "course_sr", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


def check(world: Path, capsys, argv: list[str], names: tuple[str, ...], read_only: bool = False,
          protect: tuple[Path, ...] = ()) -> str:
    """Run one case and assert the one-line contract, exit status 2 included; returns the line."""
    rc, line = check_line(world, capsys, argv, names, read_only, protect)
    assert rc == 2, (rc, line)
    return line


def check_line(world: Path, capsys, argv: list[str], names: tuple[str, ...], read_only: bool = False,
               protect: tuple[Path, ...] = ()) -> tuple[int, str]:
    """Run one case and assert the one-line contract except the exit status; ``(status, line)``."""
    argv = _fill(argv, world)
    names = tuple(_fill(names, world))
    before = snapshot(world)
    kept = {p: p.read_bytes() for p in protect}
    rc, err = run_verb(argv, capsys, read_only)
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"{argv[0]}: error: "), line
    for name in names:
        assert name in line, (name, line)
    assert snapshot(world) == before, "a failed command changed or added files"
    assert all(p.read_bytes() == b for p, b in kept.items())
    return rc, line


# ------------------------------------------------------------------------------- one test a verb
# Each case: (arguments with {w} = the world folder, what the line must name, read-only subprocess).
TRAIN = {
    "unknown-key": (["--config", "quick", "--set", "batch_sise=4"], ("'batch_sise'", "did you mean 'batch_size'")),
    "bad-preset": (["--config", "quik"], ("'quik'", "quick", "colab")),
    "scaling-factor-3": (["--config", "quick", "--set", "scaling_factor=3"], ("scaling_factor=3", "2, 4, 8")),
    "batch-size-0": (["--config", "quick", "--set", "batch_size=0"], ("batch_size=0", "> 0")),
    "pretrain-iters-negative": (["--config", "quick", "--set", "pretrain_iters=-3"], ("pretrain_iters=-3", ">= 0")),
    "ckpt-every-0": (["--config", "quick", "--set", "ckpt_every=0"], ("ckpt_every=0",)),
    "log-every-0": (["--config", "quick", "--set", "log_every=0"], ("log_every=0",)),
    "val-every-0": (["--config", "quick", "--set", "val_every=0"], ("val_every=0",)),
    "lr-negative": (["--config", "quick", "--set", "lr_pretrain=-1e-4"], ("lr_pretrain=-0.0001",)),
    "device-banana": (["--config", "quick", "--set", "device=banana"], ("device='banana'",)),
    "crop-not-multiple": (["--config", "quick", "--set", "crop_size=30"], ("crop_size=30", "scaling_factor=4")),
    "config-file-missing": (["--config", "{w}/nope.yaml"], ("{w}/nope.yaml",)),
    "config-file-broken": (["--config", "{w}/broken.yaml"], ("{w}/broken.yaml",)),
    "config-file-unknown-key": (["--config", "{w}/typo.yaml"], ("'n_block'", "from {w}/typo.yaml", "'n_blocks'")),
    "read-only-out": (["--config", "quick", "--out", "{w}/ro/run"], ("cannot write {w}/ro/run", "permission denied"),
                      True),
}


@pytest.mark.parametrize("case", TRAIN, ids=list(TRAIN))
def test_train(world, capsys, case):
    argv, names, *ro = TRAIN[case]
    (world / "broken.yaml").write_text("preset: quick\nbatch_size: [16\n")
    (world / "typo.yaml").write_text("preset: quick\nn_block: 4\n")
    if "--out" not in argv:
        argv = [*argv, "--out", "{w}/run"]                      # the prepared run must survive
    rc, line = check_line(world, capsys, ["train", *argv], names, read_only=bool(ro))
    assert rc == 2, (rc, line)


EVALUATE = {
    "scale-0": (["--scale", "0"], ("--scale 0", ">= 2")),
    "device-banana": (["--device", "banana"], ("'banana'", "cpu")),
    "device-cuda-absent": (["--device", "cuda"], ("'cuda'", "--device cpu")),
    "tile-0": (["--tile", "0"], ("--tile 0",)),
    "set-missing": (["--sets", "Nope"], ("'Nope'", "{w}/data/benchmark/Nope/HR")),
    "checkpoint-missing": (["--checkpoint", "{w}/run/nothing.pt"], ("{w}/run/nothing.pt",)),
    "checkpoint-corrupt": (["--checkpoint", "{w}/run/checkpoints/last.pt"], ("{w}/run/checkpoints/last.pt",)),
    "named-checkpoint-missing": (["--checkpoint", "SRGAN={w}/run/nothing.pt"], ("{w}/run/nothing.pt",)),
    "checkpoint-spec-ambiguous": (["--checkpoint", "SRGAN={w}/run/checkpoints"], ("'SRGAN={w}/run/checkpoints'",
                                                                                  "NAME=PATH")),
    "image-too-small-to-shave": (["--sets", "Small"], ("cannot shave 4 px", "{w}/data/benchmark/Small/HR/s.png")),
    "list-not-utf8": (["--data-root", "{w}/latin1"], ("{w}/latin1/data_lists/Tiny_images.csv", "UTF-8", "line 2")),
    "read-only-out": (["--out", "{w}/ro/eval"], ("cannot write {w}/ro/eval", "permission denied"), True),
    "degradation-unknown": (["--degradation", "blurry"], ("--degradation 'blurry'", "sensor-fixed")),
}


@pytest.mark.parametrize("case", EVALUATE, ids=list(EVALUATE))
def test_evaluate(world, capsys, case):
    argv, names, *ro = EVALUATE[case]
    if case == "device-cuda-absent" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    base = {"--sets": "Tiny", "--data-root": "{w}/data", "--out": "{w}/out"}
    for option, value in base.items():
        if option not in argv:
            argv = [*argv, option, value]
    check(world, capsys, ["evaluate", *argv], names, read_only=bool(ro))


UPSCALE = {
    "device-cuda-absent": (["--device", "cuda"], ("'cuda'", "--device cpu")),
    "device-banana": (["--device", "banana"], ("'banana'",)),
    "scale-0": (["--scale", "0"], ("--scale 0",)),
    "tile-0": (["--tile", "0"], ("--tile 0",)),
    "bicubic-without-scale": (["--scale", None], ("needs a scale",)),
    "input-missing": (["--input", "{w}/nothing.png"], ("{w}/nothing.png",)),
    "checkpoint-missing": (["--checkpoint", "{w}/run/nothing.pt"], ("{w}/run/nothing.pt",)),
    "out-is-a-file": (["--out", "{w}/a_file"], ("{w}/a_file",)),
    "read-only-out": (["--out", "{w}/ro/sr"], ("cannot write {w}/ro/sr", "permission denied"), True),
}


@pytest.mark.parametrize("case", UPSCALE, ids=list(UPSCALE))
def test_upscale(world, capsys, case):
    argv, names, *ro = UPSCALE[case]
    if case == "device-cuda-absent" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = {"--checkpoint": "bicubic", "--scale": "4", "--input": "{w}/data/benchmark/Tiny/LR_bicubic/X4",
            "--out": "{w}/out", **dict(zip(argv[::2], argv[1::2]))}
    argv = [x for k, v in args.items() if v is not None for x in (k, v)]
    check(world, capsys, ["upscale", *argv], names, read_only=bool(ro))


DATA_LISTS = {
    "out-is-a-file": (["--out", "{w}/a_file"], ("{w}/a_file", "not a folder")),
    "out-inside-a-file": (["--out", "{w}/a_file/lists"], ("{w}/a_file", "not a folder")),
    "scale-0-make-missing-lr": (["--scale", "0", "--make-missing-lr"], ("--scale 0",)),
    "data-root-missing": (["--data-root", "{w}/nowhere"], ("{w}/nowhere",)),
    "unknown-split": (["--splits", "Nope"], ("'Nope'",)),
    "old-list-not-utf8": (["--data-root", "{w}/latin1", "--out", "{w}/latin1/data_lists"],
                          ("{w}/latin1/data_lists/Tiny_images.csv", "UTF-8")),
    "read-only-out": (["--out", "{w}/ro/lists"], ("cannot write {w}/ro/lists", "permission denied"), True),
}


@pytest.mark.parametrize("case", DATA_LISTS, ids=list(DATA_LISTS))
def test_data_lists(world, capsys, case):
    argv, names, *ro = DATA_LISTS[case]
    flags = [a for a in argv if a == "--make-missing-lr"]
    pairs = [a for a in argv if a not in flags]
    args = {"--data-root": "{w}/data", "--out": "{w}/out", "--splits": "Tiny", **dict(zip(pairs[::2], pairs[1::2]))}
    argv = [x for k, v in args.items() for x in (k, v)] + flags
    check(world, capsys, ["data-lists", *argv], names, read_only=bool(ro))


SAMPLE = {
    "root-is-a-file": (["--root", "{w}/a_file"], ("{w}/a_file", "not a folder")),
    "root-is-someone-elses": (["--root", "{w}/foreign"], ("{w}/foreign", "not empty")),
    "read-only-root": (["--root", "{w}/ro/sample"], ("cannot write {w}/ro/sample", "permission denied"), True),
}


@pytest.mark.parametrize("case", SAMPLE, ids=list(SAMPLE))
def test_sample(world, capsys, case):
    argv, names, *ro = SAMPLE[case]
    check(world, capsys, ["sample", *argv], names, read_only=bool(ro))


DEMO = {
    "bad-preset": (["--preset", "quik", "--out", "{w}/out"], ("'quik'", "quick")),
    "benchmarks-missing": (["--benchmarks", "{w}/nowhere", "--out", "{w}/out"], ("{w}/nowhere", "Set5/HR")),
    "read-only-out": (["--out", "{w}/ro/demo"], ("cannot write {w}/ro/demo", "permission denied"), True),
}


@pytest.mark.parametrize("case", DEMO, ids=list(DEMO))
def test_demo(world, capsys, case):
    argv, names, *ro = DEMO[case]
    check(world, capsys, ["demo", *argv], names, read_only=bool(ro))


REPORT = {
    "run-missing": (["--run", "{w}/nowhere"], ("{w}/nowhere",)),
    "run-without-checkpoint": (["--run", "{w}/out"], ("{w}/out", "no checkpoint")),
    "run-checkpoint-corrupt": (["--run", "{w}/run"], ("{w}/run/checkpoints/last.pt",)),
    "eval-without-summary": (["--run", "{w}/real_run", "--eval", "{w}/data"], ("{w}/data", "summary.json")),
    "read-only-out": (["--run", "{w}/real_run", "--out", "{w}/ro/report.md"],
                      ("cannot write {w}/ro/report", "permission denied"), True),
}


@pytest.mark.parametrize("case", REPORT, ids=list(REPORT))
def test_report(world, capsys, case):
    from helpers import make_run                           # a run folder as the runner leaves it

    make_run(world, "real_run")
    argv, names, *ro = REPORT[case]
    if "--out" not in argv:
        argv = [*argv, "--out", "{w}/out/report.md"]
    check(world, capsys, ["report", *argv], names, read_only=bool(ro))


RATING_PACK = {
    "folder-missing": (["--method", "SRGAN={w}/nowhere", "--method", "HR={w}/data/benchmark/Tiny/HR"], ("{w}/nowhere",)),
    "folder-without-images": (["--method", "SRGAN={w}/foreign", "--method", "HR={w}/data/benchmark/Tiny/HR"],
                              ("{w}/foreign",)),
}


@pytest.mark.parametrize("case", RATING_PACK, ids=list(RATING_PACK))
def test_rating_pack(world, capsys, case):
    argv, names = RATING_PACK[case]
    check(world, capsys, ["rating-pack", *argv, "--out", "{w}/pack"], names)


RATING_SCORE = {
    "key-missing": (["--key", "{w}/nowhere/key.csv", "--sheets", "{w}/out/Tiny_images.csv"], ("{w}/nowhere/key.csv",)),
}


@pytest.mark.parametrize("case", RATING_SCORE, ids=list(RATING_SCORE))
def test_rating_score(world, capsys, case):
    argv, names = RATING_SCORE[case]
    check(world, capsys, ["rating-score", *argv], names)


DOWNLOAD = {
    # Nothing is fetched: each fails on the data root before the first request.
    "root-is-a-file": (["--root", "{w}/a_file"], ("{w}/a_file",)),
    "read-only-root": (["--root", "{w}/ro/data"], ("cannot write {w}/ro/data", "permission denied"), True),
}


@pytest.mark.parametrize("case", DOWNLOAD, ids=list(DOWNLOAD))
def test_download(world, capsys, case):
    argv, names, *ro = DOWNLOAD[case]
    check(world, capsys, ["download", *argv, "--what", "benchmark", "--mirror", "http://127.0.0.1:9/"], names,
          read_only=bool(ro))


COURSE_URL = {
    "not-a-url": (["not-a-url"], ("'not-a-url'", "https")),
    "not-https": (["ftp://example.org/x/y"], ("ftp://example.org/x/y",)),
}


@pytest.mark.parametrize("case", COURSE_URL, ids=list(COURSE_URL))
def test_course_url(world, capsys, case):
    argv, names = COURSE_URL[case]
    protect = (REPO / "course_sr/plumbing/course.py", *sorted((REPO / "notebooks").glob("*.ipynb")))
    check(world, capsys, ["course-url", *argv], names, protect=protect)


# ----------------------------------------------------------------------------- the error path
EVAL_SCALE_0 = ["evaluate", "--sets", "Tiny", "--data-root", "{w}/data", "--scale", "0"]


@pytest.mark.parametrize("where", ["after", "before"])
def test_debug_flag_shows_the_traceback(world, capsys, where):
    argv = _fill(EVAL_SCALE_0, world)
    argv = [*argv, "--debug"] if where == "after" else ["--debug", *argv]
    with pytest.raises(UserError, match="--scale 0"):         # propagates: Python prints the traceback
        cli(argv)


def test_debug_environment_variable(world, monkeypatch):
    monkeypatch.setenv("COURSE_SR_DEBUG", "1")
    with pytest.raises(UserError, match="--scale 0"):
        cli(_fill(EVAL_SCALE_0, world))


def test_debug_in_a_real_process(world):
    argv = _fill(EVAL_SCALE_0, world)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("COURSE_SR_DEBUG", None)
    plain = subprocess.run([sys.executable, "-m", "course_sr", *argv], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    debug = subprocess.run([sys.executable, "-m", "course_sr", *argv, "--debug"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert plain.returncode == 2 and plain.stderr.startswith("evaluate: error: --scale 0") \
        and "Traceback" not in plain.stderr
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr \
        and "course_sr.plumbing.errors.UserError: --scale 0" in debug.stderr


def test_a_bug_keeps_its_traceback(world, monkeypatch):
    """Only the user's mistakes are one line: an error of the kit itself propagates."""
    import course_sr.results.evaluate as ev

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ev, "evaluate", broken)
    with pytest.raises(ZeroDivisionError):
        cli(_fill(["evaluate", "--sets", "Tiny", "--data-root", "{w}/data"], world))


def test_disk_full_names_the_file_and_keeps_the_old_list(world, capsys, monkeypatch):
    """ENOSPC while data-lists replaces a list: one line naming the list, the old list intact,
    no temporary file left behind."""
    lists = world / "lists"
    lists.mkdir()
    (lists / "Tiny_images.csv").write_text("old,rows\n")
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if str(dst).endswith("_images.csv"):
            raise OSError(errno.ENOSPC, "No space left on device")      # no file name, like write()
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    line = check(world, capsys, ["data-lists", "--data-root", "{w}/data", "--out", "{w}/lists", "--splits", "Tiny"],
                 ("disk full while writing {w}/lists/Tiny_images.csv",))
    assert "free some space" in line
    assert sorted(p.name for p in lists.iterdir()) == ["Tiny_images.csv"]


def test_argparse_errors_keep_their_usage_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["evaluate", "--sets", "Set5", "--data-root", "data", "--scale", "four"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: ") and "invalid int value: 'four'" in err


def test_unknown_verb(capsys):
    assert cli(["evalute"]) == 2 and "unknown verb 'evalute'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the pieces
def test_resolve_device(monkeypatch):
    from course_sr.plumbing.distributed import DeviceError, resolve_device

    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("auto").type in ("cpu", "cuda")
    for name, match in [("banana", r"unknown device 'banana': use auto, cpu, cuda or cuda:N"),
                        ("meta", r"'meta' is not supported"), ("cuda:x", "unknown device")]:
        with pytest.raises(DeviceError, match=match):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"device 'cuda': no CUDA device on this machine; use --device cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"'cuda:2': this machine has 2 CUDA device\(s\), numbered 0 to 1"):
        resolve_device("cuda:2")


def test_one_line_and_os_error_mapping(tmp_path):
    from course_sr.plumbing.errors import from_os_error, one_line, user_errors

    assert one_line("3 missing file(s):\n  a.png\n  b.png\n") == "3 missing file(s): a.png; b.png"
    assert from_os_error(OSError(errno.EIO, "I/O error", "x")) is None          # not the user's: traceback
    assert "disk full while writing out.csv" in str(from_os_error(OSError(errno.ENOSPC, "full", "out.csv")))
    assert "disk full while writing (file not named" in str(from_os_error(OSError(errno.ENOSPC, "full")))
    assert str(from_os_error(OSError(errno.EROFS, "ro", "/mnt/x"))).startswith("cannot write /mnt/x: read-only")
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    secret.chmod(0)
    try:
        reading = os.geteuid() != 0                # root can read anything: then it reads as a write
        assert str(from_os_error(PermissionError(errno.EACCES, "denied", str(secret)))).startswith(
            f"cannot {'read' if reading else 'write'} {secret}: permission denied")
    finally:
        secret.chmod(0o644)
    with pytest.raises(UserError, match=r"^unknown thing$"):
        with user_errors(KeyError):
            raise KeyError("unknown thing")                 # the message, not KeyError's quoted repr
    with pytest.raises(ZeroDivisionError):
        with user_errors(ValueError):
            raise ZeroDivisionError
