"""Protected attributes only in aggregate: groups under the minimum size are pooled in pages and reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.evidence.fairness import fairness_report
from workbench.protection import small_groups

RATES = ["selection_rate", "tpr", "fpr", "precision", "accuracy", "impact_ratio"]


@settings(max_examples=60, deadline=None)
@given(sizes=hs.lists(hs.integers(1, 80), min_size=2, max_size=6), seed=hs.integers(0, 10_000),
       min_size=hs.integers(5, 40))
def test_a_pooled_row_equals_the_report_computed_with_those_groups_merged(sizes, seed, min_size):
    rng = np.random.default_rng(seed)
    groups = np.concatenate([[f"g{i}"] * n for i, n in enumerate(sizes)])
    y, p = rng.integers(0, 2, len(groups)), rng.integers(0, 2, len(groups))
    report = fairness_report(y, p, {"attr": groups}, min_group_size=min_size, n_bootstrap=0)
    pooled = small_groups.pool(report.by_group, min_size)
    small = [f"g{i}" for i, n in enumerate(sizes) if n < min_size]
    shown = pooled["group"].to_list()
    assert not set(small) & set(shown)  # no small group by name
    big = pooled.filter(~pl.col("flagged_small"))
    assert big.equals(report.by_group.filter(pl.col("count") >= min_size))  # judged groups unchanged
    if not small:
        assert pooled.equals(report.by_group)
        return
    row = pooled.filter(pl.col("flagged_small")).to_dicts()
    assert len(row) == 1 and row[0]["count"] == sum(n for n in sizes if n < min_size)
    if row[0]["count"] < min_size:
        assert "rates withheld" in row[0]["group"] and all(row[0][r] is None for r in RATES)
        return
    m = np.isin(groups, small)  # the truth, straight from the rows of the pooled groups

    def mean(values):
        return float(np.mean(values)) if len(values) else None

    truth = {"selection_rate": mean(p[m]), "tpr": mean(p[m & (y == 1)]), "fpr": mean(p[m & (y == 0)]),
             "precision": mean(y[m & (p == 1)]), "accuracy": mean(y[m] == p[m])}
    for rate, b in truth.items():
        a = row[0][rate]
        a = None if a is None or np.isnan(a) else a
        assert (a is None and b is None) or abs(a - b) < 1e-12, (rate, a, b)


@pytest.fixture
def tiny_group_store(ws, op):
    """A model judged by an attribute where one group has 3 people and another 4."""
    rng = np.random.default_rng(7)
    n = 400
    X = pl.DataFrame({"income": rng.normal(size=n), "debt": rng.normal(size=n)})
    y = (X["debt"].to_numpy() + rng.normal(0, 1, n) > 0).astype(int)
    belief = np.array(["majority"] * 393 + ["Zoroastrian"] * 3 + ["Jain"] * 4)
    model = LogisticRegression().fit(X.to_numpy(), y)
    with ws.start_run("tiny") as run:
        mv = run.register_model(model, "loans", risk_tier="high")
    ws.fairness(mv, X.with_columns(pl.Series("religion", belief)), y, sensitive_features=["religion"], n_bootstrap=0)
    op.add_user("casey", "compliance_officer", "casey-long-passphrase-1")
    ws.flush()
    return ws


def test_the_fairness_page_and_the_reports_never_show_a_small_group(tiny_group_store, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from workbench.people import auth
    from workbench.ui import widgets as ui

    ws = tiny_group_store
    # the stored evidence keeps every group: the verdict was computed on them
    _, stored = ws.evidence_detail(ws.evidence("loans")["id"][0])
    assert {"Zoroastrian", "Jain"} <= set(stored["group"])
    casey = wb.connect(store=ws.store.location, user="casey")
    card = json.loads(Path(casey.export_report("model-card", "loans", 1, fmt="json", out_dir=tmp_path)).read_text())
    groups = [g["group"] for g in card["fairness"]["by_group"]]
    assert groups == ["majority", "2 groups of under 30 (rates withheld)"]
    assert card["fairness"]["by_group"][1]["selection_rate"] is None and card["fairness"]["by_group"][1]["count"] == 7
    for fmt in ("html", "md"):
        text = Path(casey.export_report("validation", "loans", 1, fmt=fmt, out_dir=tmp_path)).read_text()
        assert "Zoroastrian" not in text and "Jain" not in text and "2 groups of under 30" in text
    monkeypatch.setenv("WORKBENCH_STORE", ws.store.location)
    ws.store.release()
    page = Path(__file__).resolve().parent.parent / "pages" / "fairness.py"
    at = AppTest.from_file(str(page), default_timeout=90)
    at.session_state[ui.SIGNED] = auth.sign_in(ws.store.location, "casey", "casey-long-passphrase-1")
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["group"].tolist() == ["majority", "2 groups of under 30 (rates withheld)"]
    chart = at.get("plotly_chart")[0].proto.spec
    assert "Zoroastrian" not in chart and "Jain" not in chart and "2 groups of under 30" in chart
