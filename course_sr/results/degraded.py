"""``evaluate --degradation SPEC``: reading the spec of a fixed synthetic camera, and its label.

SPEC is a preset of ``course_sr.unpaired.degradations`` (``sensor-fixed``, ``fixed``, ``default``,
``sensor``, ``clean``), a JSON object of its fields (text starting with ``{``, e.g.
``'{"preset": "fixed", "noise": 10}'``), a mapping of fields or a ``Degradation``. The label names
it in every table and output file: the preset name, else the fields as compact JSON (sorted keys);
:func:`read_degradation` of a label gives the same spec back. A bad SPEC is one
:class:`DegradationSpecError` line naming the value and the valid presets.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Mapping

from course_sr.plumbing.errors import UserError, one_line
from course_sr.unpaired.degradations import PRESETS, Degradation, get_degradation

EXAMPLE = '{"preset": "fixed", "noise": 10}'


class DegradationSpecError(UserError, ValueError):
    """A degradation spec that is neither a preset nor valid fields; one line naming it. Also a
    ValueError, as evaluate's other bad values are."""


def read_degradation(spec, scale: int = 4, what: str = "degradation") -> tuple[Degradation, str]:
    """``(Degradation at scale, label)`` of a spec (module docstring); ``what`` starts the error
    message (``"--degradation"`` on the command line)."""
    if isinstance(spec, Degradation):
        spec = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()}
    text = spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True, default=str)
    try:
        fields = json.loads(spec) if isinstance(spec, str) and spec.lstrip().startswith("{") else spec
        if isinstance(fields, str) and fields not in PRESETS:
            raise KeyError("not a preset name")
        if isinstance(fields, Mapping) and fields.get("preset", "fixed") not in PRESETS:
            raise KeyError(f"unknown preset {fields['preset']!r}")
        degradation = get_degradation(fields, scale)
        if degradation is None:
            raise TypeError("None is no degradation")
    except (KeyError, TypeError, ValueError, IndexError) as err:
        reason = (err.args[0] if isinstance(err, KeyError) and err.args else
                  "a range is two numbers [lo, hi]" if isinstance(err, IndexError) else err)
        raise DegradationSpecError(one_line(
            f"{what} {text!r}: {reason}; valid presets: {', '.join(sorted(PRESETS))}, or a JSON object of "
            f"their fields, e.g. '{EXAMPLE}'")) from err
    label = fields if isinstance(fields, str) else json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return degradation, label
