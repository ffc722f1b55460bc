"""course_sr.plumbing.course: real mode's settings in one place, the rehearsal's schedule cut, the repository URL."""
from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_sr.__main__ import main as cli
from course_sr.plumbing import course
from course_sr.config import get_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_elsewhere_are_under_the_project_folder(tmp_path):
    s = course.settings({}, cwd=tmp_path)
    assert (s.data_root, s.run_dir, s.out) == (tmp_path / "data", tmp_path / "runs/srgan", tmp_path / "outputs")
    assert s.max_iters is None and s.mirror is None and not s.quick and not s.colab
    # a checkout's notebooks/ folder: the repository root, so notebooks and the README's commands agree
    nb = course.settings({}, cwd=REPO / "notebooks")
    assert nb.data_root == REPO / "data" and nb.out == REPO / "outputs"
    assert course.settings({}, cwd=tmp_path / "notebooks").data_root == tmp_path / "notebooks" / "data"
    assert s.run("cyclesr") == tmp_path / "runs" / "cyclesr"


def test_defaults_on_colab_are_on_drive(tmp_path):
    s = course.settings({"COLAB_RELEASE_TAG": "release-x"}, cwd=tmp_path)
    drive = Path("/content/drive/MyDrive/course_sr")
    assert (s.data_root, s.run_dir, s.out) == (drive / "data", drive / "runs/srgan", drive / "outputs")
    assert s.colab and "is not mounted" in s.describe()


def test_variables_override_and_relative_values_follow_the_working_directory(tmp_path):
    env = {"COURSE_SR_DATA_ROOT": "/d", "COURSE_SR_RUN_DIR": "r", "COURSE_SR_OUT": "~/o",
           "COURSE_SR_MAX_ITERS": "3", "COURSE_SR_MIRROR": "http://127.0.0.1:1/m", "COURSE_SR_QUICK": "1"}
    s = course.settings(env, cwd=tmp_path / "notebooks")
    assert s.data_root == Path("/d") and s.run_dir == tmp_path / "notebooks" / "r"
    assert s.out == Path("~/o").expanduser() and s.max_iters == 3 and s.mirror == "http://127.0.0.1:1/m"
    assert s.quick and s.describe().startswith("quick mode")
    for bad in ("0", "-1", "2.5", "x"):
        with pytest.raises(ValueError, match=f"COURSE_SR_MAX_ITERS={bad!r}: expected a whole number"):
            course.settings({"COURSE_SR_MAX_ITERS": bad})
    text = course.settings({"COURSE_SR_MAX_ITERS": "4"}, cwd=tmp_path).describe()
    assert "rehearsal: every stage cut to 4 iterations" in text and str(tmp_path / "runs/srgan") in text


@pytest.mark.parametrize("preset", ["colab", "paper"])
def test_cut_schedule_srgan_keeps_the_real_sizes(preset):
    cfg = course.cut_schedule(get_config(preset), 4)
    assert (cfg.pretrain_iters, cfg.gan_iters) == (4, 4)
    assert cfg.ckpt_every == 2 and cfg.val_every == 4 and cfg.log_every == 2   # last.pt mid-stage
    real = get_config(preset)
    for key in ("n_blocks", "n_channels", "d_n_channels", "d_fc_size", "vgg_i", "vgg_j", "vgg_weights",
                "batch_size", "crop_size", "lr_pretrain", "beta"):
        assert cfg[key] == real[key], key
    short = get_config("colab", pretrain_iters=1, gan_iters=0)
    assert (course.cut_schedule(short, 4).pretrain_iters, short.gan_iters) == (1, 0)   # never longer


def test_cut_schedule_cyclesr_and_dual():
    from course_sr.unpaired.cyclesr import lr_factor

    from course_sr.unpaired.cyclesr import CycleSR, PairedSR

    cfg = course.cut_schedule(get_config("cyclesr", cyc_warmup_iters=5000), 3)
    total = (cfg.n_epoch + cfg.n_epoch_decay) * cfg.iters_per_epoch
    assert CycleSR.stage_bounds(cfg) == {"warmup": (0, 3), "sr": (3, 6), "joint": (6, 9)}   # each phase cut to 3
    factors = [lr_factor(i, cfg.n_epoch, cfg.n_epoch_decay, cfg.iters_per_epoch) for i in range(total)]
    assert factors[:8] == [1.0] * 8 and 0 < factors[8] < 1          # joint: constant, then decaying
    assert course.cut_schedule(get_config("dual"), 2).pretrain_iters == 2
    assert PairedSR.stage_bounds(course.cut_schedule(get_config("paired"), 4)) == {"paired": (0, 4)}
    # a CPU rehearsal runs the unpaired presets' path at a CPU size, the SRGAN presets' at theirs
    for preset in ("cyclesr", "paired", "dual"):
        cut = course.cut_schedule(get_config(preset), 2)
        assert (cut.batch_size, cut.crop_size) == (course.REHEARSAL_BATCH, course.REHEARSAL_CROP) == (16, 128)
    colab = get_config("colab")
    assert (course.cut_schedule(get_config("colab"), 2).batch_size, colab.crop_size) == (colab.batch_size, 96)
    with pytest.raises(ValueError):
        course.cut_schedule(get_config("colab"), 0)


# ---- the repository URL: one file, one command, every notebook -----------------------
def test_every_notebook_installs_from_the_course_url():
    urls = course.install_urls(REPO / "notebooks")
    assert set(urls) == set(course.NOTEBOOKS) == {p.name for p in (REPO / "notebooks").glob("*.ipynb")}
    for name, found in urls.items():
        assert found == [course.REPO_URL], f"{name}: install line(s) {found}, course.REPO_URL {course.REPO_URL}"


def test_course_url_command_sets_it_everywhere(tmp_path, capsys):
    repo = tmp_path / "checkout"
    (repo / "course_sr" / "plumbing").mkdir(parents=True)
    shutil.copy(REPO / "course_sr" / "plumbing" / "course.py", repo / "course_sr" / "plumbing" / "course.py")
    shutil.copytree(REPO / "notebooks", repo / "notebooks")
    before = {n: nbformat.read(repo / "notebooks" / n, as_version=4) for n in course.NOTEBOOKS}
    changed = course.set_course_url("git+https://github.com/uni-x/sr-course/", repo)
    assert len(changed) == 5
    text = (repo / "course_sr" / "plumbing" / "course.py").read_text()
    assert 'REPO_URL = "https://github.com/uni-x/sr-course"' in text
    assert course.install_urls(repo / "notebooks") == {n: ["https://github.com/uni-x/sr-course"] for n in course.NOTEBOOKS}
    for n in course.NOTEBOOKS:                  # only the install line changed
        after = nbformat.read(repo / "notebooks" / n, as_version=4)
        diff = [(a.source, b.source) for a, b in zip(before[n].cells, after.cells) if a.source != b.source]
        assert len(diff) == 1 and diff[0][1] == diff[0][0].replace(course.REPO_URL, "https://github.com/uni-x/sr-course")
    assert course.set_course_url("https://github.com/uni-x/sr-course", repo) == []     # idempotent
    with pytest.raises(ValueError, match="https URL"):
        course.set_course_url("github.com/x y", repo)
    assert course.main([]) == 0 and capsys.readouterr().out.strip() == course.REPO_URL
    assert cli(["course-url", "not-a-url"]) == 2 and "course-url: error: expected the repository's https URL" in \
        capsys.readouterr().err


def test_the_placeholder_url_stops_the_install_cell_with_one_line():
    nb = nbformat.read(REPO / "notebooks" / "train.ipynb", as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and course.KIT_LINE.search(c.source))
    if course.PLACEHOLDER in course.REPO_URL:
        assert 'if "YOUR-COURSE" in KIT:' in cell and "raise SystemExit(" in cell


# ---- memory: no notebook holds two decoded caches -------------------------------------
def test_notebooks_look_at_the_data_without_a_cache():
    """Datasets a notebook builds itself (to look at, outside run()) decode no cache: run() builds
    the training set with the memory cache, and two decoded DIV2K copies do not fit Colab's RAM."""
    for name in course.NOTEBOOKS:
        nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            code = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("SRDataset", "UnpairedDataset"):
                    src = ast.unparse(node)
                    train_false = any(k.arg == "train" and ast.unparse(k.value) == "False" for k in node.keywords)
                    no_cache = "cache='none'" in src or re.search(r"data_config\(.*cache='none'", cell.source
                                                                  .replace('"', "'")) is not None
                    assert train_false or no_cache, f"{name}: {src} decodes a cache beside run()'s"
