"""Values on the wire between the server and a remote workspace: JSON, with tags for the rest.

Plain JSON values travel as themselves, so ``curl`` can call the API with ordinary JSON. What
JSON cannot hold travels as a one-key object whose key starts with ``$``:

- ``{"$datetime": "2026-12-07T10:00:00+00:00"}``, ``{"$date": "2026-12-07"}``
- ``{"$float": "NaN"}`` (and ``"Infinity"``, ``"-Infinity"``)
- ``{"$bytes": "<base64>"}``, ``{"$path": "/srv/out/card.html"}``, ``{"$tuple": [...]}``
- ``{"$frame": "<base64 Arrow IPC stream>"}``: a polars frame, its dtypes kept
- ``{"$series": "<base64 Arrow IPC stream>"}``: a polars series (a frame of one column)
- ``{"$dataclass": "workbench.registry.models:ModelVersion", "fields": {...}}``: a result type of
  an operation (only classes of the ``workbench`` package are rebuilt)
- ``{"$dict": [[key, value], ...]}``: a dict with a key that starts with ``$`` or is not text.

A whole frame as an operation's result is sent as an Arrow IPC stream instead
(:data:`ARROW`), not base64 inside JSON.

>>> from datetime import datetime, timezone
>>> decode(encode({"at": datetime(2026, 12, 7, tzinfo=timezone.utc), "n": float("nan")}))["at"].year
2026
>>> encode((1, "a"))
{'$tuple': [1, 'a']}
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import importlib
import io
import math
import typing
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from .errors import ValidationError

#: The media type of a frame sent whole (an Arrow IPC stream).
ARROW = "application/vnd.apache.arrow.stream"
_PACKAGE = "workbench."


def frame_bytes(frame: pl.DataFrame) -> bytes:
    """``frame`` as an Arrow IPC stream."""
    buf = io.BytesIO()
    frame.write_ipc_stream(buf)
    return buf.getvalue()


def read_frame(data: bytes) -> pl.DataFrame:
    """A polars frame from an Arrow IPC stream.

    Raises
    ------
    ValidationError
        If ``data`` is not an Arrow IPC stream.
    """
    try:
        return pl.read_ipc_stream(io.BytesIO(data))
    except Exception as exc:  # polars raises several kinds for bytes that are not a stream
        raise ValidationError(f"Not an Arrow IPC stream: {exc}") from None


def encode(value: Any) -> Any:
    """``value`` as JSON-ready Python (dicts, lists, strings, numbers), tagged where needed."""
    if value is None or isinstance(value, (bool, int, str)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": "NaN" if math.isnan(value) else
                                                   ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Path):
        return {"$path": str(value)}
    if isinstance(value, pl.DataFrame):
        return {"$frame": base64.b64encode(frame_bytes(value)).decode()}
    if isinstance(value, pl.Series):
        return {"$series": base64.b64encode(frame_bytes(value.to_frame())).decode()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"$dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, (list, set, frozenset)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return encode(value.item())
    raise ValidationError(f"A {type(value).__name__} cannot be sent to or from the server.")


def _dataclass(name: str, fields: dict) -> Any:
    module, _, qualname = name.partition(":")
    if not (module + ".").startswith(_PACKAGE):
        raise ValidationError(f"{name!r} is not a workbench type.")
    try:
        cls = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        raise ValidationError(f"Unknown type {name!r}.") from None
    if not dataclasses.is_dataclass(cls) or not isinstance(fields, dict):
        raise ValidationError(f"{name!r} is not a workbench result type.")
    hints = typing.get_type_hints(cls)
    values = {}
    for k, v in fields.items():
        v = decode(v)
        hint = hints.get(k)
        if isinstance(hint, type) and issubclass(hint, enum.Enum) and v is not None:
            v = hint(v)  # a StrEnum field comes back as its enum, as in file mode
        values[k] = v
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValidationError(f"{name}: {exc}") from None


def _series(frame: pl.DataFrame) -> pl.Series:
    if frame.width != 1:
        raise ValidationError(f"A $series holds one column, not {frame.width}.")
    return frame.to_series()


_TAGS = {
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$float": float,
    "$bytes": base64.b64decode,
    "$path": Path,
    "$frame": lambda v: read_frame(base64.b64decode(v)),
    "$series": lambda v: _series(read_frame(base64.b64decode(v))),
    "$tuple": lambda v: tuple(decode(x) for x in v),
    "$dict": lambda v: {decode(k): decode(x) for k, x in v},
}


def decode(value: Any) -> Any:
    """The Python value :func:`encode` made ``value`` from.

    Raises
    ------
    ValidationError
        For a malformed tag (the message names it).
    """
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dataclass" in value:
        return _dataclass(value["$dataclass"], value.get("fields"))
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag in _TAGS:
            try:
                return _TAGS[tag](inner)
            except ValidationError:
                raise
            except Exception as exc:  # a malformed tag from a client: say which
                raise ValidationError(f"Cannot read {tag} value {str(inner)[:60]!r}: {exc}") from None
    return {k: decode(v) for k, v in value.items()}


__all__ = ["ARROW", "encode", "decode", "frame_bytes", "read_frame"]
