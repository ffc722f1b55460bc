"""The one kind of error a user can fix, and how every command shows it.

A :class:`UserError` is a mistake the user can correct: a missing file, a value out of range, a
checkpoint that does not match the config. Its message is one line that names the file or value and
says what to do. ``python -m course_sr <verb>`` prints it as ``<verb>: error: <message>`` and exits
with status 2, without a traceback; anything else is a bug in the kit and keeps its traceback.

The package's specific errors derive from it as well as from the built-in class a caller would
expect (``MissingDataError`` is also a ``FileNotFoundError``, ``CacheTooLargeError`` a
``ValueError``), so existing ``except`` clauses keep working. Notebooks call the functions directly
and see the same one-line message.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message (one line) names the file or value and what to do."""
