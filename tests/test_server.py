"""The server (`workbench serve`): one process owns the store, the API answers only to tokens.

Each test starts the real server on a free port (the dashboard and the API on one port) and
calls it over HTTP, with a remote workspace and with raw requests; on both backends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import _demo_store
import numpy as np
import polars as pl
import pytest
from _server import serving
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.operations import OPERATIONS
from workbench.store import shared
from workbench.workspace import operator_workspace

PW = "a long enough passphrase 7"


def _prepare(store_path) -> dict:
    """Users and their tokens, made in file mode before the server takes the store."""
    op = operator_workspace(store_path)
    made = {}
    for name, role in (("dana", "data_scientist"), ("lee", "lead"), ("ada", "admin")):
        op.add_user(name, role)
        made[name] = op.create_token(f"{name}'s", user=name)["token"]
    made["ci"] = op.create_token("ci", user="dana", operations=["models", "start_run"])["token"]
    dana = wb.connect(store_path, user="dana")
    X = np.random.default_rng(0).normal(size=(200, 2))
    with dana.start_run("served") as run:  # a version and a request to decide (low risk: no gates)
        run.log_metrics({"roc_auc": 0.8})
        mv = run.register_model(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), "m", risk_tier="low")
    made["request"] = dana.request_promotion(mv, "Staging", "ready for a look").id
    made["gates"] = op.gate_policy("medium")
    made["users"] = op.users()
    shared.close(store_path)  # let the file go: the server holds it from now on
    return made


def _http(url: str, path: str, body=None, token: str | None = None, headers: dict | None = None,
          method: str = "POST") -> tuple[int, dict, bytes]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    h = {"Content-Type": "application/json", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_api_serves_every_operation_as_the_tokens_user_and_refuses_the_rest(store_path, tmp_path):
    made = _prepare(store_path)
    with serving(store_path, tmp_path / "serve.log") as (url, _):
        # one port: the dashboard's health check and the API's document
        status, _, doc = _http(url, "/api/openapi.json", method="GET")
        assert status == 200
        paths = json.loads(doc)["paths"]
        assert {f"/v1/ops/{name}" for name in OPERATIONS} <= set(paths)
        assert json.loads(doc)["servers"] == [{"url": "/api"}]

        dana = wb.connect(url, token=made["dana"])
        ada = wb.connect(url, token=made["ada"])
        assert (dana.user, dana.role, ada.role) == ("dana", "data_scientist", "admin")
        # the same results as file mode
        assert dana.gate_policy("medium") == made["gates"]
        assert dana.users().equals(made["users"])
        # the role comes from the store on every call
        with pytest.raises(wb.PermissionDenied, match="may not manage gates"):
            dana.set_gate_policy("low", required_evidence=[])
        with pytest.raises(wb.PermissionDenied, match="manage users"):
            dana.add_user("mallory", "admin")
        with pytest.raises(wb.PermissionDenied, match="own request"):
            dana.decide(made["request"], True, "mine")
        decided = wb.connect(url, token=made["lee"]).decide(made["request"], True, "looks right")
        assert type(decided) is type(dana.request(made["request"])) and decided.status == "approved"
        assert type(decided.status) is wb.RequestStatus and decided.decisions[0]["actor"] == "lee"
        assert dana.get_model_version("m", 1).stage == "Staging"
        with pytest.raises(wb.PermissionDenied, match="limited to models, start_run"):
            wb.connect(url, token=made["ci"]).users()
        assert wb.connect(url, token=made["ci"]).models()["name"].to_list() == ["m"]
        with pytest.raises(wb.FilterSyntaxError) as bad:  # the same error class, rebuilt whole
            dana.search_runs("metrics.roc_auc > AND")
        assert bad.value.position == 18 and "expected a value" in str(bad.value)
        with pytest.raises(wb.ValidationError, match="user is the token's"):
            wb.connect(url, user="lee", token=made["dana"])
        # an admin's write through the API: audited as the token's user, with the token's id
        ada.set_gate_policy("low", required_evidence=["explanation"])
        event = ada.audit_events(action="gate_policy.set")
        assert event["actor"].to_list() == ["ada"]
        assert json.loads(event["payload"][0])["token_id"] == int(ada.tokens()["id"][0])
        assert ada.verify_audit().ok

        # raw HTTP: who may not call, and bad input, get 4xx with a message and never a traceback
        answers = {
            "no token": _http(url, "/api/v1/ops/models"),
            "garbage token": _http(url, "/api/v1/ops/models", token="wbt_" + "x" * 43),
            "basic, wrong": _http(url, "/api/v1/ops/models", headers={"Authorization": "Basic !!!"}),
            "wrong type": _http(url, "/api/v1/ops/gate_policy", {"risk_tier": 5}, token=made["dana"]),
            "unknown field": _http(url, "/api/v1/ops/gate_policy", {"risk_tier": "low", "as_user": "ada"},
                                   token=made["dana"]),
            "unknown tier": _http(url, "/api/v1/ops/gate_policy", {"risk_tier": "extreme"}, token=made["dana"]),
            "bad tag": _http(url, "/api/v1/ops/audit_events", {"since": {"$datetime": "yesterday"}},
                             token=made["ada"]),
            "unknown op": _http(url, "/api/v1/ops/launch", {}, token=made["dana"]),
            "not JSON": _http(url, "/api/v1/ops/models", token=made["dana"], headers={"Content-Type": "text/plain"}),
        }
        codes = {k: v[0] for k, v in answers.items()}
        assert codes == {"no token": 401, "garbage token": 401, "basic, wrong": 401, "wrong type": 400,
                         "unknown field": 400, "unknown tier": 400, "bad tag": 400, "unknown op": 404,
                         "not JSON": 200}, answers
        for what, (_, headers, body) in answers.items():
            assert b"Traceback" not in body and b'File "' not in body, (what, body)
            assert "access-control-allow-origin" not in {h.lower() for h in headers}
        assert json.loads(answers["no token"][2])["error"] == "AuthenticationError"
        assert answers["no token"][1].get("www-authenticate", answers["no token"][1].get("WWW-Authenticate")) == "Bearer"
        assert "risk_tier" in json.loads(answers["wrong type"][2])["message"]
        assert "as_user" in json.loads(answers["unknown field"][2])["message"]
        assert "extreme" in json.loads(answers["unknown tier"][2])["message"]
        big = _http(url, "/api/v1/ops/models", token=made["dana"], headers={"Content-Length": str(2 ** 31)})
        assert big[0] == 413

        # runs through the server: the same rules and the same stored result as in file mode
        with dana.start_run("served", name="remote", tags={"team": "risk"}) as run:
            run.log_params({"C": 0.5, "model": "lr"})
            for i in range(300):
                run.log_metric("loss", 1 / (i + 1))
            run.log_metrics({"auc": 0.81, "undefined": float("nan")}, step=7)
            with pytest.raises(wb.ValidationError, match="cannot change"):
                run.log_params({"C": 2})
        stored = dana.get_run(run.run_id)
        assert (stored["status"], stored["user_name"], stored["name"]) == ("FINISHED", "dana", "remote")
        assert stored["params"] == {"C": "0.5", "model": "lr"} and stored["tags"] == {"team": "risk"}
        history = dana.metric_history(run.run_id)
        assert history.filter(history["key"] == "loss")["step"].to_list() == list(range(300))
        assert history.filter(history["key"] == "undefined")["value"].is_nan().to_list() == [True]
        assert dana.search_runs("params.C = '0.5'")["run_id"].to_list() == [run.run_id]
        with pytest.raises(wb.ValidationError, match="has ended"):
            dana.log_batch(run.run_id, params={"late": 1})
        with pytest.raises(wb.PermissionDenied, match="another user's run"):
            wb.connect(url, token=made["lee"]).end_run(run.run_id, "FAILED")
        open_run = dana.create_run("served")
        with pytest.raises(wb.ValidationError, match="metric point"):
            dana.log_batch(open_run, params={"kept": "no"}, metrics=[["ok", 1.0], ["bad"]])
        assert dana.get_run(open_run)["params"] == {}  # all of the call or nothing
        with pytest.raises(wb.PermissionDenied, match="log runs"):
            ada.create_run("served")
        try:
            with dana.start_run("served") as failing:
                raise RuntimeError("diverged")
        except RuntimeError:
            pass
        assert dana.get_run(failing.run_id)["status"] == "FAILED"

        # models through the server: saved here, checked and kept there, loaded back here
        X = np.random.default_rng(1).normal(size=(100, 2))
        fitted = LogisticRegression().fit(X, (X[:, 1] > 0).astype(int))
        with dana.start_run("served", name="with a model") as run:
            run.log_metrics({"roc_auc": 0.9})
            mv = run.register_model(fitted, "served-model", risk_tier="low", owner_team="risk")
        assert (mv.name, mv.version, mv.run_id) == ("served-model", 1, run.run_id)
        # data sets and files: fingerprinted and read here, recorded there
        frame = pl.DataFrame({"applicant_id": [f"A{i}" for i in range(50)], "income": np.arange(50.0)})
        note = tmp_path / "notes.txt"
        note.write_text("threshold chosen on the validation fold")
        with dana.start_run("served", name="with data") as run2:
            ref = run2.log_dataset(frame, "applicants", role="train", source="s3://bucket/a.parquet")
            digest = run2.log_artifact(note)
        assert (ref.name, ref.n_rows, ref.digest) == ("applicants", 50, wb.datasets.fingerprint(frame)[0])
        assert ref.marks.get("applicant_id") == "identifying"  # the detector ran where the data is
        used = dana.run_datasets(run2.run_id)
        assert used["role"].to_list() == ["train"] and used["source"].to_list() == ["s3://bucket/a.parquet"]
        files = dana.run_artifacts(run2.run_id)
        assert files["name"].to_list() == ["notes.txt"] and files["sha256"].to_list() == [digest]
        assert digest == hashlib.sha256(note.read_bytes()).hexdigest()
        with pytest.raises(wb.ValidationError, match="64 lower-case hex"):
            dana.log_dataset_fingerprint(dana.create_run("served"), "x", "train", "abc", "{}", 0, 0)
        assert mv.model_class == "sklearn.linear_model._logistic.LogisticRegression"
        loaded = wb.connect(url, token=made["lee"]).load_model("served-model", 1)
        assert (loaded.predict_proba(X) == fitted.predict_proba(X)).all()
        with pytest.raises(wb.ValidationError, match="not a skops model file"):
            dana.register_model_file("junk", b"not a model at all")
        with pytest.raises(wb.ValidationError, match="needs model_class"):
            dana.register_model_file("junk", b"\x80\x05N.", format="pickle")
        pickled = dana.register_model(fitted, "pickled-model", format="pickle")
        with pytest.raises(wb.PermissionDenied, match="allow_pickle"):
            dana.load_model("pickled-model", pickled.version)
        assert dana.load_model("pickled-model", allow_pickle=True).coef_.tolist() == fitted.coef_.tolist()
        assert "junk" not in dana.models()["name"].to_list()

        # a disabled user's tokens stop at once
        ada.set_user_disabled("dana", True)
        with pytest.raises(wb.AuthenticationError, match="'dana' is disabled"):
            dana.models()


@pytest.mark.duckdb_file
def test_while_served_the_file_is_refused_at_once_naming_the_server(store_path, tmp_path):
    _prepare(store_path)
    procs = []
    with serving(store_path, tmp_path / "serve.log", started=procs) as (url, _):
        script = ("import time, workbench as wb\nt = time.monotonic()\ntry:\n    wb.connect(r'%s', user='dana').models()\n"
                  "except wb.StoreLockedError as e:\n    print(round(time.monotonic() - t, 2), type(e).__name__, e)\n"
                  % store_path)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                             env=_demo_store.cli_env(WORKBENCH_LOCK_TIMEOUT="60"))
        seconds, kind, message = out.stdout.split(" ", 2)
        assert kind == "StoreServedError" and float(seconds) < 5, out
        assert url in message and f"pid {procs[0].pid}" in message and "token=" in message
        cli = _demo_store.run_cli("artifacts", "encrypt", "--store", str(store_path))  # needs the files themselves
        assert cli.returncode != 0 and url in cli.stderr + cli.stdout and "Traceback" not in cli.stderr
    # stopped: the claim is gone and the file opens again
    assert not (store_path.parent / (store_path.name + ".server")).exists()
    assert wb.connect(store_path, user="ada").users().height == 3


def test_kill_9_after_acknowledged_writes_loses_nothing(store_path, tmp_path):
    made = _prepare(store_path)
    procs = []
    with serving(store_path, tmp_path / "serve.log", started=procs) as (url, _):
        ada = wb.connect(url, token=made["ada"])
        for i in range(5):
            ada.add_user(f"user{i}", "reviewer")
        ada.set_gate_policy("high", max_drift_share=0.25)
        with wb.connect(url, token=made["dana"]).start_run("durable") as run:
            for i in range(200):
                run.log_metric("loss", float(i))
        os.killpg(procs[0].pid, signal.SIGKILL)  # right after the calls returned
        deadline = time.monotonic() + 10
        while procs[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    with serving(store_path, tmp_path / "serve2.log") as (url, _):  # the dead server's claim is ignored
        ada = wb.connect(url, token=made["ada"])
        assert {f"user{i}" for i in range(5)} <= set(ada.users()["name"].to_list())
        assert ada.gate_policy("high")["max_drift_share"] == 0.25
        assert ada.get_run(run.run_id)["status"] == "FINISHED"
        assert ada.metric_history(run.run_id)["value"].to_list() == [float(i) for i in range(200)]
        assert ada.verify_audit().ok


@pytest.mark.duckdb_file
def test_the_operators_cli_works_through_the_server_while_it_runs(store_path, tmp_path):
    _prepare(store_path)
    with serving(store_path, tmp_path / "serve.log") as (url, _):
        cli = _demo_store.run_cli
        added = cli("users", "add", "newbie", "--role", "reviewer", "--password", PW, "--store", store_path)
        assert added.returncode == 0, added.stderr
        made = cli("tokens", "create", "--user", "newbie", "--name", "laptop", "--store", store_path)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()  # the token alone on stdout, for scripts
        assert token.startswith("wbt_") and "\n" not in token and "newbie (laptop)" in made.stderr
        newbie = wb.connect(url, token=token)
        assert (newbie.user, newbie.role) == ("newbie", "reviewer")
        listed = cli("tokens", "list", "--user", "newbie", "--store", store_path)
        assert listed.returncode == 0 and "'laptop' active" in listed.stdout and token not in listed.stdout
        token_id = listed.stdout.split()[0]
        assert cli("audit", "verify", "--store", store_path).stdout.startswith("OK: ")
        out = tmp_path / "reports"
        out.mkdir()
        report = cli("report", "export", "--kind", "audit", "--format", "json", "--out", out, "--store", store_path)
        assert report.returncode == 0, report.stderr
        written = out / report.stdout.strip().rsplit("/", 1)[-1]
        assert written.exists() and json.loads(written.read_text())["report"]["kind"] == "audit"
        assert cli("tokens", "revoke", token_id, "--store", store_path).returncode == 0
        with pytest.raises(wb.AuthenticationError, match="revoked"):
            newbie.models()
        refused = cli("backup", "--out", tmp_path / "copy.duckdb", "--store", store_path)
        assert refused.returncode != 0 and url in refused.stderr and "Traceback" not in refused.stderr
        ada = wb.connect(url, token=cli("tokens", "create", "--user", "ada", "--store", store_path).stdout.strip())
        trail = ada.audit_events(action="user.add")
        assert trail["actor"][0].startswith("os:") and "newbie" in trail["entity_id"].to_list()


def test_fuzzing_the_api_from_its_openapi_document_finds_no_server_error(store_path, tmp_path):
    """schemathesis sends generated requests to every operation, as an admin and as a data
    scientist: every answer is a 2xx or a 4xx with a message, never a 5xx."""
    made = _prepare(store_path)
    # Left out: operations that would end the fuzzer's own access (disabling its account,
    # revoking its token) or run what the fuzzer scheduled (reports written on the server).
    skip = "run_due_schedules|set_user_disabled|revoke_token"
    with serving(store_path, tmp_path / "serve.log") as (url, _):
        for who in ("ada", "dana"):
            out = subprocess.run(
                [str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/api/openapi.json", "-H",
                 f"Authorization: Bearer {made[who]}", "--checks", "not_a_server_error", "--phases", "fuzzing",
                 "-n", "12", "--seed", "17", "-w", "2", "--exclude-path-regex", skip],
                capture_output=True, text=True, timeout=400, cwd=tmp_path)
            said = out.stdout
            if out.returncode != 0:
                pytest.fail(f"as {who}:\n{said[said.find('FAILURES'):] or said[-3000:]}\n"
                            f"server log:\n{(tmp_path / 'serve.log').read_text()[-4000:]}", pytrace=False)
            # every operation selected (all but the skipped) was reached, not just the document loaded
            selected = re.search(r"Selected: (\d+)/(\d+)", said)
            tested = re.search(r"Tested: (\d+)", said)
            assert selected and tested and tested[1] == selected[1], said[-2000:]
            assert int(selected[2]) == len(OPERATIONS) + 1, said[-2000:]  # and /v1/me
        assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_the_scheduler_inside_the_server_runs_a_retraining_command_that_logs_through_it(store_path, tmp_path):
    """`serve --scheduler`: the command gets the server's address (the file it holds refuses other
    processes) and proves who it is with the token the operator configured, like any client."""
    op = operator_workspace(store_path)
    for name, role in (("dana", "data_scientist"), ("lee", "lead"), ("retrainer", "data_scientist")):
        op.add_user(name, role)
    dana_token = op.create_token("dana's", user="dana")["token"]
    lee_token = op.create_token("lee's", user="lee")["token"]
    retrainer_token = op.create_token("retraining job", user="retrainer", operations=["submit_run"])["token"]
    dana = wb.connect(store_path, user="dana")
    X = np.random.default_rng(0).normal(size=(200, 2))
    with dana.start_run("served") as run:
        mv = run.register_model(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), "scorer", risk_tier="low")
    script = ("import workbench as wb, os\n"
              "ws = wb.connect()\n"  # WORKBENCH_URL and WORKBENCH_TOKEN, from the server and the env file
              "with ws.start_run('retraining', name='after alert ' + os.environ['WORKBENCH_ALERT_ID']) as run:\n"
              "    run.log_metric('roc_auc', 0.9)\n"
              "print('retrained as', ws.user, 'through', os.environ['WORKBENCH_URL'])\n")
    wb.connect(store_path, user="lee").set_monitor_policy("scorer", max_error_rate=0.01,
                                                          retrain_command=[sys.executable, "-c", script])
    shared.close(store_path)
    env_file = tmp_path / "retrain.env"
    env_file.write_text(f"WORKBENCH_TOKEN={retrainer_token}\n")
    with serving(store_path, tmp_path / "serve.log", "--scheduler", "--poll", "0.5",
                 env={"WORKBENCH_RETRAIN_ENV_FILE": str(env_file)}) as (url, _):
        dana, lee = wb.connect(url, token=dana_token), wb.connect(url, token=lee_token)
        frame = pl.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "prediction": (X[:, 0] > 0).astype(float),
                              "error": np.arange(200) % 4 == 0,
                              "timestamp": [datetime(2026, 12, 1, tzinfo=timezone.utc)] * 200})
        dana.log_predictions(mv, frame)
        (alert_id,) = dana.monitor(mv, window="1d").alerts.filter(pl.col("command_status") == "pending")["id"]
        deadline = time.monotonic() + 120
        while (status := lee.alerts("scorer").filter(pl.col("id") == alert_id)["command_status"][0]) in (
                "pending", "running") and time.monotonic() < deadline:
            time.sleep(0.2)  # the scheduler's next round, then the command's own run
        alert = lee.alerts("scorer").filter(pl.col("id") == alert_id).row(0, named=True)
        assert (status, alert["exit_code"]) == ("ok", 0), alert["output"]
        assert f"retrained as retrainer through {url}" in alert["output"]
        (retrained,) = lee.search_runs("", experiment="retraining").to_dicts()
        assert (retrained["user_name"], retrained["run_name"]) == ("retrainer", f"after alert {alert_id}")
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_a_body_over_the_limit_is_refused_whether_it_names_its_length_or_not():
    """The API's body limit, on a tiny limit: by Content-Length before reading, and by counting
    a chunked body as it arrives (it names no length)."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from workbench.server.api import BodyLimit

    async def echo(request):
        return JSONResponse({"n": len(await request.body())})

    # where make_api puts it: inside Starlette's error middleware, outside the routes
    app = inner = Starlette(routes=[Route("/echo", echo, methods=["POST"])], middleware=[Middleware(BodyLimit, limit=100)])

    def call(headers: list, chunks: list[bytes]) -> tuple[int, bytes]:
        sent, queue = [], [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                            for i, c in enumerate(chunks)]

        async def receive():
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
                 "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("t", 80),
                 "client": ("c", 1), "root_path": "", "app": inner}
        asyncio.run(app(scope, receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")

    assert call([(b"content-length", b"10")], [b"x" * 10]) == (200, b'{"n":10}')
    status, body = call([(b"content-length", b"101")], [b"x" * 101])
    assert status == 413 and json.loads(body)["message"] == "Request bodies are limited to 0 MiB."
    assert call([(b"content-length", b"ten")], [b"x"])[0] == 413
    assert call([(b"transfer-encoding", b"chunked")], [b"x" * 60, b"x" * 30])[0] == 200  # 90: under
    assert call([(b"transfer-encoding", b"chunked")], [b"x" * 60, b"x" * 60])[0] == 413  # 120: counted
