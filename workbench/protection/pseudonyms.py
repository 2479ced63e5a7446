"""Keyed pseudonyms: identifying values replaced by HMAC-SHA256 tokens before they are stored.

The same value gives the same token under the same key, so joins (labels to predictions,
a case across data sets) still work; without the key a token cannot be reversed or
recomputed from a guess. The key comes from :func:`workbench.store.keys.pseudonym_key`.
Tokens are kept as they are when met again, so data read back from the store can be
logged again.

>>> key = bytes(32)
>>> token("ann@example.org", key)
'tok_7bfe6be90050b25667b66b0764d295c4'
>>> token(token("ann@example.org", key), key) == token("ann@example.org", key)
True
"""

from __future__ import annotations

import hashlib
import hmac
import re

import polars as pl

PREFIX = "tok_"
TOKEN = re.compile(r"^tok_[0-9a-f]{32}$")


def token(value, key: bytes) -> str:
    """The token of one value (its text form); a token stays itself."""
    text = str(value)
    if TOKEN.match(text):
        return text
    return PREFIX + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def pseudonymise(frame: pl.DataFrame, columns, key: bytes) -> pl.DataFrame:
    """``frame`` with each of ``columns`` (those present) replaced by tokens; nulls stay null.

    Each distinct value is hashed once, so a million rows of a few thousand customers cost
    a few thousand HMACs.
    """
    out = []
    for col in columns:
        if col not in frame.columns:
            continue
        text = frame.get_column(col).cast(pl.String)
        distinct = text.drop_nulls().unique()
        mapping = pl.DataFrame({col: distinct, "__token": [token(v, key) for v in distinct.to_list()]},
                               schema={col: pl.String, "__token": pl.String})
        out.append(text.to_frame().join(mapping, on=col, how="left", maintain_order="left")["__token"].alias(col))
    return frame.with_columns(out) if out else frame
