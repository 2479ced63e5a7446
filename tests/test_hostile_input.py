"""Hostile input to the write API, fuzzed: every call is either stored exactly or refused whole.

(The filter language has its own fuzzing in test_filterlang.py.)
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import workbench as wb

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
