"""The governance part of :class:`~workbench.workspace.Workspace`: promotion requests and rollbacks.

Every refusal (a role that may not decide, one's own request, a stale or closed request, an
override without a reason ...) is itself written to the audit trail before it is raised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from ..errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from ..operations import READ, operation
from ..registry import models as registry
from ..store.schema import RequestStatus, Stage
from . import requests as governance


@dataclass
class Request:
    """A promotion request as a reviewer sees it (from :meth:`GovernanceMethods.request`).

    The fields named as the ``promotion_requests`` table's columns have its types (a test checks
    that); the others are derived when the request is read.

    Attributes
    ----------
    risk_tier : str
        The tier the request is judged on: while pending, the strictest its model had since
        it was made; once decided, the one it was decided on.
    status : RequestStatus
        ``"pending"``, ``"approved"``, ``"rejected"`` or ``"withdrawn"``.
    stale : bool
        True when the version's evidence changed since the request was bound to it: nobody
        may decide it until it is refreshed.
    evidence_sha256, evidence : str, dict
        The digest of the evidence snapshot the request is bound to, and that snapshot.
    gates : list of dict
        Each gate's result on that snapshot: ``gate``, ``passed``, ``detail``.
    sign_offs : list of dict
        The approvals that count (given on the current evidence).
    needs : str
        Who must still sign off, in words; empty once the request is decided.
    decisions, comments : list of dict
        Every decision (including ones on older evidence) and comment, oldest first.
    """

    id: int
    name: str
    version: int
    risk_tier: str
    from_stage: Stage
    to_stage: Stage
    status: RequestStatus
    stale: bool
    requested_by: str
    requested_at: datetime
    justification: str
    evidence_sha256: str
    evidence: dict
    gates: list[dict]
    sign_offs: list[dict]
    needs: str  # who must still sign off
    decisions: list[dict] = field(default_factory=list)
    comments: list[dict] = field(default_factory=list)

    @property
    def failing_gates(self) -> list[str]:
        """The names of the gates that do not pass."""
        return [g["gate"] for g in self.gates if not g["passed"]]


class GovernanceMethods:
    """Mixed into Workspace; uses its ``_require``, ``_call``, ``_read``, ``_version_ref``, ``store``."""

    def _governed(self, action: str, target: str, permission: str | None, op):
        """Run a governance write op; a refusal is audited, then raised."""
        try:
            if permission:
                self._require(permission)
            return self._call(op)
        except (PermissionDenied, ValidationError, ConflictError, NotFoundError) as exc:
            self._call(governance.refusal(self.user, self.role, action, target, str(exc)))
            raise

    @operation("request_promotion", writes=True, checked_inside=True)
    def request_promotion(self, model_version, stage: str, justification: str) -> Request:
        """Ask for ``model_version`` to move to ``stage`` (Staging or Production), on its current evidence.

        Audited as ``request.create``; a refusal is audited too.

        Parameters
        ----------
        model_version : ModelVersion or tuple
            The version, or ``(name, version)``.
        stage : str
            ``"Staging"`` or ``"Production"``.
        justification : str
            Why the version should move (required).

        Returns
        -------
        Request
            The new request, with each gate's result.

        Raises
        ------
        PermissionDenied
            For a role that may not request promotions.
        ValidationError
            For another stage, an empty justification, an archived version or one already in
            ``stage``.
        NotFoundError
            If there is no such version.
        ConflictError
            If the same request is already pending.
        """
        name, version = self._version_ref(model_version)
        request_id = self._governed("request_promotion", f"{name}/{version}", "request_promotion", lambda conn: governance.create(
            conn, self.user, self.role, name, version, stage, justification))
        return self.request(request_id)

    @operation("decide", writes=True, checked_inside=True)
    def decide(self, request_id: int, approve: bool, comment: str = "", *, override_reason: str | None = None) -> Request:
        """Approve or reject a request (never one's own); a rejection needs a reason in ``comment``.

        Low and medium risk: one lead's approval promotes the version. High risk: a lead's and a
        compliance officer's sign-offs, in either order. Audited; a refusal is audited too.

        Parameters
        ----------
        request_id : int
            The request.
        approve : bool
            True to approve, False to reject.
        comment : str
            The decision's comment; required to reject.
        override_reason : str, optional
            Why the version may go ahead although gates fail; a lead approving past failing
            gates must give it.

        Returns
        -------
        Request
            The request after the decision.

        Raises
        ------
        PermissionDenied
            For one's own request, a role that may not decide this request, or a non-lead
            approving past failing gates that no lead has overridden.
        ValidationError
            For a stale request (refresh it first), a rejection without comment, or a lead's
            approval past failing gates without ``override_reason``.
        ConflictError
            If the request is already decided or withdrawn, this user already signed it off, or
            someone else decided it at the same moment.
        NotFoundError
            For an unknown request.
        """
        if not isinstance(approve, bool):
            raise ValidationError(f"approve must be True or False, got {approve!r}.")
        # who may decide is checked inside the op (own request first, then role), with the request in hand
        self._governed("decide", str(request_id), None, lambda conn: governance.decide(
            conn, self.user, self.role, request_id, approve, comment, override_reason))
        return self.request(request_id)

    @operation("comment", writes=True, checked_inside=True)
    def comment(self, request_id: int, text: str) -> int:
        """Add a comment to a request (any role that takes part in reviews); returns its id.

        Audited as ``request.comment`` with the text. A refusal is audited too.

        Raises
        ------
        ValidationError
            For an empty or over-long text.
        NotFoundError
            For an unknown request.
        """
        return self._governed("comment", str(request_id), "comment", lambda conn: governance.comment(
            conn, self.user, self.role, request_id, text))

    @operation("request_promotion", writes=True, checked_inside=True)
    def withdraw(self, request_id: int, reason: str = "") -> Request:
        """Withdraw a pending request: only the person who made it. Returns the request.

        Audited as ``request.withdraw`` with the reason. A refusal is audited too.

        Raises
        ------
        PermissionDenied
            For anyone but the requester.
        ConflictError
            When the request is already decided or withdrawn.
        """
        self._governed("withdraw", str(request_id), "request_promotion", lambda conn: governance.withdraw(
            conn, self.user, self.role, request_id, reason))
        return self.request(request_id)

    @operation("request_promotion", writes=True, checked_inside=True)
    def refresh_request(self, request_id: int) -> Request:
        """Re-bind a stale request to the current evidence; sign-offs given on the old evidence stop counting.

        Raises
        ------
        PermissionDenied
            For anyone but the requester or a lead.
        ConflictError
            When the request is no longer pending.
        NotFoundError
            For an unknown request.
        """
        self._governed("refresh", str(request_id), "request_promotion", lambda conn: governance.refresh(
            conn, self.user, self.role, request_id))
        return self.request(request_id)

    @operation("rollback", writes=True, checked_inside=True)
    def rollback(self, model: str, reason: str) -> int:
        """Put the previous Production version back (leads only); returns its version.

        The version returned to is the last one approved into Production before the current one
        that was not itself rolled back; the current one is archived. Audited as
        ``model.rollback``; a refusal is audited too.

        Parameters
        ----------
        model : str
            The registered model.
        reason : str
            Why (required).

        Raises
        ------
        PermissionDenied
            For any role but lead.
        ValidationError
            For an empty reason, no version in Production, or no earlier version to return to.
        NotFoundError
            For an unknown model.
        """
        return self._governed("rollback", model, "rollback", lambda conn: governance.rollback(
            conn, self.user, self.role, model, reason))

    @operation("rollback", writes=True, checked_inside=True)
    def set_rollout(self, model: str, challenger: int, traffic_share: float) -> None:
        """Record a canary: a Staging challenger serving ``traffic_share`` of requests (leads; 0 ends it).

        The ``challenger`` alias follows the rollout. Audited as ``model.rollout``.

        Parameters
        ----------
        model : str
            The registered model; it needs a Production version (the champion).
        challenger : int
            A version in Staging.
        traffic_share : float
            The challenger's share of traffic, from 0 to 0.5.

        Raises
        ------
        PermissionDenied
            For any role but lead.
        ValidationError
            For a share outside [0, 0.5], no Production version, or a challenger not in Staging.
        NotFoundError
            For an unknown model or version.
        """
        self._governed("rollout", model, "rollback", lambda conn: governance.set_rollout(
            conn, self.user, self.role, model, challenger, traffic_share))

    @operation(READ, writes=False)
    def rollout(self, model: str) -> dict | None:
        """How ``model``'s traffic is split between its champion and challenger, or None.

        Returns
        -------
        dict or None
            ``champion_version``, ``challenger_version``, ``traffic_share`` (the challenger's),
            ``set_by``, ``set_at``; None when no rollout is set (never, or ended with a share
            of 0; see :meth:`set_rollout`).

        Raises
        ------
        NotFoundError
            For an unknown model.
        """
        self._model_exists(model)
        rows = self._read("select r.champion_version, r.challenger_version, r.traffic_share, r.set_by, r.set_at "
                          "from rollouts r join registered_models m on m.id = r.model_id where m.name = ?", [model])
        return rows.row(0, named=True) if rows.height else None

    @operation(READ, writes=False)
    def gate_policy(self, risk_tier: str) -> dict:
        """The promotion gates of a risk tier (``"low"``, ``"medium"`` or ``"high"``).

        Returns
        -------
        dict
            The gates as :meth:`set_gate_policy` takes them (evidence required, minimum metrics,
            drift and fairness limits): the stored policy, else the tier's defaults.

        Raises
        ------
        ValidationError
            For an unknown risk tier.
        """
        registry.check_risk_tier(risk_tier)
        return self._in_transaction(lambda conn: governance.gate_policy(conn, risk_tier))

    @operation("manage_gates", writes=True, checked_inside=True)
    def set_gate_policy(self, risk_tier: str, **gates) -> dict:
        """Replace a tier's gates (admins; audited with the policy before and after).

        Thresholds are checked in the op: ``min_metrics`` values finite, shares within [0, 1].

        Parameters
        ----------
        risk_tier : str
            ``"low"``, ``"medium"`` or ``"high"``.
        **gates
            ``required_evidence`` (a list of ``"explanation"``, ``"fairness"``, ``"drift"``),
            ``min_metrics`` ({metric: minimum}), ``max_demographic_parity_difference``,
            ``max_equalized_odds_difference``, ``max_drift_share`` (None: not checked). A gate
            left out is not checked: it is not kept from the previous policy.

        Returns
        -------
        dict
            The policy as stored.

        Raises
        ------
        PermissionDenied
            For any role but admin.
        ValidationError
            For an unknown tier or gate, or an invalid threshold.
        """
        return self._governed("set_gate_policy", risk_tier, "manage_gates", lambda conn: governance.set_gate_policy(
            conn, self.user, self.role, risk_tier, gates))

    # -- reading -------------------------------------------------------------------------------
    @operation(READ, writes=False)
    def requests(self, status: str | None = None, name: str | None = None) -> pl.DataFrame:
        """Promotion requests newest first, with ``stale`` (evidence changed since) and failing gates.

        Parameters
        ----------
        status : str, optional
            Only requests with this status (``"pending"``, ``"approved"``, ``"rejected"``,
            ``"withdrawn"``).
        name : str, optional
            Only requests for this model.

        Returns
        -------
        polars.DataFrame
            One row per request: id, name, version, risk_tier, from_stage, to_stage, status,
            requested_by, requested_at, decided_at, justification, evidence_sha256,
            row_version, sign_offs (approvals on the current evidence), ``stale`` and
            ``failing_gates``.
        """
        rows = self._read(governance.REQUESTS_SQL, [status, status, name, name])
        if rows.is_empty():
            return rows.with_columns(pl.lit(None, pl.Boolean).alias("stale"), pl.lit(None, pl.List(pl.String))
                                     .alias("failing_gates")).drop("gates")
        pending = rows.filter(pl.col("status") == "pending").select(["name", "version"]).unique().rows()
        current = {k: governance.digest(s) for k, s
                   in self._in_transaction(lambda conn: governance.snapshots(conn, pending)).items()}
        stale = [status == "pending" and current.get((n, v)) != sha for n, v, status, sha
                 in rows.select(["name", "version", "status", "evidence_sha256"]).iter_rows()]
        failing = [[g["gate"] for g in json.loads(gates) if not g["passed"]] for gates in rows["gates"]]
        return rows.with_columns(pl.Series("stale", stale), pl.Series("failing_gates", failing,
                                                                      dtype=pl.List(pl.String))).drop("gates")

    @operation(READ, writes=False)
    def awaiting_me(self) -> pl.DataFrame:
        """The pending requests this user may decide now, newest first (as :meth:`requests`).

        Four eyes and the role rules decide what is in it: never one's own request; leads
        decide; compliance officers give the second sign-off on high-risk models. Empty for
        roles that never decide and for a workspace without a user.
        """
        pending = self.requests(status="pending")
        if self.user is None or pending.is_empty():
            return pending.head(0)
        may = [governance.why_not_decide(self.role, self.user, r["requested_by"], r["risk_tier"]) is None
               for r in pending.iter_rows(named=True)]
        return pending.filter(pl.Series(may, dtype=pl.Boolean))

    @operation(READ, writes=False)
    def request_actions(self, request_id: int) -> dict[str, str | None]:
        """What this user may do with a request now: for each of ``decide``, ``refresh``,
        ``withdraw`` and ``comment``, None when they may, else why not (the page shows it).

        The same rules refuse the operations themselves; this only asks them ahead.

        Raises
        ------
        NotFoundError
            For an unknown request.
        """
        req = self.request(request_id)
        who = self.user or "nobody"
        role = self.role or "none"
        done = None if req.status == "pending" else f"Request {req.id} is {req.status}."
        decide = done or governance.why_not_decide(role, who, req.requested_by, req.risk_tier) or (
            "The evidence changed since it was asked: refresh it first." if req.stale else None)
        refresh = done or governance.why_not_refresh(role, who, req.requested_by) or (
            None if req.stale else "Its evidence is current: nothing to refresh.")
        comment = None if self.ctx.allowed("comment") else (
            f"{role.replace('_', ' ')} may not comment" if self.user else "Sign in to comment.")
        return {"decide": decide, "refresh": refresh,
                "withdraw": done or governance.why_not_withdraw(who, req.requested_by), "comment": comment}

    @operation(READ, writes=False)
    def request(self, request_id: int) -> Request:
        """One request in full: its evidence snapshot, gates, sign-offs, decisions and comments.

        Raises
        ------
        ValidationError
            If ``request_id`` is not an integer.
        NotFoundError
            For an unknown request.
        """
        def read(conn):
            req = governance.request_row(conn, request_id)
            snap = governance.snapshots(conn, [(req["name"], req["version"])])[(req["name"], req["version"])]
            return req, snap, governance.sign_offs(conn, request_id, req["evidence_sha256"])

        req, snap, signed = self._in_transaction(read)
        decisions = self._read("select actor, role, approve, comment, override_reason, evidence_sha256, created_at "
                               "from request_decisions where request_id = ? order by id", [request_id]).to_dicts()
        comments = self._read("select actor, role, text, created_at from request_comments where request_id = ? "
                              "order by id", [request_id]).to_dicts()
        roles = {s["role"] for s in signed}
        if req["status"] != "pending":
            needs = ""
        elif req["risk_tier"] == "high":
            needs = " and ".join(r for r, key in (("a lead", "lead"), ("a compliance officer", "compliance_officer"))
                                 if key not in roles)
        else:
            needs = "one lead"
        return Request(req["id"], req["name"], req["version"], req["risk_tier"], Stage(req["from_stage"]),
                       Stage(req["to_stage"]), RequestStatus(req["status"]), req["status"] == "pending" and governance.digest(snap) != req["evidence_sha256"],
                       req["requested_by"], req["requested_at"], req["justification"], req["evidence_sha256"],
                       json.loads(req["evidence"]), json.loads(req["gates"]), signed, needs, decisions, comments)

    @operation(READ, writes=False)
    def stage_history(self, name: str | None = None) -> pl.DataFrame:
        """Every stage change, newest first: who, why, and through which request.

        Parameters
        ----------
        name : str, optional
            Only this model's changes; default: every model's.

        Raises
        ------
        NotFoundError
            For an unknown model.
        """
        return self._read_for_model(registry.STAGE_HISTORY_SQL, name)
