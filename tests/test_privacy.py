"""Column marks, keyed pseudonyms, and identifying values that never reach the store."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import workbench as wb
from workbench.demo.datasets import (
    FEATURES_CATEGORICAL,
    FEATURES_NUMERIC,
    TARGET,
    make_credit_applicants,
)
from workbench.protection import column_marks, pseudonyms
from workbench.store import artifacts, keys

FEATURES = FEATURES_NUMERIC + FEATURES_CATEGORICAL


# -- the detector ----------------------------------------------------------------------------
def test_the_detector_proposes_by_name_and_by_content_and_leaves_ordinary_columns_alone():
    n = 60
    frame = pl.DataFrame({
        "customer_email": [f"p{i}@example.org" for i in range(n)],
        "contact": [f"p{i}@mail.example.com" for i in range(n)],
        "tel": [f"+44 20 7946 {i:04d}" for i in range(n)],
        "acct": [f"GB82WEST1234569876{i:04d}" for i in range(n)],
        "tin": [f"{100 + i:03d}-45-{6789 + i:04d}" for i in range(n)],
        "host": [f"10.0.{i}.7" for i in range(n)],
        "ref": [f"{i:08x}-1234-4abc-8def-0123456789ab" for i in range(n)],
        "case_no": [f"K{i:05d}" for i in range(n)],  # unique text: a key
        "gender": ["f", "m"] * (n // 2),
        "region": ["north", "south", "east"] * (n // 3),
        "income": [float(i) for i in range(n)],
        "note": ["ok", None] * (n // 2),
    })
    found = column_marks.detect(frame)
    assert {c: m for c, (m, _) in found.items()} == {
        "customer_email": "identifying", "contact": "identifying", "tel": "identifying", "acct": "identifying",
        "tin": "identifying", "host": "identifying", "ref": "identifying", "case_no": "identifying",
        "gender": "sensitive"}
    assert found["contact"][1] == "values look like email addresses"
    assert found["acct"][1] == "values look like IBANs"
    assert found["case_no"][1].startswith("every value is different")
    assert found["customer_email"][1] == "the name 'customer_email' suggests it"


# -- marks on data sets ----------------------------------------------------------------------
def _people(n=50, seed=0):
    data = make_credit_applicants(n, seed=seed)
    return data.with_columns(pl.format("person{}@example.org", pl.int_range(pl.len())).alias("contact"))


def test_marks_are_proposed_confirmed_inherited_and_audited(ws, op):
    raw = _people()
    with ws.start_run("marks") as run:
        parent = run.log_dataset(raw, "applicants", marks={"postcode_area": "sensitive"})
        child = run.log_dataset(raw.drop("contact"), "applicants-clean", parents=[parent])
    assert parent.marks == {"applicant_id": "identifying", "contact": "identifying", "age": "sensitive",
                            "age_band": "sensitive", "sex": "sensitive", "postcode_area": "sensitive"}
    table = ws.column_marks(parent)
    origins = dict(zip(table["column"], table["origin"]))
    assert origins["postcode_area"] == "confirmed" and origins["contact"] == "detected"
    assert dict(zip(table["column"], table["reason"]))["contact"] == "values look like email addresses"
    # the child takes the parent's confirmed mark; its own columns are detected afresh
    child_marks = {r["column"]: (r["mark"], r["origin"]) for r in ws.column_marks(child).iter_rows(named=True)}
    assert child_marks["postcode_area"] == ("sensitive", "inherited")
    assert child_marks["applicant_id"] == ("identifying", "detected") and "contact" not in child_marks

    # a person decides on the parent: confirmed there, carried to the child
    after = ws.mark_columns(parent, {"age": "none", "employment_type": "sensitive"})
    assert after["age"] == "none" and after["employment_type"] == "sensitive"
    assert set(ws.column_marks(parent)["origin"]) == {"confirmed"}  # the other proposals confirmed as they stood
    child_marks = {r["column"]: (r["mark"], r["origin"]) for r in ws.column_marks(child).iter_rows(named=True)}
    assert child_marks["age"] == ("none", "inherited") and child_marks["employment_type"] == ("sensitive", "inherited")
    # ... unless a person marked the column on the child
    ws.mark_columns(child, {"sex": "none"}, confirm=False)
    ws.mark_columns(parent, {"sex": "sensitive"})
    assert ws.column_marks(child).filter(pl.col("column") == "sex")["mark"].item() == "none"

    events = op.audit_events(action="dataset.mark_columns")
    assert events.height >= 5 and set(events["actor"]) == {"dana"}
    assert op.verify_audit().ok


def test_bad_marks_are_refused_whole_and_only_some_roles_may_mark(ws, op):
    raw = _people()
    with ws.start_run("marks") as run:
        with pytest.raises(wb.ValidationError, match=r"column\(s\) \['nope'\] the data set does not have"):
            run.log_dataset(raw, "applicants", marks={"nope": "identifying"})
        with pytest.raises(wb.ValidationError, match="must be one of"):
            run.log_dataset(raw, "applicants", marks={"sex": "secret"})
        assert ws.datasets().is_empty()  # nothing of a refused call was stored
        ref = run.log_dataset(raw, "applicants")
    with pytest.raises(wb.NotFoundError, match="Data set 999 does not exist"):
        ws.mark_columns(999, {"sex": "none"})
    with pytest.raises(wb.ValidationError, match="Give a data set id"):
        ws.column_marks("applicants")
    op.add_user("riley", "reviewer")
    with pytest.raises(wb.PermissionDenied):
        wb.connect(store=ws.store.location, user="riley").mark_columns(ref, {"sex": "none"})
    op.add_user("casey", "compliance_officer")
    assert wb.connect(store=ws.store.location, user="casey").mark_columns(ref, {"sex": "none"})["sex"] == "none"


# -- pseudonyms ------------------------------------------------------------------------------
def test_tokens_are_stable_per_key_differ_across_keys_and_keep_nulls():
    k1, k2 = bytes(32), bytes([1]) * 32
    frame = pl.DataFrame({"id": ["a", "b", None, "a"], "n": [1, 2, 3, 4]})
    t1 = pseudonyms.pseudonymise(frame, ["id"], k1)
    assert t1["id"][0] == t1["id"][3] != t1["id"][1] and t1["id"][2] is None and t1["n"].to_list() == [1, 2, 3, 4]
    assert pseudonyms.pseudonymise(frame, ["id"], k2)["id"][0] != t1["id"][0]
    assert pseudonyms.pseudonymise(t1, ["id"], k1).equals(t1)  # tokens are kept when met again
    assert all(pseudonyms.TOKEN.match(t) for t in t1["id"].drop_nulls())


def test_without_a_configured_key_one_key_file_is_made_once_even_by_two_processes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_PSEUDONYM_KEY")}
    env["HOME"] = str(tmp_path)
    code = "from workbench.store import keys; print(keys.pseudonym_key().hex())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0] and len(outs[0][0].strip()) == 64
    path = tmp_path / ".config" / "workbench" / "pseudonym.key"
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text().strip() == outs[0][0].strip()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert "Made a pseudonymisation key" in outs[0][1] + outs[1][1]


# -- end to end: raw identifying values never reach the store ---------------------------------
@pytest.fixture
def protected(ws, op):
    """A credit model whose training data carries ids and emails, with logs, labels, an explanation."""
    train, later = _people(1500, seed=1), _people(300, seed=2)
    pre = ColumnTransformer([("num", StandardScaler(), FEATURES_NUMERIC),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), FEATURES_CATEGORICAL)])
    model = Pipeline([("prep", pre), ("model", LogisticRegression(max_iter=300))])
    model.fit(train.to_pandas()[FEATURES], train[TARGET].to_numpy())
    with ws.start_run("credit") as run:
        run.log_dataset(train, "applicants")
        mv = run.register_model(model, "credit", risk_tier="high")
    proba = model.predict_proba(later.to_pandas()[FEATURES])[:, 1]
    logs = later.select(["applicant_id", "contact", *FEATURES]).with_columns(
        pl.Series("prediction", proba), pl.lit("2026-03-02T09:00:00").str.to_datetime().alias("timestamp"),
        pl.col("applicant_id").alias("request_id"))
    logged = ws.log_predictions(mv, logs)
    labels = ws.log_labels(mv, later.select(pl.col("applicant_id").alias("request_id"), pl.col(TARGET).alias("label")))
    ws.log_reference(mv, train.select(["applicant_id", "contact", *FEATURES]))
    ws.explain(mv, later.select(["applicant_id", *FEATURES]), row_id="applicant_id", max_rows=100)
    ws.fairness(mv, later, later[TARGET].to_numpy(), sensitive_features=["sex"], n_bootstrap=20, favorable_label=0)
    ws.flush()
    raw = set(later["applicant_id"]) | set(later["contact"]) | set(train["applicant_id"]) | set(train["contact"])
    return mv, later, logged, labels, raw


def _cells(frame: pl.DataFrame) -> set[str]:
    out = set()
    for col in frame.columns:
        out |= {str(v) for v in frame.get_column(col).drop_nulls().cast(pl.String, strict=False).to_list()}
    return out | set(frame.columns)


def test_identifying_values_are_tokens_everywhere_in_the_store_and_joins_still_work(ws, protected, store_path):
    mv, later, logged, labels, raw = protected
    key = keys.pseudonym_key()
    # joins: labels logged with the original ids found every prediction
    assert labels["matched"] == later.height and labels["unknown"] == 0
    assert logged["request_ids"].to_list() == [pseudonyms.token(v, key) for v in later["applicant_id"]]
    report = ws.monitor(mv, "1d", alerts=False)
    assert report.windows["labelled"].sum() == later.height
    # every artifact file (model, logs, reference, SHAP rows, fairness table): no raw value in any cell
    root = ws.store.artifact_root
    parquet = 0
    for path in root.glob("??/*"):
        data = artifacts.get_bytes(root, path.name)
        if data[:4] == b"PAR1":
            parquet += 1
            frame = pl.read_parquet(io.BytesIO(data))
            assert not (_cells(frame) & raw), (path, sorted(_cells(frame) & raw)[:3])
    assert parquet >= 5
    # every table of the store (audit payloads included), on either backend
    from sqlmodel import SQLModel

    held = set()
    for table in SQLModel.metadata.tables:
        held |= _cells(ws.ctx.read(f"select * from {table}"))
    assert held & raw == set(), sorted(held & raw)[:5]
    inside = set(re.findall(r"A\d{6}|person\d+@example\.org", " ".join(held)))  # nor inside longer text (JSON)
    assert inside & raw == set(), sorted(inside & raw)[:5]
    assert key.hex() not in " ".join(held)
    if not isinstance(store_path, str):  # a DuckDB file: its bytes too
        ws.store.release()
        blob = store_path.read_bytes()
        assert [v for v in raw if v.encode() in blob] == []
        assert key not in blob and key.hex().encode() not in blob


def test_refusals_name_the_column_not_its_values(ws, protected):
    mv, later, *_ = protected
    dup = later.select(["applicant_id", *FEATURES]).head(5).with_columns(
        pl.lit(0.5).alias("prediction"), pl.lit("2026-03-02T09:00:00").alias("timestamp"),
        pl.lit("A000777").alias("request_id"))
    with pytest.raises(wb.ValidationError) as exc:
        ws.log_predictions(mv, dup)
    assert "request_id" in str(exc.value) and "A000777" not in str(exc.value)
    with pytest.raises(wb.ValidationError) as exc:
        ws.log_labels(mv, pl.DataFrame({"request_id": ["A000001", None], "label": [1, 0]}))
    assert "A000001" not in str(exc.value)


def test_a_data_set_mark_of_none_keeps_a_column_in_the_clear(ws):
    data = _people(200, seed=5).with_columns(pl.format("seg-{}", pl.int_range(pl.len())).alias("segment_id"))
    model = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(data.select(FEATURES_NUMERIC).to_numpy(), data[TARGET].to_numpy())
    with ws.start_run("clear") as run:
        run.log_dataset(data, "segments", marks={"segment_id": "none"})
        mv = run.register_model(model, "seg")
    ws.log_reference(mv, data.select(["segment_id", "contact", *FEATURES_NUMERIC]))
    stored = ws._batches("seg", 1, "reference")[0]
    assert stored["segment_id"].to_list() == data["segment_id"].to_list()  # a person cleared it
    assert stored["contact"].str.starts_with("tok_").all()  # detected: tokens
    # the caller's marks win over both
    ws.log_reference(mv, data.select(["segment_id", *FEATURES_NUMERIC]), marks={"segment_id": "identifying"})
    assert ws._batches("seg", 1, "reference")[-1]["segment_id"].str.starts_with("tok_").all()


def test_reports_and_pages_show_no_identifying_value(ws, op, protected, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from workbench.people import auth
    from workbench.ui import widgets as ui

    mv, later, logged, labels, raw = protected
    op.add_user("ada", "admin", "ada-long-passphrase-1")
    op.add_user("casey", "compliance_officer", "casey-long-passphrase-1")
    casey = wb.connect(store=ws.store.location, user="casey")
    for kind in ("model-card", "validation"):
        for fmt in ("md", "html", "json"):
            path = casey.export_report(kind, "credit", 1, fmt=fmt, out_dir=tmp_path)
            text = Path(path).read_text()
            assert not [v for v in raw if v in text], (kind, fmt)
    monkeypatch.setenv("WORKBENCH_STORE", ws.store.location)
    ws.store.release()
    pages = Path(__file__).resolve().parent.parent / "pages"
    for page in ("experiments", "models", "explanations", "fairness", "drift", "reports"):
        at = AppTest.from_file(str(pages / f"{page}.py"), default_timeout=90)
        at.session_state[ui.SIGNED] = auth.sign_in(ws.store.location, "casey", "casey-long-passphrase-1")
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        shown = b"".join(node.proto.SerializeToString() for node in _nodes(at._tree)
                         if getattr(node, "proto", None) is not None)
        assert len(shown) > 200, page  # the page rendered something
        assert not [v for v in raw if v.encode() in shown], page


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def test_a_compliance_officer_confirms_proposed_marks_on_the_run_page(ws, op, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from workbench.people import auth
    from workbench.ui import widgets as ui

    with ws.start_run("marks") as run:
        ref = run.log_dataset(_people(), "applicants")
    op.add_user("casey", "compliance_officer", "casey-long-passphrase-1")
    op.add_user("riley", "reviewer", "riley-long-passphrase-1")
    ws.flush()
    monkeypatch.setenv("WORKBENCH_STORE", ws.store.location)
    ws.store.release()
    page = Path(__file__).resolve().parent.parent / "pages" / "experiments.py"

    def opened(name):
        at = AppTest.from_file(str(page), default_timeout=90)
        at.session_state[ui.SIGNED] = auth.sign_in(ws.store.location, name, f"{name}-long-passphrase-1")
        at.query_params["run"] = run.run_id
        return at.run()

    reviewer = opened("riley")
    assert not reviewer.exception and not reviewer.error
    assert reviewer.expander[0].label == ("Columns of applicants: 2 identifying, 3 sensitive, "
                                         "5 proposed, not yet confirmed")
    assert not [b for b in reviewer.button if b.label == "Confirm these marks"]  # reviewers only read
    at = opened("casey")
    assert not at.exception and not at.error
    [confirm] = [b for b in at.button if b.label == "Confirm these marks"]
    confirm.click().run()
    assert not at.exception and not at.error
    assert set(ws.column_marks(ref)["origin"]) == {"confirmed"}
    assert ws.column_marks(ref).filter(pl.col("column") == "contact")["set_by"].item() == "casey"
    assert "identifying" in at.expander[0].label and "proposed" not in at.expander[0].label


def test_evidently_html_stored_with_drift_evidence_holds_tokens_not_identifying_values(ws, protected):
    mv, *_ = protected
    # a repeated customer id is categorical to Evidently, whose HTML then lists the values
    ref = pl.DataFrame({"customer_id": [f"CUST-{i % 12:03d}" for i in range(300)], "income": [float(i) for i in range(300)]})
    cur = pl.DataFrame({"customer_id": [f"CUST-{i % 15:03d}" for i in range(300)], "income": [i + 3.0 for i in range(300)]})
    report = ws.drift(ref, cur, model_version=mv, engine="evidently")
    summary = ws.evidence_summary(report.evidence_id)
    html = artifacts.get_bytes(ws.store.artifact_root, summary["evidently_html_sha256"]).decode()
    assert "CUST-0" not in html
    assert pseudonyms.token("CUST-007", keys.pseudonym_key()) in html  # the values are there, as tokens
    assert report.columns.filter(pl.col("column") == "customer_id")["stattest"].item() == "chisquare"
