"""Promotion requests: evidence snapshots, gates, four eyes, stale evidence, rollback, refusals audited."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

import workbench as wb


@pytest.fixture
def team(op, store_path):
    """One account per role, plus a second lead."""
    for name, role in [("dana", "data_scientist"), ("riley", "reviewer"), ("casey", "compliance_officer"),
                       ("lee", "lead"), ("lou", "lead"), ("ada", "admin")]:
        op.add_user(name, role)
    return {name: wb.connect(store_path, user=name) for name in ("dana", "riley", "casey", "lee", "lou", "ada")}


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    X = pl.DataFrame({"x0": rng.normal(0, 1, n), "x1": rng.normal(0, 1, n)})
    y = (X["x0"].to_numpy() + rng.normal(0, 1, n) > 0).astype(int)
    sex = pl.Series("sex", rng.choice(["f", "m"], n))
    return X, y, sex


def _version(ws, name, tier, evidence=("explanation", "fairness", "drift"), seed=0):
    X, y, sex = _data(seed)
    with ws.start_run("gov") as run:
        run.log_metrics({"roc_auc": 0.8})
        mv = run.register_model(LogisticRegression().fit(X.to_pandas(), y), name, risk_tier=tier)
    _evidence(ws, mv, evidence, seed)
    return mv


def _evidence(ws, mv, kinds, seed=0):
    X, y, sex = _data(seed)
    if "explanation" in kinds:
        ws.explain(mv, X, max_rows=100)
    if "fairness" in kinds:
        ws.fairness(mv, X.with_columns(sex), y, sensitive_features=["sex"], n_bootstrap=0)
    if "drift" in kinds:
        ws.drift(X, _data(seed + 1)[0], model_version=mv)


def _refusals(ws_auditor) -> list[dict]:
    ev = ws_auditor.audit_events(action="refused")
    return [json.loads(p) for p in ev["payload"]]


def test_medium_risk_needs_one_lead_and_never_the_requester(team):
    dana, lee, riley, casey = team["dana"], team["lee"], team["riley"], team["casey"]
    mv = _version(dana, "scorer", "medium")
    req = dana.request_promotion(mv, "Staging", "best AUC of the sweep")
    assert (req.status, req.stale, req.needs, req.failing_gates) == ("pending", False, "one lead", [])
    assert req.evidence["metrics"] == {"roc_auc": 0.8} and req.evidence["explanation"]["top_features"]
    with pytest.raises(wb.PermissionDenied, match="may not decide"):
        riley.decide(req.id, True, "looks fine")  # a reviewer through the API
    with pytest.raises(wb.PermissionDenied, match="high-risk"):
        casey.decide(req.id, True, "ok")  # a compliance officer signs off high risk only
    done = lee.decide(req.id, True, "approved")
    assert done.status == "approved" and dana.get_model_version("scorer", mv.version).stage == "Staging"
    with pytest.raises(wb.ConflictError, match=r"already approved by lee"):
        team["lou"].decide(req.id, False, "too late")
    # a lead's own request: someone else decides
    own = lee.request_promotion(mv, "Production", "ship it")
    with pytest.raises(wb.PermissionDenied, match="own request"):
        lee.decide(own.id, True, "mine")
    assert [r["action"] for r in _refusals(riley)] == ["decide", "decide", "decide", "decide"]
    assert "own request" in _refusals(riley)[0]["reason"]  # newest first


def test_high_risk_needs_a_lead_and_a_compliance_officer_and_archives_the_old_production(team):
    dana, lee, lou, casey = team["dana"], team["lee"], team["lou"], team["casey"]
    first = _version(dana, "credit", "high")
    second = _version(dana, "credit", "high", seed=3)
    r1 = dana.request_promotion(first, "Production", "first release")
    assert lee.decide(r1.id, True, "ok").status == "pending"  # one sign-off of two
    with pytest.raises(wb.ConflictError, match="second must come from a compliance officer"):
        lou.decide(r1.id, True, "me too")
    with pytest.raises(wb.ConflictError, match="already signed off"):
        lee.decide(r1.id, True, "again")
    assert casey.decide(r1.id, True, "validated").status == "approved"
    r2 = dana.request_promotion(second, "Production", "retrained on more data")
    assert casey.decide(r2.id, True, "validated first").needs == "a lead"  # either order works
    assert lou.decide(r2.id, True, "go").status == "approved"
    stages = dict(dana.model_versions("credit").select(["version", "stage"]).rows())
    assert stages == {first.version: "Archived", second.version: "Production"}
    history = dana.stage_history("credit")
    by_r2 = history.filter(pl.col("request_id") == r2.id).select(["version", "from_stage", "to_stage"]).rows()
    assert sorted(by_r2) == sorted([(second.version, "None", "Production"), (first.version, "Production", "Archived")])


def test_failing_gates_need_a_leads_override_with_a_reason(team):
    dana, lee, casey, ada = team["dana"], team["lee"], team["casey"], team["ada"]
    mv = _version(dana, "risky", "high", evidence=("explanation", "fairness"))  # no drift report
    req = dana.request_promotion(mv, "Production", "urgent fix")
    assert req.failing_gates == ["drift evidence"]
    with pytest.raises(wb.PermissionDenied, match="only a lead may approve past them"):
        casey.decide(req.id, True, "fine")
    with pytest.raises(wb.ValidationError, match="needs override_reason"):
        lee.decide(req.id, True, "fine")
    assert [r["reason"] for r in _refusals(casey)][:2] == [
        "Gate(s) ['drift evidence'] fail: approving past them needs override_reason (why the version may go ahead anyway).",
        "Gate(s) ['drift evidence'] fail: only a lead may approve past them, with an override reason."]
    assert lee.decide(req.id, True, "fine", override_reason="drift is checked weekly after release").status == "pending"
    assert casey.decide(req.id, True, "agree with the override").status == "approved"
    decisions = dana.request(req.id).decisions
    assert decisions[0]["override_reason"] == "drift is checked weekly after release"
    # an admin edits the gates; the change is audited with before and after
    ada.set_gate_policy("high", required_evidence=["explanation"], min_metrics={"roc_auc": 0.9})
    assert lee.gate_policy("high")["min_metrics"] == {"roc_auc": 0.9}
    other = _version(dana, "risky", "high", evidence=("explanation",), seed=5)
    assert dana.request_promotion(other, "Staging", "try").failing_gates == ["roc_auc >= 0.9"]
    with pytest.raises(wb.PermissionDenied):
        lee.set_gate_policy("high", max_drift_share=0.9)
    with pytest.raises(wb.ValidationError, match="Unknown gate"):
        ada.set_gate_policy("high", max_latency=3)
    changed = casey.audit_events(action="gate_policy.set")
    assert json.loads(changed["payload"][0])["after"]["min_metrics"] == {"roc_auc": 0.9}


def test_changed_evidence_makes_a_request_stale_until_refreshed(team):
    dana, lee = team["dana"], team["lee"]
    mv = _version(dana, "scorer", "medium")
    req = dana.request_promotion(mv, "Production", "go")
    _evidence(dana, mv, ("fairness",), seed=9)  # a new fairness report after the request
    assert dana.request(req.id).stale and dana.requests(status="pending")["stale"].to_list() == [True]
    with pytest.raises(wb.ValidationError, match="stale"):
        lee.decide(req.id, True, "ok")
    fresh = dana.refresh_request(req.id)
    assert not fresh.stale and fresh.evidence_sha256 != req.evidence_sha256
    assert "stale" in _refusals(team["casey"])[0]["reason"]  # the refused decision is on record
    assert lee.decide(req.id, True, "ok on the new evidence").status == "approved"


def test_rejection_needs_a_reason_and_closed_requests_stay_closed(team):
    dana, lee, lou = team["dana"], team["lee"], team["lou"]
    mv = _version(dana, "scorer", "low", evidence=())
    req = dana.request_promotion(mv, "Staging", "try")
    with pytest.raises(wb.ValidationError, match="rejection needs a reason"):
        lee.decide(req.id, False, "  ")
    assert lee.decide(req.id, False, "retrain without the leaky feature").status == "rejected"
    again = dana.request_promotion(mv, "Staging", "retrained")
    with pytest.raises(wb.PermissionDenied, match="Only dana"):
        lou.withdraw(again.id)
    assert dana.withdraw(again.id, "found a bug").status == "withdrawn"
    with pytest.raises(wb.ConflictError, match="already withdrawn"):
        lee.decide(again.id, True, "ok")
    dana.set_stage("scorer", mv.version, "Archived")
    with pytest.raises(wb.ValidationError, match="archived"):
        dana.request_promotion(mv, "Production", "back again")
    with pytest.raises(wb.ValidationError, match="justification"):
        dana.request_promotion(_version(dana, "scorer", "low", evidence=(), seed=2), "Staging", "")
    with pytest.raises(wb.ValidationError, match="Staging or Production"):
        dana.request_promotion(mv, "Archived", "why")
    actions = [r["action"] for r in _refusals(lee)]
    assert actions.count("decide") == 2 and actions.count("withdraw") == 1 and actions.count("request_promotion") == 3


def test_rollback_restores_the_previous_production_version(team):
    dana, lee, riley = team["dana"], team["lee"], team["riley"]
    versions = [_version(dana, "scorer", "low", evidence=(), seed=s) for s in range(2)]
    for mv in versions:
        lee.decide(dana.request_promotion(mv, "Production", "release").id, True, "ok")
    with pytest.raises(wb.PermissionDenied):
        riley.rollback("scorer", "bad")
    with pytest.raises(wb.ValidationError, match="needs a reason"):
        lee.rollback("scorer", "")
    assert lee.rollback("scorer", "v2 rejects good applicants") == versions[0].version
    stages = dict(dana.model_versions("scorer").select(["version", "stage"]).rows())
    assert stages == {versions[0].version: "Production", versions[1].version: "Archived"}
    rolled = lee.audit_events(action="model.rollback")
    assert json.loads(rolled["payload"][0])["reason"] == "v2 rejects good applicants"


def test_a_challenger_rollout_is_recorded(team):
    dana, lee = team["dana"], team["lee"]
    champion, challenger = (_version(dana, "scorer", "low", evidence=(), seed=s) for s in range(2))
    lee.decide(dana.request_promotion(champion, "Production", "release").id, True, "ok")
    with pytest.raises(wb.ValidationError, match="must be in Staging"):
        lee.set_rollout("scorer", challenger.version, 0.1)
    dana.set_stage("scorer", challenger.version, "Staging")
    with pytest.raises(wb.ValidationError, match="between 0 and 0.5"):
        lee.set_rollout("scorer", challenger.version, 0.9)
    lee.set_rollout("scorer", challenger.version, 0.1)
    assert {k: v for k, v in lee.rollout("scorer").items() if k != "set_at"} == {
        "champion_version": champion.version, "challenger_version": challenger.version, "traffic_share": 0.1,
        "set_by": "lee"}
    assert dana.get_model_version("scorer", "challenger").version == challenger.version


def test_two_leads_deciding_at_once_record_exactly_one_decision(team, store_path):
    dana = team["dana"]
    mv = _version(dana, "scorer", "medium")
    req = dana.request_promotion(mv, "Staging", "race")
    for ws in team.values():
        ws.close()
    start = time.time() + 3
    script = textwrap.dedent(f"""
        import sys, time
        import workbench as wb
        ws = wb.connect({str(store_path)!r}, user=sys.argv[1])
        time.sleep(max(0, {start} - time.time()))
        try:
            ws.decide({req.id}, sys.argv[2] == "approve", "decided by " + sys.argv[1])
            print("DECIDED")
        except wb.ConflictError as exc:
            print("TOLD", exc)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, who, verb], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for who, verb in (("lee", "approve"), ("lou", "reject"))]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    said = sorted(o[0].split()[0] for o in outs)
    assert said == ["DECIDED", "TOLD"], outs
    final = wb.connect(store_path, user="casey").request(req.id)
    assert len(final.decisions) == 1 and final.status in ("approved", "rejected")
    assert "already" in next(o[0] for o in outs if o[0].startswith("TOLD"))


def test_free_text_with_a_nul_character_is_refused_and_nothing_is_kept(team, store_path):
    """PostgreSQL text cannot hold NUL; every backend refuses it, so a store can move whole.
    (Text kept only in an audit payload, such as a withdrawal's reason, is JSON: escaped.)"""
    dana, lee, casey = team["dana"], team["lee"], team["casey"]
    mv = _version(dana, "scorer", "low", evidence=())
    req = dana.request_promotion(mv, "Staging", "try")
    before = casey.verify_audit().n_events
    nul = "looks fine\x00 but is not"
    attempts = [lambda: dana.request_promotion(mv, "Production", nul), lambda: dana.comment(req.id, nul),
                lambda: lee.decide(req.id, False, nul),
                lambda: dana.set_card_text("scorer", "limitations", nul), lambda: dana.update_model("scorer", use_case=nul)]
    for attempt in attempts:
        with pytest.raises(wb.ValidationError, match="NUL character"):
            attempt()
    check = casey.verify_audit()
    assert check.ok
    new = casey.audit_events().filter(pl.col("seq") > before)["action"].to_list()
    assert set(new) <= {"refused"}  # governance audits refused attempts; nothing else was kept
    assert dana.request(req.id).status == "pending" and dana.card_text("scorer")["limitations"] is None
    assert dana.request(req.id).comments == [] and dana.request(req.id).decisions == []
    assert dana.models()["use_case"].to_list() == [None]
    dana.comment(req.id, "still usable")  # the writer goes on
