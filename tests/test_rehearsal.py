"""The students' real path, rehearsed end to end, offline, on CPU (``make rehearse``; part of ``make test``).

What a student does on Colab, in the order they do it, at the real network sizes and presets:

1. in a fresh directory outside the repository, ``download --mirror`` and ``data-lists``;
2. the four notebooks' real branches, started from ``notebooks/`` of that directory with only the
   environment variables of ``course_sr/course.py`` set; the training notebook's kernel is killed
   once ``last.pt`` exists mid-stage and the notebook is run again from the top in a new kernel,
   which must continue from ``last.pt``;
3. the README's course workflow exactly as printed (``download``, ``data-lists``, ``train --config
   colab --resume auto``, ``evaluate``, ``upscale``, ``rating-pack`` with HR, ``report``), as
   commands in the same directory: on the run the notebook trained (``runs/srgan``, the default of
   both), so the one real-size training of the rehearsal is the notebook's. Run alone
   (``-k readme``), the README's ``train`` trains it.

Each step also runs on its own: the notebooks download what is not there, the README trains.

Only these are rehearsal-sized: the images (small, but named and laid out exactly like the DIV2K
and EDSR benchmark archives, packed under the real archive names and served from 127.0.0.1 with a
``SHA256SUMS``, as a course mirror would), ``COURSE_SR_MAX_ITERS`` (every stage cut to 1 or 2
iterations) and the VGG19, whose weights are random but sit under torchvision's own file name in
a temporary ``TORCH_HOME``, so the real ``vgg_weights="imagenet"`` loading path runs. The
networks are the paper's (SRResNet 16x64, its discriminator, VGG54), batch 16 of 96 px patches.

The peak memory of every training process is measured (``/proc``: the process's own peak RSS,
and the peak of the summed PSS of it and its DataLoader workers) and printed with the timings as
one JSON object (``make rehearse`` shows it).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("train.ipynb", "test.ipynb", "super_resolution.ipynb", "cyclesr.ipynb")
# DIV2K numbers: 0001-0400 are CycleSR's clean domain, 0401-0800 its real-LR domain; 0801-0900 valid.
TRAIN_IDS = (1, 2, 3, 4, 401, 402, 403, 404)
VALID_IDS = (801, 802, 803)
SETS = {"Set5": ("baby", "bird", "butterfly", "head", "woman"), "Set14": ("baboon", "comic", "zebra"),
        "B100": ("3096", "8023"), "Urban100": ("img_001", "img_002")}
PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")  # >= 400 px
TIMES: dict[str, float] = {}
MEMORY: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------------------
# A data root shaped like the real one, packed as the real archives
# --------------------------------------------------------------------------------------
def _photo(k: int, h: int, w: int) -> np.ndarray:
    """A natural h x w RGB image: a 2h x 2w crop of a scikit-image photo, halved with imresize."""
    import skimage.data

    from course_sr.imresize import imresize

    img = np.asarray(getattr(skimage.data, PHOTOS[k % len(PHOTOS)])())[..., :3]
    top = (k * 37) % (img.shape[0] - 2 * h + 1)
    left = (k * 53) % (img.shape[1] - 2 * w + 1)
    return imresize(np.ascontiguousarray(img[top:top + 2 * h, left:left + 2 * w]), scalar_scale=0.5)


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for folder in sorted({n.rsplit("/", 1)[0] + "/" for n in files}):
            z.writestr(folder, b"")                               # folder entries, as the real zips
        for name, data in sorted(files.items()):
            z.writestr(name, data)


def _tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as t:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def build_archives(folder: Path) -> dict[str, int]:
    """The seven archives of ``download.ARCHIVES`` (same names, same inner layouts) + SHA256SUMS.
    Returns ``{split: images}``. LR files are the kit's MATLAB-exact bicubic (``matlab_lr``) and
    the track-2 "unknown" degradation is ``degradations.degrade(hr, "default")``."""
    from course_sr.unpaired.degradations import degrade
    from course_sr.imresize import matlab_lr

    folder.mkdir(parents=True)
    div2k: dict[str, dict[str, bytes]] = {}
    for part, ids, shapes in (("train", TRAIN_IDS, ((144, 192), (192, 144))), ("valid", VALID_IDS, ((120, 160),))):
        for n, i in enumerate(ids):
            hr = _photo(i, *shapes[n % len(shapes)])
            div2k.setdefault(f"DIV2K_{part}_HR", {})[f"DIV2K_{part}_HR/{i:04d}.png"] = _png(hr)
            div2k.setdefault(f"DIV2K_{part}_LR_bicubic_X4", {})[
                f"DIV2K_{part}_LR_bicubic/X4/{i:04d}x4.png"] = _png(matlab_lr(hr, 4))
            div2k.setdefault(f"DIV2K_{part}_LR_unknown_X4", {})[
                f"DIV2K_{part}_LR_unknown/X4/{i:04d}x4.png"] = _png(degrade(hr, "default", seed=i))
    for name, files in div2k.items():
        _zip(folder / f"{name}.zip", files)
    bench: dict[str, bytes] = {}
    sizes = ((64, 64), (48, 48), (56, 56), (52, 52), (68, 44), (60, 90), (63, 50))   # (63, 50): cropped to x4
    for s, names in SETS.items():
        for n, name in enumerate(names):
            hr = _photo(n + len(s), *sizes[n % len(sizes)])
            bench[f"benchmark/{s}/HR/{name}.png"] = _png(hr)
            for x in (2, 3, 4):                                  # the EDSR archive has all three
                bench[f"benchmark/{s}/LR_bicubic/X{x}/{name}x{x}.png"] = _png(matlab_lr(hr, x))
    _tar(folder / "benchmark.tar", bench)
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(folder.iterdir()))
    (folder / "SHA256SUMS").write_text(sums)
    return {"train": len(TRAIN_IDS), "valid": len(VALID_IDS), **{s: len(v) for s, v in SETS.items()}}


class Mirror:
    """A course mirror on 127.0.0.1: serves ``folder`` and records every request path."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                mirror.requests.append(self.path)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.folder = folder

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------
# Peak memory of a process and its children, from /proc
# --------------------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakMemory(threading.Thread):
    """Samples ``pid`` every 0.2 s: its own peak RSS (``VmHWM``) and the peak, over samples, of the
    summed PSS of it and all its descendants (forked DataLoader workers share the cache: PSS
    counts shared pages once)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.hwm_kib, self.tree_pss_kib = pid, 0, 0
        self._done = threading.Event()
        self.start()

    def run(self):
        while not self._done.wait(0.2):
            self.hwm_kib = max(self.hwm_kib, _kib(f"/proc/{self.pid}/status", "VmHWM:"))
            pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in _descendants(self.pid))
            self.tree_pss_kib = max(self.tree_pss_kib, pss)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self.join(5)
        return {"peak_rss_gb": round(self.hwm_kib * 1024 / 1e9, 3), "peak_tree_pss_gb": round(self.tree_pss_kib * 1024 / 1e9, 3)}


# --------------------------------------------------------------------------------------
# Fixtures: the data, its mirror, the VGG weights, the student's fresh directory
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirror") / "course-data"
    t0 = time.perf_counter()
    counts = build_archives(folder)
    TIMES["make archives"] = time.perf_counter() - t0
    m = Mirror(folder)
    m.counts = counts
    yield m
    m.close()


@pytest.fixture(scope="module")
def student(tmp_path_factory, mirror, imagenet_vgg_home):
    """A fresh directory outside the repository, holding only the course's notebooks, and the
    environment a student's Colab has: no COURSE_SR_* but the mirror (the course's choice)."""
    home = tmp_path_factory.mktemp("student")
    assert REPO not in home.parents
    shutil.copytree(REPO / "notebooks", home / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_SR_")
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(COURSE_SR_MIRROR=mirror.url, TORCH_HOME=str(imagenet_vgg_home), MPLBACKEND="Agg",
               PYTHONWARNINGS="ignore::DeprecationWarning", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return home, env


def readme_workflow() -> list[list[str]]:
    """The commands of the README's "course workflow" block, as printed (continuations joined)."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The course workflow"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def run_command(argv: list[str], cwd: Path, env: dict, label: str) -> subprocess.CompletedProcess:
    assert argv[0] == "python", argv
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv[1:]], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    mem = PeakMemory(proc.pid)
    out, _ = proc.communicate(timeout=900)
    TIMES[label] = time.perf_counter() - t0
    if argv[3] == "train":
        MEMORY[label] = mem.stop()
    else:
        mem.stop()
    assert proc.returncode == 0, f"{shlex.join(argv)} failed:\n{out[-4000:]}"
    return subprocess.CompletedProcess(argv, proc.returncode, out, "")


# --------------------------------------------------------------------------------------
# 1. The data: download --mirror, data-lists
# --------------------------------------------------------------------------------------
def test_download_from_the_course_mirror_and_data_lists(student, mirror):
    home, env = student
    data = home / "data"
    out = run_command(["python", "-m", "course_sr", "download", "--root", "data", "--what", "all",
                       "--mirror", mirror.url], home, {k: v for k, v in env.items() if k != "COURSE_SR_MIRROR"},
                      "download --mirror").stdout
    # every archive from the mirror, checked against its SHA256SUMS (the course's own cut of the data)
    assert {Path(p).name for p in mirror.requests} == {"SHA256SUMS", *(p.name for p in mirror.folder.iterdir())}
    assert out.count("the course's own archive, not the published one") == 7
    assert not any((data / ".downloads").iterdir())                            # archives deleted after
    run_command(["python", "-m", "course_sr", "data-lists", "--data-root", "data"], home, env, "data-lists")
    # the data root's own lists, which take precedence over the course's 800-image ones
    from course_sr.data.lists import find_data_list, read_data_list

    assert find_data_list("train", data) == data / "data_lists" / "train_images.csv"
    assert len(read_data_list(data / "data_lists", "train")) == mirror.counts["train"]
    assert len(read_data_list(data / "data_lists", "unpaired_real_lr")) == 4    # 0401-0404: the real-LR domain
    assert len(read_data_list(data / "data_lists", "unpaired_hr")) == 4         # 0001-0004: the clean domain


# --------------------------------------------------------------------------------------
# 2. The four notebooks in real mode, with a disconnect during training
# --------------------------------------------------------------------------------------
def _execute(path: Path, env: dict, label: str, kill_when=None, timeout: int = 900):
    """Run every cell of the notebook at ``path`` in a new kernel started in its folder.
    ``kill_when()`` true: SIGKILL the kernel (a Colab disconnect); returns ``(killed, notebook)``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    killed = threading.Event()
    t0 = time.perf_counter()
    with client.setup_kernel(env=env):
        pid = client.km.provisioner.pid
        mem = PeakMemory(pid)
        if kill_when is not None:
            def watch():
                while not killed.is_set():
                    if kill_when():
                        os.kill(pid, signal.SIGKILL)
                        killed.set()
                    time.sleep(0.05)
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
        except DeadKernelError:
            if not killed.is_set():
                raise
        finally:
            MEMORY[label] = mem.stop()
            killed.set()
    TIMES[label] = time.perf_counter() - t0
    return killed, nb


def test_notebooks_in_real_mode_resume_after_a_disconnect(student, mirror):
    home, env = student
    env = {**env, "COURSE_SR_DATA_ROOT": str(home / "data"), "COURSE_SR_RUN_DIR": str(home / "runs" / "srgan"),
           "COURSE_SR_OUT": str(home / "outputs"), "COURSE_SR_MAX_ITERS": "2"}
    notebooks = home / "notebooks"
    run = home / "runs" / "srgan"
    ckpts = run / "checkpoints"
    complete_before = (home / "data" / "DIV2K" / "DIV2K_train_HR").is_dir()
    requests_before = len(mirror.requests)

    # train.ipynb, killed as soon as last.pt exists in the middle of stage 1 (iteration 1 of 2)
    killed, _ = _execute(notebooks / "train.ipynb", env, "train.ipynb (killed)",
                         kill_when=lambda: (ckpts / "last.pt").exists())
    assert killed.is_set() and (ckpts / "last.pt").exists()
    assert not (ckpts / "pretrain_end.pt").exists(), "the kernel was killed too late: stage 1 had ended"
    from course_sr.plumbing.checkpoint import load_checkpoint

    stopped_at = load_checkpoint(ckpts / "last.pt")["iteration"]
    assert stopped_at == 1
    # "Run all" in a new kernel: continues from last.pt, not from iteration 0
    _execute(notebooks / "train.ipynb", env, "train.ipynb (run all again)")
    log = (run / "log.txt").read_text()
    assert f"resumed from {ckpts / 'last.pt'} at iteration {stopped_at}" in log
    assert log.count("run started in") == 1 and "run resumed in" in log
    assert load_checkpoint(ckpts / "pretrain_end.pt")["iteration"] == 2
    end = load_checkpoint(ckpts / "gan_end.pt")
    assert end["iteration"] == 4 and end["config"]["n_blocks"] == 16 and end["config"]["d_fc_size"] == 1024
    assert [s for s, _ in end["history"]["pretrain/loss"]] == [1, 2]           # iteration 1 not repeated
    if complete_before:                                                         # the download cell skipped it all
        assert mirror.requests[requests_before:] == []

    # test.ipynb: the five-set table of this run's two models and bicubic, into COURSE_SR_OUT
    _execute(notebooks / "test.ipynb", env, "test.ipynb")
    summary = json.loads((home / "outputs" / "eval" / "summary.json").read_text())
    assert list(summary) == ["valid", "Set5", "Set14", "B100", "Urban100"]
    # super_resolution.ipynb: Set5 images under the HR names, sheets, the rating pack and its key
    _execute(notebooks / "super_resolution.ipynb", env, "super_resolution.ipynb")
    out = home / "outputs"
    for method in ("bicubic", "SRResNet", "SRGAN", "HR"):
        assert sorted(p.name for p in (out / "Set5" / method).iterdir()) == [f"{s}.png" for s in SETS["Set5"]]
    assert len((out / "Set5_rating_pack" / "_key" / "key.csv").read_text().splitlines()) == 1 + 5 * 4
    # cyclesr.ipynb: the same VDSR three ways on the track-2 data (CycleSR in Vega's three phases,
    # the paired baseline, dual regression), beside the SRGAN run; the cut runs them at a CPU size
    _execute(notebooks / "cyclesr.ipynb", {**env, "COURSE_SR_MAX_ITERS": "1"}, "cyclesr.ipynb")
    ckpts = home / "runs" / "cyclesr" / "checkpoints"
    assert [load_checkpoint(ckpts / f"{p}_end.pt")["iteration"] for p in ("warmup", "sr", "joint")] == [1, 2, 3]
    for method in ("paired", "dual"):
        last = load_checkpoint(home / "runs" / method / "checkpoints" / "last.pt")
        assert last["method"] == method and last["config"]["sr_net"] == "vdsr" and last["config"]["SR_nb"] == 20
    assert not any(p.name == "outputs" for p in notebooks.iterdir())           # nothing beside the notebooks


# --------------------------------------------------------------------------------------
# 3. The README's workflow, as printed
# --------------------------------------------------------------------------------------
def test_readme_course_workflow_as_printed(student, mirror):
    home, env = student
    env = {**env, "COURSE_SR_MAX_ITERS": "2"}                 # the notebooks' cut: the same run continues
    commands = readme_workflow()
    verbs = [c[3] for c in commands]
    assert verbs[:3] == ["download", "data-lists", "train"] and {"evaluate", "upscale", "rating-pack", "report"} <= set(verbs)
    for n, argv in enumerate(commands):
        run_command(argv, home, env, f"README {n + 1}: {argv[3]}")
    data, runs = home / "data", home / "runs"
    from course_sr.plumbing.checkpoint import load_checkpoint
    from course_sr.data.lists import find_data_list

    assert find_data_list("Set14", data) == data / "data_lists" / "Set14_images.csv"
    # train: both stages ended, with the ImageNet-weights path (from TORCH_HOME) and the paper's sizes
    log = (runs / "srgan" / "log.txt").read_text()
    assert "content loss VGG54 (imagenet weights)" in log and "generator srresnet: 1,549,462 parameters" in log
    assert load_checkpoint(runs / "srgan" / "checkpoints" / "gan_end.pt")["iteration"] == 4
    # evaluate: the five sets, three methods
    summary = json.loads((runs / "eval" / "summary.json").read_text())
    assert list(summary) == ["valid", "Set5", "Set14", "B100", "Urban100"]
    assert all(list(v) == ["bicubic", "SRResNet", "SRGAN"] for v in summary.values())
    assert summary["Set14"]["bicubic"]["n"] == mirror.counts["Set14"]
    # upscale under the HR names, so the rating pack pairs them with HR
    for method in ("SRGAN", "bicubic"):
        assert sorted(p.name for p in (runs / "Set5" / method).iterdir()) == [f"{s}.png" for s in SETS["Set5"]]
    key = (runs / "Set5_rating_pack" / "_key" / "key.csv").read_text().splitlines()
    assert len(key) == 1 + 5 * 3 and {line.split(",")[1] for line in key[1:]} == {"SRGAN", "bicubic", "HR"}
    assert len(list((runs / "Set5_rating_pack").glob("ratings_rater*.csv"))) == 3
    report = (runs / "report.md").read_text()
    assert "Set5" in report and "SRGAN" in report


def test_summary(capsys):
    """Print the rehearsal's timings and peak memory as one JSON object (``make rehearse`` shows it)."""
    if not TIMES:
        pytest.skip("the rehearsal did not run")
    report = {"seconds": {k: round(v, 1) for k, v in TIMES.items()}, "total_s": round(sum(TIMES.values()), 1),
              "memory": MEMORY}
    with capsys.disabled():
        print("\nrehearsal:", json.dumps(report))
