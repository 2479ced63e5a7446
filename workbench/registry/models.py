"""The model registry: registered models, their versions, stages and aliases.

A version's stage moves only through :func:`transition_stage`, which holds the rules:

- Production is entered only with an approval (an approved promotion request, or a lead's
  rollback in the governance flow); no public API moves a version there directly.
- Production is left the same way: a version in Production moves only when a newer one is
  approved into Production, when a request to move it to Staging is approved, or when a lead
  rolls it back. A data scientist may still move other versions between None and Staging and
  archive them.
- Archived is final outside a rollback: an archived version (superseded, rejected and retired,
  or rolled back) never silently comes back to None or Staging. Register the model again for a
  new version, or ask a lead to roll back to it.

Aliases: ``champion`` means the Production version and moves with the stage (no one sets it
by hand; ``get_model_version(name, "champion")`` is the Production version); ``challenger``
is the canary's version and is set only by a lead's rollout. Other aliases are free, but
never point at an archived version or at one whose last decided request was rejected.

Model files. Unpickling runs whatever code the file names, so a model file is only as
safe as its author. Models are saved with skops by default, which rebuilds objects without
running code and refuses types it was not told to trust; :func:`load` trusts classes from
scikit-learn, NumPy and SciPy (:data:`TRUSTED_PACKAGES`) and nothing else. A model skops
cannot save that way is refused at registration unless the caller opts in to pickle
(``format="pickle"``); loading a pickle needs ``allow_pickle=True``, i.e. trusting whoever
registered it. Either way the file's digest is checked first against the one the audit
trail recorded at registration (:func:`recorded_file`), not only the table's.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import freetext
from ..errors import IntegrityError, NotFoundError, PermissionDenied, ValidationError
from ..store import artifacts, audit, schema
from ..store.audit import Event

STAGES = tuple(s.value for s in schema.Stage)  # ("None", "Staging", "Production", "Archived")
RISK_TIERS = ("low", "medium", "high")  # from the least to the most strict

#: The alias that means "the version in Production"; it moves with the stage, never by hand.
PRODUCTION_ALIAS = "champion"
#: Aliases that say what serves traffic, and the only way each one moves.
GOVERNED_ALIASES = {
    PRODUCTION_ALIAS: "it names the Production version and moves only with it (an approved promotion "
                      "or a lead's rollback)",
    "challenger": "it names the canary's version and is set only by a lead's rollout (ws.set_rollout)",
}
#: Model fields people edit, with the name a refusal uses.
MODEL_FIELDS = {"owner_team": "Owner team", "use_case": "Use case", "risk_tier": "Risk tier",
                "description": "Description"}


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as the registry holds it."""

    name: str
    version: int
    run_id: str | None
    stage: str
    sha256: str
    model_class: str
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def run(self) -> str | None:
        """The id of the run that produced this version."""
        return self.run_id

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.stage})"


def check_risk_tier(tier: str) -> str:
    """``tier`` unchanged, if it is one of :data:`RISK_TIERS`.

    Raises
    ------
    ValidationError
        If it is not.
    """
    if tier not in RISK_TIERS:
        raise ValidationError(f"Risk tier {tier!r} is not one of {', '.join(RISK_TIERS)}.")
    return tier


def check_model_text(fields: dict) -> dict:
    """``fields`` unchanged, after the free-text limit on the text ones (owner team, use case, description)."""
    for key, value in fields.items():
        if key != "risk_tier" and key in MODEL_FIELDS:
            freetext.check_text(f"Model {MODEL_FIELDS[key].lower()}", value)
    return fields


def check_model_fields(fields: dict) -> dict:
    """``fields`` unchanged, once each is an editable field with a valid value (tier, text length).

    Raises
    ------
    ValidationError
        For a field not in :data:`MODEL_FIELDS`, an unknown risk tier, or text over the limit.
    """
    unknown = set(fields) - set(MODEL_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown model field(s) {sorted(unknown)}; editable: {sorted(MODEL_FIELDS)}.")
    if "risk_tier" in fields:
        check_risk_tier(fields["risk_tier"])
    return check_model_text(fields)


FORMATS = ("skops", "pickle")
#: Packages whose classes a skops model file may hold (their constructors run no user code).
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")


def check_format(fmt: str) -> str:
    """``fmt`` unchanged, if it is one of :data:`FORMATS` (``"skops"``, ``"pickle"``).

    Raises
    ------
    ValidationError
        If it is not.
    """
    if fmt not in FORMATS:
        raise ValidationError(f"Model format {fmt!r} is not one of {', '.join(FORMATS)}.")
    return fmt


def _untrusted(data: bytes) -> list[str]:
    """The types in a skops file that neither skops nor :data:`TRUSTED_PACKAGES` vouch for."""
    import importlib

    import skops.io as sio

    left = []
    for name in sio.get_untrusted_types(data=data):
        module, _, attr = name.rpartition(".")
        obj = None
        if module.split(".")[0] in TRUSTED_PACKAGES:  # importing these runs only their own code
            try:
                obj = getattr(importlib.import_module(module), attr, None)
            except ImportError:
                obj = None
        if not isinstance(obj, type):  # classes only: a function could be called while loading
            left.append(name)
    return left


def serialize(model: Any, fmt: str = "skops") -> bytes:
    """A model's file: skops (no code runs when it is loaded), or pickle when asked for.

    Parameters
    ----------
    model : object
        The fitted model.
    fmt : {"skops", "pickle"}
        ``"skops"`` refuses a model that holds types other than skops' own and classes from
        :data:`TRUSTED_PACKAGES`.

    Returns
    -------
    bytes
        The file's content.

    Raises
    ------
    ValidationError
        For an unknown ``fmt``, or a model the format cannot save (skops: one holding
        untrusted types); the message says to pass ``format='pickle'`` when skops fails.
    """
    check_format(fmt)
    what = type(model).__name__
    if fmt == "pickle":
        try:
            return pickle.dumps(model, protocol=5)
        except Exception as exc:  # lambdas, open files ...: say which object
            raise ValidationError(f"Cannot save model of type {what}: {exc}") from None
    import skops.io as sio

    try:
        data = sio.dumps(model)
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds; the caller needs the choice
        raise ValidationError(f"Cannot save model of type {what} with skops ({type(exc).__name__}: {exc}). "
                              "Register it with format='pickle' if you accept that loading it runs code.") from None
    untrusted = _untrusted(data)
    if untrusted:
        raise ValidationError(
            f"Model of type {what} holds types that skops would have to trust to load it: {untrusted[:8]} (trusted: "
            f"classes from {', '.join(TRUSTED_PACKAGES)}). Register it with format='pickle' if you accept that "
            "loading it runs its code (load_model then needs allow_pickle=True).")
    return data


def recorded_file(conn, name: str, version: int, table_sha256: str) -> tuple[str, str]:
    """(digest, format) of a version's model file as the audit trail recorded at registration.

    The table's digest must equal the chain's: a file swapped together with its digest in
    the table is refused here. Versions registered before formats existed are pickles.

    Raises
    ------
    IntegrityError
        If the audit trail has no intact ``model_version.create`` event for the version, or its
        digest differs from ``table_sha256``.
    """
    recorded = audit.recorded_payload(conn, "model_version.create", "model_version", f"{name}/{version}")
    if recorded.get("sha256") != table_sha256:
        raise IntegrityError(
            f"{name} v{version}: the registry's model digest ({str(table_sha256)[:12]}...) is not the one recorded in "
            f"the audit trail at registration ({str(recorded.get('sha256'))[:12]}...): the table was changed; refusing "
            "to load the model.")
    return recorded["sha256"], recorded.get("format", "pickle")


def load(root, digest: str, fmt: str, *, allow_pickle: bool = False, label: str = "this model") -> Any:
    """Load a model file after its bytes match ``digest``; a pickle only with ``allow_pickle``.

    Parameters
    ----------
    root : Path
        The artifact folder.
    digest : str
        The file's sha256, as :func:`recorded_file` returns it.
    fmt : str
        ``"pickle"``, or any other value for skops.
    allow_pickle : bool, default False
        Trust whoever registered a pickle: loading it runs its code.
    label : str
        How messages name the model (e.g. ``"churn v3"``).

    Returns
    -------
    object
        The model.

    Raises
    ------
    PermissionDenied
        For a pickle without ``allow_pickle``, before the file is read.
    IntegrityError
        If the file does not match ``digest``, or a skops file holds untrusted types.
    NotFoundError
        If the file is missing from the artifact folder.
    KeyUnavailableError
        If the file is encrypted and the configured artifact key (if any) cannot open it.
    """
    check_loadable(fmt, allow_pickle, label)
    return load_bytes(artifacts.get_bytes(root, digest), fmt, allow_pickle=allow_pickle, label=label)


def check_loadable(fmt: str, allow_pickle: bool, label: str) -> None:
    """Refuse a pickle without ``allow_pickle`` (before any byte is read or sent).

    Raises
    ------
    PermissionDenied
        For ``fmt == "pickle"`` without ``allow_pickle``.
    """
    if fmt == "pickle" and not allow_pickle:
        raise PermissionDenied(
            f"{label} was saved as a pickle, and loading a pickle runs whatever code it holds. Pass allow_pickle=True "
            "only if you trust whoever registered it (see the version's created_by).")


def load_bytes(data: bytes, fmt: str, *, allow_pickle: bool = False, label: str = "this model") -> Any:
    """A model from its file's bytes (already checked against its digest), by the rules of :func:`load`.

    Raises
    ------
    PermissionDenied
        For a pickle without ``allow_pickle``.
    IntegrityError
        If a skops file holds untrusted types.
    """
    check_loadable(fmt, allow_pickle, label)
    if fmt == "pickle":
        return pickle.load(io.BytesIO(data))
    import skops.io as sio

    untrusted = _untrusted(data)
    if untrusted:
        raise IntegrityError(f"{label}'s file holds types outside the trusted ones ({untrusted[:8]}); refusing to "
                             "load it.")
    return sio.loads(data, trusted=sio.get_untrusted_types(data=data))


def model_row(conn, name: str):
    """The registered model's row (id, name, fields), or NotFoundError."""
    t = schema.RegisteredModel.__table__
    row = conn.execute(sa.select(t).where(t.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError(f"No registered model named {name!r}.")
    return row


def register(conn, actor: str, role: str, *, name: str, digest: str, size: int, model_class: str,
             run_id: str | None, owner_team=None, use_case=None, risk_tier=None, description=None,
             fmt: str = "skops"):
    """Write op: create the registered model if new, then its next version (stage None).

    ``owner_team``, ``use_case``, ``risk_tier`` (default medium) and ``description`` are
    used only when the model is created; for an existing model they are ignored. The model
    file must already be stored under ``digest`` (``name`` is not checked here).

    Returns
    -------
    tuple
        ``(ModelVersion, events)``: ``model.create`` when the model is new, then
        ``model_version.create`` (which records digest and format for :func:`recorded_file`).

    Raises
    ------
    ValidationError
        For an unknown risk tier or format, or model text over the limit.
    """
    t = schema.RegisteredModel.__table__
    events = []
    row = conn.execute(sa.select(t.c.id).where(t.c.name == name)).first()
    if row is None:
        fields = check_model_text(dict(owner_team=owner_team, use_case=use_case,
                                       risk_tier=check_risk_tier(risk_tier or "medium"), description=description))
        model_id = conn.execute(sa.insert(t).values(name=name, created_by=actor, created_at=schema.utcnow(), **fields)
                                .returning(t.c.id)).scalar_one()
        events.append(Event(actor, role, "model.create", "model", name, fields))
    else:
        model_id = row[0]
    v = schema.ModelVersion.__table__
    version = (conn.execute(sa.select(sa.func.max(v.c.version)).where(v.c.model_id == model_id)).scalar() or 0) + 1
    now = schema.utcnow()
    conn.execute(sa.insert(v).values(model_id=model_id, version=version, run_id=run_id, stage="None", sha256=digest,
                                     size=size, model_class=model_class, created_by=actor, created_at=now))
    events.append(Event(actor, role, "model_version.create", "model_version", f"{name}/{version}",
                        {"run_id": run_id, "sha256": digest, "size": size, "model_class": model_class,
                         "format": check_format(fmt)}))
    mv = ModelVersion(name, version, run_id, "None", digest, model_class, actor, now)
    return mv, events


def transition_stage(conn, actor: str, role: str, name: str, version: int, stage: str, *,
                     approval: str | None = None, reason: str | None = None, rolled_back: int | None = None):
    """Write op: the only code that changes a version's stage (the rules are in the module's docstring).

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The writer's transaction.
    actor, role : str
        Who moves the version.
    name : str
        The registered model.
    version : int
        The version that moves.
    stage : str
        One of :data:`STAGES`.
    approval : str, optional
        The id of the approved promotion request (or ``"rollback by <lead>"``): needed to enter
        Production, to leave it, and to bring an archived version back (to Production only).
    reason : str, optional
        Why, as the stage history shows it (free text, limited).
    rolled_back : int, optional
        For a rollback: the version rolled back. Recorded on both stage changes so that no later
        rollback returns to it.

    Returns
    -------
    tuple
        ``(stage, events)``: the version's new stage and the audit events of every change made
        (the version archived to make room, the alias ``champion`` following Production).

    Raises
    ------
    ValidationError
        For an unknown stage, a reason over the text limit, or an archived version moved
        anywhere but Production.
    PermissionDenied
        For entering or leaving Production without ``approval``.
    NotFoundError
        For an unknown model or version.
    """
    if stage not in STAGES:
        raise ValidationError(f"Stage {stage!r} is not one of {', '.join(STAGES)}.")
    if stage == "Production" and not approval:
        raise PermissionDenied(
            "A version reaches Production only through an approved promotion request, never directly."
        )
    freetext.check_text("Stage change reason", reason)
    model = model_row(conn, name)
    v = schema.ModelVersion.__table__
    current = conn.execute(sa.select(v.c.stage).where(v.c.model_id == model["id"], v.c.version == version)).first()
    if current is None:
        raise NotFoundError(f"Model {name!r} has no version {version}.")
    if current[0] == "Production" and stage != "Production" and not approval:
        # leaving Production changes what serves, exactly like entering it: the same governance
        raise PermissionDenied(
            f"{name} v{version} is in Production: it leaves Production only when another version is approved "
            "into Production, when a promotion request moving it to Staging is approved, or through a lead's "
            "rollback, never directly.")
    if current[0] == "Archived" and stage != "Archived" and not (stage == "Production" and approval):
        raise ValidationError(
            f"{name} v{version} is archived, and an archived version does not come back to {stage}: only a lead's "
            "rollback returns one (to Production). Register the model again for a new version.")
    now = schema.utcnow()
    events = []
    extra = {} if rolled_back is None else {"rolled_back": rolled_back}
    if stage == "Production":
        for (old,) in conn.execute(sa.select(v.c.version).where(v.c.model_id == model["id"], v.c.stage == "Production",
                                                                v.c.version != version)).all():
            conn.execute(sa.update(v).where(v.c.model_id == model["id"], v.c.version == old)
                         .values(stage="Archived", stage_changed_at=now))
            because = f"v{version} promoted" if rolled_back is None else f"rolled back to v{version}"
            _record_change(conn, model["id"], old, "Production", "Archived", actor, approval, because, now, rolled_back)
            events.append(Event(actor, role, "model_version.stage", "model_version", f"{name}/{old}",
                                {"from": "Production", "to": "Archived", "because": because, **extra}))
    conn.execute(sa.update(v).where(v.c.model_id == model["id"], v.c.version == version)
                 .values(stage=stage, stage_changed_at=now))
    _record_change(conn, model["id"], version, current[0], stage, actor, approval, reason, now, rolled_back)
    events.append(Event(actor, role, "model_version.stage", "model_version", f"{name}/{version}",
                        {"from": current[0], "to": stage, "approval": approval, "reason": reason, **extra}))
    if "Production" in (stage, current[0]):
        events += _follow_production(conn, actor, role, model["id"], name, version if stage == "Production" else None)
    return stage, events


def _follow_production(conn, actor: str, role: str, model_id: int, name: str, version: int | None) -> list[Event]:
    """Point the Production alias at ``version`` (None: remove it), with its event when it moves."""
    a = schema.ModelAlias.__table__
    now = conn.execute(sa.select(a.c.version).where(a.c.model_id == model_id, a.c.alias == PRODUCTION_ALIAS)).first()
    if (now[0] if now else None) == version:
        return []
    return move_alias(conn, actor, role, model_id, name, PRODUCTION_ALIAS, version)


def _record_change(conn, model_id: int, version: int, from_stage: str, to_stage: str, actor: str,
                   approval: str | None, reason: str | None, now, rolled_back: int | None = None) -> None:
    request_id = int(approval) if approval and str(approval).isdigit() else None
    note = reason if request_id is not None or not approval else f"{reason or ''} ({approval})".strip()
    conn.execute(sa.insert(schema.StageChange.__table__).values(
        model_id=model_id, version=version, from_stage=from_stage, to_stage=to_stage, actor=actor,
        request_id=request_id, reason=note, created_at=now, rolled_back_version=rolled_back))


STAGE_HISTORY_SQL = """
select m.name, c.version, c.from_stage, c.to_stage, c.actor, c.request_id, c.reason, c.rolled_back_version,
       c.created_at
from stage_changes c join registered_models m on m.id = c.model_id
where (cast(? as varchar) is null or m.name = ?) order by c.created_at desc, c.id desc
"""


def set_alias(conn, actor: str, role: str, name: str, alias: str, version: int | None):
    """Write op: point a free ``alias`` at ``version`` (or remove it when version is None).

    The aliases in :data:`GOVERNED_ALIASES` are refused here (their governed paths use
    :func:`move_alias`), and so is an archived version or one whose last decided promotion
    request was rejected: an alias is how code loads a model, and must not load those.

    Returns
    -------
    tuple
        ``(version, events)``: the ``model.alias`` event.

    Raises
    ------
    NotFoundError
        For an unknown model or version.
    PermissionDenied
        For an alias in :data:`GOVERNED_ALIASES`.
    ValidationError
        For an archived or rejected version.
    """
    model = model_row(conn, name)
    v = schema.ModelVersion.__table__
    stage = None
    if version is not None:
        stage = conn.execute(sa.select(v.c.stage).where(v.c.model_id == model["id"], v.c.version == version)).first()
        if stage is None:
            raise NotFoundError(f"Model {name!r} has no version {version}.")
    if alias in GOVERNED_ALIASES:
        raise PermissionDenied(f"Alias {alias!r} is not set by hand: {GOVERNED_ALIASES[alias]}.")
    if stage is not None and stage[0] == "Archived":
        raise ValidationError(f"{name} v{version} is archived: an alias does not point at an archived version.")
    if version is not None:
        r = schema.PromotionRequest.__table__
        last = conn.execute(sa.select(r.c.id, r.c.status).where(
            r.c.model_id == model["id"], r.c.version == version, r.c.status.in_(("approved", "rejected")))
            .order_by(r.c.id.desc()).limit(1)).first()
        if last is not None and last[1] == "rejected":
            raise ValidationError(f"{name} v{version} was rejected (request {last[0]}): an alias does not point at a "
                                  "rejected version.")
    return version, move_alias(conn, actor, role, model["id"], name, alias, version)


def move_alias(conn, actor: str, role: str, model_id: int, name: str, alias: str, version: int | None) -> list[Event]:
    """Point ``alias`` at ``version`` (None: remove it), unchecked: for the governed paths only
    (:func:`transition_stage` moving ``champion``, a lead's rollout moving ``challenger``) and for
    :func:`set_alias` once it has checked a free alias. Returns the ``model.alias`` event."""
    a = schema.ModelAlias.__table__
    conn.execute(sa.delete(a).where(a.c.model_id == model_id, a.c.alias == alias))
    if version is not None:
        conn.execute(sa.insert(a).values(model_id=model_id, alias=alias, version=version))
    return [Event(actor, role, "model.alias", "model", name, {"alias": alias, "version": version})]


def update_model(conn, actor: str, role: str, name: str, **fields):
    """Write op: change a model's fields; the event holds each changed field's ``from`` and ``to``.

    Only the field checks are here; who may change the risk tier, and what a tier change does
    to pending requests, is governance's (``governance.update_model`` calls this).

    Returns
    -------
    tuple
        ``(changes, events)``: ``{field: {"from": old, "to": new}}`` for the fields whose
        value changes (possibly empty; the ``model.update`` event is recorded either way).

    Raises
    ------
    ValidationError
        For a field that cannot be edited or a value that is not valid.
    NotFoundError
        For an unknown model.
    """
    check_model_fields(fields)
    model = model_row(conn, name)
    changes = {k: {"from": model[k], "to": val} for k, val in fields.items() if model[k] != val}
    if changes:
        t = schema.RegisteredModel.__table__
        conn.execute(sa.update(t).where(t.c.id == model["id"]).values(**{k: c["to"] for k, c in changes.items()}))
    return changes, [Event(actor, role, "model.update", "model", name, changes)]


MODELS_SQL = """
select m.name, m.owner_team, m.use_case, m.risk_tier, m.description,
       count(v.id) as n_versions, max(v.version) as latest_version,
       max(v.version) filter (where v.stage = 'Production') as production_version,
       array_agg(v.version order by v.version) filter (where v.stage = 'Staging') as staging_versions,
       m.created_by, m.created_at
from registered_models m left join model_versions v on v.model_id = m.id
group by m.id, m.name, m.owner_team, m.use_case, m.risk_tier, m.description, m.created_by, m.created_at
order by m.name
"""

VERSIONS_SQL = """
select m.name, v.version, v.stage,
       coalesce((select array_agg(a.alias order by a.alias) from model_aliases a
                 where a.model_id = m.id and a.version = v.version), cast(array[] as varchar[])) as aliases,
       v.run_id, r.name as run_name, v.model_class, v.sha256, v.size, v.created_by, v.created_at, v.stage_changed_at
from model_versions v join registered_models m on m.id = v.model_id
left join runs r on r.run_id = v.run_id
where (cast(? as varchar) is null or m.name = ?)
order by m.name, v.version desc
"""
