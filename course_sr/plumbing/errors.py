"""The one kind of error a user can fix, and how every command shows it.

A :class:`UserError` is a mistake the user can correct: a missing file, a value out of range, a
checkpoint that does not match the config. Its message is one line that names the file or value and
says what to do. ``python -m course_sr <verb>`` prints it as ``<verb>: error: <message>`` and exits
with status 2, without a traceback (``--debug`` or ``COURSE_SR_DEBUG=1`` shows it); anything else
is a bug in the kit and keeps its traceback. The same path turns an ``OSError`` about a file the
user gave into one line (:func:`from_os_error`: permission denied, read-only, disk full, a path
absent or in the way); :func:`naming` gives a full disk's error its file, and
:func:`user_errors` lets a verb treat the built-in errors of older code as the user's.

The package's specific errors derive from it as well as from the built-in class a caller would
expect (``MissingDataError`` is also a ``FileNotFoundError``, ``CacheTooLargeError`` a
``ValueError``), so existing ``except`` clauses keep working. Notebooks call the functions directly
and see the same one-line message.
"""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Iterator


# The errnos of a full disk (or quota) and of a folder the user may not write: every writer that
# says "disk full" or "read-only" tests these, so they agree on what counts.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class UserError(Exception):
    """A mistake the user can fix; the message (one line) names the file or value and what to do."""

    def __str__(self) -> str:     # a subclass that is also a KeyError would print its repr (quoted)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


def one_line(message: str) -> str:
    """``message`` on one line: its lines joined (``"; "``, or a space after a colon), blanks dropped."""
    out = ""
    for line in (part.strip() for part in str(message).splitlines()):
        if line:
            out += line if not out else (" " if out.endswith(":") else "; ") + line
    return out


def from_os_error(err: OSError) -> UserError | None:
    """The user's side of an ``OSError``, as a :class:`UserError` naming the file, or None.

    Only what a user can fix and the error names a file for: no permission, a read-only file
    system, a full disk, a path that is absent or in the way (a file where a folder is needed).
    ``python -m course_sr`` maps these at its one error path, so a verb that writes a file need
    not catch them itself.
    """
    path = err.filename if err.filename is not None else None
    where = f" {path}" if path is not None else ""
    if err.errno in DISK_FULL_ERRNOS:
        return UserError(f"disk full while writing{where or ' (file not named by the system)'}: free some "
                         "space (or choose another output folder) and run the command again")
    if path is None:
        return None
    if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM):
        # A file that exists but cannot be read was being read; anything else was being written.
        reading = os.path.lexists(path) and not os.access(path, os.R_OK)
        fix = "fix its permissions" if reading else "choose a folder you may write to, or fix its permissions"
        return UserError(f"cannot {'read' if reading else 'write'} {path}: permission denied ({fix})")
    if err.errno == errno.EROFS:
        return UserError(f"cannot write {path}: read-only file system (choose another output folder)")
    if err.errno in _PATH_ERRNOS:                # a path given on the command line that does not fit
        other = f" -> {err.filename2}" if err.filename2 is not None else ""
        return UserError(f"{path}{other}: {err.strerror or os.strerror(err.errno)} (check the paths given to the command)")
    return None


# Errors about a path itself (absent, in the way, a file where a folder is needed, too long).
_PATH_ERRNOS = frozenset((errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG))


@contextlib.contextmanager
def user_errors(*types: type[Exception]) -> Iterator[None]:
    """Treat ``types`` raised inside the block as the user's mistake: re-raised as a :class:`UserError`
    with the same message (the original stays chained, for ``--debug``).

    For a verb calling code that predates :class:`UserError` and reports bad input with built-in
    errors (``FileNotFoundError`` naming the file, ``ValueError`` naming the value). Keep ``types``
    as narrow as the verb's own ``except`` clause was; a bug elsewhere keeps its traceback.
    """
    try:
        yield
    except UserError:
        raise
    except types as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            mapped = from_os_error(err)
            if mapped is not None:
                raise mapped from err
        raise UserError(one_line(str(message))) from err


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Give an ``OSError`` raised inside without a file name the name ``path``: a full disk is
    reported by ``write()``/``close()``, which name no file, and "disk full" must say which one."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = os.fspath(path)
        raise
