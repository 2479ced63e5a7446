"""Promotion requests: what a version is judged on, the gates, who may decide, and the decision.

A request binds a **snapshot** of the version's evidence (the source run's metrics, the
latest explanation, fairness and drift reports, the model card fields) by the sha256 of its
canonical JSON. When any of it changes before a decision, the request is **stale** and
nobody may decide it until it is refreshed: an approval always points at what was seen.

**Gates** come from the risk tier (defaults below, editable by an admin and kept in the
store): required evidence, minimum metrics, maximum fairness disparities, maximum drift
share. A failing gate blocks approval unless a lead records an override with a reason.

**Risk tier**: a request is judged on the strictest tier its model had while it was pending,
so lowering a tier never lowers what a pending request needs. Changing a tier is itself a
governed change (:func:`update_model`): leads and admins only, never someone with a pending
request on the model, audited with the tier before and after.

**Rollback** (a lead, no request: an emergency) goes to the last version approved into
Production before the current one that was not itself rolled back, so a second rollback goes
further back instead of undoing the first; when there is none it refuses.

**Four eyes**: nobody decides their own request. A low or medium risk request needs one
lead's approval; a high risk one needs two sign-offs from different people, a lead's and a
compliance officer's. One rejection (with a reason) ends a request. Each decision is one
write op that re-reads the request inside its transaction, so of two deciders at the same
moment exactly one is recorded and the other gets a :class:`ConflictError`.

The ops here run inside the writer's transaction (``op(conn) -> (result, events)``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math

import sqlalchemy as sa

from .. import freetext, policy
from ..errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from ..people import roles
from ..registry import models as registry
from ..store import schema
from ..store.audit import Event, canonical_json

TARGET_STAGES = ("Staging", "Production")
EVIDENCE_KINDS = tuple(k.value for k in schema.EvidenceKind)  # ("explanation", "fairness", "drift")

#: risk tier -> gates. None (or an empty list/dict): not checked for that tier.
DEFAULT_GATES = {
    "high": {"required_evidence": ["explanation", "fairness", "drift"], "min_metrics": {},
             "max_demographic_parity_difference": 0.1, "max_equalized_odds_difference": 0.1, "max_drift_share": 0.3},
    "medium": {"required_evidence": ["explanation"], "min_metrics": {},
               "max_demographic_parity_difference": 0.2, "max_equalized_odds_difference": None, "max_drift_share": 0.5},
    "low": {"required_evidence": [], "min_metrics": {}, "max_demographic_parity_difference": None,
            "max_equalized_odds_difference": None, "max_drift_share": None},
}


def check_gates(values: dict) -> dict:
    """A gate policy as given, checked (unknown names, wrong types) and completed from the empty one.

    Parameters
    ----------
    values : dict
        Gate name -> setting, with names from :data:`DEFAULT_GATES`; a gate left out is not
        checked (the "low" tier's empty setting).

    Returns
    -------
    dict
        Every gate, ``required_evidence`` as a list and ``min_metrics`` values as floats.

    Raises
    ------
    ValidationError
        For an unknown gate, evidence kinds outside :data:`EVIDENCE_KINDS`, a non-finite
        minimum metric, or a maximum that is not a number between 0 and 1 (or None).
    """
    known = set(DEFAULT_GATES["low"])
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValidationError(f"Unknown gate(s) {unknown}; known: {sorted(known)}.")
    out = {**DEFAULT_GATES["low"], **values}
    if not isinstance(out["required_evidence"], (list, tuple)):
        raise ValidationError(f"required_evidence is a list of {EVIDENCE_KINDS}; got {out['required_evidence']!r}.")
    bad = [k for k in out["required_evidence"] if k not in EVIDENCE_KINDS]
    if bad:
        raise ValidationError(f"required_evidence may name {EVIDENCE_KINDS}, not {bad}.")
    if not isinstance(out["min_metrics"], dict) or not all(
            isinstance(k, str) and _is_number(v) for k, v in out["min_metrics"].items()):
        raise ValidationError("min_metrics maps metric names to numbers, e.g. {'roc_auc': 0.7}.")
    for metric, v in out["min_metrics"].items():
        # NaN would never pass (every comparison is False) and -inf always would: neither is a threshold
        if not _finite(v):
            raise ValidationError(f"min_metrics[{metric!r}] must be a finite number; got {v!r}.")
    for k in ("max_demographic_parity_difference", "max_equalized_odds_difference", "max_drift_share"):
        v = out[k]
        if v is not None and (not _is_number(v) or not _finite(v) or not 0 <= v <= 1):
            raise ValidationError(f"{k} must be a number between 0 and 1, or None; got {v!r}.")
    return {**out, "required_evidence": list(out["required_evidence"]),
            "min_metrics": {k: float(v) for k, v in out["min_metrics"].items()}}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond a float's range
        return False


# -- the evidence snapshot ----------------------------------------------------------------------
def _number(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def snapshots(conn, versions: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    """The evidence snapshot of each (name, version), read in a few queries for all of them.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The connection to read with.
    versions : list of (str, int)
        The (model name, version) pairs.

    Returns
    -------
    dict
        (name, version) -> snapshot: ``model`` (the card fields, run id, sha256), ``metrics``
        (the source run's latest values, non-finite ones as None) and, per kind of
        :data:`EVIDENCE_KINDS`, the fields a reviewer judges of the latest report, or None.

    Raises
    ------
    NotFoundError
        If a model has no such version.
    """
    if not versions:
        return {}
    names = sorted({n for n, _ in versions})
    rows = conn.execute(sa.text(
        "select m.name, v.version, m.risk_tier, m.owner_team, m.use_case, m.description, v.run_id, v.sha256, "
        "v.model_class from model_versions v join registered_models m on m.id = v.model_id "
        "where m.name in :names").bindparams(sa.bindparam("names", expanding=True)), {"names": names}).all()
    cards = {(r[0], r[1]): r for r in rows}
    run_ids = sorted({r[6] for r in rows if r[6]})
    metrics: dict[str, dict] = {}
    if run_ids:
        for run_id, key, value in conn.execute(sa.text(
                "select run_id, key, value from latest_metrics where run_id in :ids order by key")
                .bindparams(sa.bindparam("ids", expanding=True)), {"ids": run_ids}):
            metrics.setdefault(run_id, {})[key] = _number(value)
    evidence: dict[tuple[str, int, str], tuple] = {}
    for name, version, kind, eid, verdict, summary in conn.execute(sa.text(
            "select name, version, kind, id, verdict, summary from (select m.name, e.version, e.kind, e.id, e.verdict, "
            "e.summary, row_number() over (partition by e.model_id, e.version, e.kind order by e.created_at desc, "
            "e.id desc) as rn from evidence e join registered_models m on m.id = e.model_id where m.name in :names) x "
            "where rn = 1").bindparams(sa.bindparam("names", expanding=True)).columns(summary=schema.JSON),
            {"names": names}):
        evidence[(name, version, kind)] = (eid, verdict, summary)
    out = {}
    for name, version in versions:
        card = cards.get((name, version))
        if card is None:
            raise NotFoundError(f"Model {name!r} has no version {version}.")
        snap = {"model": {"name": name, "version": version, "risk_tier": card[2], "owner_team": card[3],
                          "use_case": card[4], "description": card[5], "run_id": card[6], "sha256": card[7],
                          "model_class": card[8]},
                "metrics": metrics.get(card[6], {})}
        for kind in EVIDENCE_KINDS:
            found = evidence.get((name, version, kind))
            snap[kind] = None if found is None else _evidence_fields(kind, *found)
        out[(name, version)] = snap
    return out


def _evidence_fields(kind: str, evidence_id: int, verdict: str | None, summary: dict) -> dict:
    """What a reviewer judges from each kind of evidence (the rest stays in the store)."""
    if kind == "explanation":
        top = [r["feature"] for r in summary.get("global_importance", [])[:5]]
        return {"evidence_id": evidence_id, "explainer": summary.get("explainer"), "top_features": top,
                "additivity_passed": (summary.get("additivity") or {}).get("passed")}
    if kind == "fairness":
        return {"evidence_id": evidence_id, "verdict": verdict,
                **{k: _number(summary.get(k)) for k in ("demographic_parity_difference", "demographic_parity_ratio",
                                                        "equalized_odds_difference", "equal_opportunity_difference")}}
    fields = {"evidence_id": evidence_id, "verdict": verdict, "drift_share": _number(summary.get("drift_share")),
              "dataset_drift": summary.get("dataset_drift")}
    if summary.get("not_tested"):  # only then: snapshots of complete reports keep their digests
        fields.update(n_tested=summary.get("n_tested"), n_asked=summary.get("n_tested", 0) + len(summary["not_tested"]))
    return fields


def digest(snapshot: dict) -> str:
    """The sha256 (hex) of a snapshot's canonical JSON: what a request and its sign-offs are bound to."""
    return hashlib.sha256(canonical_json(snapshot).encode()).hexdigest()


def evaluate_gates(snapshot: dict, gates: dict) -> list[dict]:
    """Each gate: {"gate", "passed", "detail"}; a gate with nothing to judge fails (never a silent pass).

    Thresholds judge only the evidence that exists; missing evidence fails the
    ``required_evidence`` gate alone.

    Parameters
    ----------
    snapshot : dict
        An evidence snapshot from :func:`snapshots`.
    gates : dict
        A gate policy (:func:`gate_policy`).

    Returns
    -------
    list of dict
        One result per gate checked, in policy order.
    """
    results = []

    def add(gate, passed, detail):
        results.append({"gate": gate, "passed": bool(passed), "detail": detail})

    for kind in gates.get("required_evidence") or []:
        add(f"{kind} evidence", snapshot.get(kind) is not None,
            "present" if snapshot.get(kind) else f"missing: compute it with ws.{'explain' if kind == 'explanation' else kind}()")
    for metric, minimum in (gates.get("min_metrics") or {}).items():
        value = snapshot["metrics"].get(metric)
        add(f"{metric} >= {minimum}", value is not None and value >= minimum,
            "not logged by the source run" if value is None else f"{value:.4g}")
    # thresholds judge the evidence that exists; missing evidence is the required_evidence gate's finding
    fairness = snapshot.get("fairness")
    for key, label in (("max_demographic_parity_difference", "demographic_parity_difference"),
                       ("max_equalized_odds_difference", "equalized_odds_difference")):
        limit = gates.get(key)
        if limit is None or fairness is None:
            continue
        value = fairness.get(label)
        add(f"{label} <= {limit}", value is not None and value <= limit, "undefined" if value is None else f"{value:.4g}")
    drift = snapshot.get("drift")
    if gates.get("max_drift_share") is not None and drift is not None:
        limit, value = gates["max_drift_share"], drift.get("drift_share")
        # a share measured on too few of the columns asked for says little (policy.coverage_problem)
        too_few = policy.coverage_problem(drift.get("n_tested") or 0, drift.get("n_asked") or 0,
                                          snapshot["model"]["risk_tier"]) if drift.get("n_asked") else None
        add(f"drift share < {limit}", value is not None and value < limit and not too_few,
            too_few or (f"{value:.4g}" if value is not None else "undefined"))
    return results


# -- reading ----------------------------------------------------------------------------------------
def current_gates(conn, name: str, version: int, risk_tier: str) -> tuple[dict, list[dict]]:
    """(the version's evidence snapshot now, each gate's result on it)."""
    snap = snapshots(conn, [(name, version)])[(name, version)]
    return snap, evaluate_gates(snap, gate_policy(conn, risk_tier))


def gate_policy(conn, risk_tier: str) -> dict:
    """The gates of ``risk_tier``: the policy an admin stored, else :data:`DEFAULT_GATES`.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The connection to read with.
    risk_tier : str
        ``"low"``, ``"medium"`` or ``"high"`` (not checked here).

    Returns
    -------
    dict
        Gate name -> setting, as :func:`check_gates` returns them.
    """
    t = schema.GatePolicy.__table__
    row = conn.execute(sa.select(t.c.gates).where(t.c.risk_tier == risk_tier)).first()
    return row[0] if row else copy.deepcopy(DEFAULT_GATES[risk_tier])  # a caller may change it


#: The tier a request (``r``, joined to its model ``m``) is judged on: while pending, the strictest
#: of the one it recorded and the model's now (a raw edit of the model's tier cannot lower it);
#: once decided, the one it was decided on. Requests from before schema 8 recorded none.
REQUEST_TIER_SQL = """(case when r.status <> 'pending' then coalesce(r.strictest_tier, m.risk_tier)
      when 'high' in (r.strictest_tier, m.risk_tier) then 'high'
      when 'medium' in (r.strictest_tier, m.risk_tier) then 'medium' else 'low' end)"""


def request_row(conn, request_id: int):
    """The request's row with its model's name and the risk tier it is judged on, in ``conn``.

    Raises
    ------
    ValidationError
        If ``request_id`` is not an integer.
    NotFoundError
        If there is no such request.
    """
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        raise ValidationError(f"A request id is an integer, got {request_id!r}.")
    row = conn.execute(sa.text(f"select r.*, m.name, {REQUEST_TIER_SQL} as risk_tier from promotion_requests r "
                               "join registered_models m on m.id = r.model_id where r.id = :i"),
                       {"i": request_id}).mappings().first()
    if row is None:
        raise NotFoundError(f"No promotion request with id {request_id}.")
    return dict(row)


def sign_offs(conn, request_id: int, evidence_sha256: str) -> list[dict]:
    """The approvals that count: given on the request's current evidence."""
    d = schema.RequestDecision.__table__
    return [dict(r) for r in conn.execute(sa.select(d).where(d.c.request_id == request_id, d.c.approve.is_(True),
                                                             d.c.evidence_sha256 == evidence_sha256)
                                          .order_by(d.c.id)).mappings()]


def needed(risk_tier: str) -> str:
    """Who must sign off a request of ``risk_tier``, in words: a lead, and for high risk also a compliance officer."""
    return "a lead and a compliance officer" if risk_tier == "high" else "one lead"


# -- write ops ------------------------------------------------------------------------------------------
def _event(actor, role, action, request_id, payload) -> Event:
    return Event(actor, role, action, "request", str(request_id), payload)


def create(conn, actor: str, role: str, name: str, version: int, to_stage: str, justification: str):
    """Write op: ask for ``name`` v``version`` to move to ``to_stage``, bound to its evidence now.

    The request records the evidence snapshot, its digest and each gate's result. Who may
    request is checked by the caller.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The writer's transaction.
    actor, role : str
        Who asks.
    name : str
        The registered model.
    version : int
        The version to promote.
    to_stage : str
        ``"Staging"`` or ``"Production"``.
    justification : str
        Why the version should move (free text, required).

    Returns
    -------
    tuple
        ``(request_id, events)``: the new request's id and its ``request.create`` event.

    Raises
    ------
    ValidationError
        For another stage, an empty or over-long justification, an archived version or one
        already in ``to_stage``.
    NotFoundError
        If the model has no such version.
    ConflictError
        If the same request (version and stage) is already pending.
    """
    if to_stage not in TARGET_STAGES:
        raise ValidationError(f"A promotion goes to {' or '.join(TARGET_STAGES)}, not {to_stage!r}.")
    if not justification or not justification.strip():
        raise ValidationError("A promotion request needs a justification: say why this version should move.")
    freetext.check_text("Justification", justification)
    v, m, r = schema.ModelVersion.__table__, schema.RegisteredModel.__table__, schema.PromotionRequest.__table__
    row = conn.execute(sa.select(m.c.id, m.c.risk_tier, v.c.stage).select_from(v.join(m, m.c.id == v.c.model_id))
                       .where(m.c.name == name, v.c.version == version)).first()
    if row is None:
        raise NotFoundError(f"Model {name!r} has no version {version}.")
    model_id, tier, stage = row
    if stage == "Archived":
        raise ValidationError(f"{name} v{version} is archived: an archived version is not promoted again "
                              "(register the model again for a new version).")
    if stage == to_stage:
        raise ValidationError(f"{name} v{version} is already in {to_stage}.")
    open_ = conn.execute(sa.select(r.c.id).where(r.c.model_id == model_id, r.c.version == version,
                                                 r.c.to_stage == to_stage, r.c.status == "pending")).first()
    if open_ is not None:
        raise ConflictError(f"Request {open_[0]} for {name} v{version} to {to_stage} is already pending.")
    snap, gates = current_gates(conn, name, version, tier)
    sha = digest(snap)
    request_id = conn.execute(sa.insert(r).values(
        model_id=model_id, version=version, from_stage=stage, to_stage=to_stage, justification=justification.strip(),
        status="pending", evidence_sha256=sha, evidence=canonical_json(snap), gates=canonical_json(gates),
        requested_by=actor, requested_at=schema.utcnow(), row_version=1, strictest_tier=tier).returning(r.c.id)).scalar_one()
    failing = [g["gate"] for g in gates if not g["passed"]]
    return request_id, [_event(actor, role, "request.create", request_id, {
        "model": name, "version": version, "from": stage, "to": to_stage, "evidence_sha256": sha,
        "failing_gates": failing, "justification": justification.strip()})]


def _bump(conn, req: dict, **values) -> None:
    """Change the request only if nobody else did since we read it (compare-and-set)."""
    r = schema.PromotionRequest.__table__
    done = conn.execute(sa.update(r).where(r.c.id == req["id"], r.c.row_version == req["row_version"])
                        .values(row_version=req["row_version"] + 1, **values)).rowcount
    if done != 1:
        raise ConflictError(f"Request {req['id']} was changed by someone else just now: reload it and look again.")


def why_not_decide(role: str, actor: str, requested_by: str, risk_tier: str) -> str | None:
    """Why ``actor`` (``role``) may not decide a request, or None: the rule the page shows too."""
    if requested_by == actor:
        return f"This request is {actor}'s own: nobody decides their own request (four eyes)."
    if not roles.allowed(role, "decide"):
        return f"User {actor!r} ({role}) may not decide; allowed roles: {', '.join(sorted(roles.PERMISSIONS['decide']))}."
    if role == "compliance_officer" and risk_tier != "high":
        return ("Compliance officers give the second sign-off on high-risk models; "
                f"this model is {risk_tier} risk, so a lead decides it.")
    return None


def why_not_refresh(role: str, actor: str, requested_by: str) -> str | None:
    """Why ``actor`` (``role``) may not refresh a request's evidence, or None: its requester or a lead may."""
    if actor != requested_by and role != "lead":
        return f"Only the requester ({requested_by}) or a lead may refresh it."
    return None


def why_not_withdraw(actor: str, requested_by: str) -> str | None:
    """Why ``actor`` may not withdraw a request, or None: only its requester may."""
    if actor != requested_by:
        return f"Only {requested_by}, who made it, may withdraw it."
    return None


def _check_decidable(conn, req: dict, actor: str, role: str) -> str:
    """The current evidence digest, if ``actor`` may decide ``req`` at all; else a clear refusal."""
    refusal_ = why_not_decide(role, actor, req["requested_by"], req["risk_tier"])
    if refusal_:
        raise PermissionDenied(f"Request {req['id']}: {refusal_}")
    if req["status"] != "pending":
        last = conn.execute(sa.text("select actor, created_at from request_decisions where request_id = :i "
                                    "order by id desc limit 1"), {"i": req["id"]}).first()
        by = f" by {last[0]} at {last[1]:%Y-%m-%d %H:%M} UTC" if last and req["status"] in ("approved", "rejected") else ""
        raise ConflictError(f"Request {req['id']} is already {req['status']}{by}: nothing left to decide.")
    current = digest(snapshots(conn, [(req["name"], req["version"])])[(req["name"], req["version"])])
    if current != req["evidence_sha256"]:
        raise ValidationError(f"Request {req['id']} is stale: the evidence of {req['name']} v{req['version']} changed "
                              "after it was made. Refresh it (ws.refresh_request) and look again.")
    return current


def decide(conn, actor: str, role: str, request_id: int, approve: bool, comment: str, override_reason: str | None):
    """Write op: record ``actor``'s approval or rejection of a pending request (the four-eyes rules above).

    A rejection ends the request. An approval is a sign-off on the current evidence; the one
    that completes the request (a lead's, or for high risk a lead's and a compliance
    officer's) marks it approved and moves the version to the requested stage.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The writer's transaction.
    actor, role : str
        Who decides.
    request_id : int
        The request.
    approve : bool
        True to approve, False to reject.
    comment : str
        The decision's comment; a rejection needs one (its reason).
    override_reason : str or None
        Why a version may go ahead although gates fail: a lead approving past failing gates
        needs one.

    Returns
    -------
    tuple
        ``(status, events)``: the request's status after the decision (``"approved"``,
        ``"rejected"`` or still ``"pending"``) and the audit events, stage changes included.

    Raises
    ------
    PermissionDenied
        For the requester, a role that may not decide (see :func:`why_not_decide`), or a
        non-lead approving past failing gates that no lead has overridden.
    ConflictError
        If the request is no longer pending, ``actor`` already signed it off, its role already
        signed a high-risk one, or someone changed it meanwhile.
    ValidationError
        For a stale request, a rejection without a comment, a lead's approval past failing
        gates without ``override_reason``, over-long text, or a version archived since.
    NotFoundError
        If there is no such request.
    """
    req = request_row(conn, request_id)
    freetext.check_text("Decision comment", comment)
    freetext.check_text("Override reason", override_reason)
    sha = _check_decidable(conn, req, actor, role)
    comment = (comment or "").strip()
    tier = req["risk_tier"]
    if not approve:
        if not comment:
            raise ValidationError("A rejection needs a reason: say what must change.")
        _bump(conn, req, status="rejected", decided_at=schema.utcnow())
        _record(conn, req, actor, role, False, comment, None, sha)
        return "rejected", [_event(actor, role, "request.reject", request_id, {
            "model": req["name"], "version": req["version"], "comment": comment, "evidence_sha256": sha})]
    gates = evaluate_gates(json.loads(req["evidence"]), gate_policy(conn, tier))
    failing = [g["gate"] for g in gates if not g["passed"]]
    prior = sign_offs(conn, request_id, sha)
    if any(p["actor"] == actor for p in prior):
        raise ConflictError(f"{actor} has already signed off request {request_id}; the next sign-off must come "
                            "from someone else.")
    if failing:
        if role != "lead" and not any(p["override_reason"] for p in prior):
            raise PermissionDenied(f"Gate(s) {failing} fail: only a lead may approve past them, with an override reason.")
        if role == "lead" and not (override_reason or "").strip():
            raise ValidationError(f"Gate(s) {failing} fail: approving past them needs override_reason "
                                  "(why the version may go ahead anyway).")
    roles_signed = {p["role"] for p in prior} | {role}
    if tier == "high" and any(p["role"] == role for p in prior):
        other = "compliance officer" if role == "lead" else "lead"
        raise ConflictError(f"Request {request_id} already has a {role.replace('_', ' ')}'s sign-off; "
                            f"the second must come from a {other}.")
    complete = roles_signed >= {"lead", "compliance_officer"} if tier == "high" else "lead" in roles_signed
    override = (override_reason or "").strip() or None
    _record(conn, req, actor, role, True, comment, override, sha)
    events = [_event(actor, role, "request.approve", request_id, {
        "model": req["name"], "version": req["version"], "comment": comment, "override_reason": override,
        "failing_gates": failing, "evidence_sha256": sha, "complete": complete})]
    if not complete:
        _bump(conn, req)
        return "pending", events
    v = schema.ModelVersion.__table__
    stage = conn.execute(sa.select(v.c.stage).where(v.c.model_id == req["model_id"], v.c.version == req["version"])).scalar()
    if stage == "Archived":
        raise ValidationError(f"{req['name']} v{req['version']} was archived after the request: it is not promoted.")
    _bump(conn, req, status="approved", decided_at=schema.utcnow())
    _, stage_events = registry.transition_stage(conn, actor, role, req["name"], req["version"], req["to_stage"],
                                                approval=str(request_id), reason=f"request {request_id} approved")
    return "approved", events + stage_events


def _record(conn, req, actor, role, approve, comment, override, sha) -> None:
    conn.execute(sa.insert(schema.RequestDecision.__table__).values(
        request_id=req["id"], actor=actor, role=role, approve=approve, comment=comment, override_reason=override,
        evidence_sha256=sha, created_at=schema.utcnow()))


def withdraw(conn, actor: str, role: str, request_id: int, reason: str):
    """Write op: withdraw a pending request; only its requester may.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The writer's transaction.
    actor, role : str
        Who withdraws.
    request_id : int
        The request.
    reason : str
        Why (optional, free text).

    Returns
    -------
    tuple
        ``("withdrawn", events)``.

    Raises
    ------
    PermissionDenied
        For anyone but the requester.
    ConflictError
        If the request is no longer pending, or someone changed it meanwhile.
    NotFoundError
        If there is no such request.
    """
    req = request_row(conn, request_id)
    freetext.check_text("Withdrawal reason", reason)
    refusal_ = why_not_withdraw(actor, req["requested_by"])
    if refusal_:
        raise PermissionDenied(f"Request {request_id}: {refusal_}")
    if req["status"] != "pending":
        raise ConflictError(f"Request {request_id} is already {req['status']}.")
    _bump(conn, req, status="withdrawn", decided_at=schema.utcnow())
    return "withdrawn", [_event(actor, role, "request.withdraw", request_id, {"reason": (reason or "").strip()})]


def refresh(conn, actor: str, role: str, request_id: int):
    """Re-bind a pending request to the version's current evidence; earlier sign-offs stop counting.

    Returns
    -------
    tuple
        ``(sha256, events)``: the new evidence digest and the ``request.refresh`` event.

    Raises
    ------
    ConflictError
        If the request is no longer pending, or someone changed it meanwhile.
    PermissionDenied
        For anyone but the requester or a lead.
    NotFoundError
        If there is no such request.
    """
    req = request_row(conn, request_id)
    if req["status"] != "pending":
        raise ConflictError(f"Request {request_id} is already {req['status']}.")
    refusal_ = why_not_refresh(role, actor, req["requested_by"])
    if refusal_:
        raise PermissionDenied(f"Request {request_id}: {refusal_}")
    snap, gates = current_gates(conn, req["name"], req["version"], req["risk_tier"])
    sha = digest(snap)
    _bump(conn, req, evidence_sha256=sha, evidence=canonical_json(snap), gates=canonical_json(gates))
    return sha, [_event(actor, role, "request.refresh", request_id, {"from": req["evidence_sha256"], "to": sha})]


def comment(conn, actor: str, role: str, request_id: int, text: str):
    """Write op: add a comment to a request, whatever its status. Who may comment is checked by the caller.

    Returns
    -------
    tuple
        ``(comment_id, events)``.

    Raises
    ------
    ValidationError
        For an empty or over-long text.
    NotFoundError
        If there is no such request.
    """
    req = request_row(conn, request_id)
    if not text or not text.strip():
        raise ValidationError("A comment needs some text.")
    freetext.check_text("Comment", text)
    t = schema.RequestComment.__table__
    cid = conn.execute(sa.insert(t).values(request_id=req["id"], actor=actor, role=role, text=text.strip(),
                                           created_at=schema.utcnow()).returning(t.c.id)).scalar_one()
    return cid, [_event(actor, role, "request.comment", request_id, {"comment_id": cid, "text": text.strip()})]


def rollback(conn, actor: str, role: str, name: str, reason: str):
    """Put back the last version approved into Production before the current one that was not
    itself rolled back; the current one is archived and marked as rolled back.

    Write op; who may roll back (leads) is checked by the caller.

    Returns
    -------
    tuple
        ``(version, events)``: the version now in Production and the audit events.

    Raises
    ------
    ValidationError
        For an empty or over-long reason, no version in Production, or no version to return
        to (see :func:`rollback_target`).
    NotFoundError
        If there is no such model.
    """
    if not reason or not reason.strip():
        raise ValidationError("A rollback needs a reason.")
    freetext.check_text("Rollback reason", reason)
    v = schema.ModelVersion.__table__
    model_id = registry.model_row(conn, name)["id"]
    current = conn.execute(sa.select(v.c.version).where(v.c.model_id == model_id, v.c.stage == "Production")).first()
    if current is None:
        raise ValidationError(f"{name} has no version in Production to roll back.")
    target = rollback_target(conn, model_id, current[0])
    if target is None:
        raise ValidationError(
            f"{name} v{current[0]} cannot be rolled back: no version was approved into Production before it "
            "that was not itself rolled back. Promote a version through a request instead.")
    _, events = registry.transition_stage(conn, actor, role, name, target, "Production",
                                          approval=f"rollback by {actor}", reason=reason.strip(), rolled_back=current[0])
    return target, [Event(actor, role, "model.rollback", "model", name,
                          {"from_version": current[0], "to_version": target, "reason": reason.strip()}),
                    *events]


def rollback_target(conn, model_id: int, current: int) -> int | None:
    """The version a rollback of ``current`` (in Production) returns to, or None.

    Read from the stage history: every entry into Production that was not a rollback is an
    approval (a request's, or a seed's). The target is the latest such entry of another version
    made before the current version's own latest approval, among versions never rolled back.
    """
    c = schema.StageChange.__table__
    rows = conn.execute(sa.select(c.c.id, c.c.version, c.c.from_stage, c.c.to_stage, c.c.request_id, c.c.reason,
                                  c.c.rolled_back_version).where(c.c.model_id == model_id).order_by(c.c.id)).all()

    def by_rollback(row) -> bool:
        # stores from before schema 8 marked a rollback only in the note: "... (rollback by lee)"
        return row.rolled_back_version is not None or (row.request_id is None and "(rollback by " in (row.reason or ""))

    rolled_back = {row.rolled_back_version for row in rows if row.rolled_back_version is not None}
    rolled_back |= {row.version for row in rows if row.from_stage == "Production" and by_rollback(row)}
    approvals = [row for row in rows if row.to_stage == "Production" and not by_rollback(row)]
    own = [row.id for row in approvals if row.version == current] or \
          [row.id for row in rows if row.to_stage == "Production" and row.version == current]
    since = own[-1] if own else None
    earlier = [row.version for row in approvals if (since is None or row.id < since) and row.version != current
               and row.version not in rolled_back]
    return earlier[-1] if earlier else None


def update_model(conn, actor: str, role: str, name: str, fields: dict):
    """Write op: change a model's fields; a risk tier change is governed.

    Only leads and admins change a tier, never someone with a pending request on the model,
    and pending requests keep the strictest tier they have seen (each one raised gets a
    ``request.risk_tier`` event with the tier before and after). The other fields are for
    those who register models.

    Returns
    -------
    tuple
        ``(changes, events)``: field -> {"from", "to"} for each field that changed, and the
        audit events.

    Raises
    ------
    PermissionDenied
        For a role that may not make the change, or a tier change by someone with a pending
        request on the model.
    ValidationError
        For an unknown field or an invalid value.
    NotFoundError
        If there is no such model.
    """
    registry.check_model_fields(fields)
    model = registry.model_row(conn, name)
    if any(k != "risk_tier" and model[k] != val for k, val in fields.items()):
        roles.require(actor, role, "register_models")
    tier = fields.get("risk_tier")
    changes_tier = "risk_tier" in fields and tier != model["risk_tier"]
    r = schema.PromotionRequest.__table__
    pending = []
    if changes_tier:
        roles.require(actor, role, "set_risk_tier")
        pending = conn.execute(sa.select(r.c.id, r.c.version, r.c.strictest_tier, r.c.requested_by, r.c.row_version)
                               .where(r.c.model_id == model["id"], r.c.status == "pending").order_by(r.c.id)).all()
        own = [p.id for p in pending if p.requested_by == actor]
        if own:
            raise PermissionDenied(f"{actor} has a pending request on {name} (request {own[0]}): the requester never "
                                   "changes the risk tier a request is judged on (four eyes).")
    changes, events = registry.update_model(conn, actor, role, name, **fields)
    for p in pending:
        before = p.strictest_tier or model["risk_tier"]
        after = max(before, tier, key=registry.RISK_TIERS.index)
        if after != p.strictest_tier:
            _bump(conn, {"id": p.id, "row_version": p.row_version}, strictest_tier=after)
            events.append(_event(actor, role, "request.risk_tier", p.id, {
                "model": name, "version": p.version, "before": before, "after": after,
                "because": f"the model's risk tier changed from {model['risk_tier']} to {tier}"}))
    return changes, events


def set_gate_policy(conn, actor: str, role: str, risk_tier: str, gates: dict):
    """Write op: replace the gates of ``risk_tier`` (gates left out are not checked afterwards).

    Who may (admins) is checked by the caller.

    Returns
    -------
    tuple
        ``(gates, events)``: the policy as stored (:func:`check_gates`) and the
        ``gate_policy.set`` event with the policy before and after.

    Raises
    ------
    ValidationError
        For an unknown risk tier or an invalid gate (see :func:`check_gates`).
    """
    registry.check_risk_tier(risk_tier)
    gates = check_gates(gates)
    t = schema.GatePolicy.__table__
    before = gate_policy(conn, risk_tier)
    values = dict(gates=gates, updated_by=actor, updated_at=schema.utcnow())
    if conn.execute(sa.update(t).where(t.c.risk_tier == risk_tier).values(**values)).rowcount == 0:
        conn.execute(sa.insert(t).values(risk_tier=risk_tier, **values))
    return gates, [Event(actor, role, "gate_policy.set", "risk_tier", risk_tier, {"before": before, "after": gates})]


def set_rollout(conn, actor: str, role: str, name: str, challenger: int, share: float):
    """Record a canary: the challenger version and the share of traffic it serves (0 ends it).

    The ``challenger`` alias follows: it points at the challenger, or is removed when the
    share is 0. Who may (leads) is checked by the caller.

    Returns
    -------
    tuple
        ``(share, events)``.

    Raises
    ------
    ValidationError
        For a share outside [0, 0.5]; or, unless the share is 0 (which ends the canary whatever
        became of its versions), a model with no Production version or a challenger that is not
        in Staging.
    NotFoundError
        If there is no such model or version.
    """
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 0.5:
        raise ValidationError(f"traffic_share is the challenger's share, between 0 and 0.5; got {share!r}.")
    v, t = schema.ModelVersion.__table__, schema.Rollout.__table__
    model = (registry.model_row(conn, name)["id"],)
    ending = share == 0  # ending a canary is always possible, whatever happened to its versions since
    champion = conn.execute(sa.select(v.c.version).where(v.c.model_id == model[0], v.c.stage == "Production")).first()
    if champion is None and not ending:
        raise ValidationError(f"{name} has no Production version to share traffic with.")
    stage = conn.execute(sa.select(v.c.stage).where(v.c.model_id == model[0], v.c.version == challenger)).first()
    if stage is None:
        raise NotFoundError(f"Model {name!r} has no version {challenger}.")
    if stage[0] != "Staging" and not ending:
        raise ValidationError(f"A challenger must be in Staging (v{challenger} is {stage[0]}).")
    conn.execute(sa.delete(t).where(t.c.model_id == model[0]))
    if share > 0:
        conn.execute(sa.insert(t).values(model_id=model[0], champion_version=champion[0], challenger_version=challenger,
                                         traffic_share=float(share), set_by=actor, set_at=schema.utcnow()))
    alias_events = registry.move_alias(conn, actor, role, model[0], name, "challenger", challenger if share > 0 else None)
    return share, [Event(actor, role, "model.rollout", "model", name,
                         {"champion": champion[0] if champion else None, "challenger": challenger,
                          "traffic_share": share}), *alias_events]


def refusal(actor: str, role: str, action: str, target: str, reason: str):
    """An op recording that ``action`` was refused (the refusal is part of the record too)."""
    return lambda conn: (None, [Event(actor or "anonymous", role or "none", "refused", "request", target,
                                      {"action": action, "reason": reason})])


REQUESTS_SQL = """
select r.id, m.name, r.version, """ + REQUEST_TIER_SQL + """ as risk_tier, r.from_stage, r.to_stage, r.status, r.requested_by, r.requested_at,
       r.decided_at, r.justification, r.evidence_sha256, r.gates, r.row_version,
       (select count(*) from request_decisions d where d.request_id = r.id and d.approve
          and d.evidence_sha256 = r.evidence_sha256) as sign_offs
from promotion_requests r join registered_models m on m.id = r.model_id
where (cast(? as varchar) is null or r.status = ?) and (cast(? as varchar) is null or m.name = ?)
order by r.id desc
"""
