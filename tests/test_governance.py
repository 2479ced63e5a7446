"""Promotion requests: evidence snapshots, gates, four eyes, stale evidence, rollback, refusals audited."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import polars as pl
import pytest
from _raw import raw_sql
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.store.schema import RequestStatus, Stage


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
    assert type(final.status) is RequestStatus and type(final.to_stage) is Stage  # the table's enums
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


# -- issue 15: governance holes a data scientist (or one person) could use ----------------------------
def _stage_of(ws, name) -> dict[int, str]:
    return dict(ws.model_versions(name).select(["version", "stage"]).rows())


def _approve(lead, requester, mv, to="Production"):
    """A low-risk version into ``to`` through a request one lead approves."""
    return lead.decide(requester.request_promotion(mv, to, "release").id, True, "ok")


def test_a_data_scientist_cannot_lower_the_risk_tier_to_evade_four_eyes(team):
    """Issue 15, item 3: dana lowered a high-risk model's tier, refreshed her request and one lead
    approved it into Production. Changing a tier is for leads and admins, never the requester, and
    a pending request keeps the strictest tier it has seen."""
    dana, lee, lou, casey = team["dana"], team["lee"], team["lou"], team["casey"]
    mv = _version(dana, "credit", "high")
    req = dana.request_promotion(mv, "Production", "ship it")
    assert req.needs == "a lead and a compliance officer"
    with pytest.raises(wb.PermissionDenied, match=r"dana.*data_scientist.*may not set risk tier"):
        dana.update_model("credit", risk_tier="low")
    assert dana.models()["risk_tier"].to_list() == ["high"]
    dana.update_model("credit", description="PD model")  # other fields stay hers to write
    # a lead with a request of their own on the model may not change its tier either
    own = lee.request_promotion(_version(dana, "credit", "high", seed=4), "Staging", "spare")
    with pytest.raises(wb.PermissionDenied, match=f"pending request on credit \\(request {own.id}\\)"):
        lee.update_model("credit", risk_tier="low")
    refused = [r for r in _refusals(casey) if r["action"] == "update_model"]
    assert len(refused) == 2 and "four eyes" in refused[0]["reason"]
    # another lead may lower it (audited with before and after), but the pending requests keep "high"
    assert lou.update_model("credit", risk_tier="low") == {"risk_tier": {"from": "high", "to": "low"}}
    update = casey.audit_events(action="model.update")
    assert json.loads(update["payload"][0]) == {"risk_tier": {"from": "high", "to": "low"}}
    assert update["actor"][0] == "lou"
    again = dana.refresh_request(req.id)  # the snapshot holds the tier: refreshed on the new evidence
    assert (again.risk_tier, again.needs) == ("high", "a lead and a compliance officer")
    assert lou.decide(req.id, True, "ok").status == "pending"  # one lead is not enough
    assert casey.decide(req.id, True, "validated").status == "approved"  # a compliance officer still signs
    assert _stage_of(dana, "credit")[mv.version] == "Production"


def test_raising_the_tier_of_a_pending_request_raises_what_it_needs_and_lowering_never_undoes_it(team):
    dana, lee, casey, ada = team["dana"], team["lee"], team["casey"], team["ada"]
    mv = _version(dana, "scorer", "medium")
    req = dana.request_promotion(mv, "Production", "go")
    ada.update_model("scorer", risk_tier="high")  # admins change tiers too
    raised = casey.audit_events(action="request.risk_tier")
    assert raised.height == 1 and raised["entity_id"][0] == str(req.id) and raised["actor"][0] == "ada"
    assert {k: v for k, v in json.loads(raised["payload"][0]).items() if k in ("before", "after")} == {
        "before": "medium", "after": "high"}
    ada.update_model("scorer", risk_tier="low")
    assert casey.audit_events(action="request.risk_tier").height == 1  # nothing lowered
    fresh = dana.refresh_request(req.id)
    assert fresh.risk_tier == "high" and dana.requests()["risk_tier"].to_list() == ["high"]
    assert lee.decide(req.id, True, "ok").status == "pending"
    # a decided request keeps the tier it was decided on
    assert casey.decide(req.id, True, "ok").status == "approved"
    ada.update_model("scorer", risk_tier="medium")
    assert dana.request(req.id).risk_tier == "high"


def test_leaving_production_is_governed_and_archived_versions_do_not_come_back(team):
    """Issue 15, item 4: a data scientist archived the Production version and revived an archived one."""
    dana, lee = team["dana"], team["lee"]
    first, second = (_version(dana, "scorer", "low", evidence=(), seed=s) for s in range(2))
    _approve(lee, dana, first)
    for who, stage in ((dana, "Archived"), (dana, "Staging"), (dana, "None"), (lee, "Archived")):
        with pytest.raises(wb.PermissionDenied, match=r"scorer v1 is in Production: it leaves Production only"):
            who.set_stage("scorer", first.version, stage)
    assert _stage_of(dana, "scorer") == {1: "Production", 2: "None"}
    # what a data scientist may still do: None <-> Staging, and archive what is not in Production
    dana.set_stage("scorer", second.version, "Staging")
    dana.set_stage("scorer", second.version, "None")
    dana.set_stage("scorer", second.version, "Archived", reason="superseded")
    for who, stage in ((dana, "Staging"), (dana, "None"), (lee, "Staging")):
        with pytest.raises(wb.ValidationError, match=f"scorer v2 is archived, and an archived version does not "
                                                     f"come back to {stage}"):
            who.set_stage("scorer", second.version, stage)
    assert _stage_of(dana, "scorer") == {1: "Production", 2: "Archived"}
    # out of Production under four eyes: a request to move it back to Staging, approved by a lead
    assert _approve(lee, dana, first, to="Staging").status == "approved"
    assert _stage_of(dana, "scorer") == {1: "Staging", 2: "Archived"}
    with pytest.raises(wb.NotFoundError, match="champion"):  # nothing serves as the champion any more
        dana.load_model("scorer", "champion")


def test_champion_follows_production_and_no_one_sets_a_serving_alias_by_hand(team):
    """Issue 15, item 4: ``set_alias(..., 'champion', rejected)`` made load_model return a rejected version."""
    dana, lee = team["dana"], team["lee"]
    v1, v2, v3 = (_version(dana, "scorer", "low", evidence=(), seed=s) for s in range(3))
    rejected = dana.request_promotion(v3, "Production", "try")
    lee.decide(rejected.id, False, "leaks the label")
    for who in (dana, lee):
        for alias in ("champion", "challenger"):
            with pytest.raises(wb.PermissionDenied, match=f"Alias '{alias}' is not set by hand"):
                who.set_alias("scorer", alias, v3.version)
        with pytest.raises(wb.PermissionDenied, match="'champion' is not set by hand"):
            who.set_alias("scorer", "champion", None)
    with pytest.raises(wb.ValidationError, match=f"v3 was rejected \\(request {rejected.id}\\)"):
        dana.set_alias("scorer", "candidate", v3.version)  # free aliases do not point at it either
    with pytest.raises(wb.NotFoundError, match="champion"):
        dana.load_model("scorer", "champion")
    X = _data(0)[0].to_pandas()

    def champion_is(version):
        assert dana.get_model_version("scorer", "champion").version == version
        assert [mv["version"] for mv in dana.model_versions("scorer").to_dicts() if "champion" in mv["aliases"]] \
            == [version]
        np.testing.assert_array_equal(dana.load_model("scorer", "champion").predict_proba(X),
                                      dana.load_model("scorer", version).predict_proba(X))

    _approve(lee, dana, v1)
    champion_is(v1.version)
    _approve(lee, dana, v2)  # the alias moves with the stage, in the approval's transaction
    champion_is(v2.version)
    with pytest.raises(wb.ValidationError, match="v1 is archived: an alias does not point at an archived"):
        dana.set_alias("scorer", "previous", v1.version)
    lee.rollback("scorer", "v2 misbehaves")
    champion_is(v1.version)
    moved = [json.loads(p) for p in lee.audit_events(action="model.alias")["payload"]]
    assert moved == [{"alias": "champion", "version": v} for v in (v1.version, v2.version, v1.version)]
    assert set(lee.audit_events(action="model.alias")["actor"]) == {"lee"}


def test_rollback_goes_back_through_earlier_approvals_and_never_toggles(team):
    """Issue 15, item 5: a second rollback put back the version the first rolled back."""
    dana, lee = team["dana"], team["lee"]
    v = [_version(dana, "scorer", "low", evidence=(), seed=s).version for s in range(4)]
    for version in v[:3]:
        _approve(lee, dana, (("scorer", version)))
    assert lee.rollback("scorer", "v3 declines too many") == v[1]
    assert lee.rollback("scorer", "v2 is no better") == v[0]  # not back to v3: it was rolled back
    assert _stage_of(dana, "scorer") == {v[0]: "Production", v[1]: "Archived", v[2]: "Archived", v[3]: "None"}
    with pytest.raises(wb.ValidationError, match="scorer v1 cannot be rolled back: no version was approved into "
                                                 "Production before it that was not itself rolled back"):
        lee.rollback("scorer", "and again")
    assert _stage_of(dana, "scorer")[v[0]] == "Production"
    assert [r["reason"] for r in _refusals(lee)][0].startswith("scorer v1 cannot be rolled back")
    # the stage history says which version each rollback rolled back
    history = dana.stage_history("scorer").filter(pl.col("rolled_back_version").is_not_null())
    assert sorted(history.select(["version", "from_stage", "to_stage", "rolled_back_version"]).rows()) == [
        (v[0], "Archived", "Production", v[1]), (v[1], "Archived", "Production", v[2]),
        (v[1], "Production", "Archived", v[1]), (v[2], "Production", "Archived", v[2])]
    # a newer approval, then a rollback: past the rolled-back versions to the last good one
    _approve(lee, dana, ("scorer", v[3]))
    assert lee.rollback("scorer", "v4 too") == v[0]
    rolled = [json.loads(p)["rolled_back"] for p in lee.audit_events(action="model_version.stage")["payload"]
              if "rolled_back" in json.loads(p)]
    assert rolled == [v[3], v[3], v[1], v[1], v[2], v[2]]  # newest first: both stage events of each rollback


@pytest.mark.parametrize("gates, field", [
    ({"min_metrics": {"roc_auc": float("nan")}}, "min_metrics['roc_auc'] must be a finite number"),
    ({"min_metrics": {"roc_auc": float("-inf")}}, "min_metrics['roc_auc'] must be a finite number"),
    ({"min_metrics": {"roc_auc": float("inf")}}, "min_metrics['roc_auc'] must be a finite number"),
    ({"min_metrics": {"roc_auc": 10**400}}, "min_metrics['roc_auc'] must be a finite number"),
    ({"max_drift_share": -5}, "max_drift_share must be a number between 0 and 1"),
    ({"max_drift_share": float("nan")}, "max_drift_share must be a number between 0 and 1"),
    ({"max_demographic_parity_difference": 1.5}, "max_demographic_parity_difference must be a number between 0 and 1"),
    ({"max_equalized_odds_difference": float("-inf")}, "max_equalized_odds_difference must be a number between 0"),
    ({"required_evidence": "drift"}, "required_evidence is a list"),
])
def test_gate_thresholds_must_be_finite_and_shares_within_0_and_1(team, gates, field):
    """Issue 15, item 10: NaN and -inf thresholds and a share of -5 were accepted."""
    ada, casey = team["ada"], team["casey"]
    before = ada.gate_policy("high")
    with pytest.raises(wb.ValidationError, match=re.escape(field)):
        ada.set_gate_policy("high", **gates)
    assert ada.gate_policy("high") == before
    assert casey.audit_events(action="gate_policy.set").is_empty()
    assert _refusals(casey)[0]["action"] == "set_gate_policy"
    ada.set_gate_policy("high", min_metrics={"roc_auc": 0.7}, max_drift_share=0.0)  # the bounds themselves pass
    assert ada.gate_policy("high")["min_metrics"] == {"roc_auc": 0.7}


#: workbench.freetext.MAX_TEXT, written out: the limit the issue asks for (a param's, 6,000 characters)
TEXT_LIMIT = 6000


def test_free_text_has_one_limit_everywhere_and_a_refusal_stores_nothing(team):
    """Issue 15, item 10: tags, comments and justifications took 5-10 MB while params stop at 6,000."""
    dana, lee, casey, lou = team["dana"], team["lee"], team["casey"], team["lou"]
    first, second = (_version(dana, "scorer", "low", evidence=(), seed=s) for s in range(2))
    _approve(lee, dana, first)
    _approve(lee, dana, second)
    req = dana.request_promotion(_version(dana, "scorer", "low", evidence=(), seed=3), "Staging", "try")
    before = casey.verify_audit().n_events
    long = "x" * (TEXT_LIMIT + 1)
    with dana.start_run("gov") as run:
        attempts = {
            "Tag 'note'": lambda: run.set_tags({"ok": "fine", "note": long}),
            "Justification": lambda: dana.request_promotion(first, "Staging", long),
            "Comment": lambda: dana.comment(req.id, long),
            "Decision comment": lambda: lee.decide(req.id, False, long),
            "Override reason": lambda: lee.decide(req.id, True, "ok", override_reason=long),
            "Withdrawal reason": lambda: dana.withdraw(req.id, long),
            "Rollback reason": lambda: lee.rollback("scorer", long),
            "Model card limitations": lambda: dana.set_card_text("scorer", "limitations", long),
            "Model description": lambda: dana.update_model("scorer", description=long),
            "Model use case": lambda: dana.update_model("scorer", use_case=long),
            "Model owner team": lambda: dana.update_model("scorer", owner_team=long),
            "Stage change reason": lambda: dana.set_stage("scorer", req.version, "None", reason=long),
        }
        for what, attempt in attempts.items():
            with pytest.raises(wb.ValidationError, match=f"^{re.escape(what)} is 6,001 characters; free text is "
                                                         "limited to 6,000 characters"):
                attempt()
        with pytest.raises(wb.ValidationError, match="Model description is 6,001"):
            run.register_model(LogisticRegression(), "other", description=long)
    new = casey.audit_events().filter(pl.col("seq") > before)
    kept = new.filter(pl.col("action") != "refused")["action"].to_list()
    assert sorted(kept) == ["run.end", "run.start"], kept  # the run itself, nothing of the refusals
    assert dana.get_run(run.run_id)["tags"] == {}
    r = dana.request(req.id)
    assert (r.status, r.comments, r.decisions) == ("pending", [], [])
    assert dana.models()["description"].to_list() == [None] and dana.card_text("scorer")["limitations"] is None
    assert _stage_of(dana, "scorer")[second.version] == "Production"
    assert dana.models()["name"].to_list() == ["scorer"]
    # exactly the limit is fine, on every kind of field
    at_limit = "y" * TEXT_LIMIT
    with dana.start_run("gov") as run:
        run.set_tags({"note": at_limit})
    assert dana.get_run(run.run_id)["tags"] == {"note": at_limit}
    dana.comment(req.id, at_limit)
    dana.set_card_text("scorer", "limitations", at_limit)
    dana.update_model("scorer", description=at_limit)
    assert lou.rollback("scorer", at_limit) == first.version


def test_rollbacks_recorded_before_schema_8_are_still_recognised(team, store_path):
    """Stores from before schema 8 marked a rollback only in the stage history's note."""
    dana, lee = team["dana"], team["lee"]
    v = [_version(dana, "scorer", "low", evidence=(), seed=s).version for s in range(3)]
    for version in v:
        _approve(lee, dana, ("scorer", version))
    assert lee.rollback("scorer", "v3 declines too many") == v[1]
    lee.flush()
    raw_sql(store_path, "update stage_changes set rolled_back_version = null")  # as an older store has it
    assert lee.rollback("scorer", "v2 is no better") == v[0]


def test_a_drift_report_that_tested_too_few_columns_fails_the_drift_gate(team):
    """Issue 15 item 10: a drift share of 0 over 5 of 15 columns must not pass a promotion's drift gate."""
    dana = team["dana"]
    mv = _version(dana, "sparse", "medium", evidence=("explanation", "fairness"))
    rng = np.random.default_rng(4)
    ref = pl.DataFrame({f"c{i:02d}": rng.normal(0, 1, 600) for i in range(15)})
    cur = ref.sample(300, seed=1).with_columns([pl.lit(float("nan")).alias(f"c{i:02d}") for i in range(10)])
    assert dana.drift(ref, cur, model_version=mv).drift_share == 0.0
    req = dana.request_promotion(mv, "Production", "Nothing drifted.")
    [gate] = [g for g in req.gates if g["gate"].startswith("drift share")]
    assert not gate["passed"] and gate["detail"] == "only 5 of 15 columns could be tested (share 0.333 < 0.5)"
    dana.drift(ref, ref.sample(300, seed=2), model_version=mv)  # a complete report: judged on its share again
    [gate] = [g for g in dana.refresh_request(req.id).gates if g["gate"].startswith("drift share")]
    assert gate["passed"] and gate["detail"] == "0"


# -- rules the Approvals and Models pages used to apply themselves (issue 16) ---------------------
def test_awaiting_me_holds_what_each_person_may_decide_now(team):
    dana, lee, casey, riley, ada = team["dana"], team["lee"], team["casey"], team["riley"], team["ada"]
    medium = dana.request_promotion(_version(dana, "scorer", "medium", evidence=()), "Staging", "try it").id
    high = dana.request_promotion(_version(dana, "credit", "high", evidence=()), "Staging", "try it").id
    assert sorted(lee.awaiting_me()["id"].to_list()) == sorted([medium, high])
    assert casey.awaiting_me()["id"].to_list() == [high]  # the second sign-off is on high risk only
    for who in (dana, riley, ada):  # the requester never; roles that never decide see nothing
        assert who.awaiting_me().is_empty()
    assert wb.connect(dana.store.location).awaiting_me().is_empty()  # a workspace without a user
    lee_own = lee.request_promotion(_version(lee, "lead-model", "medium", evidence=()), "Staging", "mine").id
    assert lee_own not in lee.awaiting_me()["id"].to_list() and lee_own in team["lou"].awaiting_me()["id"].to_list()
    lee.decide(medium, False, "not yet")
    assert medium not in lee.awaiting_me()["id"].to_list()  # decided: no longer waiting


def test_request_actions_say_what_each_person_may_do_and_the_operations_agree(team):
    dana, lee, riley, ada = team["dana"], team["lee"], team["riley"], team["ada"]
    mv = _version(dana, "scorer", "medium", evidence=("explanation",))  # medium risk: its gates pass
    req = dana.request_promotion(mv, "Production", "go").id
    own = dana.request_actions(req)
    assert "own" in own["decide"] and own["withdraw"] is None and own["comment"] is None
    assert "current" in own["refresh"]  # nothing changed: nothing to refresh
    assert lee.request_actions(req)["decide"] is None and "Only dana" in lee.request_actions(req)["withdraw"]
    assert "may not decide" in riley.request_actions(req)["decide"] and riley.request_actions(req)["comment"] is None
    assert "may not comment" in ada.request_actions(req)["comment"]
    # the operations refuse what the actions refuse
    with pytest.raises(wb.PermissionDenied, match="own"):
        dana.decide(req, True, "mine")
    with pytest.raises(wb.PermissionDenied, match="Only dana"):
        lee.withdraw(req, "not mine")
    with pytest.raises(wb.PermissionDenied):
        ada.comment(req, "admins do not take part")
    _evidence(dana, mv, ("fairness",), seed=3)  # the evidence changes: stale
    assert "refresh" in lee.request_actions(req)["decide"]
    assert dana.request_actions(req)["refresh"] is None and lee.request_actions(req)["refresh"] is None
    assert "Only the requester" in riley.request_actions(req)["refresh"]
    with pytest.raises(wb.PermissionDenied):  # refused by role first: reviewers never request
        riley.refresh_request(req)
    dana.refresh_request(req)
    lee.decide(req, True, "ok")
    done = lee.request_actions(req)
    assert all("approved" in done[a] for a in ("decide", "refresh", "withdraw"))


def test_evidence_verdicts_per_version(team):
    dana = team["dana"]
    bare = _version(dana, "scorer", "medium", evidence=())
    judged = _version(dana, "scorer", "medium", evidence=("fairness",), seed=1)
    table = {r["version"]: r for r in dana.evidence_verdicts("scorer").to_dicts()}
    assert {table[bare.version][k] for k in ("explanation", "fairness", "drift")} == {"missing"}
    fairness = dana.evidence("scorer").filter(pl.col("kind") == "fairness")["verdict"].item()
    assert table[judged.version]["fairness"] == fairness and table[judged.version]["drift"] == "missing"
    with pytest.raises(wb.NotFoundError):
        dana.evidence_verdicts("no-such-model")


def test_changing_a_returned_gate_policy_changes_nothing_else(team):
    lee = team["lee"]
    before = lee.gate_policy("high")
    mine = lee.gate_policy("high")
    mine["required_evidence"].append("anything")
    mine["min_metrics"]["roc_auc"] = 0.99
    assert lee.gate_policy("high") == before  # the defaults of the whole process are untouched


def test_a_canary_can_be_ended_after_its_challenger_left_staging(team):
    dana, lee = team["dana"], team["lee"]
    champion, challenger = (_version(dana, "scorer", "low", evidence=(), seed=s) for s in range(2))
    _approve(lee, dana, champion)
    dana.set_stage("scorer", challenger.version, "Staging")
    lee.set_rollout("scorer", challenger.version, 0.1)
    _approve(lee, dana, challenger)  # the challenger wins: Production now, no longer in Staging
    with pytest.raises(wb.ValidationError, match="must be in Staging"):
        lee.set_rollout("scorer", challenger.version, 0.2)  # a new share still needs a Staging challenger
    lee.set_rollout("scorer", challenger.version, 0)  # ending it was refused before
    assert lee.rollout("scorer") is None
    assert "challenger" not in [a for row in lee.model_versions("scorer")["aliases"].to_list() for a in row]


def test_a_request_read_has_the_table_types_where_it_has_the_table_columns():
    import typing

    from workbench.governance.api import Request
    from workbench.store.schema import PromotionRequest

    def plain(hint):  # "int | None" -> int: a row read back always has its id
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) and len(args) == 1 else hint

    table, read = typing.get_type_hints(PromotionRequest), typing.get_type_hints(Request)
    parsed = {"evidence": dict, "gates": list[dict]}  # hashed canonical text in the table, parsed when read
    shared = set(table) & set(read)
    assert shared >= {"id", "version", "from_stage", "to_stage", "status", "requested_by", "requested_at",
                      "justification", "evidence_sha256", *parsed}
    assert {f: read[f] for f in shared - parsed.keys()} == {f: plain(table[f]) for f in shared - parsed.keys()}
    assert {f: (table[f], read[f]) for f in parsed} == {f: (str, t) for f, t in parsed.items()}

