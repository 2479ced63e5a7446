"""The store's tables, as SQLModel classes: the types are the schema and its documentation.

Portable on purpose (DuckDB and PostgreSQL): integer keys come from explicit sequences
(duckdb_engine has no SERIAL), times are timezone-aware UTC, and there are no
``ON DELETE CASCADE`` clauses (DuckDB rejects them). High-volume rows (metric points)
live in a plain table without a key and are appended as Arrow batches (COPY on
PostgreSQL), not through the ORM. Secondary indexes that only PostgreSQL needs are
``pg_index``: DuckDB scans columns with zone maps, and an index there only slows appends.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

#: Bumped whenever a table changes; a store written by a newer version is refused, an
#: older one is migrated on open (see MIGRATIONS in store/connection.py).
#: 1: tracking, registry, users, audit. 2: evidence. 3: prediction logs, monitor policies, alerts.
#: 4: the audit head; promotion requests, decisions, comments, gate policies, stage changes, rollouts.
#: 5: report schedules and their runs, model card text. 6: column marks of data sets.
#: 7: store_info.artifact_root (where a migrated store's files are); PostgreSQL indexes.
#: 8: issue 15 (trust and data defects): the columns its fixes add (all nullable, added in place).
#: 9: JSON columns that are not hashed become typed JSON (DuckDB JSON, PostgreSQL jsonb), in place.
#: 10: API tokens (the server, issue 17). 11: dashboard sessions that survive a reload.
SCHEMA_VERSION = 11



# -- the vocabularies of status and kind columns: one place for each set of values ----------------
class RunStatus(StrEnum):
    """A run's ``status``: RUNNING until it ends, then FINISHED or FAILED."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


class Stage(StrEnum):
    """A model version's ``stage``; ``NONE`` is the string "None" (no stage yet)."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


class EvidenceKind(StrEnum):
    """What a piece of evidence is."""

    EXPLANATION = "explanation"
    FAIRNESS = "fairness"
    DRIFT = "drift"


class Verdict(StrEnum):
    """A policy's verdict on evidence: pass, fail, or review (the policy could not decide)."""

    PASS = "pass"
    FAIL = "fail"
    REVIEW = "review"


class BatchKind(StrEnum):
    """A logged batch: predictions, labels that arrived later, or the reference monitoring compares with."""

    PREDICTIONS = "predictions"
    LABELS = "labels"
    REFERENCE = "reference"


class RequestStatus(StrEnum):
    """A promotion request's ``status``."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ReportKind(StrEnum):
    """The documents workbench writes."""

    MODEL_CARD = "model-card"
    VALIDATION = "validation"
    AUDIT = "audit"


class JobStatus(StrEnum):
    """A scheduled report run's or a retraining command's state (``pending``: commands only)."""

    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


def _enum(values: type[StrEnum], *, nullable: bool = False) -> sa.Column:
    """A column holding one of ``values``: text in the file (no DDL of its own, so stores of every
    schema version read the same), checked on every ORM write and read."""
    return sa.Column(sa.Enum(values, native_enum=False, create_constraint=False, length=32, validate_strings=True,
                             values_callable=lambda e: [m.value for m in e]), nullable=nullable)


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime, as every stored time is."""
    return datetime.now(timezone.utc)


#: A JSON value: DuckDB's JSON, PostgreSQL's jsonb; Python reads and writes dicts and lists, written
#: as canonical JSON (the engine's serializer) and read back with sorted keys on both backends.
#: Text that is hashed (the audit payload, a request's evidence snapshot and gates) stays canonical
#: text, and so does a data set's columns (their order matters): jsonb would reorder the keys.
JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _json(nullable: bool = False) -> sa.Column:
    return sa.Column(JSON, nullable=nullable)


def _ts(nullable: bool = False) -> sa.Column:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


def _id(seq: str) -> sa.Column:
    return sa.Column(sa.Integer, sa.Sequence(seq), primary_key=True)


def pg_index(name: str, *columns: str, include: tuple[str, ...] = ()) -> sa.Index:
    """An index created on PostgreSQL only (a row store needs it; DuckDB does not);
    ``include`` columns make it covering, so reads need no heap fetch."""
    return sa.Index(name, *columns, postgresql_include=list(include)).ddl_if(dialect="postgresql")


class StoreInfo(SQLModel, table=True):
    """One row: what wrote this store, so a newer store is refused by older code."""

    __tablename__ = "store_info"
    id: int = Field(default=1, primary_key=True)
    schema_version: int
    created_at: datetime = Field(sa_column=_ts())
    created_with: str
    #: The artifact folder, when it is not beside the store file (a store migrated to
    #: PostgreSQL keeps using its files where they are). WORKBENCH_ARTIFACTS overrides it.
    artifact_root: str | None = None


class User(SQLModel, table=True):
    """One account: its role (one of ``workbench.people.roles.ROLES``) and sign-in state.

    ``password_hash`` is an argon2 hash, or None for an account that cannot sign in to the
    dashboard. ``failed_logins`` counts consecutive failed password sign-ins; ``locked_until``
    is set once they reach ``auth.MAX_FAILED``. A disabled account can neither sign in nor
    open a workspace.
    """

    __tablename__ = "users"
    id: int | None = Field(default=None, sa_column=_id("users_id_seq"))
    name: str = Field(sa_column=sa.Column(sa.String, unique=True, nullable=False))
    role: str
    password_hash: str | None = None
    disabled: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(sa_column=_ts())
    #: The client addresses (as workbench.people.auth keys them) of the last successful
    #: password sign-ins, newest first: a locked account still accepts its password from these.
    known_addresses: list | None = Field(default=None, sa_column=_json(nullable=True))


class ApiToken(SQLModel, table=True):
    """A personal access token for the server's API: only its sha256 is kept. ``operations``
    limits it to some operations (None: whatever its user's role may do; never more)."""

    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, sa_column=_id("api_tokens_id_seq"))
    sha256: str = Field(sa_column=sa.Column(sa.String, unique=True, nullable=False))
    user_name: str = Field(index=True)
    name: str  # the owner's label, e.g. "ci" or "laptop"
    operations: list | None = Field(default=None, sa_column=_json(nullable=True))
    created_by: str
    created_at: datetime = Field(sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    last_used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_by: str | None = None


class DashboardSession(SQLModel, table=True):
    """A dashboard sign-in that outlives the browser tab's websocket: the browser holds the
    secret in an HttpOnly cookie, the store only its sha256. Made with a one-time code (30 s)
    that the browser trades for the cookie at ``/api/session/open``; ended by sign-out, expiry,
    or the account being disabled."""

    __tablename__ = "dashboard_sessions"
    id: int | None = Field(default=None, sa_column=_id("dashboard_sessions_id_seq"))
    user_name: str = Field(index=True)
    method: str  # password or oidc
    address: str | None = None  # the client key it was opened from
    signed_in_at: datetime = Field(sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    code_sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String, unique=True, nullable=True))
    code_expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    secret_sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String, unique=True, nullable=True))


class SignInAddress(SQLModel, table=True):
    """Failed password sign-ins per client address (workbench.people.auth): five within the window
    block the address, not the accounts it tried, so nobody can lock out someone else."""

    __tablename__ = "sign_in_addresses"
    address: str = Field(primary_key=True)  # an IPv4 address, an IPv6 /64, or "local"
    failures: int
    window_start: datetime = Field(sa_column=_ts())
    blocked_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Experiment(SQLModel, table=True):
    """A named group of runs. Never deleted, so a process may cache name -> id."""

    __tablename__ = "experiments"
    id: int | None = Field(default=None, sa_column=_id("experiments_id_seq"))
    name: str = Field(sa_column=sa.Column(sa.String, unique=True, nullable=False))
    description: str | None = None
    created_by: str
    created_at: datetime = Field(sa_column=_ts())


class Run(SQLModel, table=True):
    """One tracking run, in an experiment.

    ``status`` is RUNNING until the run ends, then FINISHED or FAILED (``error`` says why).
    ``host`` and ``pid`` name the logging process: a run it left RUNNING when it died is set
    FAILED (``KILLED``) when a process on that host next opens the store. Rows are written by
    the writer's run batches, not through the ORM.
    """

    __tablename__ = "runs"
    run_id: str = Field(primary_key=True)  # uuid4 hex, made by the client: no round trip
    experiment_id: int = Field(index=True)
    name: str
    status: RunStatus = Field(sa_column=_enum(RunStatus))
    user_name: str
    start_time: datetime = Field(sa_column=_ts())
    end_time: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    parent_run_id: str | None = None
    git_commit: str | None = None
    source: str | None = None
    error: str | None = None
    # The logging process, so a run its dead process left RUNNING is found at the next open.
    host: str | None = None
    pid: int | None = None


class Param(SQLModel, table=True):
    """One parameter of a run, as text. Written once: a param never changes its value."""

    __tablename__ = "params"
    run_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: str


class Tag(SQLModel, table=True):
    """One tag of a run, as text. Unlike a param, a tag logged again is overwritten."""

    __tablename__ = "tags"
    run_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: str


#: Every metric point; appended in Arrow batches. No key: (run, key, step) may repeat.
metrics_table = sa.Table(
    "metrics",
    SQLModel.metadata,
    sa.Column("run_id", sa.String, nullable=False),
    sa.Column("key", sa.String, nullable=False),
    sa.Column("value", sa.Double, nullable=False),  # sa.Float is 32-bit FLOAT in DuckDB
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    pg_index("ix_metrics_run_key_step", "run_id", "key", "step", include=("value",)),  # curves of compared runs
)


class LatestMetric(SQLModel, table=True):
    """Per run and key: the latest value (highest step, then time), min, max and count.

    Kept up to date at each flush so searching 100k runs never scans the points.
    """

    __tablename__ = "latest_metrics"
    run_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    step: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    ts: datetime = Field(sa_column=_ts())
    min_value: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    max_value: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    n: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class Dataset(SQLModel, table=True):
    """A logged data set: its fingerprint, not its rows. Unique by (name, digest), so the same
    content logged again under the same name is the same row. ``columns_json`` is JSON text, not typed
    JSON: its keys are in the data set's column order, which PostgreSQL's jsonb would not keep."""

    __tablename__ = "datasets"
    __table_args__ = (sa.UniqueConstraint("name", "digest"),)
    id: int | None = Field(default=None, sa_column=_id("datasets_id_seq"))
    name: str
    digest: str  # sha256 of the content (see workbench.datasets.fingerprint)
    columns_json: str  # {column: dtype}, in column order
    n_rows: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    n_cols: int
    source: str | None = None
    created_by: str
    created_at: datetime = Field(sa_column=_ts())


class RunDataset(SQLModel, table=True):
    """That a run used a data set, and in which role; a data set may serve a run in several."""

    __tablename__ = "run_datasets"
    run_id: str = Field(primary_key=True)
    dataset_id: int = Field(primary_key=True)
    role: str = Field(primary_key=True)  # train, test, validation, reference, ...


class ColumnMark(SQLModel, table=True):
    """How a column of a logged data set is classified, and who said so.

    ``mark``: identifying (names a person: pseudonymised before it is stored), sensitive (a
    protected attribute: shown only in aggregate) or none (looked at, and cleared).
    ``origin``: detected (the detector's proposal, not yet confirmed), confirmed (a person
    decided), inherited (carried from a parent data set through lineage).
    """

    __tablename__ = "column_marks"
    dataset_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    column_name: str = Field(sa_column=sa.Column(sa.String, primary_key=True))  # "column" is reserved in SQL
    mark: str
    origin: str
    reason: str | None = None
    set_by: str
    set_at: datetime = Field(sa_column=_ts())


class DatasetLineage(SQLModel, table=True):
    """One lineage link: data set ``child_id`` was derived from ``parent_id`` (its column marks
    are inherited along it)."""

    __tablename__ = "dataset_lineage"
    child_id: int = Field(primary_key=True)
    parent_id: int = Field(primary_key=True)


class Artifact(SQLModel, table=True):
    """A file a run logged, under a name unique within the run; ``sha256`` names its content in
    the artifact folder (:mod:`workbench.store.artifacts`). A name keeps its first content."""

    __tablename__ = "artifacts"
    run_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    sha256: str
    size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=_ts())


class RegisteredModel(SQLModel, table=True):
    """A registered model and the fields people edit. ``risk_tier`` (low, medium, high) decides
    its approval gates and how many sign-offs a promotion needs."""

    __tablename__ = "registered_models"
    id: int | None = Field(default=None, sa_column=_id("registered_models_id_seq"))
    name: str = Field(sa_column=sa.Column(sa.String, unique=True, nullable=False))
    owner_team: str | None = None
    use_case: str | None = None
    risk_tier: str = "medium"  # low, medium, high
    description: str | None = None
    created_by: str
    created_at: datetime = Field(sa_column=_ts())


class ModelVersion(SQLModel, table=True):
    """One version of a registered model, numbered from 1 per model.

    ``stage`` is None (the string), Staging, Production or Archived, and changes only through
    ``workbench.registry.models.transition_stage``. ``sha256`` names the model file (skops or
    pickle) in the artifact folder; it is checked against the audit trail before every load.
    """

    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("model_id", "version"),)
    id: int | None = Field(default=None, sa_column=_id("model_versions_id_seq"))
    model_id: int = Field(index=True)
    version: int
    run_id: str | None = None
    stage: Stage = Field(default=Stage.NONE, sa_column=_enum(Stage))
    sha256: str  # of the model file (skops by default), checked on every load
    size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    model_class: str
    description: str | None = None
    created_by: str
    created_at: datetime = Field(sa_column=_ts())
    stage_changed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ModelAlias(SQLModel, table=True):
    """A name for one version of a model. ``champion`` follows the Production version and
    ``challenger`` the canary's; both move only through governance, other aliases are free."""

    __tablename__ = "model_aliases"
    model_id: int = Field(primary_key=True)
    alias: str = Field(primary_key=True)
    version: int


class AuditEvent(SQLModel, table=True):
    """Append-only. ``hash = sha256(prev_hash + canonical event)`` chains every event."""

    __tablename__ = "audit_events"
    __table_args__ = (pg_index("ix_audit_events_entity", "entity_type", "entity_id"),)  # an entity's history
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    ts: datetime = Field(sa_column=_ts())
    actor: str
    role: str
    action: str
    entity_type: str
    entity_id: str
    payload: str  # canonical JSON
    prev_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    """One row: the last event's seq and hash, moved in the same transaction as every append.
    A chain cut short at its end still verifies link by link; against its head it does not."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    hash: str


class Evidence(SQLModel, table=True):
    """A stored piece of evidence about one model version: an explanation, a fairness or
    drift report. Bulky parts (per-row SHAP values, per-group tables) are Parquet files in
    the artifact folder, named by their sha256; the summary and verdict live here."""

    __tablename__ = "evidence"
    id: int | None = Field(default=None, sa_column=_id("evidence_id_seq"))
    model_id: int = Field(index=True)
    version: int
    kind: EvidenceKind = Field(sa_column=_enum(EvidenceKind))
    summary: dict = Field(sa_column=_json())
    artifact_sha256: str | None = None
    verdict: Verdict | None = Field(default=None, sa_column=_enum(Verdict, nullable=True))  # None: no policy applies
    policy: dict | None = Field(default=None, sa_column=_json(nullable=True))  # the thresholds the verdict used
    created_by: str
    created_at: datetime = Field(sa_column=_ts())


class PredictionBatch(SQLModel, table=True):
    """One logged batch of a version's predictions, or of labels that arrived later: a
    Parquet file in the artifact folder, named by its sha256 (checked before every read)."""

    __tablename__ = "prediction_batches"
    id: int | None = Field(default=None, sa_column=_id("prediction_batch_id_seq"))
    model_id: int = Field(index=True)
    version: int
    kind: BatchKind = Field(sa_column=_enum(BatchKind))
    sha256: str
    rows: int
    first_ts: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_ts: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_by: str
    created_at: datetime = Field(sa_column=_ts())


class MonitorPolicy(SQLModel, table=True):
    """A model's monitoring thresholds and the command an alert may run (no row: defaults)."""

    __tablename__ = "monitor_policies"
    model_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    thresholds: dict = Field(sa_column=_json())
    retrain_command: list | None = Field(default=None, sa_column=_json(nullable=True))  # arguments, run without a shell
    updated_by: str
    updated_at: datetime = Field(sa_column=_ts())


class Alert(SQLModel, table=True):
    """A monitoring window that breached a threshold; at most one per version, window and metric."""

    __tablename__ = "alerts"
    id: int | None = Field(default=None, sa_column=_id("alert_id_seq"))
    model_id: int = Field(index=True)
    version: int
    window_start: datetime = Field(sa_column=_ts())
    window_end: datetime = Field(sa_column=_ts())
    metric: str
    value: float | None = Field(default=None, sa_column=sa.Column(sa.Double, nullable=True))
    threshold: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    rule: str  # e.g. "drift_share >= 0.5"
    command: list | None = Field(default=None, sa_column=_json(nullable=True))  # the retraining command run
    exit_code: int | None = None
    output: str | None = None  # its output, the tail (leads and admins read it; others get None)
    #: The retraining command's state: None (no command), pending (the scheduler will run it),
    #: running (claimed by ``command_runner``, host:pid), ok, failed. Schema 8 (issue 15).
    command_status: JobStatus | None = Field(default=None, sa_column=_enum(JobStatus, nullable=True))
    command_runner: str | None = None
    command_started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    command_finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_by: str
    created_at: datetime = Field(sa_column=_ts())


class PromotionRequest(SQLModel, table=True):
    """A request to move a version to a stage, bound to the evidence it was made on (by sha256)."""

    __tablename__ = "promotion_requests"
    id: int | None = Field(default=None, sa_column=_id("promotion_requests_id_seq"))
    model_id: int = Field(index=True)
    version: int
    from_stage: Stage = Field(sa_column=_enum(Stage))
    to_stage: Stage = Field(sa_column=_enum(Stage))  # Staging, Production
    justification: str
    status: RequestStatus = Field(sa_column=_enum(RequestStatus))
    evidence_sha256: str  # of the canonical JSON snapshot below
    evidence: str  # canonical JSON: metrics, explanation, fairness, drift, model card fields
    gates: str  # canonical JSON: each gate's result when the snapshot was taken
    requested_by: str
    requested_at: datetime = Field(sa_column=_ts())
    decided_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    row_version: int = 1  # bumped by every change: two deciders at once, exactly one wins
    # the strictest risk tier the model had while the request was pending (8): lowering the
    # tier never lowers what a pending request needs; None in requests made before version 8
    strictest_tier: str | None = None


class RequestDecision(SQLModel, table=True):
    """One sign-off or rejection of a request (high risk needs two sign-offs)."""

    __tablename__ = "request_decisions"
    id: int | None = Field(default=None, sa_column=_id("request_decisions_id_seq"))
    request_id: int = Field(index=True)
    actor: str
    role: str
    approve: bool
    comment: str
    override_reason: str | None = None  # set when a lead approved past a failing gate
    evidence_sha256: str  # what the decider saw
    created_at: datetime = Field(sa_column=_ts())


class RequestComment(SQLModel, table=True):
    """A comment on a promotion request, with the commenter's role when they wrote it."""

    __tablename__ = "request_comments"
    id: int | None = Field(default=None, sa_column=_id("request_comments_id_seq"))
    request_id: int = Field(index=True)
    actor: str
    role: str
    text: str
    created_at: datetime = Field(sa_column=_ts())


class GatePolicy(SQLModel, table=True):
    """The approval gates of one risk tier, as edited by an admin (no row: the defaults)."""

    __tablename__ = "gate_policies"
    risk_tier: str = Field(primary_key=True)
    gates: dict = Field(sa_column=_json())
    updated_by: str
    updated_at: datetime = Field(sa_column=_ts())


class StageChange(SQLModel, table=True):
    """Every stage change of a version: the history a reviewer reads, with the request or reason."""

    __tablename__ = "stage_changes"
    id: int | None = Field(default=None, sa_column=_id("stage_changes_id_seq"))
    model_id: int = Field(index=True)
    version: int
    from_stage: Stage = Field(sa_column=_enum(Stage))
    to_stage: Stage = Field(sa_column=_enum(Stage))
    actor: str
    request_id: int | None = None
    reason: str | None = None
    created_at: datetime = Field(sa_column=_ts())
    # on both rows a rollback writes (8): the version it rolled back, which no rollback returns to
    rolled_back_version: int | None = None


class Rollout(SQLModel, table=True):
    """A staged (canary) rollout: the challenger version and its share of traffic."""

    __tablename__ = "rollouts"
    model_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    champion_version: int
    challenger_version: int
    traffic_share: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    set_by: str
    set_at: datetime = Field(sa_column=_ts())


class ReportSchedule(SQLModel, table=True):
    """A report exported on a cron schedule into a folder."""

    __tablename__ = "report_schedules"
    id: int | None = Field(default=None, sa_column=_id("report_schedules_id_seq"))
    name: str = Field(sa_column=sa.Column(sa.String, unique=True, nullable=False))
    cron: str
    kind: ReportKind = Field(sa_column=_enum(ReportKind))
    model: str | None = None
    version: int | None = None
    format: str
    out_dir: str
    created_by: str
    created_at: datetime = Field(sa_column=_ts())
    last_due_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))  # the last occurrence handled


class ReportRun(SQLModel, table=True):
    """One run of a schedule: for which due time, whether it worked, what it wrote."""

    __tablename__ = "report_runs"
    id: int | None = Field(default=None, sa_column=_id("report_runs_id_seq"))
    schedule_id: int = Field(index=True)
    due_at: datetime = Field(sa_column=_ts())
    missed: int = 0  # earlier occurrences folded into this run (the scheduler was not running)
    started_at: datetime = Field(sa_column=_ts())
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    status: JobStatus = Field(sa_column=_enum(JobStatus))  # running, ok, failed
    path: str | None = None
    sha256: str | None = None
    error: str | None = None
    runner: str  # host:pid of the process that ran it
    # the schedule's last_due_at before this run claimed it: handed back when the run fails or
    # is found interrupted (its process died), so the occurrence is tried again
    prev_due_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ModelCardText(SQLModel, table=True):
    """What a model's owner wrote for its card: intended use, out-of-scope use, limitations, ethics."""

    __tablename__ = "model_card_text"
    model_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    field: str = Field(sa_column=sa.Column(sa.String, primary_key=True))
    text: str
    updated_by: str
    updated_at: datetime = Field(sa_column=_ts())
