"""Who may do what: the one place permissions are decided.

The dashboard hides what a role cannot do; these checks refuse it again in the service
layer, so a notebook or the CLI cannot do what the dashboard would refuse.
"""

from __future__ import annotations

from ..errors import PermissionDenied, ValidationError

ROLES = ("data_scientist", "reviewer", "compliance_officer", "lead", "admin")

#: action -> roles allowed (ARCHITECTURE.md, "Roles").
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset(ROLES),
    "log_runs": frozenset({"data_scientist", "lead"}),
    "register_models": frozenset({"data_scientist", "lead"}),
    "compute_evidence": frozenset({"data_scientist", "lead"}),
    "log_predictions": frozenset({"data_scientist", "lead"}),
    "mark_columns": frozenset({"data_scientist", "compliance_officer", "lead"}),
    "record_alerts": frozenset({"data_scientist", "lead"}),
    "manage_policies": frozenset({"lead", "admin"}),
    "view_command_output": frozenset({"lead", "admin"}),  # a retraining command's output
    "run_commands": frozenset(),  # retraining commands: only the scheduler (the operator), no user's process
    "manage_gates": frozenset({"admin"}),
    "set_risk_tier": frozenset({"lead", "admin"}),  # the tier decides the gates and who signs off
    "request_promotion": frozenset({"data_scientist", "lead"}),
    "comment": frozenset({"data_scientist", "reviewer", "compliance_officer", "lead"}),
    "review": frozenset({"reviewer", "compliance_officer", "lead"}),  # shown what awaits review
    "decide": frozenset({"compliance_officer", "lead"}),
    "rollback": frozenset({"lead"}),
    "audit_view": frozenset({"reviewer", "compliance_officer", "lead", "admin"}),
    "audit_export": frozenset({"compliance_officer"}),
    "reports": frozenset({"compliance_officer", "lead"}),
    "manage_users": frozenset({"admin"}),
}

#: The local operator (CLI run by whoever can write the store file) bootstraps users.
OPERATOR = "operator"


def check_role(role: str) -> str:
    """``role`` unchanged, if it is one of :data:`ROLES`.

    Raises
    ------
    ValidationError
        If it is not (the message lists the roles).
    """
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}.")
    return role


def allowed(role: str, action: str) -> bool:
    """Whether ``role`` may perform ``action``; the local :data:`OPERATOR` may do everything.

    Raises
    ------
    ValueError
        For an action that is not in :data:`PERMISSIONS`, for every role, the operator's too:
        a misspelt action is a bug in the caller, never a permission.
    """
    if action not in PERMISSIONS:
        raise ValueError(f"Unknown action {action!r}: not in the permission table.")
    return role == OPERATOR or role in PERMISSIONS[action]


def require(user: str | None, role: str | None, action: str) -> None:
    """Raise PermissionDenied unless ``role`` may perform ``action``.

    Raises
    ------
    PermissionDenied
        If there is no acting user (``user`` or ``role`` None), or :func:`allowed` says no;
        the message names the roles that may.
    """
    if user is None or role is None:
        raise PermissionDenied(
            f"'{action}' needs a signed-in user: pass user= to wb.connect() or set WORKBENCH_USER."
        )
    if not allowed(role, action):
        who = ", ".join(sorted(PERMISSIONS[action])) or "none (only the local operator: the workbench CLI)"
        raise PermissionDenied(f"User {user!r} ({role}) may not {action.replace('_', ' ')}; allowed roles: {who}.")


#: Dashboard page key -> the action a role needs to open it, in navigation order
#: (ARCHITECTURE.md, "Roles"). The pages check it again when opened directly.
PAGES: dict[str, str] = {
    "home": "view",
    "experiments": "view",
    "compare": "view",
    "models": "view",
    "explanations": "view",
    "fairness": "view",
    "drift": "view",
    "approvals": "view",
    "reports": "reports",
    "audit": "audit_view",
    "users": "manage_users",
    "tokens": "view",  # everyone makes and revokes their own API tokens
}


def pages_for(role: str) -> list[str]:
    """The page keys ``role`` may open, in navigation order.

    >>> pages_for("reviewer")
    ['home', 'experiments', 'compare', 'models', 'explanations', 'fairness', 'drift', 'approvals', 'audit', 'tokens']
    """
    return [page for page, action in PAGES.items() if allowed(role, action)]
