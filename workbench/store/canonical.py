"""Canonical JSON: the one way workbench turns a value into JSON text.

Sorted keys, no spaces, non-finite floats as strings and dates in ISO form, so the same value
always gives the same text: the audit chain hashes it, and the store's JSON columns are written
with it (so NaN never reaches a JSON column, which neither backend accepts).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, non-finite floats as strings.

    >>> canonical_json({"b": float("nan"), "a": [1, 2.5]})
    '{"a":[1,2.5],"b":"NaN"}'
    """
    try:  # the common case needs no rewriting of the value
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_default)
    except (ValueError, TypeError):  # NaN/inf, or keys that are not strings
        return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sorted_object(pairs: list[tuple[str, Any]]) -> dict:
    return dict(sorted(pairs))


def loads(text: str) -> Any:
    """JSON text as Python values, every object's keys in sorted order: how the store's JSON
    columns read back on both backends (PostgreSQL's jsonb orders keys its own way).

    >>> loads('{"b": 1, "a": {"d": 2, "c": 3}}')
    {'a': {'c': 3, 'd': 2}, 'b': 1}
    """
    return json.loads(text, object_pairs_hook=_sorted_object)
