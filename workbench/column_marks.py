"""Which columns hold a protected attribute or identify a person: a proposal by name.

Per-row views (a row's SHAP waterfall) show no value for such columns. The proposal is
a default from the column names; a caller who knows the data passes its own list.

>>> propose(["applicant_id", "income", "sex", "Email", "ageBand", "valid"])
{'applicant_id': 'identifying', 'sex': 'sensitive', 'Email': 'identifying', 'ageBand': 'sensitive'}
"""

from __future__ import annotations

import re

#: Name tokens that mark a column as identifying a person (PII).
IDENTIFYING_TOKENS = {"id", "uuid", "ssn", "email", "mail", "phone", "mobile", "iban", "passport", "address",
                      "name", "firstname", "lastname", "surname", "dob", "birthdate", "ip"}
#: Name tokens that mark a protected attribute (the grounds anti-discrimination law names).
SENSITIVE_TOKENS = {"sex", "gender", "race", "ethnicity", "ethnic", "religion", "religious", "age", "disability",
                    "disabled", "marital", "nationality", "pregnancy", "pregnant", "orientation", "sexuality"}


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)  # camelCase -> camel Case
    return {t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t}


def propose(columns) -> dict[str, str]:
    """{column: 'identifying' | 'sensitive'} for the columns whose names suggest it, in order."""
    out = {}
    for col in columns:
        toks = _tokens(str(col))
        if toks & IDENTIFYING_TOKENS:
            out[col] = "identifying"
        elif toks & SENSITIVE_TOKENS:
            out[col] = "sensitive"
    return out
