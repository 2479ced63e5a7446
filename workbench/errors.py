"""Exceptions raised by the workbench.

Every error a user can cause derives from :class:`WorkbenchError`, so the CLI and
the dashboard can show its message without a traceback.
"""


class WorkbenchError(Exception):
    """Base class: a problem the user can act on; the message says what is wrong."""


class StoreError(WorkbenchError):
    """The store file cannot be opened, is not a workbench store, or is too new."""


class StoreLockedError(StoreError):
    """Another process held the store file for longer than the lock timeout."""


class NotFoundError(WorkbenchError, LookupError):
    """An experiment, run, user, model or version that does not exist."""


class ValidationError(WorkbenchError, ValueError):
    """A value that cannot be logged as given (nothing of the call was stored)."""


class PermissionDenied(WorkbenchError, PermissionError):
    """The acting user's role may not perform this action."""


class IntegrityError(WorkbenchError):
    """A file whose content does not match the digest the store recorded for it."""


class KeyUnavailableError(WorkbenchError):
    """An encrypted file whose key is not configured (or another key is)."""


class ConflictError(WorkbenchError):
    """Someone else changed the object first (e.g. decided the request): reload and look again."""


class AuthenticationError(PermissionDenied):
    """No valid credentials: a missing, unknown, expired or revoked token, or a disabled user
    (HTTP 401, where :class:`PermissionDenied` is 403: known caller, not allowed)."""
