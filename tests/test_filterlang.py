"""Tests for workbench.tracking.filterlang: parsing, errors, SQL compilation and DuckDB execution."""

import doctest
import math
import random
import re
from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tracking import filterlang as fl

Operand, Predicate, And, Or, Not = fl.Operand, fl.Predicate, fl.And, fl.Or, fl.Not
FilterSyntaxError, compile_filter, parse_filter = (
    fl.FilterSyntaxError, fl.compile_filter, fl.parse_filter)


def P(kind, key, op, value=None, agg=None):
    return Predicate(Operand(kind, key, agg), op, value)


A = P("metrics", "a", ">", 1)
B = P("params", "b", "=", "x")
C = P("tags", "c", "<", 2)

# ---------------------------------------------------------------- parsing


def test_docstring_examples():
    assert doctest.testmod(fl).failed == 0


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_filter_means_no_filter(text):
    assert parse_filter(text) is None
    c = compile_filter(text)
    assert (c.joins, c.where, c.params, c.tree) == ("", "TRUE", [], None)


@pytest.mark.parametrize("text, expected", [
    ("metrics.acc > 0.9", P("metrics", "acc", ">", 0.9)),
    ("metrics.acc == 1", P("metrics", "acc", "=", 1)),
    ("metrics.acc != 1", P("metrics", "acc", "<>", 1)),
    ("metrics.acc <> 1", P("metrics", "acc", "<>", 1)),
    ("metrics.acc<=-2.5e-3", P("metrics", "acc", "<=", -2.5e-3)),
    ("metrics.acc >= .5", P("metrics", "acc", ">=", 0.5)),
    ("metrics.acc < 1E+2", P("metrics", "acc", "<", 100.0)),
    ("min(metrics.loss) < 0.1", P("metrics", "loss", "<", 0.1, agg="min")),
    ("MAX( metric.loss ) < 1", P("metrics", "loss", "<", 1, agg="max")),
    ("params.opt IN ('adam', \"sgd\")", P("params", "opt", "IN", ("adam", "sgd"))),
    ("param.n not in (1, 2.5)", P("params", "n", "NOT IN", (1, 2.5))),
    ("tags.t LIKE 'a%'", P("tags", "t", "LIKE", "a%")),
    ("tag.t NOT ILIKE \"A%\"", P("tags", "t", "NOT ILIKE", "A%")),
    ("tags.t is null", P("tags", "t", "IS NULL")),
    ("tags.t IS NOT NULL", P("tags", "t", "IS NOT NULL")),
    ("tags.flag = TRUE", P("tags", "flag", "=", True)),
    ("params.x = false", P("params", "x", "=", False)),
    ("attributes.status = 'FINISHED'", P("attributes", "status", "=", "FINISHED")),
    ("attribute.run_name = 'a'", P("attributes", "name", "=", "a")),
    ("attr.USER_NAME = 'a'", P("attributes", "user", "=", "a")),
    ("Attr.Parent IS NULL", P("attributes", "parent_run_id", "IS NULL")),
    # keys: dots and punctuation in bare keys, quoted keys with spaces
    ("metrics.val/loss:top-1.x > 0", P("metrics", "val/loss:top-1.x", ">", 0)),
    ("tags.`my key.with dots` = 'v'", P("tags", "my key.with dots", "=", "v")),
    ('params."a b" = 1', P("params", "a b", "=", 1)),
    ("tags.`a``b` = 'v'", P("tags", "a`b", "=", "v")),
    ("metrics.AcC > 1", P("metrics", "AcC", ">", 1)),  # keys keep their case
    # escaped quotes in literals
    ("tags.t = 'it''s'", P("tags", "t", "=", "it's")),
    ('tags.t = "say ""hi"""', P("tags", "t", "=", 'say "hi"')),
    ("tags.t = ''", P("tags", "t", "=", "")),
])
def test_parse_predicates(text, expected):
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("metrics.a > 1 OR params.b = 'x' AND NOT tags.c < 2", Or((A, And((B, Not(C)))))),
    ("NOT metrics.a > 1 AND params.b = 'x'", And((Not(A), B))),
    ("(metrics.a > 1 OR params.b = 'x') AND tags.c < 2", And((Or((A, B)), C))),
    ("NOT (metrics.a > 1 OR params.b = 'x')", Not(Or((A, B)))),
    ("NOT NOT metrics.a > 1", Not(Not(A))),
    ("metrics.a > 1 AND params.b = 'x' AND tags.c < 2", And((A, B, C))),
    ("((metrics.a > 1))", A),
    ("metrics.a > 1 and params.b = 'x' oR not tags.c < 2", Or((And((A, B)), Not(C)))),
])
def test_precedence_and_parentheses(text, expected):
    assert parse_filter(text) == expected


def test_keywords_and_kinds_are_case_insensitive():
    lower = parse_filter("not metrics.a > 1 and params.b in ('x') or tags.c is not null")
    upper = parse_filter("NOT METRICS.a > 1 AND PARAMS.b IN ('x') OR TAGS.c IS NOT NULL")
    mixed = parse_filter("Not Metric.a > 1 anD Param.b In ('x') Or Tag.c Is Not Null")
    assert lower == upper == mixed


# ---------------------------------------------------------------- compilation


def sql_of(c):
    return c.joins + " " + c.where


def test_compile_metric_and_param():
    c = compile_filter("metrics.acc < 0.5 AND params.opt = 'sgd'")
    assert c.joins == ("LEFT JOIN latest_metrics j0 ON j0.run_id = r.run_id AND j0.key = ? "
                       "LEFT JOIN params j1 ON j1.run_id = r.run_id AND j1.key = ?")
    assert c.where == "((j0.value < ?) AND (j1.value = ?))"
    assert c.params == ["acc", "opt", 0.5, "sgd"]
    assert c.tree == And((P("metrics", "acc", "<", 0.5), P("params", "opt", "=", "sgd")))


def test_join_reused_for_same_key_and_min_max():
    c = compile_filter("metrics.acc < 0.5 OR min(metrics.acc) < 0.1 OR max(metrics.acc) <= 1"
                       " OR metrics.loss = 2")
    assert c.joins.count("JOIN") == 2
    assert c.where == ("((j0.value < ?) OR (j0.min_value < ?) OR (j0.max_value <= ?)"
                       " OR (j1.value = ?))")
    assert c.params == ["acc", "loss", 0.5, 0.1, 1, 2]


def test_param_and_tag_numeric_vs_string_compare():
    c = compile_filter("params.lr < 0.1")
    assert c.where == "(TRY_CAST(j0.value AS DOUBLE) < ?)"
    c = compile_filter("tags.n IN (1, 2)")
    assert c.where == "(TRY_CAST(j0.value AS DOUBLE) IN (?, ?))"
    assert "TRY_CAST" not in compile_filter("params.lr < '0.1'").where
    assert compile_filter("tags.t = true").params == ["t", "true"]
    assert compile_filter("params.t != false").params == ["t", "false"]


def test_nan_guard_on_greater_than():
    assert compile_filter("metrics.a > 1").where == "(j0.value > ? AND NOT isnan(j0.value))"
    assert compile_filter("params.a >= 1").where == (
        "(TRY_CAST(j0.value AS DOUBLE) >= ? AND NOT isnan(TRY_CAST(j0.value AS DOUBLE)))")


@pytest.mark.parametrize("text, where", [
    ("metrics.a IN (1, 2, 3)", "(j0.value IN (?, ?, ?))"),
    ("metrics.a NOT IN (1)", "(j0.value NOT IN (?))"),
    ("params.a LIKE 'x%'", "(j0.value LIKE ?)"),
    ("params.a NOT LIKE 'x%'", "(j0.value NOT LIKE ?)"),
    ("tags.a ILIKE 'x%'", "(j0.value ILIKE ?)"),
    ("tags.a NOT ILIKE 'x%'", "(j0.value NOT ILIKE ?)"),
    ("metrics.a IS NULL", "(j0.value IS NULL)"),
    ("min(metrics.a) IS NOT NULL", "(j0.min_value IS NOT NULL)"),
    ("NOT metrics.a = 1", "(NOT (j0.value = ?))"),
    ("attributes.status = 'x'", "(r.status = ?)"),
    ("attributes.user = 'x'", "(r.user_name = ?)"),
    ("attributes.user_name = 'x'", "(r.user_name = ?)"),
    ("attributes.run_name LIKE 'x'", "(r.name LIKE ?)"),
    ("attributes.experiment = 'x'", "(e.name = ?)"),
    ("attributes.experiment_id = 3", "(r.experiment_id = ?)"),
    ("attributes.parent IS NULL", "(r.parent_run_id IS NULL)"),
    ("attributes.git_commit = 'abc'", "(r.git_commit = ?)"),
    ("attributes.run_id IN ('a', 'b')", "(r.run_id IN (?, ?))"),
    ("attributes.name = 3", "(TRY_CAST(r.name AS DOUBLE) = ?)"),
    ("attributes.start_time > '2024-01-02'", "(r.start_time > CAST(? AS TIMESTAMPTZ))"),
    ("attributes.end_time IN ('2024-01-02', '2024-01-03')",
     "(r.end_time IN (CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMPTZ)))"),
])
def test_compile_operators(text, where):
    c = compile_filter(text)
    assert c.where == where
    assert sql_of(c).count("?") == len(c.params)


def test_attributes_need_no_join_and_timestamps_are_normalised():
    c = compile_filter("attributes.start_time >= '2024-01-02 03:04+02:00'")
    assert c.joins == ""
    assert c.params == ["2024-01-02T03:04:00+02:00"]


def test_params_follow_placeholder_order():
    c = compile_filter("params.p = 'v1' AND (metrics.m > 2 OR tags.t IN ('a', 'b')) "
                       "AND params.p <> 'v2'")
    assert c.params == ["p", "m", "t", "v1", 2, "a", "b", "v2"]
    assert sql_of(c).count("?") == len(c.params)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("text, pos, fragment", [
    ("foo.x = 1", 0, "unknown kind 'foo'; expected one of metrics, params, tags, attributes"),
    ("attributes.colour = 'red'", 11, "unknown attribute 'colour'; expected one of"),
    ("params.x = 'abc", 11, "unterminated string"),
    ("tags.`abc = 1", 5, "unterminated string"),
    ("metrics.acc > AND params.x = 'a'", 14, "expected a value after '>'"),
    ("metrics.acc >", 13, "expected a value after '>'"),
    ("AND metrics.x > 1", 0, "expected a field such as metrics.acc, got 'AND'"),
    ("acc > 1", 0, "expected a field"),
    ("metrics.acc 1", 12, "expected an operator"),
    ("metrics.acc", 11, "expected an operator"),
    ("params.x NOT BETWEEN 1", 13, "expected IN, LIKE or ILIKE after NOT"),
    ("metrics.x IS 1", 13, "expected NULL after IS"),
    ("(metrics.acc > 1", 16, "missing ')' to close '(' at position 0"),
    ("(metrics.acc > 1 OR (tags.a = 'x')", 34, "missing ')' to close '(' at position 0"),
    ("min(metrics.x < 1", 14, "missing ')'"),
    ("params.x IN (1, 2", 17, "missing ')' to close the IN list"),
    ("params.x IN 1", 12, "expected '(' after IN"),
    ("metrics.acc > 1 )", 16, "unexpected ')' after a complete filter"),
    ("metrics.acc > 1 metrics.b < 2", 16, "after a complete filter"),
    ("metrics.acc > 1 1", 16, "after a complete filter"),
    ("params.x IN ()", 13, "IN list is empty"),
    ("params.x IN (1,)", 15, "expected a value after ','"),
    ("min(params.x) < 1", 4, "min() applies only to metrics"),
    ("max(attributes.status) < 1", 4, "max() applies only to metrics"),
    ("params.x LIKE 5", 14, "LIKE needs a quoted string pattern"),
    ("params.x ILIKE true", 15, "ILIKE needs a quoted string pattern"),
    ("metrics.acc LIKE 'a%'", 0, "LIKE needs a text field"),
    ("attributes.start_time LIKE '2024%'", 0, "LIKE needs a text field"),
    ("metrics.acc @ 1", 12, "unexpected character '@'"),
    ("metrics.acc > 1 ; DROP TABLE runs", 16, "unexpected character ';'"),
    ("metrics.acc = 'high'", 14, "metrics are numbers; got a string"),
    ("metrics.acc IN (1, 'a')", 19, "metrics are numbers; got a string"),
    ("metrics.acc = true", 14, "true/false can only be compared with params and tags"),
    ("attributes.status = true", 20, "true/false can only be compared with params and tags"),
    ("attributes.experiment_id = '3'", 27, "attributes.experiment_id is a number"),
    ("attributes.start_time > 5", 24, "is a timestamp"),
    ("attributes.start_time > 'yesterday'", 24, "not an ISO-8601 timestamp"),
    ("params.x IN (1, 'a')", 16, "IN list mixes numbers and strings"),
    ("metrics.1abc > 1", 8, "a bare key must start with a letter"),
    ("metrics > 1", 7, "expected '.' and a key after 'metrics'"),
    ("metrics. > 1", 9, "expected a key after 'metrics.'"),
    ("metrics.`` > 1", 8, "empty key"),
    ("NOT", 3, "got end of filter"),
    ("()", 1, "expected a field"),
])
def test_errors(text, pos, fragment):
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter(text)
    err = info.value
    assert err.position == pos, str(err)
    assert fragment in err.message
    assert isinstance(err, ValueError)


def test_error_str_shows_position_and_caret():
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter("metrics.acc > AND params.x = 'a'")
    assert str(info.value) == (
        "Filter syntax error at position 14: expected a value after '>'\n"
        "  metrics.acc > AND params.x = 'a'\n"
        "                ^")


def test_error_caret_stays_aligned_with_newlines():
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter("metrics.a > 1\nAND\tfoo.x = 2")
    lines = str(info.value).splitlines()
    assert lines[1] == "  metrics.a > 1 AND foo.x = 2"
    assert lines[2].index("^") == lines[1].index("foo")


def test_unknown_attribute_lists_allowed_names():
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter("attributes.colour = 'red'")
    for name in ("run_id", "status", "user", "start_time", "experiment_id", "parent"):
        assert name in info.value.message


# ---------------------------------------------------------------- DuckDB execution

SCHEMA = """
CREATE TABLE experiments (id INTEGER, name VARCHAR);
CREATE TABLE runs (run_id VARCHAR, experiment_id INTEGER, name VARCHAR, status VARCHAR,
    user_name VARCHAR, start_time TIMESTAMPTZ, end_time TIMESTAMPTZ, parent_run_id VARCHAR,
    git_commit VARCHAR);
CREATE TABLE latest_metrics (run_id VARCHAR, key VARCHAR, value DOUBLE, step BIGINT,
    min_value DOUBLE, max_value DOUBLE);
CREATE TABLE params (run_id VARCHAR, key VARCHAR, value VARCHAR);
CREATE TABLE tags (run_id VARCHAR, key VARCHAR, value VARCHAR);
"""
EXPERIMENTS = {1: "exp-a", 2: "exp-b", 3: "Exp C"}
INJECTION = "x'; DROP TABLE runs; --"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def make_runs(n=30, seed=7):
    """Random runs as plain dicts; metrics map key -> (latest, min, max)."""
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        status = rng.choice(["FINISHED", "FAILED", "RUNNING"])
        start = T0 + timedelta(hours=3 * i)
        run = dict(
            run_id=f"r{i:02d}", experiment_id=rng.randint(1, 3),
            name=f"{rng.choice(['baseline', 'resnet', 'vit'])}-{rng.randint(1, 20)}",
            status=status, user_name=rng.choice(["alice", "bob", "carol"]),
            start_time=start,
            end_time=None if status == "RUNNING" else start + timedelta(minutes=rng.randint(1, 300)),
            parent_run_id=None if i < 5 or rng.random() < 0.5 else f"r{rng.randint(0, 4):02d}",
            git_commit="".join(rng.choice("0123456789abcdef") for _ in range(8)),
            metrics={}, params={}, tags={})
        for key in ("acc", "loss", "val acc.top1"):
            if rng.random() < 0.8:
                vals = [round(rng.uniform(0, 2 if key == "loss" else 1), 3) for _ in range(3)]
                run["metrics"][key] = (vals[-1], min(vals), max(vals))
        if rng.random() < 0.85:
            run["params"]["lr"] = rng.choice(["0.001", "0.01", "0.1", "1e-4", "auto"])
        if rng.random() < 0.85:
            run["params"]["optimizer"] = rng.choice(["adam", "sgd", "AdamW", "rmsprop"])
        if rng.random() < 0.85:
            run["params"]["layers"] = rng.choice(["2", "4", "8", "16"])
        if rng.random() < 0.7:
            run["tags"]["stage"] = rng.choice(["dev", "prod", "staging"])
        if rng.random() < 0.7:
            run["tags"]["flag"] = rng.choice(["true", "false"])
        runs.append(run)
    runs[5]["metrics"]["acc"] = (math.nan, 0.2, math.nan)  # NaN latest value
    runs[7]["tags"]["note"] = INJECTION
    return runs


RUNS = make_runs()
TOP1 = [r["metrics"]["val acc.top1"][0] for r in RUNS if "val acc.top1" in r["metrics"]][:2]


@pytest.fixture(scope="module")
def con():
    db = duckdb.connect()
    db.execute(SCHEMA)
    db.executemany("INSERT INTO experiments VALUES (?, ?)", list(EXPERIMENTS.items()))
    cols = ["run_id", "experiment_id", "name", "status", "user_name", "start_time",
            "end_time", "parent_run_id", "git_commit"]
    db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [[run[c] for c in cols] for run in RUNS])
    db.executemany("INSERT INTO latest_metrics VALUES (?, ?, ?, 10, ?, ?)",
                   [[run["run_id"], k, *v] for run in RUNS for k, v in run["metrics"].items()])
    for table in ("params", "tags"):
        db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)",
                       [[run["run_id"], k, v] for run in RUNS for k, v in run[table].items()])
    yield db
    db.close()


def run_query(db, c):
    sql = (f"SELECT r.run_id FROM runs r JOIN experiments e ON e.id = r.experiment_id "
           f"{c.joins} WHERE {c.where} ORDER BY r.run_id")
    return [row[0] for row in db.execute(sql, c.params).fetchall()]


# Reference semantics in plain Python, using three-valued logic (None = unknown).
def cmp(x, op, y):
    if x is None:
        return None
    return {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def k_not(a):
    return None if a is None else not a


def k_and(*xs):
    return False if False in xs else (None if None in xs else True)


def k_or(*xs):
    return True if True in xs else (None if None in xs else False)


def metric(run, key, i=0):
    v = run["metrics"].get(key)
    return None if v is None else v[i]


def num(s):
    try:
        return None if s is None else float(s)
    except ValueError:
        return None


def like(s, pattern, ci=False):
    if s is None:
        return None
    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(rx, s, re.S | (re.I if ci else 0)) is not None


def ts(s):
    return datetime.fromisoformat(s)


CASES = [
    ("metrics.acc > 0.5", lambda r: cmp(metric(r, "acc"), ">", 0.5)),
    ("metrics.acc >= 0.5", lambda r: cmp(metric(r, "acc"), ">=", 0.5)),
    ("metrics.acc != 0.5", lambda r: cmp(metric(r, "acc"), "!=", 0.5)),
    ("NOT metrics.acc > 0.5", lambda r: k_not(cmp(metric(r, "acc"), ">", 0.5))),
    ("NOT metrics.acc < 0.5", lambda r: k_not(cmp(metric(r, "acc"), "<", 0.5))),
    ("metrics.acc > 0.3 AND metrics.acc < 0.8",
     lambda r: k_and(cmp(metric(r, "acc"), ">", 0.3), cmp(metric(r, "acc"), "<", 0.8))),
    ("metrics.acc > 0.5 OR params.optimizer = 'sgd'",
     lambda r: k_or(cmp(metric(r, "acc"), ">", 0.5), cmp(r["params"].get("optimizer"), "=", "sgd"))),
    ("NOT (metrics.acc > 0.5 AND metrics.loss < 1)",
     lambda r: k_not(k_and(cmp(metric(r, "acc"), ">", 0.5), cmp(metric(r, "loss"), "<", 1)))),
    ("metrics.acc >= 0.3 AND NOT tags.stage = 'dev' OR attributes.status = 'FAILED'",
     lambda r: k_or(k_and(cmp(metric(r, "acc"), ">=", 0.3),
                          k_not(cmp(r["tags"].get("stage"), "=", "dev"))),
                    r["status"] == "FAILED")),
    ("metrics.acc IS NULL", lambda r: "acc" not in r["metrics"]),
    ("metrics.acc IS NULL OR metrics.acc <= 0.5",
     lambda r: k_or("acc" not in r["metrics"], cmp(metric(r, "acc"), "<=", 0.5))),
    ("min(metrics.loss) < 0.5", lambda r: cmp(metric(r, "loss", 1), "<", 0.5)),
    ("max(metrics.acc) >= 0.9", lambda r: cmp(metric(r, "acc", 2), ">=", 0.9)),
    ("max(metrics.acc) >= 0.9 AND min(metrics.acc) > 0.1",
     lambda r: k_and(cmp(metric(r, "acc", 2), ">=", 0.9), cmp(metric(r, "acc", 1), ">", 0.1))),
    ("metrics.`val acc.top1` > 0.5", lambda r: cmp(metric(r, "val acc.top1"), ">", 0.5)),
    (f'metrics."val acc.top1" IN ({TOP1[0]!r}, {TOP1[1]!r})',
     lambda r: None if metric(r, "val acc.top1") is None else metric(r, "val acc.top1") in TOP1),
    ("params.lr < 0.05", lambda r: cmp(num(r["params"].get("lr")), "<", 0.05)),
    ("params.lr IN (0.001, 0.1)",
     lambda r: None if num(r["params"].get("lr")) is None else num(r["params"]["lr"]) in (0.001, 0.1)),
    ("params.lr = 'auto'", lambda r: cmp(r["params"].get("lr"), "=", "auto")),
    ("params.layers >= 8", lambda r: cmp(num(r["params"].get("layers")), ">=", 8)),
    ("params.layers > '4'", lambda r: cmp(r["params"].get("layers"), ">", "4")),  # as text
    ("params.optimizer NOT IN ('adam', 'sgd')",
     lambda r: None if "optimizer" not in r["params"] else r["params"]["optimizer"] not in ("adam", "sgd")),
    ("params.optimizer LIKE 'a%'", lambda r: like(r["params"].get("optimizer"), "a%")),
    ("params.optimizer ILIKE 'A%'", lambda r: like(r["params"].get("optimizer"), "A%", ci=True)),
    ("params.optimizer NOT LIKE '%m%'", lambda r: k_not(like(r["params"].get("optimizer"), "%m%"))),
    ("tags.stage IS NOT NULL AND tags.flag = true",
     lambda r: k_and("stage" in r["tags"], cmp(r["tags"].get("flag"), "=", "true"))),
    ("tags.stage IN ('dev', 'prod') OR tags.stage IS NULL",
     lambda r: k_or(None if "stage" not in r["tags"] else r["tags"]["stage"] in ("dev", "prod"),
                    "stage" not in r["tags"])),
    ("attributes.name LIKE 'resnet-1_'", lambda r: like(r["name"], "resnet-1_")),
    ("attributes.experiment = 'exp-b'", lambda r: EXPERIMENTS[r["experiment_id"]] == "exp-b"),
    ("attributes.experiment ILIKE 'exp c'", lambda r: EXPERIMENTS[r["experiment_id"]] == "Exp C"),
    ("attributes.experiment_id IN (1, 3)", lambda r: r["experiment_id"] in (1, 3)),
    ("attributes.user = 'alice' AND attributes.parent IS NULL",
     lambda r: r["user_name"] == "alice" and r["parent_run_id"] is None),
    ("attr.parent_run_id = 'r01'", lambda r: cmp(r["parent_run_id"], "=", "r01")),
    ("attributes.start_time >= '2024-01-02T00:00:00+00:00'",
     lambda r: r["start_time"] >= ts("2024-01-02T00:00:00+00:00")),
    ("attributes.start_time < '2024-01-02 05:00+05:00'",
     lambda r: r["start_time"] < ts("2024-01-02 05:00+05:00")),
    ("attributes.end_time IS NULL", lambda r: r["end_time"] is None),
    ("attributes.end_time > '2024-01-03T00:00:00Z'",
     lambda r: cmp(r["end_time"], ">", ts("2024-01-03T00:00:00+00:00"))),
    ("attributes.status != 'RUNNING' AND NOT attributes.run_id IN ('r01', 'r02')",
     lambda r: r["status"] != "RUNNING" and r["run_id"] not in ("r01", "r02")),
    ("", lambda r: True),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_execute_matches_python(con, text, expected):
    want = [r["run_id"] for r in RUNS if expected(r) is True]
    assert run_query(con, compile_filter(text)) == want


def test_test_data_is_interesting(con):
    # guard against a seed that makes the cases above trivial
    assert 5 < len(run_query(con, compile_filter("metrics.acc > 0.5"))) < 25
    assert run_query(con, compile_filter("metrics.acc IS NULL"))
    assert run_query(con, compile_filter("params.lr = 'auto'"))
    assert "r05" in run_query(con, compile_filter("NOT metrics.acc > 0.5"))  # NaN
    assert "r05" not in run_query(con, compile_filter("metrics.acc >= 0"))


def test_injection_is_matched_literally(con):
    c = compile_filter("tags.note = 'x''; DROP TABLE runs; --'")
    assert c.params[-1] == INJECTION
    assert "DROP" not in sql_of(c)
    assert run_query(con, c) == ["r07"]
    c = compile_filter("tags.`a'); DROP TABLE runs; --` = \"\"\"); DROP TABLE tags; --\"")
    assert "DROP" not in sql_of(c)
    assert run_query(con, c) == []
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == len(RUNS)
    assert con.execute("SELECT count(*) FROM tags").fetchone()[0] > 0


# ---------------------------------------------------------------- properties

VOCAB = ["metrics.acc", "min(metrics.loss)", "max(", "metrics.", "`val acc.top1`", '"k"',
         "params.lr", "params.optimizer", "tags.stage", "attributes.status",
         "attributes.start_time", "attributes.experiment_id", "attr.user", "foo.x", "metrics",
         "AND", "or", "Not", "(", ")", ",", "=", "!=", "<", ">=", "<>", "IN", "LIKE", "ILIKE",
         "IS", "NULL", "1", "-2.5e-1", "'adam'", "'2024-01-02'", "'x''y'", '"dq"', "true",
         "false", "'", "@", "--", ";"]


def check_safe(db, text):
    """Either a FilterSyntaxError, or SQL that runs and contains no user text."""
    try:
        c = compile_filter(text)
    except FilterSyntaxError as err:
        assert 0 <= err.position <= len(text)
        str(err)
        return None
    assert sql_of(c).count("?") == len(c.params)
    assert not set("'\";") & set(sql_of(c))  # no literal of any kind reaches the SQL text
    assert set(run_query(db, c)) <= {r["run_id"] for r in RUNS}
    return c


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_random_text_is_rejected_cleanly_or_runs(con, text):
    check_safe(con, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=12).map(" ".join))
def test_token_soup_is_rejected_cleanly_or_runs(con, text):
    check_safe(con, text)


_fields = st.sampled_from(["metrics.acc", "min(metrics.acc)", "max(metrics.loss)",
                           "metrics.`val acc.top1`", "params.lr", "params.layers",
                           "tags.stage", "tags.`we'ird`", "attributes.name",
                           "attributes.experiment_id", "attributes.start_time", "attr.parent"])
_literals = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=10).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.sampled_from(["true", "FALSE", "'2024-01-02T03:00:00+01:00'", "'2024-01-01'"]))
_predicates = st.one_of(
    st.tuples(_fields, st.sampled_from(["=", "==", "!=", "<>", "<", "<=", ">", ">="]),
              _literals).map(" ".join),
    st.tuples(_fields, st.sampled_from(["IN", "NOT IN"]), st.lists(_literals, min_size=1,
              max_size=3)).map(lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])})"),
    st.tuples(_fields, st.sampled_from(["LIKE", "not like", "ILIKE"]),
              _literals).map(" ".join),
    st.tuples(_fields, st.sampled_from(["IS NULL", "is not null"])).map(" ".join))
_filters = st.recursive(_predicates, lambda sub: st.one_of(
    sub.map(lambda s: f"NOT {s}"), sub.map(lambda s: f"({s})"),
    st.tuples(sub, st.sampled_from(["AND", "OR"]), sub).map(" ".join)), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(_filters)
def test_grammar_generated_filters_are_rejected_cleanly_or_run(con, text):
    check_safe(con, text)


@pytest.mark.parametrize("text", ["NOT " * 3000 + "metrics.a > 0.5", "(" * 3000 + "metrics.a > 0.5" + ")" * 3000])
def test_deep_nesting_is_a_syntax_error_not_a_crash(text):
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter(text)
    assert "nested more than 100 levels" in str(info.value) and info.value.position > 0


def test_nesting_within_the_limit_compiles():
    assert compile_filter("(" * 99 + "metrics.a > 0.5" + ")" * 99).params == ["a", 0.5]
