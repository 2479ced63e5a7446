"""The Streamlit dashboard, run in-process with ``streamlit.testing.v1.AppTest``."""

from __future__ import annotations

import contextlib
import json

import _demo_store
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

import workbench as wb
from workbench.people import auth, roles
from workbench.store import shared
from workbench.ui import widgets as ui
from workbench.workspace import operator_workspace

HOME = _demo_store.REPO / "app" / "Home.py"
EXPERIMENTS = "../pages/experiments.py"  # switch_page paths are relative to app/Home.py
MODELS = "../pages/models.py"
BAD_FILTER = "metrics.roc_auc > AND params.family = 'random_forest'"


@pytest.fixture(scope="module")
def demo_path():
    return _demo_store.demo_location()


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


DEMO_USERS = {"data_scientist": "dana", "reviewer": "riley", "compliance_officer": "casey", "lead": "lee",
              "admin": "ada"}


def _signed_in(at: AppTest, role: str = "data_scientist", store=None) -> AppTest:
    """Sign in through the real service (password check, audit event) and hand the session to the app."""
    name = DEMO_USERS[role]
    at.session_state[ui.SIGNED] = auth.sign_in(store or ui.store_location(), name, f"{name}-demo-pw")
    return at


def _app(role: str = "data_scientist") -> AppTest:
    return _signed_in(AppTest.from_file(str(HOME), default_timeout=60), role)


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
    assert sorted(versions["version"].tolist()) == [1, 2, 3, 4, 5]
    # per version, which evidence exists and its verdict: the form-only scorecard fails
    shown = dict(zip(versions["version"], zip(versions["explanation"], versions["fairness"], versions["drift"])))
    # and drift against the later, drifted month where it was computed (it fails the high tier)
    assert shown == {v: ("stored", "fail" if v == 5 else "pass", "fail" if v in (2, 3, 4) else "missing")
                     for v in range(1, 6)}, shown
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


@contextlib.contextmanager
def _tmp_store(path, monkeypatch, users: dict[str, str]):
    """A fresh store at ``path`` with ``users`` (name -> role, password '<name>-demo-pw'),
    set as the dashboard's store; closed and forgotten afterwards."""
    op = operator_workspace(path)
    for name, role in users.items():
        op.add_user(name, role, f"{name}-demo-pw")
    monkeypatch.setenv("WORKBENCH_STORE", str(path))
    monkeypatch.delenv("WORKBENCH_USER", raising=False)
    try:
        yield op
    finally:
        shared.close(path)


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    path = tmp_path / "empty.duckdb"
    with _tmp_store(path, monkeypatch, {"dana": "data_scientist"}) as op:  # someone must be able to sign in
        op.close()
        yield path


def test_empty_store_shows_empty_states(empty_store):
    at = _app().run()
    _assert_clean(at)
    assert {m.label: m.value for m in at.metric} == {"Experiments": "0", "Runs": "0", "Models": "0", "Versions": "0",
                                                      "Users": "1"}
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


# -- sign-in, roles, sessions ------------------------------------------------------------
PAGE_FILES = {key: ui.PAGES_DIR / script for key, (script, _, _) in ui.PAGES.items()}


def test_drift_page_shows_windows_features_and_the_alert(demo_env, truth):
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["drift"]), default_timeout=60), "reviewer").run()
    _assert_clean(at)
    assert at.selectbox[0].value == "credit-default v4 (Production)" and at.radio[0].value == "1w"
    windows = truth.monitor(("credit-default", 4), "1w", alerts=False).windows
    assert f"{windows.height} windows of 1w; 1 breach the monitor policy." in at.caption[0].value
    features = at.dataframe[0].value
    assert list(features["severity"]) == sorted(features["severity"], reverse=True)  # worst first
    assert at.selectbox[1].value == windows.sort("drift_share")["window_start"][-1]  # the most drifted window
    assert len(at.get("plotly_chart")) == 3  # timelines, the canary beside the champion, distribution overlay
    assert any(h.value.startswith("Canary: v4 (champion) beside v2 (challenger, 25% of traffic)") for h in at.subheader)
    alerts = at.dataframe[1].value
    assert list(alerts["metric"]) == ["drift_share"] and list(alerts["rule"]) == ["drift_share >= 0.3"]
    at.radio[0].set_value("1d").run()
    _assert_clean(at)
    assert "windows of 1d" in at.caption[0].value


def test_drift_page_shows_retraining_output_to_leads_and_admins_only(demo_env):
    for role, shown in (("reviewer", False), ("data_scientist", False), ("lead", True), ("admin", True)):
        at = _signed_in(AppTest.from_file(str(PAGE_FILES["drift"]), default_timeout=60), role).run()
        _assert_clean(at)
        alerts = at.dataframe[1].value
        assert "command_status" in alerts.columns and ("output" in alerts.columns) == shown, (role, alerts.columns)


def test_drift_page_on_a_store_without_logs_says_what_to_do(evidence_store):
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["drift"]), default_timeout=60), "reviewer",
                    store=str(evidence_store)).run()
    assert not at.exception and "No predictions logged yet" in at.info[0].value


def test_approvals_page_queues_and_who_may_decide(demo_env, truth):
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["approvals"]), default_timeout=60), "lead").run()
    _assert_clean(at)
    pending = truth.requests(status="pending")
    assert at.radio[0].options[0] == f"Awaiting me ({pending.height})" and at.radio[0].value.startswith("Awaiting me")
    labels = [o for o in at.selectbox[0].options]
    assert len(labels) == pending.height and any("stale" in lab for lab in labels)
    stale_id = pending.filter(pl.col("stale"))["id"][0]
    at.selectbox[0].select(str(stale_id)).run()  # its options are request ids, shown with _label
    _assert_clean(at)
    assert any("must be refreshed" in w.value for w in at.warning)
    assert "Approve" not in [b.label for b in at.get("form_submit_button")]  # stale: no decision
    # the requester, a data scientist, sees her requests and no decision form
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["approvals"]), default_timeout=60), "data_scientist").run()
    _assert_clean(at)
    assert at.radio[0].value.startswith("Awaiting me (0)") or at.radio[0].options[0] == "Awaiting me (0)"
    at.radio[0].set_value("My requests").run()  # the queue's name; the label adds its count
    assert "Approve" not in [b.label for b in at.get("form_submit_button")]
    assert any("own" in c.value for c in at.caption)


def test_a_rejection_without_reason_is_a_message_on_the_page(monkeypatch):
    path = _demo_store.demo_copy()
    monkeypatch.setenv("WORKBENCH_STORE", str(path))
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["approvals"]), default_timeout=60), "lead", store=str(path))
    at.query_params["request"] = str(wb.connect(path).requests(status="pending").filter(~pl.col("stale"))["id"][0])
    at.run()
    _assert_clean(at)
    reject = next(b for b in at.get("form_submit_button") if b.label == "Reject")
    reject.click().run()
    assert not at.exception and [e.value for e in at.error] == [ui.plain("A rejection needs a reason: say what must change.")]


def test_audit_page_filters_badge_and_export_by_role(demo_env, truth):
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["audit"]), default_timeout=60), "compliance_officer").run()
    _assert_clean(at)
    assert "Chain intact" in at.markdown[0].value or any("Chain intact" in m.value for m in at.markdown)
    at.text_input[1].input("request.*").run()
    _assert_clean(at)
    n = truth.store.scalar("select count(*) from audit_events where action like 'request.%'")
    assert any(c.value.startswith(f"{n} event") for c in at.caption), [c.value for c in at.caption]
    assert set(at.dataframe[0].value["action"]).issubset({"request.create", "request.approve", "request.reject",
                                                          "request.comment", "request.refresh", "request.withdraw"})
    assert any(b.label == "Prepare the export" for b in at.button)
    reviewer = _signed_in(AppTest.from_file(str(PAGE_FILES["audit"]), default_timeout=60), "reviewer").run()
    _assert_clean(reviewer)
    assert not any(b.label == "Prepare the export" for b in reviewer.button)


def test_sign_in_form_signs_in_and_wrong_password_is_refused(demo_env):
    at = AppTest.from_file(str(HOME), default_timeout=60).run()
    assert not at.exception and [b.label for b in at.button] == ["Sign in"]
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    at.text_input[0].input("dana")
    at.text_input[1].input("wrong-password")
    at.button[0].click().run()
    assert [e.value for e in at.error] == [ui.plain("Wrong user name or password.")]  # messages are shown as plain text
    assert ui.SIGNED not in at.session_state
    at.text_input[1].input("dana-demo-pw")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state[ui.SIGNED].user == "dana"
    assert [t.value for t in at.title] == ["Workbench"] and at.metric  # Home, signed in


@pytest.mark.parametrize("role", list(DEMO_USERS))
def test_every_page_a_role_may_open_renders(demo_env, role):
    allowed = roles.pages_for(role)
    assert "home" in allowed
    for key in allowed:
        at = _signed_in(AppTest.from_file(str(PAGE_FILES[key]), default_timeout=60), role).run()
        _assert_clean(at)
        assert at.title, key


@pytest.mark.parametrize("role", list(DEMO_USERS))
def test_pages_a_role_may_not_use_refuse_when_opened_directly(demo_env, role):
    refused = [k for k in ui.PAGES if k not in roles.pages_for(role)]
    assert (role == "admin") == ("users" not in refused)
    for key in refused:
        at = _signed_in(AppTest.from_file(str(PAGE_FILES[key]), default_timeout=60), role).run()
        assert not at.exception
        assert [e.value for e in at.error] == [f"Your role ({role}) may not open this page."]
        assert not at.dataframe and not at.title and not at.metric


def test_pages_show_the_sign_in_form_without_sign_in(demo_env):
    for key, path in PAGE_FILES.items():
        at = AppTest.from_file(str(path), default_timeout=60).run()
        assert not at.exception and not at.dataframe and not at.metric, key
        assert [t.value for t in at.title] == ["Sign in"], key
        assert [t.label for t in at.text_input] == ["User name", "Password"], key


def test_an_expired_session_asks_to_sign_in_again(demo_env):
    at = _app()
    signed = at.session_state[ui.SIGNED]
    from datetime import timedelta

    at.session_state[ui.SIGNED] = auth.SignedIn(signed.user, signed.role, signed.signed_in_at - timedelta(days=2),
                                                signed.expires_at - timedelta(days=2))
    at.run()
    assert not at.exception
    assert ui.SIGNED not in at.session_state
    assert any("session expired" in w.value for w in at.warning)
    assert [b.label for b in at.button] == ["Sign in"]


def test_unknown_run_in_the_url_is_a_message_not_a_traceback(demo_env):
    at = _app()
    at.query_params["run"] = "does-not-exist"
    at.switch_page(EXPERIMENTS).run()
    assert not at.exception
    assert any(ui.plain("does-not-exist") in e.value for e in at.error)


def test_run_detail_and_comparison_from_query_params(demo_env, truth):
    runs = truth.search_runs("params.family = 'hist_gradient_boosting'", experiment="credit-risk")
    ids = runs["run_id"].to_list()[:3]
    at = _app()
    at.query_params["run"] = ids[0]
    at.switch_page(EXPERIMENTS).run()
    _assert_clean(at)
    assert any(h.value for h in at.header)
    assert at.get("plotly_chart"), "metric curves of a run with steps"
    at = _app()
    at.query_params["runs"] = ",".join(ids)
    at.switch_page("../pages/compare.py").run()
    _assert_clean(at)
    assert len(at.get("plotly_chart")) >= 2  # curves, parallel coordinates, scatter


def test_html_in_user_text_is_shown_as_text(demo_env, demo_path):
    ws = wb.connect(demo_path, user="dana")
    with ws.start_run("xss", name="<script>alert(1)</script>") as run:
        run.set_tags({"note": "<img src=x onerror=alert(2)>"})
        run.log_metrics({"auc": 0.5})
    ws.close()
    at = _app()
    at.query_params["run"] = run.run_id
    at.switch_page(EXPERIMENTS).run()
    _assert_clean(at)
    header = at.header[0].value
    assert "<script>" not in header and "script" in header  # escaped: no raw tag reaches markdown
    tags = at.dataframe[2].value
    assert tags["value"].tolist() == ["<img src=x onerror=alert(2)>"]  # a cell shows text, never markup


@pytest.fixture
def admin_store(tmp_path, monkeypatch):
    path = tmp_path / "admin.duckdb"
    with _tmp_store(path, monkeypatch, {"ada": "admin", "dana": "data_scientist"}) as op:
        op.close()
        yield path


def test_admin_adds_and_disables_users_and_the_policy_is_enforced(admin_store):
    def users_page():
        return _signed_in(AppTest.from_file(str(PAGE_FILES["users"]), default_timeout=60), "admin").run()

    at = users_page()
    _assert_clean(at)
    at.text_input[0].input("riley")
    at.text_input[1].input("short")
    at.button[0].click().run()
    assert not at.exception and any("10" in e.value for e in at.error)  # the password rule, named
    at.text_input[0].input("riley")  # the form clears on submit
    at.text_input[1].input("riley-long-password")
    at.selectbox[0].select("reviewer")
    at.button[0].click().run()
    assert not at.exception
    op = operator_workspace(admin_store)
    assert dict(op.users().select(["name", "role"]).iter_rows())["riley"] == "reviewer"
    at = users_page()
    at.selectbox[1].select("dana")
    [b for b in at.button if b.label == "Disable"][0].click().run()
    assert not at.exception
    assert op.users().filter(pl.col("name") == "dana")["disabled"].to_list() == [True]
    with pytest.raises(wb.PermissionDenied):
        auth.sign_in(str(admin_store), "dana", "dana-demo-pw")
    actions = op.audit_events()["action"].to_list()
    assert "user.add" in actions and "user.disable" in actions


def _users_page() -> AppTest:
    return _signed_in(AppTest.from_file(str(PAGE_FILES["users"]), default_timeout=60), "admin").run()


def test_users_page_unlocks_resets_a_password_and_unblocks_an_address(admin_store):
    from datetime import datetime, timezone

    t0 = datetime.now(timezone.utc)
    for i in range(5):  # five addresses guess dana's password: her account locks
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(str(admin_store), "dana", "guess-pw", address=f"203.0.113.{i}", now=t0)
    for i in range(5):  # one address scans names: it is blocked
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(str(admin_store), f"user{i}", "guess-pw", address="192.0.2.66", now=t0)
    op = operator_workspace(admin_store)

    def locked() -> bool:
        return op.accounts().filter(pl.col("name") == "dana")["locked"].item()

    at = _users_page()
    _assert_clean(at)
    table = at.dataframe[0].value
    assert table.loc[table["name"] == "dana", "locked"].tolist() == [True]
    assert "password_hash" not in table.columns
    assert [h.value for h in at.subheader if h.value == "Blocked addresses"] == ["Blocked addresses"]
    assert at.dataframe[1].value["address"].tolist() == ["192.0.2.66"]

    user_box = [b for b in at.selectbox if b.label == "User"][0]
    user_box.select("dana")
    [b for b in at.button if b.label == "Unlock"][0].click().run()
    _assert_clean(at)
    assert not locked()
    assert [m.value for m in at.success] == ["Unlocked dana" + ui.plain(".")]

    at.selectbox(key="reset_user").select("dana")
    at.text_input[2].input("short")
    [b for b in at.button if b.label == "Reset password"][0].click().run()
    assert not at.exception and any("at least 10 characters" in e.value for e in at.error)
    at.selectbox(key="reset_user").select("dana")
    at.text_input[2].input("dana-new-passphrase")
    [b for b in at.button if b.label == "Reset password"][0].click().run()
    _assert_clean(at)
    assert auth.sign_in(str(admin_store), "dana", "dana-new-passphrase", address="198.51.100.3").user == "dana"

    [b for b in at.button if b.label == "Unblock"][0].click().run()
    _assert_clean(at)
    assert op.blocked_addresses().is_empty()
    assert not [h for h in at.subheader if h.value == "Blocked addresses"]
    actions = op.audit_events()["action"].to_list()
    assert {"user.unlock", "user.set_password", "address.unblock"} <= set(actions)
    assert op.verify_audit().ok
    op.close()


def test_sign_in_form_blocks_the_address_after_five_failures(admin_store):
    at = AppTest.from_file(str(HOME), default_timeout=60).run()
    for i in range(5):
        at.text_input[0].input("nobody" if i % 2 else "dana")
        at.text_input[1].input(f"guess-{i}-pw")
        at.button[0].click().run()
    assert at.error[0].value.startswith(ui.plain("Too many failed sign-ins from your address"))
    at.text_input[0].input("dana")
    at.text_input[1].input("dana-demo-pw")  # the right password: refused unchecked, the same message
    at.button[0].click().run()
    assert at.error[0].value.startswith(ui.plain("Too many failed sign-ins from your address"))
    assert ui.SIGNED not in at.session_state
    op = operator_workspace(admin_store)
    assert op.blocked_addresses()["address"].to_list() == [auth.LOCAL]  # AppTest, like localhost: no address
    op.close()


def test_client_address_comes_from_the_proxy_header_only_when_configured(monkeypatch):
    class Context:
        ip_address = "10.0.0.2"  # the reverse proxy
        headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.9"}  # forged first entry, then the proxy's

    monkeypatch.setattr(ui.st, "context", Context())
    monkeypatch.delenv("WORKBENCH_CLIENT_IP_HEADER", raising=False)
    assert ui.client_address() == "10.0.0.2"
    monkeypatch.setenv("WORKBENCH_CLIENT_IP_HEADER", "X-Forwarded-For")
    assert ui.client_address() == "198.51.100.9"
    Context.headers = {}
    assert ui.client_address() == "10.0.0.2"


def test_organisation_sign_in_is_offered_only_where_oidc_is_configured(demo_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(HOME), default_timeout=60).run()
    assert [b.label for b in at.button] == ["Sign in"]
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        '[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\ncookie_secret = "x"\n'
        'client_id = "wb"\nclient_secret = "s"\nserver_metadata_url = "https://idp.example/.well-known/openid-configuration"\n')
    at = AppTest.from_file(str(HOME), default_timeout=60).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in", "Sign in with your organisation"]


@pytest.fixture
def evidence_store(tmp_path, monkeypatch):
    """A store with two versions of a credit model, each explained and fairness-checked."""
    path = tmp_path / "evidence.duckdb"
    with _tmp_store(path, monkeypatch, {"dana": "data_scientist", "riley": "reviewer"}):
        _store_evidence(path)
        yield path


def _store_evidence(path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from workbench.demo.datasets import (
        FEATURES_CATEGORICAL,
        FEATURES_NUMERIC,
        TARGET,
        make_credit_applicants,
    )

    ws = wb.connect(path, user="dana")
    data, test = make_credit_applicants(3000, seed=1), make_credit_applicants(600, seed=2)
    cols = FEATURES_NUMERIC + FEATURES_CATEGORICAL
    for est in (LogisticRegression(max_iter=300), HistGradientBoostingClassifier(max_iter=30)):
        pre = ColumnTransformer([("num", StandardScaler(), FEATURES_NUMERIC),
                                 ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), FEATURES_CATEGORICAL)])
        model = Pipeline([("prep", pre), ("model", est)]).fit(data.to_pandas()[cols], data[TARGET].to_numpy())
        with ws.start_run("credit") as run:
            mv = run.register_model(model, "credit", risk_tier="high")
        ws.explain(mv, test.select(["applicant_id", *cols]), row_id="applicant_id", max_rows=200)
        ws.fairness(mv, test, test[TARGET].to_numpy(), sensitive_features=["sex", "age_band"], n_bootstrap=20)
    ws.close()


@pytest.mark.parametrize("page", ["explanations", "fairness"])
def test_a_changed_or_missing_evidence_file_is_a_message_not_a_traceback(evidence_store, page):
    from workbench.store import artifacts

    ws = wb.connect(evidence_store)
    kind = "explanation" if page == "explanations" else "fairness"
    digest = ws.store.scalar("select artifact_sha256 from evidence where kind = ? order by id limit 1", [kind])
    path = artifacts.path_for(ws.store.artifact_root, digest)
    ws.close()
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10] + b"tampered!!")
    at = _signed_in(AppTest.from_file(str(PAGE_FILES[page]), default_timeout=60), "reviewer",
                    store=str(evidence_store)).run()
    assert not at.exception
    assert any("does not match its recorded digest" in e.value for e in at.error), [e.value for e in at.error]
    path.unlink()
    at = _signed_in(AppTest.from_file(str(PAGE_FILES[page]), default_timeout=60), "reviewer",
                    store=str(evidence_store)).run()
    assert not at.exception
    assert any("is missing from the artifact folder" in e.value for e in at.error), [e.value for e in at.error]


def test_explanations_and_fairness_pages_draw_stored_evidence(evidence_store):
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["explanations"]), default_timeout=60), "reviewer",
                    store=str(evidence_store)).run()
    _assert_clean(at)
    assert len(at.get("plotly_chart")) >= 5  # importance, beeswarm, dependence, waterfall, two versions
    assert "additivity holds" in at.caption[0].value
    # the row's waterfall names every feature but shows no value of a masked one ("age")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    labels = next(s["data"][0]["y"] for s in specs if s["data"][0]["type"] == "waterfall")
    assert "age = •••" in labels and not any(lab.startswith("age = ") and "•••" not in lab for lab in labels), labels
    at.text_input[0].input("no-such-row").run()
    assert not at.exception and any(ui.plain("no-such-row") in e.value for e in at.error)
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["fairness"]), default_timeout=60), "reviewer",
                    store=str(evidence_store)).run()
    assert not at.exception
    badges = [b.proto.body for b in at.get("markdown") if "Verdict:" in b.proto.body]
    assert len(badges) == 1 and any(v in badges[0] for v in ("pass", "fail", "review", "not judged"))
    assert [m.label for m in at.metric][:2] == ["demographic parity difference", "demographic parity ratio"]
    assert any("risk tier high" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2  # group bars, trend across the two versions


def test_reports_page_flags_a_failed_scheduled_run(tmp_path, monkeypatch):
    from datetime import datetime, timedelta, timezone

    path = tmp_path / "reports.duckdb"
    out = tmp_path / "out"
    out.mkdir()
    with _tmp_store(path, monkeypatch, {"casey": "compliance_officer"}) as op:
        op.add_schedule("daily-audit", "0 6 * * *", "audit", None, "json", out)
        out.rmdir()  # the folder is gone by the time the schedule runs
        outcome = op.run_due_schedules(now=datetime.now(timezone.utc) + timedelta(days=2))
        assert [o["status"] for o in outcome] == ["failed"]
        at = _signed_in(AppTest.from_file(str(PAGE_FILES["reports"]), default_timeout=60), "compliance_officer",
                        store=str(path)).run()
        assert not at.exception
        assert [w.value for w in at.warning] == ["1 scheduled run(s) failed; each is retried at the next run."]
        assert at.dataframe[0].value["last_status"].tolist() == ["failed"]


def test_models_page_lets_owners_write_the_card_text(monkeypatch):
    path = _demo_store.demo_copy()
    monkeypatch.setenv("WORKBENCH_STORE", str(path))
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["models"]), default_timeout=60), "data_scientist", store=str(path)).run()
    _assert_clean(at)
    limitations = next(t for t in at.text_area if t.label == "Limitations")
    limitations.input("Not validated for applicants under 21.")
    next(b for b in at.get("form_submit_button") if b.label == "Save").click().run()
    _assert_clean(at)
    assert wb.connect(path).card_text("credit-default")["limitations"] == "Not validated for applicants under 21."
    reviewer = _signed_in(AppTest.from_file(str(PAGE_FILES["models"]), default_timeout=60), "reviewer", store=str(path)).run()
    assert not reviewer.text_area and any("applicants under 21" in m.value for m in reviewer.markdown)


def test_a_user_makes_a_token_sees_it_once_and_revokes_it(monkeypatch):
    copy = _demo_store.private_demo()
    monkeypatch.setenv("WORKBENCH_STORE", str(copy))
    at = _signed_in(AppTest.from_file(str(PAGE_FILES["tokens"]), default_timeout=60), "data_scientist", copy).run()
    _assert_clean(at)
    assert [i.value for i in at.info] == ["No tokens yet."]
    at.text_input[0].input("laptop")
    at.multiselect[0].select("start_run").select("models")
    next(b for b in at.get("form_submit_button") if b.label == "Make token").click().run()
    _assert_clean(at)
    shown = at.code[0].value
    assert shown.startswith("wbt_") and "Copy it now" in at.success[0].value
    mine = wb.connect(copy, user="dana").tokens()
    assert mine["name"].to_list() == ["laptop"] and json.loads(mine["operations"][0]) == ["models", "start_run"]
    assert "toggle" not in [w.type for w in at.main]  # "every user's tokens" is for admins only
    at.run()  # the next run: the token is not shown again
    assert not at.code and shown not in str([d.value for d in at.dataframe])
    table = at.dataframe[0].value
    assert list(table.columns) == ["Id", "User", "Name", "Status", "Limited to", "Made", "Made by", "Expires",
                                   "Last used", "Revoked"]
    assert table["Limited to"].tolist() == ["models, start_run"] and table["Last used"].tolist() == [""]
    next(b for b in at.button if b.label == "Revoke").click().run()
    _assert_clean(at)
    assert wb.connect(copy, user="dana").tokens()["status"].to_list() == ["revoked"]
    assert "Revoked token" in at.success[0].value
