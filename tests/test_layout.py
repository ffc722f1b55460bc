"""The package's layout, as issue 14 asks for it: the course's core at the top, no import cycles,
no function-level imports of the package's own modules, no module over about 450 lines.

Read with the standard library (``ast``), without importing anything, so a cycle that only
shows at run time (an import hidden inside a function) is found too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "course_sr"
CORE = {"config", "datasets", "imresize", "metrics", "models", "solver", "training", "utils"}
MAX_TOP_LEVEL = 12           # the core plus __init__ and __main__
MAX_LINES = 470              # "about 450"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package_imports(path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(module, line, at_top)`` for each import of the package's own modules in ``path``:
    ``at_top`` is False for an import inside a function or class body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = module_name(path)
    is_pkg = path.name == "__init__.py"
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:       # relative: resolve against this module's package
                base = this.split(".") if is_pkg else this.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            if t in known and t != this:
                found.append((t, node.lineno, id(node) not in nested))
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for target, _, _ in package_imports(path, known):
            edges[m].add(target)
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            parts = target.split(".")
            edges[m].update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in known)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_package_modules_are_imported_at_the_top_only():
    """A function-level import of the package's own modules hides a cycle; deferring a heavy
    optional dependency (not one of ours) is allowed."""
    mods = modules()
    known = set(mods)
    late = [f"{mods[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
            for m in mods for t, line, top in package_imports(mods[m], known) if not top]
    assert not late, "\n".join(late)


def test_the_top_level_is_the_course():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top == CORE
    assert len(list(PACKAGE.glob("*.py"))) <= MAX_TOP_LEVEL


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_reads_in_one_sitting(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {n} lines (at most about 450)"
