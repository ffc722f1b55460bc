"""The set-up files agree with each other: what a newcomer, conda users and CI install is one set."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(req: str) -> str:
    return req.strip()[len(_name(req)):].replace(" ", "")


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def conda_env():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for p in dep["pip"]:
                if not p.startswith("-"):
                    pip[_name(p)] = _spec(p)
        else:
            conda[_name(dep)] = _spec(dep.replace("=", "==", 1) if re.match(r"^[\w-]+=[^=]", dep) else dep)
    return conda, pip


def _project_requirements(pyproject) -> dict[str, str]:
    reqs = list(pyproject["project"]["dependencies"])
    for extra, items in pyproject["project"]["optional-dependencies"].items():
        reqs += [r for r in items if not r.startswith("course_sr")]
    return {_name(r): _spec(r) for r in reqs}


def _constraints() -> dict[str, str]:
    lines = [l.split("#")[0].strip() for l in (REPO / "constraints.txt").read_text().splitlines()]
    return {_name(l): _spec(l) for l in lines if l}


def test_environment_yml_lists_the_same_packages_as_pyproject(pyproject, conda_env):
    conda, pip = conda_env
    project = _project_requirements(pyproject)
    locked = _constraints()
    for name, spec in project.items():
        if name in locked:  # torch / torchvision: from PyPI, pinned as in the lock
            assert pip.get(name) == locked[name], f"environment.yml pip section must pin {name}{locked[name]}"
        else:
            assert name in conda, f"{name} is in pyproject.toml but not in environment.yml"
            assert conda[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {conda[name]!r}"
    extra = set(conda) - set(project) - {"python", "pip"}
    assert not extra, f"environment.yml has packages pyproject.toml does not: {sorted(extra)}"


def test_lock_pins_the_required_torch_pair(pyproject):
    locked = _constraints()
    assert locked == {"torch": "==2.14.*", "torchvision": "==0.29.*"}
    # ranges, so a newer preinstalled torch (Colab's) is kept; the floor is what CI runs (the lock),
    # not an older version nobody has tested the kit with
    project = _project_requirements(pyproject)
    for name in ("torch", "torchvision"):
        assert project[name] == ">=" + locked[name].removeprefix("==").removesuffix(".*"), name


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make test" in ci
    assert "make test" in readme and "make demo" in readme


def test_every_command_verb_is_a_main_of_the_package_with_help(capsys):
    from course_sr.__main__ import VERBS

    for verb, (fn, _) in VERBS.items():
        assert callable(fn) and fn.__module__.startswith("course_sr."), verb
        with pytest.raises(SystemExit) as exc:          # argparse's --help: every verb parses
            fn(["--help"])
        assert exc.value.code == 0, verb
        assert "usage: python -m course_sr" in capsys.readouterr().out, verb


def test_the_course_lists_ship_inside_a_built_wheel(tmp_path):
    """pyproject maps course_sr.course_lists onto data_lists/: a pip-installed kit (Colab) finds the
    course's canonical lists without the repository (one copy in the tree, none duplicated)."""
    import os
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "wheel"), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "wheel").glob("course_sr-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    committed = sorted(p.name for p in (REPO / "data_lists").glob("*.csv"))
    assert {f"course_sr/course_lists/{n}" for n in committed} <= names
    assert not any(n.startswith("data_lists/") for n in names)
    # every module of every subpackage, and the rating page's template beside its module
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "course_sr").rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert "course_sr/results/rate.html" in names
    # installed (no deps: they are this venv's), run from elsewhere: the shipped copy is the one found
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import course_sr.data.lists as d; c = d.canonical_dir(); "
            "print(c); print(len(d.read_data_list(c, 'train'))); "
            "from course_sr.results.rating_page import page_template; print(len(page_template()) > 1000)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(site)}, timeout=120).stdout.split()
    assert out == [str(site / "course_sr" / "course_lists"), "800", "True"]


def test_no_file_of_the_package_is_ignored_by_git():
    """A new module that .gitignore swallows is missing from every clone (CI's, a student's) while
    the author's tests pass: this happened with a ``data/`` rule and ``course_sr/data/``."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(REPO)) for p in (REPO / "course_sr").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", *files],
                             capture_output=True, text=True).stdout.split()
    assert not ignored, f"ignored by .gitignore: {ignored}"
