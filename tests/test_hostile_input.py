"""Hostile input: every call is either stored exactly or refused whole, with a message naming what is wrong.

The write API fuzzed; artifact, model and schedule names that look like paths; huge and deeply
nested values; a store file replaced by garbage; a model file swapped for another; user text
through markdown. (The filter language has its own fuzzing in test_filterlang.py; the dashboard
is driven in a real browser in test_hostile_browser.py.)
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import _demo_store
import duckdb
import numpy as np
import polars as pl
import pytest
from _server import _free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import workbench as wb
from workbench.people import auth
from workbench.store import artifacts, shared
from workbench.ui import widgets as ui
from workbench.workspace import operator_workspace

# keys: any text, including empty, whitespace, control characters, quotes, very long, SQL-ish
KEYS = hs.one_of(hs.text(max_size=40), hs.sampled_from(["'; drop table runs; --", "a\x00b", " ", "é" * 300,
                                                       "metrics.auc", "`x`", "<script>alert(1)</script>"]))
VALUES = hs.one_of(hs.floats(allow_nan=True, allow_infinity=True), hs.integers(-(2**70), 2**70), hs.text(max_size=30),
                   hs.booleans(), hs.none(), hs.lists(hs.integers(), max_size=3), hs.just(float("nan")))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=hs.dictionaries(KEYS, VALUES, max_size=4), metrics=hs.dictionaries(KEYS, VALUES, max_size=4),
       tags=hs.dictionaries(KEYS, VALUES, max_size=4))
def test_fuzzed_params_metrics_and_tags_round_trip_or_are_refused_whole(ws, params, metrics, tags):
    with ws.start_run("fuzz") as run:
        stored_params = _attempt(run.log_params, params)
        stored_metrics = _attempt(run.log_metrics, metrics, numeric=True)
        stored_tags = _attempt(run.set_tags, tags)
    info = ws.get_run(run.run_id)
    assert info["params"] == ({k: str(v) for k, v in params.items()} if stored_params else {})
    assert info["tags"] == ({k: str(v) for k, v in tags.items()} if stored_tags else {})
    expected = {k: float(v) for k, v in metrics.items()} if stored_metrics else {}
    assert set(info["metrics"]) == set(expected)
    for k, v in expected.items():
        got = info["metrics"][k]
        assert (math.isnan(got) and math.isnan(v)) or got == v, (k, got, v)


def _attempt(call, mapping, numeric=False) -> bool:
    """Call; True if it was accepted. A refusal must be a ValidationError naming the problem."""
    try:
        call(mapping)
        return True
    except wb.ValidationError as exc:
        assert str(exc), "a refusal says what is wrong"
        return False


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=KEYS, tags=hs.dictionaries(KEYS, hs.text(max_size=10), max_size=2))
def test_fuzzed_experiment_and_run_names(ws, name, tags):
    try:
        with ws.start_run(name, name=name, tags=tags) as run:
            pass
    except wb.ValidationError:
        return
    assert ws.get_run(run.run_id)["experiment"] == name


def test_huge_and_deeply_nested_values_are_stored_as_text_or_refused(ws):
    deep: list = []
    cur = deep
    for _ in range(500):
        cur.append([])
        cur = cur[0]
    with ws.start_run("huge") as run:
        with pytest.raises(wb.ValidationError, match="1000000 characters; the limit is 6000"):
            run.log_params({"fine": 1, "big": "x" * 1_000_000})  # refused whole: "fine" is not kept either
        run.log_params({"deep": deep})
        with pytest.raises(wb.ValidationError, match="must be a number"):
            run.log_metrics({"deep": deep})
    params = ws.get_run(run.run_id)["params"]
    assert list(params) == ["deep"] and params["deep"].startswith("[[[[") and len(params["deep"]) == 1002
    assert ws.get_run(run.run_id)["metrics"] == {}


# -- shared helpers for the tests below ------------------------------------------------------------
def _tree(root) -> dict:
    """Every file and folder under ``root`` with its size (folders: None), to compare before and after."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.join(folder, d)] = None
        for f in files:
            path = os.path.join(folder, f)
            out[path] = os.lstat(path).st_size
    return out


def _new_paths(before: dict, after: dict) -> set[str]:
    return {p for p in after if p not in before}


# -- artifact names: a label, never a path ------------------------------------------------------------
PATHLIKE_NAMES = ["../../etc/passwd", "../../../../../../tmp/escaped", "/etc/passwd", "/tmp/escaped", "..", ".",
                  "a/../../b", "a\\..\\..\\b", "C:\\Windows\\win.ini", "\\\\server\\share", "x" * 251, "é" * 251, " ",
                  "\n"]  # (an empty name means the file's own name)


def test_artifact_names_that_look_like_paths_are_refused_and_nothing_is_written_outside_the_root(ws, tmp_path,
                                                                                                 monkeypatch):
    # The artifact root two levels below tmp_path: a name used as a path anywhere would land inside tmp_path.
    root = tmp_path / "deep" / "er" / "artifacts"
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(root))
    source = tmp_path / "deep" / "model.txt"
    source.parent.mkdir(parents=True)
    source.write_text("the artifact\n")
    passwd = Path("/etc/passwd").read_bytes()
    before = _tree(tmp_path)
    with ws.start_run("paths") as run:
        for name in PATHLIKE_NAMES:
            with pytest.raises(wb.ValidationError) as refused:
                run.log_artifact(source, name=name)
            msg = str(refused.value)
            assert msg.startswith("Artifact name") and re.search(r"path separators|longer than|non-empty", msg), msg
        digest = run.log_artifact(source, name="model.txt")  # the run is still usable
    stored = artifacts.path_for(root, digest)
    expected = {str(stored), str(stored.parent), str(root), str(root.parent)}  # and the store file, its WAL
    assert {p for p in _new_paths(before, _tree(tmp_path)) if not p.startswith(str(tmp_path / "workbench."))} == expected
    assert Path("/etc/passwd").read_bytes() == passwd and not Path("/tmp/escaped").exists()
    assert ws.run_artifacts(run.run_id)["name"].to_list() == ["model.txt"]
    assert ws.get_run(run.run_id)["status"] == "FINISHED"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hs.one_of(hs.text(min_size=1, max_size=260),
                      hs.lists(hs.sampled_from(["..", ".", "/", "\\", "\x00", "a", "é", "~", ":", " ", "%2e"]),
                               min_size=1, max_size=12).map("".join)))
def test_fuzzed_artifact_names_are_refused_or_kept_as_labels_only(ws, tmp_path, name):
    source = tmp_path / "payload.bin"
    source.write_bytes(b"payload")
    before = _tree(tmp_path)
    with ws.start_run("fuzzed-artifacts") as run:
        try:
            digest = run.log_artifact(source, name=name)
        except wb.ValidationError as exc:
            assert str(exc).startswith("Artifact name"), exc
            digest = None
    new = _new_paths(before, _tree(tmp_path))
    root = str(ws.store.artifact_root)
    assert all(p.startswith((root, str(tmp_path / "workbench."))) for p in new), new
    names = ws.run_artifacts(run.run_id)["name"].to_list()
    if digest is None:
        assert names == []
    else:  # a name kept is a label: exactly as given, the bytes stored under their digest
        assert names == [name] and artifacts.get_bytes(ws.store.artifact_root, digest) == b"payload"


# -- model and schedule names in report file names -------------------------------------------------
PATHLIKE_MODELS = ["../../escaped", "/tmp/escaped-abs", "a/../../b", "..", "é" * 250, "con:nul|<>*?",
                   '<img src=x onerror="window.__pwned=1">']


def test_models_named_like_paths_export_inside_the_chosen_folder(op, ws, tmp_path):
    out = tmp_path / "a" / "b" / "reports"
    out.mkdir(parents=True)
    with ws.start_run("named") as run:
        for name in PATHLIKE_MODELS:
            run.register_model({"weights": [1, 2]}, name)
        with pytest.raises(wb.ValidationError, match=r"contains a NUL character"):  # no store can keep it
            run.register_model({"weights": [1, 2]}, "a\x00b")
    before = _tree(tmp_path)
    written = [op.export_report("model-card", name, fmt="json", out_dir=out) for name in PATHLIKE_MODELS]
    assert [p.parent for p in written] == [out] * len(PATHLIKE_MODELS)
    assert len(set(written)) == len(PATHLIKE_MODELS)  # names that read alike never share a file
    for name, path in zip(PATHLIKE_MODELS, written):
        assert len(path.name.encode()) < 200 and re.fullmatch(r"[A-Za-z0-9._-]+", path.name), path.name
        assert json.loads(path.read_text())["report"]["model"] == name  # the name itself is kept in the report
    new = _new_paths(before, _tree(tmp_path))
    assert {p for p in new if not p.startswith(str(tmp_path / "workbench."))} == {str(p) for p in written}
    assert not Path("/tmp/escaped-abs").exists()
    # the dashboard's download name is the same safe file name
    name, data = op.download_report("model-card", "../../escaped", fmt="json")
    assert "/" not in name and "\x00" not in name and name.endswith(".json") and json.loads(data)["report"]["model"] == "../../escaped"


def test_report_export_cli_and_a_schedule_named_like_a_path_write_inside_the_folder(op, ws, store_path, tmp_path):
    out = tmp_path / "x" / "y" / "out"
    out.mkdir(parents=True)
    with ws.start_run("named") as run:
        run.register_model({"weights": [3]}, "../../escaped")
    op.add_schedule("../../../schedule", "0 6 * * *", "model-card", "../../escaped", "html", out)
    outcome = op.run_due_schedules(now=datetime.now(timezone.utc) + timedelta(days=2))
    assert [o["status"] for o in outcome] == ["ok"], outcome
    assert Path(outcome[0]["path"]).parent == out
    op.close()
    before = _tree(tmp_path)
    result = _demo_store.run_cli("report", "export", "--kind", "validation", "--model", "../../escaped", "--format", "md",
                                 "--out", out, "--store", store_path)
    assert result.returncode == 0, result.stdout + result.stderr
    path = Path(result.stdout.strip())
    assert path.parent == out and path.is_file() and "Validation pack: ../../escaped v1" in path.read_text()
    new = _new_paths(before, _tree(tmp_path))
    assert {p for p in new if not p.startswith(str(tmp_path / "workbench."))} == {str(path)}


# -- huge values and deep nesting ------------------------------------------------------------------
def _nested(depth: int, kind: str):
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else [value] if kind == "list" else (value,)
    return value


def test_a_10_mb_param_and_a_10000_level_dict_are_refused_clearly_and_the_run_stays_usable(ws):
    deep = _nested(10_000, "dict")
    start = time.monotonic()
    with ws.start_run("huge") as run:
        with pytest.raises(wb.ValidationError, match=r"Param 'big' value is 10000000 characters; the limit is 6000"):
            run.log_params({"ok": 1, "big": "x" * 10_000_000})
        with pytest.raises(wb.ValidationError, match=r"Param 'deep': the value is nested too deeply to be written as text"):
            run.log_params({"ok": 1, "deep": deep})
        with pytest.raises(wb.ValidationError, match=r"Tag 'deep': the value is nested too deeply"):
            run.set_tags({"deep": deep})
        with pytest.raises(wb.ValidationError, match=r"Metric 'deep' must be a number, got dict \{'k': \{'k'"):
            run.log_metrics({"deep": deep})
        with pytest.raises(wb.ValidationError, match=r"step must be an integer, got \{'k'"):
            run.log_metrics({"m": 1.0}, step=deep)
        with pytest.raises(wb.ValidationError, match=r"Param 'digits': the value cannot be written as text .*4300 digits"):
            run.log_params({"digits": 10**5000})
        with pytest.raises(wb.ValidationError, match=r"Param names must be non-empty strings, got \(\(\("):
            run.log_params({_nested(10_000, "tuple"): 1})
        run.log_params({"ok": 1})
        run.set_tags({"note": "still usable"})
        run.log_metrics({"m": 1.0})
    assert time.monotonic() - start < 10
    info = ws.get_run(run.run_id)
    assert (info["params"], info["tags"], info["metrics"], info["status"]) == (
        {"ok": "1"}, {"note": "still usable"}, {"m": 1.0}, "FINISHED")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=hs.one_of(hs.integers(0, 3000), hs.integers(3000, 30_000)), kind=hs.sampled_from(["dict", "list", "tuple"]))
def test_nested_params_of_any_depth_are_stored_as_their_text_or_refused(ws, depth, kind):
    value = _nested(depth, kind)
    with ws.start_run("nested") as run:
        try:
            run.log_params({"v": value})
            stored = True
        except wb.ValidationError as exc:
            assert re.search(r"nested too deeply|characters; the limit is 6000", str(exc)), exc
            stored = False
    params = ws.get_run(run.run_id)["params"]
    if stored:
        assert params == {"v": str(value)} and len(params["v"]) <= 6000
    else:
        assert params == {} and depth > 500


def test_extreme_metric_values_round_trip_or_are_refused_and_no_batch_is_lost(ws):
    with ws.start_run("extremes") as run:
        run.log_metrics({"max": 1e308, "neg_zero": -0.0, "two_1000": 2**1000, "int64_min": -(2**63),
                         "tiny": 5e-324, "big_step": 1.0}, step=2**63 - 1)
        for bad, why in [(10**400, "too large for a 64-bit float"), (-(10**400), "too large for a 64-bit float"),
                         (Fraction(10**400, 3), "too large for a 64-bit float"), (Decimal("1"), "must be a number"),
                         ("1.0", "must be a number"), (True, "must be a number"), (1j, "must be a number")]:
            with pytest.raises(wb.ValidationError, match=why):
                run.log_metrics({"ok": 2.0, "bad": bad})
        for step in (2**63, -(2**63) - 1, 10**30):
            with pytest.raises(wb.ValidationError, match="outside the range the store keeps"):
                run.log_metrics({"ok": 2.0}, step=step)
        with pytest.raises(wb.ValidationError, match="pass step= explicitly"):
            run.log_metrics({"big_step": 2.0})  # one past the largest step
        run.log_metrics({"ok": 3.0}, step=-(2**63))
    ws.flush()  # before the fix, a step beyond int64 failed the background write and lost the batch
    info = ws.get_run(run.run_id)
    assert info["status"] == "FINISHED"
    metrics = info["metrics"]
    assert metrics == {"max": 1e308, "neg_zero": 0.0, "two_1000": float(2**1000), "int64_min": float(-(2**63)),
                       "tiny": 5e-324, "big_step": 1.0, "ok": 3.0}
    assert math.copysign(1.0, metrics["neg_zero"]) == -1.0  # the sign of zero is kept too
    history = ws.metric_history(run.run_id, "neg_zero")
    assert history["step"].to_list() == [2**63 - 1] and math.copysign(1.0, history["value"][0]) == -1.0


@pytest.mark.parametrize("call", ["log_params", "set_tags", "log_metrics"])
def test_100k_keys_in_one_call_are_refused_at_once_naming_the_limit(ws, call):
    with ws.start_run("wide") as run:
        method = getattr(run, call)
        start = time.monotonic()
        with pytest.raises(wb.ValidationError, match=r"would have 100,000 .*a run keeps at most 1,000"):
            method({f"k{i}": i for i in range(100_000)})
        assert time.monotonic() - start < 5  # refused before anything is buffered or written
        method({f"k{i}": i for i in range(999)})
        with pytest.raises(wb.ValidationError, match=r"would have 1,001 "):
            method({"k998": 998, "one-more": 1, "and-another": 2})
        method({"k0": 0, "last": 1})  # a known key does not count again
    info = ws.get_run(run.run_id)
    got = {"log_params": info["params"], "set_tags": info["tags"], "log_metrics": info["metrics"]}[call]
    assert len(got) == 1000 and "one-more" not in got
    start = time.monotonic()
    assert ws.search_runs().height == 1  # the runs table stays quick to build
    assert time.monotonic() - start < 10


# -- a store file that is not a store --------------------------------------------------------------
@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    """The bytes of a small real store (a user, a run, a model), written and closed."""
    path = tmp_path_factory.mktemp("real") / "real.duckdb"
    op = operator_workspace(path)
    op.add_user("dana", "data_scientist")
    ws = wb.connect(path, user="dana")
    with ws.start_run("exp") as run:
        run.log_params({"p": 1})
        run.log_metrics({"m": 0.5})
        run.register_model({"w": 1}, "model")
    shared.close(path)
    assert not path.with_suffix(".duckdb.wal").exists()
    return path.read_bytes()


def _garbage(kind: str, folder: Path, real: bytes) -> Path:
    target = folder / f"{kind}.duckdb"
    if kind == "random-bytes":
        target.write_bytes(random.Random(8).randbytes(300_000))
    elif kind == "truncated-store":
        # cut right after DuckDB's three 4 KiB headers, inside the first block: data really lost. (A store
        # checkpointed several times keeps free blocks at its end, so a cut at a third can lose nothing.)
        target.write_bytes(real[:16384])
    elif kind == "empty-file":
        target.write_bytes(b"")
    elif kind == "directory":
        target.mkdir()
        (target / "keep.txt").write_text("a folder, not a store\n")
    elif kind == "other-apps-duckdb":
        con = duckdb.connect(str(target))
        con.execute("create table invoices (id integer, total decimal(10, 2)); insert into invoices values (1, 9.99)")
        con.close()
    elif kind == "other-apps-empty-duckdb":
        duckdb.connect(str(target)).close()  # a DuckDB file with no tables, made by another tool
    return target


GARBAGE = {"random-bytes": "not a DuckDB database", "truncated-store": "corrupt or not a DuckDB database",
           "empty-file": "is an empty file", "directory": "is a directory", "other-apps-duckdb": "not a workbench store",
           "other-apps-empty-duckdb": "with no tables, not a workbench store"}


@pytest.mark.parametrize("kind", GARBAGE)
def test_a_store_file_replaced_by_garbage_is_refused_clearly_everywhere_and_left_untouched(kind, tmp_path,
                                                                                           real_store):
    folder = tmp_path / "store"
    folder.mkdir()
    target = _garbage(kind, folder, real_store)
    before = {p: Path(p).read_bytes() if size is not None else None for p, size in _tree(folder).items()}
    with pytest.raises(wb.StoreError) as refused:
        wb.connect(target, user="dana")
    msg = str(refused.value)
    assert str(target) in msg and GARBAGE[kind] in msg, msg
    port = _free_port()
    for result in _demo_store.run_cli_many([("audit", "verify", "--store", target),
                                           ("serve", "--store", target, "--port", port)], timeout=60):
        out = result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in out, out
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and str(target) in lines[0], out
        assert GARBAGE[kind] in lines[0], out
        assert "Dashboard on" not in result.stdout, out  # serve stopped before starting Streamlit
    after = {p: Path(p).read_bytes() if size is not None else None for p, size in _tree(folder).items()}
    assert after == before  # byte for byte, and no new file (no WAL) beside it


# -- a model file swapped for another model's ------------------------------------------------------
def _two_models():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pl.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "sex": rng.choice(["f", "m"], 300)})
    y = (X["a"] + rng.normal(size=300) > 0).cast(pl.Int64).to_numpy()
    inputs = X.select(["a", "b"]).to_pandas()
    return X, y, LogisticRegression(C=0.01).fit(inputs, y), LogisticRegression(C=100.0).fit(inputs, y)


def test_a_model_file_swapped_for_another_models_bytes_is_refused_by_the_api_and_the_dashboard(op, ws, store_path):
    X, y, first, second = _two_models()
    with ws.start_run("swap") as run:
        v1 = run.register_model(first, "swapped", risk_tier="high")
        v2 = run.register_model(second, "swapped", risk_tier="high")
    assert v1.sha256 != v2.sha256
    feats = X.select(["a", "b"])
    ws.log_reference(v2, feats.with_columns(pl.Series("prediction", second.predict_proba(feats.to_pandas())[:, 1])))
    stamps = [datetime(2026, 3, 2, tzinfo=timezone.utc) + timedelta(hours=i) for i in range(X.height)]
    ws.log_predictions(v2, feats.with_columns(pl.Series("timestamp", stamps),
                                              pl.Series("prediction", second.predict_proba(feats.to_pandas())[:, 1])))
    op.add_user("riley", "reviewer", "riley-long-password")
    root = ws.store.artifact_root
    v2_file = artifacts.path_for(root, v2.sha256)
    v2_file.chmod(0o644)
    v2_file.write_bytes(artifacts.path_for(root, v1.sha256).read_bytes())  # a real model, just not this one
    evidence_before = ws.evidence("swapped").height

    for attempt in (lambda: ws.load_model("swapped", 2), lambda: ws.explain(v2, feats),
                    lambda: ws.fairness(v2, X, y, sensitive_features=["sex"], n_bootstrap=5),
                    lambda: ws.monitor(v2, "1w", alerts=False)):
        with pytest.raises(wb.IntegrityError) as refused:
            attempt()
        msg = str(refused.value)
        assert f"expected {v2.sha256[:12]}" in msg and f"found {v1.sha256[:12]}" in msg, msg
    assert ws.evidence("swapped").height == evidence_before  # nothing computed from the wrong model was stored
    assert type(ws.load_model("swapped", 1)).__name__ == "LogisticRegression"  # the other version still loads
    ws.close()

    from streamlit.testing.v1 import AppTest

    signed = auth.sign_in(str(store_path), "riley", "riley-long-password")
    for page, message in (("drift", "does not match its recorded digest"), ("models", None)):
        at = AppTest.from_file(str(_demo_store.REPO / "pages" / f"{page}.py"), default_timeout=60)
        at.session_state[ui.SIGNED] = signed
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("WORKBENCH_STORE", str(store_path))
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        if message is None:  # the registry lists the version and its recorded digest without reading the file
            assert errors == [] and v2.sha256 in at.dataframe[1].value["sha256"].to_list()
        else:
            assert len(errors) == 1 and message in errors[0] and v2.sha256[:12] in errors[0], errors


# -- user text rendered as markdown ----------------------------------------------------------------
def _rendered(text: str) -> tuple[set[str], str]:
    """(the HTML tags, the visible text) of ``text`` rendered as CommonMark with GFM tables and strikethrough."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.tags, self.text = set(), []

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)

        def handle_data(self, data):
            self.text.append(data)

    parser = Collect()
    parser.feed(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text))
    return parser.tags, "".join(parser.text)


MARKUP = hs.lists(hs.sampled_from(list("\\`*_{}[]()<>#+-.!|~$:&;=\"'/ \n") + [
    "a", "b", "1", "x", "&amp;", "&#65;", "javascript:", "![", "](", "<img ", "<script>", "```", "---", "1. ", "==="]),
    max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=MARKUP)
def test_plain_text_shows_as_typed_through_markdown(text):
    text = "\n".join(line.strip() for line in text.splitlines())  # leading blanks would only make a code block
    tags, shown = _rendered(ui.plain(text))
    assert tags <= {"p", "br"}, (text, tags)
    assert " ".join(shown.split()) == " ".join(text.split()), (text, shown)


def test_error_messages_from_a_shared_link_are_shown_as_plain_text(monkeypatch, op, store_path):
    """A link can carry any text into a page's error message; it must not become an image or a link there."""
    from streamlit.testing.v1 import AppTest

    op.add_user("ada", "admin", "ada-long-password")
    signed = auth.sign_in(str(store_path), "ada", "ada-long-password")
    monkeypatch.setenv("WORKBENCH_STORE", str(store_path))
    hostile = "![x](http://pixel.invalid/t.png) [sign in again](http://phish.invalid)"
    for page, param, value in (("experiments", "run", hostile), ("compare", "runs", f"{hostile},other")):
        at = AppTest.from_file(str(_demo_store.REPO / "pages" / f"{page}.py"), default_timeout=60)
        at.session_state[ui.SIGNED] = signed
        at.query_params[param] = value
        at.run()
        assert not at.exception
        assert len(at.error) == 1, [e.value for e in at.error]
        tags, shown = _rendered(at.error[0].value)
        assert tags <= {"p"} and hostile in shown, (tags, shown)


def test_a_markdown_report_shows_hostile_names_and_text_as_written(op, ws, tmp_path):
    """A Markdown model card opened in any viewer: no link, image, HTML or code comes from what users wrote."""
    img, link = '<img src=x onerror="window.__pwned=1">', "[link](javascript:window.__pwned=1)"
    pieces = [img, link, "![p](http://pixel.invalid/p.png)", "<http://pixel.invalid/auto>", "&lt;b&gt;", "`code`",
              "a | b", "\\[x]"]
    name = "m " + " ".join(pieces[:4])
    with ws.start_run("md") as run:
        run.log_metrics({f"auc {img}": 0.5, "loss": 0.25})
        run.register_model({"w": 1}, name, description=" ".join(pieces), owner_team=link)
    ws.set_card_text(name, "limitations", " ".join(pieces))
    text = op.export_report("model-card", name, fmt="md", out_dir=tmp_path).read_text()
    tags, shown = _rendered(text)
    assert tags <= {"h1", "h2", "p", "ul", "li", "strong", "em"}, tags
    shown = " ".join(shown.split())
    assert f"Model card: {name} v1" in shown and f"auc {img}: 0.5" in shown
    written = " ".join(pieces)
    assert f"overview: {written}" in shown and f"limitations: {written}" in shown and f"owners: {link}" in shown


@pytest.mark.parametrize("call", ["experiment", "run name", "param key", "param value", "tag key", "tag value",
                                  "metric key", "data set", "artifact"])
def test_a_nul_character_is_refused_everywhere_a_name_or_value_is_kept(ws, tmp_path, call):
    """PostgreSQL text cannot hold NUL: refused on every backend, so a store can move intact."""
    nul = "a\x00b"
    path = tmp_path / "f.txt"
    path.write_text("x")
    attempts = {
        "experiment": lambda: ws.start_run(nul),
        "run name": lambda: ws.start_run("ok", name=nul),
        "param key": lambda: run.log_params({nul: 1}),
        "param value": lambda: run.log_params({"k": nul}),
        "tag key": lambda: run.set_tags({nul: "v"}),
        "tag value": lambda: run.set_tags({"k": nul}),
        "metric key": lambda: run.log_metrics({nul: 1.0}),
        "data set": lambda: run.log_dataset(pl.DataFrame({"x": [1]}), nul),
        "artifact": lambda: run.log_artifact(path, name=nul),
    }
    with ws.start_run("nul") as run:
        with pytest.raises(wb.ValidationError, match="contains a NUL character"):
            attempts[call]()
        run.log_params({"after": "still usable"})
    info = ws.get_run(run.run_id)
    assert info["params"] == {"after": "still usable"} and info["tags"] == {} and info["metrics"] == {}
    assert set(ws.experiments()["name"]) == {"nul"}  # a refused start_run made no experiment either
