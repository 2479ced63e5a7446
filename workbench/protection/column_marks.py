"""Which columns identify a person or hold a protected attribute: the detector and the rules.

A column is marked ``identifying`` (PII: names, ids, emails ...; pseudonymised before it is
stored), ``sensitive`` (a protected attribute: usable for fairness, shown only in aggregate)
or ``none`` (looked at and cleared). The detector proposes marks from names and values; a
person confirms or changes them (:meth:`Workspace.mark_columns`); a data set logged with
parents inherits their marks for the columns it shares with them.

>>> propose(["applicant_id", "income", "sex", "Email", "ageBand", "valid"])
{'applicant_id': 'identifying', 'sex': 'sensitive', 'Email': 'identifying', 'ageBand': 'sensitive'}
>>> import polars as pl
>>> frame = pl.DataFrame({"contact": ["ann@example.org", "bo@example.com"], "score": [0.2, 0.9]})
>>> detect(frame)
{'contact': ('identifying', 'values look like email addresses')}
"""

from __future__ import annotations

import re

import polars as pl

from ..errors import ValidationError

MARKS = ("identifying", "sensitive", "none")

#: Name tokens that mark a column as identifying a person (PII).
IDENTIFYING_TOKENS = {"id", "uuid", "ssn", "email", "mail", "phone", "mobile", "iban", "passport", "address",
                      "name", "firstname", "lastname", "surname", "dob", "birthdate", "ip"}
#: Name tokens that mark a protected attribute (the grounds anti-discrimination law names).
SENSITIVE_TOKENS = {"sex", "gender", "race", "ethnicity", "ethnic", "religion", "religious", "age", "disability",
                    "disabled", "marital", "nationality", "pregnancy", "pregnant", "orientation", "sexuality"}

#: Value shapes that identify a person, each with the words of the reason shown to the user.
PATTERNS = {
    "email addresses": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "phone numbers": r"^\+?[0-9][0-9 ().-]{6,18}[0-9]$",
    "IBANs": r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$",
    "national id numbers": r"^[0-9]{3}-[0-9]{2}-[0-9]{4}$",
    "IP addresses": r"^(?:[0-9]{1,3}\.){3}[0-9]{1,3}$",
    "UUIDs": r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
}
#: Share of the sampled values that must fit a pattern.
MATCH_SHARE = 0.9
#: Rows looked at per column; a fixed-seed sample keeps detection fast and repeatable.
SAMPLE_ROWS = 2_000
#: A text column whose values are all distinct, over at least this many rows, is a key.
UNIQUE_MIN_ROWS = 20


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)  # camelCase -> camel Case
    return {t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t}


def _by_name(name: str) -> str | None:
    toks = _tokens(str(name))
    if toks & IDENTIFYING_TOKENS:
        return "identifying"
    if toks & SENSITIVE_TOKENS:
        return "sensitive"
    return None


def propose(columns) -> dict[str, str]:
    """{column: 'identifying' | 'sensitive'} for the columns whose names suggest it, in order."""
    return {col: mark for col in columns if (mark := _by_name(col))}


def detect(frame: pl.DataFrame) -> dict[str, tuple[str, str]]:
    """{column: (mark, reason)} proposed from the column names and, for text, the values."""
    out = {}
    sample = frame.sample(SAMPLE_ROWS, seed=0) if frame.height > SAMPLE_ROWS else frame
    for col in frame.columns:
        if mark := _by_name(col):
            out[col] = (mark, f"the name {col!r} suggests it")
            continue
        if frame.schema[col] not in (pl.String, pl.Categorical, pl.Enum):
            continue
        values = sample.get_column(col).cast(pl.String).drop_nulls().str.strip_chars()
        if values.len() == 0:
            continue
        for what, pattern in PATTERNS.items():
            if values.str.contains(pattern).mean() >= MATCH_SHARE:
                out[col] = ("identifying", f"values look like {what}")
                break
        else:
            full = frame.get_column(col).drop_nulls()
            if full.len() >= UNIQUE_MIN_ROWS and full.n_unique() == full.len():
                out[col] = ("identifying", "every value is different: a key to a person or record")
    return out


def check(marks, columns) -> dict[str, str]:
    """``marks`` ({column: mark}) validated against the data set's ``columns``.

    Returns
    -------
    dict
        A copy of ``marks``.

    Raises
    ------
    ValidationError
        ``marks`` is not a dict, names a column not in ``columns``, or holds a mark not in
        ``MARKS``.
    """
    if not isinstance(marks, dict):
        raise ValidationError(f"marks must be a dict of column -> one of {MARKS}, not {type(marks).__name__}.")
    unknown = [c for c in marks if c not in columns]
    if unknown:
        raise ValidationError(f"marks name column(s) {unknown[:8]} the data set does not have.")
    bad = {c: m for c, m in marks.items() if m not in MARKS}
    if bad:
        raise ValidationError(f"Column mark(s) {list(bad)[:8]} must be one of {MARKS}.")
    return dict(marks)
