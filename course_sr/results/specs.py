"""Method specs on the command line: ``NAME=PATH``, one convention for every command that takes them.

``evaluate --checkpoint SRGAN=runs/x/checkpoints/gan_end.pt`` and ``rating-pack --method
SRGAN=outputs/Set5/SRGAN`` both write the display name first and the file or folder second, split
at the first ``=`` (a name holds no ``=``; a path may: ``runs/lr=1e-4/...``).

``evaluate`` took ``PATH=NAME`` before issue 14 and still reads it, with one deprecation line on
stderr (:data:`DEPRECATED_ORDER`). Which order a checkpoint spec is in is decided by one rule
(:func:`read_checkpoint_spec`; the tests pin it):

1. no ``=``, or the whole spec names an existing file: a bare ``PATH`` (no name given);
2. otherwise the spec is read both ways, ``NAME=PATH`` (split at the first ``=``) and the old
   ``PATH=NAME`` (split at the last ``=``), a reading with an empty side dropped. The reading
   whose PATH names an existing file wins; when both or neither do, the one whose PATH ends in
   ``.pt`` or ``.pth`` (any case, the suffixes of torch checkpoints);
3. when that still leaves both readings or neither, the spec is ambiguous: a
   :class:`MethodSpecError` naming it, never a guess (a guess would score one network under
   another's name, or look for a checkpoint called ``SRGAN``).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from course_sr.plumbing.errors import UserError

CHECKPOINT_SUFFIXES = (".pt", ".pth")
EXAMPLE = "srgan=runs/x/checkpoints/gan_end.pt"
DEPRECATED_ORDER = f"evaluate: --checkpoint PATH=NAME is deprecated; write NAME=PATH (e.g. {EXAMPLE})"


class MethodSpecError(UserError, ValueError):
    """A method spec that is not ``NAME=PATH`` or whose name and path cannot be told apart; one
    line naming the spec. Also a ValueError, as evaluate's other bad values are."""


class CheckpointSpec(NamedTuple):
    """A checkpoint spec, read: ``name`` is ``""`` when the spec gave none (a bare PATH);
    ``old_order`` is True when it was written ``PATH=NAME`` (deprecated)."""
    name: str
    path: Path
    old_order: bool


def split_name_path(text: str, what: str = "PATH") -> tuple[str, str]:
    """``"NAME=PATH"`` -> ``(NAME, PATH)``, split at the first ``=``; MethodSpecError when either
    side is empty (``what`` names the second in the message: ``DIR`` for ``rating-pack``)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise MethodSpecError(f"expected NAME={what}, got {text!r}")
    return name, path


def _names_a_file(path: str) -> bool:
    return Path(path).is_file()


def _checkpoint_suffix(path: str) -> bool:
    return path.lower().endswith(CHECKPOINT_SUFFIXES)


def read_checkpoint_spec(spec: str) -> CheckpointSpec:
    """``"NAME=PATH"``, the old ``"PATH=NAME"`` or a bare ``"PATH"``, read by the rule of the
    module docstring. Raises MethodSpecError naming ``spec`` when the rule picks no reading."""
    if "=" not in spec or _names_a_file(spec):
        return CheckpointSpec("", Path(spec), False)
    name, _, path = spec.partition("=")
    old_path, _, old_name = spec.rpartition("=")
    readings = [(n, p, old) for n, p, old in ((name, path, False), (old_name, old_path, True)) if n and p]
    if not readings:                                      # "=x.pt", "x.pt=": a side is missing
        raise MethodSpecError(f"checkpoint spec {spec!r}: expected NAME=PATH, e.g. {EXAMPLE}")
    for looks_like_checkpoint in (_names_a_file, _checkpoint_suffix):
        chosen = [r for r in readings if looks_like_checkpoint(r[1])]
        if len(chosen) == 1:
            n, p, old = chosen[0]
            return CheckpointSpec(n, Path(p), old)
    why = ("neither side names an existing file or ends in .pt/.pth" if not any(
        _checkpoint_suffix(p) or _names_a_file(p) for _, p, _ in readings) else "both sides could be the checkpoint")
    raise MethodSpecError(f"checkpoint spec {spec!r}: cannot tell the name from the path ({why}); "
                          f"write NAME=PATH with an existing file or a .pt/.pth path, e.g. {EXAMPLE}")
