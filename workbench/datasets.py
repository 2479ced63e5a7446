"""Data sets as workbench takes them: any frame-like input as polars, its fingerprint, and a reference to a logged one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from .errors import ValidationError


@dataclass(frozen=True)
class DatasetRef:
    """A logged data set: ``id`` in the store, its ``name``, content ``digest`` and column ``marks``."""

    id: int
    name: str
    digest: str
    n_rows: int
    marks: dict = field(default_factory=dict, compare=False)  # {column: identifying | sensitive | none}


def to_polars(data) -> pl.DataFrame:
    """Accept a polars or pandas DataFrame, or a Parquet/CSV path.

    Parameters
    ----------
    data : polars DataFrame or LazyFrame, pandas DataFrame, str or Path
        The data; a path ending in ``.parquet`` is read as Parquet, any other as CSV. A
        LazyFrame is collected; a pandas index is dropped.

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    ValidationError
        If the file does not exist or ``data`` is of another type.
    """
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
    """(sha256 digest, schema JSON). The digest covers column names, types and values.

    It hashes a canonical encoding of each column (null mask, then fixed-width values or
    byte lengths plus bytes), not Arrow buffers: those differ for equal content (slices,
    leftover validity bitmaps, pandas vs polars origin).

    >>> a = pl.DataFrame({"a": [1.5, None], "s": ["x", None]})
    >>> fingerprint(a)[0] == fingerprint(pl.from_pandas(a.to_pandas()))[0]
    True
    >>> fingerprint(a)[0] == fingerprint(a.with_columns(pl.col("a").fill_null(0.0)))[0]
    False
    """
    h = hashlib.sha256()
    h.update(f"{df.height}\n".encode())
    for name, dtype in df.schema.items():
        h.update(f"{name}\x00{dtype}\x00".encode())
        _hash_column(h, df.get_column(name))
    schema = json.dumps({name: str(dtype) for name, dtype in df.schema.items()})
    return h.hexdigest(), schema


def _hash_column(h, s: pl.Series) -> None:
    h.update(np.packbits(s.is_null().to_numpy()).tobytes())
    dtype = s.dtype
    if dtype.is_float():
        s = s.fill_nan(float("nan"))  # one NaN bit pattern
    if dtype.is_numeric() or dtype == pl.Boolean:
        h.update(np.ascontiguousarray(s.fill_null(0).to_numpy()).tobytes())
    elif dtype.is_temporal():
        h.update(np.ascontiguousarray(s.to_physical().fill_null(0).to_numpy()).tobytes())
    else:
        try:
            text = s.cast(pl.String).fill_null("")
        except pl.exceptions.PolarsError:  # nested types: slow, but exact
            text = pl.Series([repr(v) for v in s.to_list()], dtype=pl.String)
        h.update(np.ascontiguousarray(text.str.len_bytes().to_numpy()).tobytes())
        h.update(text.str.join("").item().encode())
