"""``engine="evidently"``: the drift report computed by Evidently 0.7 itself, with its HTML.

For users who want Evidently's own report next to the workbench's. It loads both data
sets whole into pandas (Evidently's requirement), runs ``Report([DataDriftPreset()])`` and
reads its per-column results back into a :class:`~workbench.evidence.drift.DriftReport`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..errors import ValidationError
from .drift import (
    COLUMNS_SCHEMA,
    DATASET_DRIFT_SHARE,
    DriftReport,
    ReferenceProfile,
    drift_severity,
)

_TYPE = {"numerical": "numerical_columns", "categorical": "categorical_columns", "text": "text_columns"}
_KIND = {"num": "numerical", "cat": "categorical", "text": "text"}


def _pandas(data: Any, side: str) -> pd.DataFrame:
    if isinstance(data, ReferenceProfile):
        raise ValidationError("engine='evidently' needs the reference data itself, not a ReferenceProfile.")
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pl.DataFrame):
        return data.to_pandas()
    if isinstance(data, pl.LazyFrame):
        return data.collect().to_pandas()
    try:
        return pd.read_parquet(data)
    except (OSError, ValueError, TypeError) as exc:
        raise ValidationError(f"The {side} data must be a polars or pandas DataFrame or a Parquet path: {exc}") from None


def _finite(s: pd.Series) -> int:
    return int(s.replace([np.inf, -np.inf], np.nan).notna().sum())


def evidently_report(reference: Any, current: Any, *, columns: list[str] | None = None,
                     column_kinds: dict[str, str] | None = None, target: str | None = None,
                     prediction: str | None = None) -> DriftReport:
    """Evidently's ``DataDriftPreset`` on the same inputs as :func:`workbench.evidence.drift.drift_report`.

    Both data sets are loaded whole into pandas. ``column_kinds`` declares kinds; Evidently
    infers the rest on the current data.

    Returns
    -------
    DriftReport
        With ``engine="evidently"`` and Evidently's HTML in ``html``; no PSI.

    Raises
    ------
    ValidationError
        ``reference`` is a :class:`~workbench.evidence.drift.ReferenceProfile`, an input is
        not a frame or readable Parquet, a wanted column is missing from either side, or
        Evidently fails on the data.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.presets import DataDriftPreset

    ref, cur = _pandas(reference, "reference"), _pandas(current, "current")
    wanted = list(columns) if columns is not None else list(cur.columns)
    wanted += [c for c in (target, prediction) if c and c not in wanted]
    missing = [c for c in wanted if c not in ref.columns or c not in cur.columns]
    if missing:
        raise ValidationError(f"Evidently needs every column on both sides; missing: {missing[:8]}.")
    ref, cur = ref[wanted], cur[wanted]
    declared = dict(column_kinds or {})
    bad = {c: k for c, k in declared.items() if k not in _TYPE}
    if bad:  # the same refusal as drift_report's
        raise ValidationError(f"column_kinds must map to one of {tuple(_TYPE)}; got {bad}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Declaring some kinds switches Evidently's inference off for the rest: infer them first.
        inferred = Dataset.from_pandas(cur).data_definition
        lists = {key: [c for c in (getattr(inferred, key) or []) if c not in declared]
                 for key in ("numerical_columns", "categorical_columns", "text_columns", "datetime_columns",
                             "unknown_columns", "list_columns")}
        for col, kind in declared.items():
            lists[_TYPE[kind]].append(col)
        definition = DataDefinition(timestamp=inferred.timestamp if inferred.timestamp not in declared else None, **lists)
        try:
            snapshot = Report([DataDriftPreset()], include_tests=True).run(
                Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition))
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            raise ValidationError(f"Evidently could not compute the report: {exc}") from None
        html = snapshot.get_html_str(as_iframe=False)
    ids = {t.display_name: t.name for by_type in _registered_stat_tests.values() for t in by_type.values()}
    result = snapshot.dict()
    failed = {t["metric_config"]["metric_id"] for t in result["tests"] if t["status"] == "FAIL"}
    rows = []
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"] != "evidently:metric_v2:ValueDrift":
            continue
        col, stattest, statistic = config["column"], ids[config["method"]], float(metric["value"])
        rows.append({"column": col, "role": "target" if col == target else "prediction" if col == prediction else "feature",
                     "kind": _KIND[definition.get_column_type(col).value], "stattest": stattest,
                     "statistic": statistic, "threshold": float(config["threshold"]),
                     "drift_detected": metric["id"] in failed, "severity": drift_severity(stattest, statistic),
                     "psi": None, "psi_band": None, "n_reference": _finite(ref[col]), "n_current": _finite(cur[col])})
    tested = {r["column"] for r in rows}
    not_tested = pl.DataFrame([{"column": c, "reason": "Evidently does not test this column's type"}
                               for c in wanted if c not in tested], schema={"column": pl.String, "reason": pl.String})
    table = pl.DataFrame(rows, schema=COLUMNS_SCHEMA)
    share = int(table["drift_detected"].sum()) / max(table.height, 1)
    return DriftReport(table, share, share >= DATASET_DRIFT_SHARE, not_tested, len(ref), len(cur),
                       engine="evidently", html=html)
