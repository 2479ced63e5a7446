"""Data set fingerprints: a content digest, the schema and the size of a frame."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .errors import ValidationError


@dataclass(frozen=True)
class DatasetRef:
    """A logged data set: ``id`` in the store, its ``name`` and content ``digest``."""

    id: int
    name: str
    digest: str
    n_rows: int


def to_polars(data) -> pl.DataFrame:
    """Accept a polars or pandas DataFrame, or a Parquet/CSV path."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.exists():
            raise ValidationError(f"Data set file {path} does not exist.")
        return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pl.from_pandas(data.reset_index(drop=True))
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    raise ValidationError(f"Cannot log a data set of type {type(data).__name__}: give a polars or pandas DataFrame or a file path.")


def fingerprint(df: pl.DataFrame) -> tuple[str, str]:
    """(sha256 digest, schema JSON). The digest covers names, types and values.

    It hashes the uncompressed Arrow IPC stream of the rechunked frame, which is the
    same for the same content (pandas input is converted to polars first).

    >>> fingerprint(pl.DataFrame({"a": [1, 2]}))[0] == fingerprint(pl.DataFrame({"a": [1, 2]}))[0]
    True
    """
    buf = io.BytesIO()
    df.rechunk().write_ipc_stream(buf, compression="uncompressed")
    schema = json.dumps({name: str(dtype) for name, dtype in df.schema.items()})
    return hashlib.sha256(buf.getvalue()).hexdigest(), schema
