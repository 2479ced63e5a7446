"""Retraining commands of monitor policies: run by the scheduler only, in an environment from configuration.

A lead or admin may name a command in a model's monitor policy. It is configured by one
person, so it must never run in another person's process: :meth:`Workspace.monitor`
(a data scientist's notebook, say) only marks the newest new alert ``pending``. The
scheduler (``workbench schedule run-due``, ``workbench scheduler``; later the server) runs
each pending command once, through :meth:`Workspace.run_pending_commands`:

- claimed with a compare-and-set on the alert's status, so two schedulers (or cron firing
  twice) run it once; a command that fails is recorded ``failed`` and not run again;
- without a shell, in an environment made from configuration only, never the environment
  of whoever runs the scheduler: ``PATH`` (``os.defpath`` unless configured), the
  variables of the file named by ``WORKBENCH_RETRAIN_ENV_FILE`` (``KEY=VALUE`` lines;
  blank lines and ``#`` comments ignored), and ``WORKBENCH_ALERT_ID``,
  ``WORKBENCH_MODEL``, ``WORKBENCH_VERSION`` and where to log: ``WORKBENCH_STORE`` (the
  scheduler's store) or, when a server runs the scheduler (``workbench serve --scheduler``),
  ``WORKBENCH_URL`` (that server), unless the file names another. Through a server the
  command proves who it is like any client: the file holds ``WORKBENCH_TOKEN``, a token of
  the account retraining acts as (an admin makes it, limited to the operations it needs);
  the server never makes one on its own;
- its exit status and the tail of its output are kept in the alert; the output is read by
  leads and admins only (other roles get the alert without it), and the audit trail, which
  reviewers read, keeps the output's sha256 and length, not the text;
- a command left ``running`` by a scheduler process on this host that no longer exists is
  recorded ``failed`` (abandoned), not run again: it may have done half its work.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import ValidationError

ENV_FILE_VAR = "WORKBENCH_RETRAIN_ENV_FILE"
COMMAND_TIMEOUT_S = 600
OUTPUT_CHARS = 4000


def configured_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a retraining command gets from configuration (before the alert's own).

    Parameters
    ----------
    environ : dict, optional
        Where to find ``WORKBENCH_RETRAIN_ENV_FILE`` (default: ``os.environ``). Only that
        one variable is read from it; nothing else of it reaches the command.

    Returns
    -------
    dict
        ``PATH`` (``os.defpath`` unless the file sets it) and the file's variables.

    Raises
    ------
    ValidationError
        The file is missing or unreadable, or a line is not ``KEY=VALUE`` (named by its
        number, never its content: values are secrets).
    """
    env = {"PATH": os.defpath}
    path = (environ if environ is not None else os.environ).get(ENV_FILE_VAR)
    if not path:
        return env
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{ENV_FILE_VAR} names {path}, which cannot be read ({type(exc).__name__}); "
                              "no retraining command was run.") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not (key[0].isalpha() or key[0] == "_") or not all(
                c.isalnum() or c == "_" for c in key):
            raise ValidationError(f"{ENV_FILE_VAR} ({path}) line {number} is not KEY=VALUE; "
                                  "no retraining command was run.")
        env[key] = value
    return env


def run_command(command: list[str], env: dict[str, str]) -> tuple[int | None, str]:
    """Run ``command`` without a shell in exactly ``env``; (exit code, or None if it could
    not run, and the tail of its output)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=env,
                             stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return None, f"command not found: {command[0]}"
    except PermissionError:
        return None, f"command not executable: {command[0]}"
    except subprocess.TimeoutExpired as exc:
        tail = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        return None, f"timed out after {COMMAND_TIMEOUT_S} s\n{tail[-2000:]}"
    return out.returncode, (out.stdout + out.stderr)[-OUTPUT_CHARS:]


def command_env(configured: dict[str, str], *, store: str, alert_id: int, model: str, version: int,
                server_url: str | None = None) -> dict[str, str]:
    """The whole environment of one run: the configured variables and the alert's own.

    ``server_url``: the server that runs the scheduler, if one does; the command then logs
    through it (``WORKBENCH_URL``), since the file it holds refuses other processes.

    >>> env = command_env({"PATH": "/bin"}, store="s.duckdb", alert_id=3, model="m", version=2)
    >>> env["WORKBENCH_STORE"], env["WORKBENCH_ALERT_ID"]
    ('s.duckdb', '3')
    >>> "WORKBENCH_STORE" in command_env({}, store="s.duckdb", alert_id=3, model="m", version=2,
    ...                                  server_url="http://127.0.0.1:8501")
    False
    """
    where = ({"WORKBENCH_URL": configured.get("WORKBENCH_URL", server_url)} if server_url
             else {"WORKBENCH_STORE": configured.get("WORKBENCH_STORE", store)})
    return {**configured, **where, "WORKBENCH_ALERT_ID": str(alert_id), "WORKBENCH_MODEL": model,
            "WORKBENCH_VERSION": str(version)}
