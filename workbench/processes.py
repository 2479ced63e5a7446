"""Is the process that claimed some work still there? One answer for runs, report runs and commands.

Work that a process claims in the store (a run it logs, a scheduled report, a retraining
command) names that process as ``host:pid``. When the process dies without finishing, the
next process to look marks the work as interrupted, but only when it can tell: pids of other
hosts mean nothing here, and a pid may have been reused by a newer process.

>>> gone(runner())
False
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

HOST = socket.gethostname()


def runner() -> str:
    """This process, as ``host:pid``."""
    return f"{HOST}:{os.getpid()}"


def started(pid: int) -> float | None:
    """When process ``pid`` of this host started (epoch seconds); None when there is no such
    process; 0.0 when it exists but its start cannot be read (no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        try:
            os.kill(pid, 0)  # signal 0 only asks whether the pid exists
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # exists, someone else's
        return 0.0


def gone(who: str | None, since: datetime | None = None) -> bool:
    """Whether ``who`` (``host:pid``) was a process of this host that no longer exists.

    Parameters
    ----------
    who : str or None
        The claimant, as :func:`runner` wrote it.
    since : datetime, optional
        When the work was claimed: a process with that pid started later is a reused pid, so the
        claimant is gone too.

    Returns
    -------
    bool
        False for another host's process (it cannot be judged from here) or one still running.
    """
    host, _, pid = (who or "").rpartition(":")
    if host != HOST or not pid.isdigit():
        return False
    began = started(int(pid))
    if began is None:
        return True
    return since is not None and began > since.timestamp() + 1
