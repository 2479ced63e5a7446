"""The ``workbench`` command: init, demo, serve, users, tokens, models, audit, report, schedule,
scheduler, keys, artifacts, backup, recover, migrate.

Every command takes ``--store`` (default ``$WORKBENCH_STORE``, else
``data/workbench.duckdb``) and exits non-zero on any failure, printing a one-line reason. While
``workbench serve`` holds a DuckDB store, the commands that need it go through that server as
the local operator (who can read the server's claim beside the file); those that need the file
itself (backup, recover, migrate, keys) are refused with the server's address.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import WorkbenchError

app = typer.Typer(help="Workbench: track, register and govern machine-learning models.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
users_app = typer.Typer(help="Local accounts and their roles.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
report_app = typer.Typer(help="Model cards, validation packs and audit extracts.", no_args_is_help=True)
schedule_app = typer.Typer(help="Reports exported on a cron schedule.", no_args_is_help=True)
keys_app = typer.Typer(help="Keys for artifact encryption and pseudonymisation (kept outside the store).",
                       no_args_is_help=True)
artifacts_app = typer.Typer(help="The content-addressed artifact folder.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal access tokens for the server's API.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(models_app, name="models")
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")
app.add_typer(schedule_app, name="schedule")
app.add_typer(keys_app, name="keys")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(tokens_app, name="tokens")

StoreOpt = typer.Option(None, "--store", help="Store file or postgresql+psycopg:// URL (default: $WORKBENCH_STORE, "
                        "else data/workbench.duckdb).")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _operator(store):
    """The local operator's workspace: on the store itself, or, while a server holds the DuckDB
    file, through that server with the secret of its claim (readable by who could open the file)."""
    from .store import served
    from .store.connection import is_postgres, resolve_store, store_path
    from .workspace import operator_workspace

    location = resolve_store(store)
    if not is_postgres(str(location)):
        holder = served.holder(store_path(location).resolve())
        if holder is not None and holder.get("operator"):
            from .remote import RemoteWorkspace

            return RemoteWorkspace(holder["url"], holder["operator"])
    return operator_workspace(store)


@app.command()
def init(store: Optional[str] = StoreOpt) -> None:
    """Create an empty store (or check an existing one)."""
    ws = _operator(store)
    counts = ws.counts()
    typer.echo(f"Store ready: {ws.store.display if hasattr(ws, 'store') else 'served at ' + ws.url}")
    typer.echo(", ".join(f"{v} {k}" for k, v in counts.items()))
    if counts["users"] == 0:
        typer.echo("Next: workbench users add NAME --role data_scientist   (or: workbench demo)")


@app.command()
def demo(store: Optional[str] = StoreOpt, quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Seed a realistic demo: users for every role, credit-risk sweeps, registered models."""
    from .demo.seed import seed

    summary = seed(store, progress=not quiet)
    typer.echo(f"Demo store: {summary['store']}")
    typer.echo(f"{summary['runs']} runs in {summary['experiments']} experiments, {summary['versions']} model versions"
               + (" (already seeded: nothing changed)" if summary["already_seeded"] else ""))
    typer.echo("Demo accounts (user / password / role):")
    for name, password, role in summary["users"]:
        typer.echo(f"  {name:8} {password:16} {role}")


@app.command()
def serve(store: Optional[str] = StoreOpt, port: int = typer.Option(8501, "--port"),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
          tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", metavar="PATH", envvar="WORKBENCH_TLS_CERT",
                                                  help="PEM certificate (chain) to serve HTTPS; needs --tls-key."),
          tls_key: Optional[Path] = typer.Option(None, "--tls-key", metavar="PATH", envvar="WORKBENCH_TLS_KEY",
                                                 help="PEM private key (unencrypted) of --tls-cert."),
          scheduler: bool = typer.Option(False, "--scheduler", help="Also export due reports and run pending "
                                         "retraining commands, as `workbench scheduler` does."),
          poll: float = typer.Option(30.0, "--poll", help="With --scheduler: seconds between checks.")) -> None:
    """Start the server: the dashboard and the API (/api) on one port, holding the store while it runs;
    over HTTPS with --tls-cert and --tls-key."""
    import ssl

    if (tls_cert is None) != (tls_key is None):
        _fail("--tls-cert and --tls-key go together: give both, or neither.")
    tls = tls_cert is not None
    if tls:
        tls_cert, tls_key = tls_cert.resolve(), tls_key.resolve()
        for what, path in (("certificate", tls_cert), ("key", tls_key)):
            try:
                path.open("rb").close()
            except OSError as exc:
                _fail(f"cannot read the TLS {what} file {path}: {exc.strerror}")

        def no_passphrase():  # Streamlit cannot ask for one: refuse here rather than prompt on the terminal
            raise ValueError("the key is encrypted with a passphrase; serve needs an unencrypted key")

        # Load the pair as the server will, so a wrong or mismatched file fails now, not inside Streamlit.
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls_cert, tls_key, password=no_passphrase)
        except ValueError as exc:
            _fail(f"TLS key {tls_key}: {exc}")
        except ssl.SSLError as exc:
            reason = ("the key does not belong to the certificate" if exc.reason == "KEY_VALUES_MISMATCH"
                      else f"not a PEM certificate and its private key ({exc.reason or exc.strerror or exc})")
            _fail(f"TLS certificate {tls_cert} and key {tls_key} do not load as a pair: {reason}")

    from .workspace import operator_workspace

    ws = operator_workspace(store)  # fail here, clearly, on a bad store or one another server holds
    ws.close()
    entry = Path(__file__).resolve().parent.parent / "app" / "server.py"
    if not entry.exists():
        _fail(f"Dashboard files not found at {entry.parent}: install workbench from its source folder (pip install -e .).")
    url = f"{'https' if tls else 'http'}://{host}:{port}"
    # the resolved file path, or the URL; and where clients reach this server (named to anyone refused the file)
    env = dict(os.environ, WORKBENCH_STORE=ws.store.location, WORKBENCH_SERVER_URL=url,
               WORKBENCH_SCHEDULER_POLL=str(poll) if scheduler else "")
    if scheduler and poll <= 0:
        _fail("--poll must be a positive number of seconds.")
    cmd = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.port", str(port), "--server.address", host,
           "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
           # one theme for every page, wherever serve is started from
           "--theme.base", "light", "--theme.primaryColor", "#1f4e79"]
    if tls:
        # With sslCertFile set Streamlit serves HTTPS only and marks its cookies Secure; XSRF is
        # forced on so a config.toml cannot turn it off under TLS.
        cmd += ["--server.sslCertFile", str(tls_cert), "--server.sslKeyFile", str(tls_key),
                "--server.enableXsrfProtection", "true"]
    # display, not location: a PostgreSQL URL's password must not reach the terminal or a log
    typer.echo(f"Dashboard on {url}, API on {url}/api  (store {ws.store.display})")
    if os.name == "posix":
        # Become the server, so a signal sent to this pid reaches Streamlit (no orphan on the port).
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, cmd, env)
    raise typer.Exit(subprocess.call(cmd, env=env))


@users_app.command("add")
def users_add(name: str, role: str = typer.Option(..., "--role", help="data_scientist, reviewer, compliance_officer, lead or admin"),
              password: Optional[str] = typer.Option(None, "--password", help="Sign-in password (prompted when omitted on a terminal)."),
              store: Optional[str] = StoreOpt) -> None:
    """Add a user with a role."""
    if password is None and sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    ws = _operator(store)
    ws.add_user(name, role, password)
    typer.echo(f"Added {name} ({role})" + ("" if password else "; no password set: this user cannot sign in to the dashboard"))


@users_app.command("unlock")
def users_unlock(name: str, store: Optional[str] = StoreOpt) -> None:
    """Lift a lock after failed sign-ins and clear the count (the password stays)."""

    _operator(store).unlock_user(name)
    typer.echo(f"Unlocked {name}")


@users_app.command("reset-password")
def users_reset_password(name: str,
                         password: Optional[str] = typer.Option(None, "--password", help="The new password (prompted "
                                                                "when omitted on a terminal)."),
                         store: Optional[str] = StoreOpt) -> None:
    """Set a new password for a user (the same policy as everywhere); also lifts a lock."""

    if password is None:
        if not sys.stdin.isatty():
            _fail("give the new password with --password (no terminal to prompt on)")
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    _operator(store).set_password(name, password)
    typer.echo(f"New password set for {name}; any lock on the account is lifted")


@users_app.command("unblock")
def users_unblock(address: str, store: Optional[str] = StoreOpt) -> None:
    """Lift the block on a client address after failed sign-ins (an IP address, an IPv6 /64 or 'local')."""

    _operator(store).unblock_address(address)
    typer.echo(f"Unblocked {address}")


@tokens_app.command("create")
def tokens_create(user: str = typer.Option(..., "--user", help="Whose token."),
                  name: str = typer.Option("cli", "--name", help="A label to know it by."),
                  expires_days: int = typer.Option(90, "--expires-days", help="Days until it stops working (1-366)."),
                  operations: Optional[str] = typer.Option(None, "--operations", help="Limit it to these operations, "
                                                           "comma-separated (e.g. start_run,register_model)."),
                  store: Optional[str] = StoreOpt) -> None:
    """Make a token for a user and print it alone on stdout (it is shown this once)."""
    ops = [o.strip() for o in operations.split(",") if o.strip()] if operations is not None else None
    made = _operator(store).create_token(name, user=user, expires_days=expires_days, operations=ops)
    typer.echo(made["token"])
    typer.echo(f"Token {made['id']} for {made['user']} ({made['name']}), expires {made['expires_at']:%Y-%m-%d}"
               + (f", limited to {', '.join(made['operations'])}" if made["operations"] else ""), err=True)


@tokens_app.command("list")
def tokens_list(user: Optional[str] = typer.Option(None, "--user", help="Only this user's tokens."),
                store: Optional[str] = StoreOpt) -> None:
    """One token a line: id, user, label, status, expiry and last use (never the token)."""
    ws = _operator(store)
    frame = ws.tokens(user) if user else ws.tokens(all_users=True)
    for r in frame.iter_rows(named=True):
        used = f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "never"
        typer.echo(f"{r['id']} {r['user']} {r['name']!r} {r['status']} expires={r['expires_at']:%Y-%m-%d} used={used}")


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, store: Optional[str] = StoreOpt) -> None:
    """Revoke a token by its id (from `tokens list`); it stops working at once."""
    _operator(store).revoke_token(token_id)
    typer.echo(f"Revoked token {token_id}")


@users_app.command("list")
def users_list(store: Optional[str] = StoreOpt) -> None:
    """One user a line: name, then role, and "(disabled)" for a disabled account."""
    for name, role, disabled, _ in _operator(store).users().iter_rows():
        typer.echo(f"{name} {role}" + (" (disabled)" if disabled else ""))


@models_app.command("list")
def models_list(store: Optional[str] = StoreOpt) -> None:
    """Registered models with risk tier, versions and the Production version."""
    df = _operator(store).models()
    if df.is_empty():
        typer.echo("No registered models yet.")
        return
    for r in df.iter_rows(named=True):
        prod = f"v{r['production_version']}" if r["production_version"] is not None else "-"
        typer.echo(f"{r['name']}  risk={r['risk_tier']}  versions={r['n_versions']}  production={prod}  "
                   f"owner={r['owner_team'] or '-'}")


@audit_app.command("verify")
def audit_verify(store: Optional[str] = StoreOpt,
                 anchor: Optional[Path] = typer.Option(None, help="An anchor file from `audit anchor`: "
                                                       "also prove the chain still passes through it.")) -> None:
    """Check the hash chain, and the tables against it; exit 2 naming the first broken event or each row at odds."""
    from .store import audit

    mark = None
    if anchor is not None:
        try:
            mark = audit.read_anchor(anchor.read_text())
        except OSError as exc:
            _fail(f"cannot read the anchor file {anchor}: {exc.strerror}")
        except ValueError as exc:
            _fail(f"{anchor}: {exc}")
    check = _operator(store).verify_audit(mark)
    for warning in check.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if check.ok:
        extra = f"; passes through the anchor at event {mark['seq']}" if mark else ""
        typer.echo(f"OK: {check.n_events} events, head {check.head_hash}{extra}; the tables agree with it")
    elif check.first_broken_seq is None:  # an intact chain, but tables changed behind its back
        _fail("the tables disagree with the audit trail:\n  " + "\n  ".join(check.problems), code=2)
    else:
        _fail(f"audit chain broken at event {check.first_broken_seq}: {check.reason}", code=2)


@audit_app.command("anchor")
def audit_anchor(out: Path = typer.Option(..., help="File to write the head digest to; keep it outside the store."),
                 store: Optional[str] = StoreOpt) -> None:
    """Verify the chain and write its head digest (seq and hash) as JSON."""
    mark = _operator(store).audit_anchor()
    try:
        out.write_text(json.dumps(mark, indent=1) + "\n")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
    typer.echo(f"Anchored event {mark['seq']} ({mark['hash']}) in {out}")


@audit_app.command("export")
def audit_export(fmt: str = typer.Option("csv", "--format", help="csv or json"),
                 out: Path = typer.Option(..., help="File to write"),
                 actor: Optional[str] = typer.Option(None), action: Optional[str] = typer.Option(
                     None, help="An action, or a prefix ending in * (request.*)"),
                 entity: Optional[str] = typer.Option(None, help="An entity id, or type/id"),
                 since: Optional[str] = typer.Option(None, help="ISO date or time (UTC)"),
                 until: Optional[str] = typer.Option(None, help="ISO date or time (UTC), exclusive"),
                 store: Optional[str] = StoreOpt) -> None:
    """Write the audit events (filtered) as CSV or JSON; the export is itself audited."""
    data = _operator(store).audit_export(fmt, actor=actor, action=action, entity=entity, since=since, until=until)
    try:
        out.write_bytes(data)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
    typer.echo(f"Wrote {out} ({len(data):,} bytes)")


@report_app.command("export")
def report_export(kind: str = typer.Option(..., help="model-card, validation or audit"),
                  model: Optional[str] = typer.Option(None, help="Registered model name (audit: optional)"),
                  version: Optional[int] = typer.Option(None, help="Version (default: Production, else the latest)"),
                  fmt: str = typer.Option("html", "--format", help="html, pdf, json or md"),
                  out: Path = typer.Option(..., help="An existing, writable folder"),
                  since: Optional[str] = typer.Option(None, help="audit: ISO date or time (UTC)"),
                  until: Optional[str] = typer.Option(None, help="audit: ISO date or time (UTC), exclusive"),
                  store: Optional[str] = StoreOpt) -> None:
    """Write one report; the export is audited with the file's sha256."""
    options = {"since": since, "until": until} if kind == "audit" else {}
    path = _operator(store).export_report(kind, model, version, fmt=fmt, out_dir=out, **options)
    typer.echo(str(path))


@schedule_app.command("add")
def schedule_add(name: str = typer.Option(..., help="A name for the schedule"),
                 cron: str = typer.Option(..., help="Five fields, UTC: '0 6 * * MON' is Mondays at 06:00"),
                 kind: str = typer.Option(..., help="model-card, validation or audit"),
                 model: Optional[str] = typer.Option(None), version: Optional[int] = typer.Option(None),
                 fmt: str = typer.Option("html", "--format", help="html, pdf, json or md"),
                 out: Path = typer.Option(..., help="An existing, writable folder"),
                 store: Optional[str] = StoreOpt) -> None:
    """Export a report on a schedule (run by `schedule run-due` from cron, or by `workbench scheduler`)."""
    ws = _operator(store)
    sid = ws.add_schedule(name, cron, kind, model, fmt, out, version=version)
    added = ws.schedules().filter(id=sid).row(0, named=True)
    typer.echo(f"Added {added['name']}: next due {added['next_due']:%Y-%m-%d %H:%M} UTC")


@schedule_app.command("list")
def schedule_list(store: Optional[str] = StoreOpt) -> None:
    """One schedule a line: name, cron, report, next due, last run."""
    rows = _operator(store).schedules()
    if rows.is_empty():
        typer.echo("No schedules.")
    for r in rows.iter_rows(named=True):
        last = f"{r['last_status']} at {r['last_run_at']:%Y-%m-%d %H:%M}" if r["last_run_at"] else "never run"
        typer.echo(f"{r['name']}  '{r['cron']}'  {r['kind']} {r['model'] or ''} {r['format']} -> {r['out_dir']}  "
                   f"next {r['next_due']:%Y-%m-%d %H:%M} UTC  last: {last}")


@schedule_app.command("remove")
def schedule_remove(name: str, store: Optional[str] = StoreOpt) -> None:
    """Delete a schedule; its past runs stay listed."""
    _operator(store).remove_schedule(name)
    typer.echo(f"Removed {name}")


def _command_line(o: dict) -> str:
    """One retraining command's outcome (never its output: `workbench` may print to a shared log)."""
    return (f"retrain alert {o['alert_id']} ({o['model']} v{o['version']}): {o['status']}"
            + (f" (exit {o['exit_code']})" if o.get("exit_code") is not None else ""))


@schedule_app.command("run-due")
def schedule_run_due(store: Optional[str] = StoreOpt) -> None:
    """Export what is due, each occurrence once, and run pending retraining commands once; exit 1 if any failed."""
    ws = _operator(store)
    outcomes = ws.run_due_schedules()
    for o in outcomes:
        typer.echo(f"{o['schedule']}: {o['status']}" + (f" {o['path']}" if o.get("path") else "")
                   + (f" ({o['error']})" if o.get("error") else ""))
    commands = ws.run_pending_commands()
    for o in commands:
        typer.echo(_command_line(o))
    if not outcomes and not commands:
        typer.echo("Nothing due.")
    if any(o["status"] == "failed" for o in outcomes + commands):
        raise typer.Exit(1)


@app.command()
def scheduler(store: Optional[str] = StoreOpt,
              poll: float = typer.Option(30.0, help="Seconds between checks for due schedules")) -> None:
    """Run due schedules and pending retraining commands until Ctrl+C or SIGTERM: `schedule run-due` in a loop."""
    import signal
    import time

    ws = _operator(store)
    if not hasattr(ws, "store"):
        _fail(f"a server holds the store ({ws.url}): run the scheduler inside it, `workbench serve --scheduler`.")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    typer.echo(f"Scheduler running on {ws.store.display}; checking every {poll:g} s.")
    while not stop:
        for o in ws.run_due_schedules():
            typer.echo(f"{o['schedule']}: {o['status']}" + (f" {o['path']}" if o.get("path") else ""), err=bool(o.get("error")))
        try:
            for o in ws.run_pending_commands():
                typer.echo(_command_line(o), err=o["status"] == "failed")
        except WorkbenchError as exc:  # e.g. an unreadable WORKBENCH_RETRAIN_ENV_FILE: say so, keep scheduling
            typer.echo(f"retraining commands not run: {exc}", err=True)
        ws.store.release()  # let other processes have the file between checks
        deadline = time.monotonic() + poll
        while not stop and time.monotonic() < deadline:
            time.sleep(min(0.5, poll))
    typer.echo("Scheduler stopped.")


@keys_app.command("new")
def keys_new(out: Optional[Path] = typer.Option(None, "--out", help="Write the key to this file (mode 0600) "
                                                "instead of printing it.")) -> None:
    """Make a random 32-byte key for WORKBENCH_ARTIFACT_KEY(_FILE) or WORKBENCH_PSEUDONYM_KEY(_FILE)."""
    from .store.keys import new_key

    key = new_key()
    if out is None:
        typer.echo(key)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        _fail(f"Cannot create {out}: {exc.strerror} (an existing key file is never overwritten).")
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    typer.echo(f"Key written to {out} (readable by you only). Keep it out of the store folder and back it up.")


@artifacts_app.command("encrypt")
def artifacts_encrypt(store: Optional[str] = StoreOpt) -> None:
    """Encrypt, with the configured artifact key, every artifact file still in the clear."""
    from .store.artifacts import encrypt_in_place
    from .workspace import operator_workspace

    ws = operator_workspace(store)  # the files themselves: refused, naming the server, while one holds the store
    sealed, already = encrypt_in_place(ws.store.artifact_root)
    typer.echo(f"Encrypted {sealed} file(s); {already} already encrypted ({ws.store.artifact_root}).")


@app.command()
def backup(out: Path = typer.Option(..., "--out", help="A new file for the copy (never overwritten)."),
           store: Optional[str] = StoreOpt) -> None:
    """A consistent copy of a DuckDB store: checkpointed, then copied while no one else can write it."""
    from .store.connection import Store

    s = Store(store)
    try:
        done = s.backup(out)
    finally:
        s.close()
    typer.echo(f"Backed up {s.display} to {done['path']} ({done['bytes']:,} bytes, sha256 {done['sha256']}); "
               f"audit chain head: event {done['seq']} ({done['hash']}).")
    typer.echo("Keep the artifact folder's backup beside it: the store refers to files there by their sha256.")


@app.command()
def recover(store: Optional[str] = StoreOpt) -> None:
    """Open a store whose write-ahead log is damaged, accepting the loss of what the log held.

    The damaged log is kept beside the store under a new name; the loss is an audit event.
    """
    from .store.recovery import accept_log_loss

    out = accept_log_loss(store)
    typer.echo(f"Opened {out['store']}: the chain ends at event {out['found_seq']}"
               + (f"; {out['expected_seq'] - out['found_seq']} committed event(s) after it are lost"
                  if out["expected_seq"] > out["found_seq"] else "")
               + (f". The damaged log is kept as {out['kept_log']}." if out["kept_log"] else "."))


@app.command()
def migrate(source: str = typer.Option(..., "--from", help="The DuckDB store to copy: a file path or duckdb:///path."),
            target: str = typer.Option(..., "--to", help="An empty PostgreSQL database: "
                                       "postgresql+psycopg://user:password@host:port/database."),
            artifacts: Optional[Path] = typer.Option(None, "--artifacts", help="Where the PostgreSQL store's users will "
                                                     "find the source's artifact folder (default: where it is now).")) -> None:
    """Copy a whole DuckDB store into an empty PostgreSQL database; the audit head stays the same."""
    from .store.migrate import migrate as copy_store

    typer.echo(f"Copying {source} ...")
    out = copy_store(source, target, artifact_root=artifacts, log=typer.echo)
    rows = sum(out["tables"].values())
    typer.echo(f"Copied {len(out['tables'])} tables, {rows:,} rows, in {out['seconds']:.1f} s. "
               f"Audit chain verified: {out['events']} events, head {out['head']} (the source's).")
    typer.echo(f"Artifacts stay in {out['artifact_root']} (set WORKBENCH_ARTIFACTS where it is mounted elsewhere).")
    if out["missing_files"]:
        typer.secho(f"Warning: {len(out['missing_files'])} referenced artifact file(s) are not in that folder, "
                    f"e.g. {out['missing_files'][0]}.", fg=typer.colors.YELLOW, err=True)


def main() -> None:
    """Run the ``workbench`` command: a workbench error exits 1 with its message, Ctrl+C exits 130."""
    try:
        app()
    except WorkbenchError as exc:
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
