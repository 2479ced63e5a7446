"""Ground truth for the drift report: the real Evidently 0.7 ``DataDriftPreset``, as plain values.

Tests import it as ``import _evidently_reference`` (pytest puts ``tests/`` on ``sys.path``) and
compare our own drift report against it column by column. Evidently is imported lazily, so
collecting the test suite does not pay for it; a report takes ~0.5-5 s (100k rows x 20 columns: ~6 s).
"""

from __future__ import annotations

import warnings

import pandas as pd
import polars as pl

_KINDS = {"numerical": "num", "categorical": "cat", "text": "text"}  # our kind -> ColumnType.value
_LISTS = {"num": "numerical_columns", "cat": "categorical_columns", "text": "text_columns"}


def _run(reference: pd.DataFrame, current: pd.DataFrame, column_kinds: dict[str, str] | None):
    """Run ``Report([DataDriftPreset()], include_tests=True)``; return its snapshot and DataDefinition."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    declared = {col: _KINDS[kind] for col, kind in (column_kinds or {}).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's divide-by-zero for a category new in current, etc.
        # Evidently infers kinds from the *current* frame only (Context.data_definition is current's).
        inferred = Dataset.from_pandas(current).data_definition
        lists = {
            name: [c for c in (getattr(inferred, name) or []) if c not in declared]
            for name in ("numerical_columns", "categorical_columns", "text_columns",
                         "datetime_columns", "unknown_columns", "list_columns")
        }
        for col, kind in declared.items():
            lists[_LISTS[kind]].append(col)
        timestamp = inferred.timestamp if inferred.timestamp not in declared else None
        definition = DataDefinition(timestamp=timestamp, **lists)
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    return snapshot, definition


def evidently_drift(
    reference: pd.DataFrame, current: pd.DataFrame, column_kinds: dict[str, str] | None = None
) -> dict:
    """Evidently's verdicts for ``current`` against ``reference`` with default ``DataDriftPreset``.

    ``column_kinds`` maps columns to "numerical" / "categorical" / "text"; other columns keep the
    kind Evidently infers (from ``current``), and columns it infers as datetime/unknown are left
    out, as Evidently does. Returns ``{"columns": pl.DataFrame[column, kind, stattest, statistic,
    threshold, drift_detected], "drift_share": float, "dataset_drift": bool}`` with columns in
    ``current``'s order; ``stattest`` is Evidently's id ("ks", "z", "chisquare", ...), ``statistic``
    the drift score it reports (a p-value or a distance). Errors raised by Evidently propagate.

    ``drift_share``/``dataset_drift`` come from Evidently's ``DriftedColumnsCount``, which recomputes
    drift through its legacy path: for a numerical column holding +-inf but no NaN it keeps the
    infinities (score NaN -> not drifted), so it can disagree with the per-column rows.
    """
    from evidently.legacy.calculations.stattests.registry import (
        _registered_stat_tests as registry,
    )

    snapshot, definition = _run(reference, current, column_kinds)
    # ValueDrift reports the test's display name ("K-S p_value"); map it back to the id ("ks").
    stattest_id = {t.display_name: t.name for by_type in registry.values() for t in by_type.values()}
    kind_of = {v: k for k, v in _KINDS.items()}
    result = snapshot.dict()
    status = {t["metric_config"]["metric_id"]: t["status"] for t in result["tests"]}
    rows, share, dataset_drift = {}, None, None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"] == "evidently:metric_v2:ValueDrift":
            col = config["column"]
            rows[col] = {
                "column": str(col),
                "kind": kind_of[definition.get_column_type(col).value],
                "stattest": stattest_id[config["method"]],
                "statistic": float(metric["value"]),
                "threshold": float(config["threshold"]),
                "drift_detected": status[metric["id"]] == "FAIL",
            }
        elif config["type"] == "evidently:metric_v2:DriftedColumnsCount":
            share = float(metric["value"]["share"])
            dataset_drift = status[metric["id"]] == "FAIL"  # its test is share < drift_share
    order = [c for c in current.columns if c in rows]
    schema = {
        "column": pl.String, "kind": pl.String, "stattest": pl.String,
        "statistic": pl.Float64, "threshold": pl.Float64, "drift_detected": pl.Boolean,
    }
    return {
        "columns": pl.DataFrame([rows[c] for c in order], schema=schema),
        "drift_share": share,
        "dataset_drift": dataset_drift,
    }


def evidently_html(
    reference: pd.DataFrame, current: pd.DataFrame, column_kinds: dict[str, str] | None = None
) -> str:
    """Evidently's own standalone HTML for the same report (for eyeballing next to ours)."""
    snapshot, _ = _run(reference, current, column_kinds)
    return snapshot.get_html_str(as_iframe=False)
