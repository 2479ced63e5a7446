"""The table of operations: every public operation declared once.

A service function declares itself with :func:`operation`: its name (the function's), the
permission it needs (an action of :data:`workbench.people.roles.PERMISSIONS`), whether it
writes, and, from its signature, its typed parameters and result. The first parameter is
always the :class:`~workbench.people.context.Ctx` it acts in: who acts, on which store.

The declaration is the one place the permission is checked: the wrapper refuses before the
function runs, whoever calls it (the local workspace, a page, the CLI and, with the server,
its HTTP route). ``tests/test_operations.py`` walks :data:`OPERATIONS` and checks that every
operation is a :class:`~workbench.workspace.Workspace` method with the same parameters,
refuses the roles the permission table refuses, and documents itself.

>>> from workbench.operations import OPERATIONS
>>> OPERATIONS["set_password"].permission
'manage_users'
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

#: name -> :class:`Operation`, filled as the service modules are imported (``import workbench``).
OPERATIONS: dict[str, "Operation"] = {}


@dataclass(frozen=True)
class Operation:
    """One declared operation.

    Attributes
    ----------
    name : str
        The operation's name, as the workspace method and (later) the HTTP route spell it.
    permission : str
        The action of the permission table a caller's role must be allowed.
    writes : bool
        Whether it changes the store (and so appends audit events).
    function : callable
        The service function, permission check included; its first parameter is the ``Ctx``.
    """

    name: str
    permission: str
    writes: bool
    function: Callable[..., Any]

    @property
    def signature(self) -> inspect.Signature:
        """The parameters a caller passes (without the ``Ctx``) and the result's annotation."""
        sig = inspect.signature(self.function)
        return sig.replace(parameters=list(sig.parameters.values())[1:])

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.function) or ""


def operation(permission: str, *, writes: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a service function as an operation that needs ``permission``.

    Parameters
    ----------
    permission : str
        An action of the permission table (``"view"``, ``"manage_users"`` ...).
    writes : bool
        True when the operation changes the store.

    Returns
    -------
    callable
        A decorator. The decorated function checks ``ctx.require(permission)`` first.
    """

    def declare(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def checked(ctx, *args, **kwargs):
            ctx.require(permission)
            return func(ctx, *args, **kwargs)

        name = func.__name__
        if name in OPERATIONS and OPERATIONS[name].function.__module__ != func.__module__:
            raise RuntimeError(f"operation {name!r} is declared twice ({OPERATIONS[name].function.__module__} "
                               f"and {func.__module__})")
        OPERATIONS[name] = Operation(name, permission, writes, checked)
        return checked

    return declare
