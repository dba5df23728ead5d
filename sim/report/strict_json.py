"""JSON that strict parsers accept (RFC 8259 has no NaN or Infinity): a non-finite number becomes null.

``json.dumps`` writes ``Infinity`` and ``NaN`` by default, which JavaScript's ``JSON.parse``, jq and most
typed parsers reject; an infinite price or an undefined ratio is reported as ``null`` instead.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (anywhere in dicts, lists, tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)`` with ``allow_nan=False``.

    The walk is made only when the encoder meets a non-finite number (it raises ``ValueError``): the text of
    an object without any is the same either way, and a large one (a trace of a million events) is not
    copied first."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:  # a non-finite number somewhere (any other error is raised again below)
        return json.dumps(finite(obj), allow_nan=False, **kwargs)
