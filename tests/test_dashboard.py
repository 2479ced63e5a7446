"""The Streamlit dashboard, run in-process with ``streamlit.testing.v1.AppTest``."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import _demo_store
import workbench as wb
from workbench import workspace as _workspace
from workbench.workspace import operator_workspace

HOME = _demo_store.REPO / "app" / "Home.py"
EXPERIMENTS = "../pages/experiments.py"  # switch_page paths are relative to app/Home.py
MODELS = "../pages/models.py"
BAD_FILTER = "metrics.roc_auc > AND params.family = 'random_forest'"


@pytest.fixture(scope="module")
def demo_path():
    return _demo_store.demo_store().path


@pytest.fixture
def demo_env(demo_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_STORE", str(demo_path))
    monkeypatch.delenv("WORKBENCH_USER", raising=False)
    return demo_path


@pytest.fixture
def truth(demo_path):
    """A workspace on the demo store to compute what the pages should show."""
    ws = wb.connect(demo_path)
    yield ws
    ws.close()  # release the file for the other processes of the session (browser test)


def _app() -> AppTest:
    return AppTest.from_file(str(HOME), default_timeout=60)


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _experiments(at: AppTest) -> AppTest:
    at.switch_page(EXPERIMENTS).run()
    _assert_clean(at)
    assert [t.value for t in at.title] == ["Experiments"]
    return at


def _runs_caption(at: AppTest) -> int:
    captions = [c.value for c in at.caption if c.value.endswith(" runs")]
    assert len(captions) == 1, [c.value for c in at.caption]
    return int(captions[0].split()[0])


def test_home_shows_real_counts(demo_env, truth):
    at = _app().run()
    _assert_clean(at)
    counts = truth.counts()
    shown = {m.label: m.value for m in at.metric}
    assert shown == {k.capitalize(): str(counts[k]) for k in ["experiments", "runs", "models", "versions", "users"]}
    assert int(shown["Runs"]) >= 30 and shown["Models"] == "2"
    assert not at.info  # no empty-state message on a seeded store
    assert len(at.dataframe) == 2  # recent runs, registered models


def test_each_page_renders(demo_env, truth):
    at = _app().run()
    _assert_clean(at)
    _experiments(at)
    assert at.selectbox[0].options == ["(all)", *truth.experiments()["name"].to_list()]
    assert _runs_caption(at) == truth.counts()["runs"]
    at.switch_page(MODELS).run()
    _assert_clean(at)
    assert [t.value for t in at.title] == ["Models"]
    assert at.selectbox[0].options == ["credit-default", "diabetes-progression"]
    assert at.selectbox[0].value == "credit-default"
    versions = at.dataframe[1].value
    assert sorted(versions["version"].tolist()) == [1, 2, 3, 4]
    at.selectbox[0].select("diabetes-progression").run()
    _assert_clean(at)
    assert sorted(at.dataframe[1].value["version"].tolist()) == [1, 2]


def test_filter_syntax_error_is_shown_inline_with_position(demo_env, truth):
    with pytest.raises(wb.FilterSyntaxError) as raised:
        truth.search_runs(BAD_FILTER)
    at = _experiments(_app().run())
    at.text_input[0].input(BAD_FILTER).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1
    message = at.error[0].value
    assert f"position {raised.value.position}" in message, message
    assert "Traceback" not in message
    assert not [c for c in at.caption if c.value.endswith(" runs")]  # the page stopped at the error
    # Fixing the filter brings the table back.
    at.text_input[0].input("").run()
    _assert_clean(at)
    assert _runs_caption(at) == truth.counts()["runs"]


@pytest.mark.parametrize("experiment, query", [
    ("(all)", "params.family = 'random_forest'"),
    ("credit-risk", "metrics.roc_auc > 0.75"),
])
def test_valid_filter_narrows_the_runs(demo_env, truth, experiment, query):
    exp = None if experiment == "(all)" else experiment
    total = truth.search_runs(experiment=exp).height
    expected = truth.search_runs(query, experiment=exp).height
    assert 0 < expected < total  # the filter really narrows
    at = _experiments(_app().run())
    at.selectbox[0].select(experiment).run()
    _assert_clean(at)
    assert _runs_caption(at) == total
    at.text_input[0].input(query).run()
    _assert_clean(at)
    assert _runs_caption(at) == expected
    assert at.dataframe[-1].value.shape[0] == expected


def test_filter_matching_nothing_shows_empty_state(demo_env):
    at = _experiments(_app().run())
    at.text_input[0].input("metrics.roc_auc > 2").run()
    _assert_clean(at)
    assert _runs_caption(at) == 0
    assert any("No run matches" in i.value for i in at.info)


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    path = tmp_path / "empty.duckdb"
    operator_workspace(path).close()
    monkeypatch.setenv("WORKBENCH_STORE", str(path))
    monkeypatch.delenv("WORKBENCH_USER", raising=False)
    yield path
    with _workspace._stores_lock:
        hit = _workspace._stores.pop(str(path.resolve()), None)
    if hit is not None:
        hit[0].close()


def test_empty_store_shows_empty_states(empty_store):
    at = _app().run()
    _assert_clean(at)
    assert {m.label: m.value for m in at.metric} == {k: "0" for k in ["Experiments", "Runs", "Models", "Versions", "Users"]}
    infos = " ".join(i.value for i in at.info)
    assert "No runs yet" in infos and "No registered models yet" in infos
    _experiments(at)
    assert any("No experiments yet" in i.value for i in at.info)
    assert not at.text_input  # nothing to filter
    at.switch_page(MODELS).run()
    _assert_clean(at)
    assert any("No registered models yet" in i.value for i in at.info)
    assert not at.dataframe


def test_deeply_nested_filter_shows_an_error_not_a_traceback(demo_env):
    at = _experiments(_app().run())
    at.text_input[0].input("NOT " * 3000 + "metrics.roc_auc > 0.5").run()
    assert not at.exception
    assert len(at.error) == 1 and "position" in at.error[0].value
