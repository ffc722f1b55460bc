"""Real mode's settings in one place: where the data, the training run and the outputs live.

The notebooks' first cell calls :func:`settings`; ``python -m course_sr train`` reads the same
variables. Each variable and its default, written here once:

======================  ===============================================  ================================  ===========
variable                what it is                                       default on Colab                  elsewhere
======================  ===============================================  ================================  ===========
COURSE_SR_DATA_ROOT     the data root: ``DIV2K/``, ``benchmark/`` and     ``<Drive>/course_sr/data``        ``data``
                        its own ``data_lists/`` when it has them
COURSE_SR_RUN_DIR       the training run: ``train.ipynb`` writes it;      ``<Drive>/course_sr/runs/srgan``  ``runs/srgan``
                        ``test``, ``super_resolution``, the report read
                        it (CycleSR's runs go beside it: ``run("cyclesr")``)
COURSE_SR_OUT           tables, Set5 images, sheets, the rating pack      ``<Drive>/course_sr/outputs``     ``outputs``
                        (and its key)
COURSE_SR_MAX_ITERS     cut every training stage to N iterations          unset: the preset's schedule
COURSE_SR_MIRROR        a course's own server holding the archives        unset: the publishers' servers
                        (``download --mirror``)
======================  ===============================================  ================================  ===========

``<Drive>`` is ``/content/drive/MyDrive``, mounted by the notebooks' first cell: everything there
survives a disconnect, while ``/content`` goes with the runtime. Relative defaults are under the
*project folder*: the repository root when a notebook runs in a checkout's ``notebooks/``, else
the working directory; a relative path set in a variable is relative to the working directory,
as on a command line.

``COURSE_SR_MAX_ITERS=N`` is a rehearsal of real mode, not a quick mode: the real data, the real
network sizes and presets, with every stage cut to N iterations (:func:`cut_schedule`) so that
each stage ends and writes its ``*_end.pt``. Its numbers mean nothing. ``COURSE_SR_QUICK=1``
(embedded images, tiny networks) is another thing and takes precedence in the notebooks.

The course's repository: :data:`REPO_URL`, which every notebook's install cell also holds.
``python -m course_sr course-url URL`` sets it in this file and in the four notebooks at once
(``tests/test_course.py`` checks that they agree).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from course_sr.config import QUICK_ENV
from course_sr.plumbing.errors import user_errors

# The course's repository, the one the notebooks' install cells pip-install on Colab. A course
# sets it once: `python -m course_sr course-url https://github.com/ORG/REPO`.
REPO_URL = "https://github.com/YOUR-COURSE/course_sr"
PLACEHOLDER = "YOUR-COURSE"

DRIVE = Path("/content/drive/MyDrive")
ENV = {"data_root": "COURSE_SR_DATA_ROOT", "run_dir": "COURSE_SR_RUN_DIR", "out": "COURSE_SR_OUT",
       "max_iters": "COURSE_SR_MAX_ITERS", "mirror": "COURSE_SR_MIRROR"}
DEFAULTS = {  # (on Colab, elsewhere): each default written once
    "data_root": (DRIVE / "course_sr" / "data", Path("data")),
    "run_dir": (DRIVE / "course_sr" / "runs" / "srgan", Path("runs") / "srgan"),
    "out": (DRIVE / "course_sr" / "outputs", Path("outputs")),
}


def in_colab() -> bool:
    """True inside a Google Colab runtime (its ``google.colab`` module is loaded in notebooks)."""
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def project_dir(cwd: Path | None = None) -> Path:
    """The repository root when ``cwd`` is a checkout's ``notebooks/`` folder, else ``cwd``."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    if cwd.name == "notebooks" and (cwd.parent / "course_sr" / "__init__.py").is_file():
        return cwd.parent
    return cwd


def _max_iters(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV['max_iters']}={text!r}: expected a whole number of iterations >= 1")
    return n


@dataclass(frozen=True)
class Settings:
    """What :func:`settings` read: absolute paths, the rehearsal's ``max_iters``, the mirror."""

    quick: bool
    colab: bool
    data_root: Path
    run_dir: Path
    out: Path
    max_iters: int | None
    mirror: str | None

    def run(self, name: str) -> Path:
        """Another run directory beside :attr:`run_dir` (``runs/cyclesr`` beside ``runs/srgan``)."""
        return self.run_dir.parent / name

    def cut(self, config):
        """``config`` with every stage cut to ``max_iters`` (:func:`cut_schedule`); unchanged when unset."""
        return config if self.max_iters is None else cut_schedule(config, self.max_iters)

    def describe(self) -> str:
        """Lines for the notebooks' first cell: the mode and where everything goes."""
        mode = "quick mode (COURSE_SR_QUICK=1)" if self.quick else "real mode"
        if not self.quick and self.max_iters is not None:
            mode += f", rehearsal: every stage cut to {self.max_iters} iterations ({ENV['max_iters']})"
        lines = [mode + (" on Colab" if self.colab else "")]
        if not self.quick:
            lines += [f"  data root  {self.data_root}   ({ENV['data_root']})",
                      f"  run        {self.run_dir}   ({ENV['run_dir']})"]
        lines.append(f"  outputs    {self.out}   ({ENV['out']})")
        if self.colab and not DRIVE.is_dir():
            lines.append(f"  WARNING: {DRIVE} is not mounted: files written there vanish with the runtime")
        return "\n".join(lines)


def settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Read the variables of the module docstring (``environ``: default ``os.environ``)."""
    env = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else Path(cwd)
    colab = in_colab() if environ is None else bool(env.get("COLAB_RELEASE_TAG"))
    base = project_dir(cwd)

    def path(key: str) -> Path:
        value = env.get(ENV[key], "").strip()
        if value:
            p = Path(value).expanduser()
            return p if p.is_absolute() else cwd / p
        default = DEFAULTS[key][0 if colab else 1]
        return default if default.is_absolute() else base / default

    quick = env.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    mirror = env.get(ENV["mirror"], "").strip() or None
    return Settings(quick=quick, colab=colab, data_root=path("data_root"), run_dir=path("run_dir"),
                    out=path("out"), max_iters=_max_iters(env.get(ENV["max_iters"])), mirror=mirror)


REHEARSAL_BATCH, REHEARSAL_CROP = 16, 128     # the unpaired presets' size before Vega's (see cut_schedule)


def cut_schedule(config, n: int):
    """``config`` (an EasyDict, changed in place and returned) with every stage cut to ``n``.

    SRGAN: ``pretrain_iters`` and ``gan_iters`` at most ``n`` each. CycleSR: at most ``n`` warm-up,
    ``n`` SR-only and ``n`` joint iterations (lr constant for the first half of the joint phase,
    then decaying); the paired baseline: ``n`` iterations. Dual regression: ``pretrain_iters``.
    The unpaired methods' batches also shrink to at most :data:`REHEARSAL_BATCH` patches of
    :data:`REHEARSAL_CROP` px: Vega's 64 x 480 px batches are GPU-sized (in float16 each HR
    activation of the VDSR is ~1.9 GB), so a CPU rehearsal of them would need tens of GB and
    minutes an iteration; the rehearsal runs their path (phases, resume, checkpoints), not their
    size. ``log_every``, ``val_every`` and ``ckpt_every`` shrink to fit inside a stage, so a
    rehearsal logs, validates and writes ``last.pt`` mid-stage as a real run does. The result is
    what the run's ``config.yaml`` and checkpoints record.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"cut_schedule: n must be >= 1, got {n}")
    c = config
    if c.method == "srgan":
        c.pretrain_iters, c.gan_iters = min(int(c.pretrain_iters), n), min(int(c.gan_iters), n)
    elif c.method == "dual":
        c.pretrain_iters = min(int(c.pretrain_iters), n)
    if c.method in ("cyclesr", "paired", "dual"):
        c.batch_size, c.crop_size = min(int(c.batch_size), REHEARSAL_BATCH), min(int(c.crop_size), REHEARSAL_CROP)
    if c.method in ("cyclesr", "paired"):
        cyc = c.method == "cyclesr"
        warm, sr = (min(int(c.cyc_warmup_iters), n), min(int(c.cyc_sr_iters), n)) if cyc else (0, 0)
        total = (int(c.n_epoch) + int(c.n_epoch_decay)) * int(c.iters_per_epoch)
        joint = min(max(total - int(c.cyc_warmup_iters) - int(c.cyc_sr_iters) * cyc, 1), n)
        constant = joint // 2
        c.update(iters_per_epoch=1, n_epoch=warm + sr + constant, n_epoch_decay=joint - constant)
        if cyc:
            c.update(cyc_warmup_iters=warm, cyc_sr_iters=sr)
    half = max(1, n // 2)
    c.log_every = min(int(c.log_every), half)
    c.print_freq = min(int(c.print_freq), half)
    c.val_every = min(int(c.val_every), n)
    c.ckpt_every = min(int(c.ckpt_every), half)
    return c


# --------------------------------------------------------------------------------------
# The repository URL: one command sets it everywhere
# --------------------------------------------------------------------------------------
KIT_LINE = re.compile(r'KIT = "git\+([^"]*)"')
NOTEBOOKS = ("train.ipynb", "test.ipynb", "super_resolution.ipynb", "cyclesr.ipynb")


def install_urls(notebooks_dir) -> dict[str, list[str]]:
    """``{notebook: [URL of each KIT = "git+URL" line in its code cells]}``."""
    import nbformat

    out = {}
    for name in NOTEBOOKS:
        nb = nbformat.read(Path(notebooks_dir) / name, as_version=4)
        out[name] = [m.group(1) for c in nb.cells if c.cell_type == "code" for m in KIT_LINE.finditer(c.source)]
    return out


def set_course_url(url: str, repo: Path | None = None) -> list[Path]:
    """Write ``url`` into :data:`REPO_URL` (this file) and every notebook's install line, in the
    checkout ``repo`` (default: the one this module lives in). Returns the files changed."""
    import nbformat

    url = url.strip().removeprefix("git+").rstrip("/")
    if not re.fullmatch(r"https://[^\s\"']+", url):
        raise ValueError(f"expected the repository's https URL (e.g. https://github.com/ORG/REPO), got {url!r}")
    repo = Path(__file__).resolve().parents[2] if repo is None else Path(repo)
    module, notebooks = repo / "course_sr" / "plumbing" / "course.py", repo / "notebooks"
    if not module.is_file() or not notebooks.is_dir():
        raise FileNotFoundError(f"{repo} is not a course_sr checkout (no course_sr/plumbing/course.py and notebooks/): "
                                "run this in the repository the course publishes")
    changed = []
    text = module.read_text(encoding="utf-8")
    new = re.sub(r'^REPO_URL = "[^"]*"$', f'REPO_URL = "{url}"', text, count=1, flags=re.M)
    if new != text:
        module.write_text(new, encoding="utf-8")
        changed.append(module)
    for name in NOTEBOOKS:
        path = notebooks / name
        nb = nbformat.read(path, as_version=4)
        touched = False
        for cell in nb.cells:
            if cell.cell_type == "code" and KIT_LINE.search(cell.source):
                src = KIT_LINE.sub(f'KIT = "git+{url}"', cell.source)
                touched |= src != cell.source
                cell.source = src
        if touched:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m course_sr course-url URL``: the course's repository, set once for all notebooks."""
    p = argparse.ArgumentParser(prog="python -m course_sr course-url",
                                description="Set the course repository's URL in course_sr/course.py and in the "
                                            "install cell of the four notebooks (run it in the checkout).")
    p.add_argument("url", nargs="?", help="e.g. https://github.com/ORG/REPO (omit to print the current one)")
    args = p.parse_args(argv)
    if args.url is None:
        print(REPO_URL)
        return 0
    with user_errors(OSError, ValueError):              # a bad URL, or a file it cannot rewrite (named)
        changed = set_course_url(args.url)
    for path in changed:
        print(f"updated {path}")
    print("commit these files; students' notebooks then install from", args.url.strip().removeprefix("git+"))
    return 0
