"""The table of operations: every public operation declared once.

A service function, or a :class:`~workbench.workspace.Workspace` method, declares itself with
:func:`operation`: its name (the function's), the permission it needs (an action of
:data:`workbench.people.roles.PERMISSIONS`, or :data:`READ`), whether it writes, and, from
its signature, its typed parameters and result. The first parameter is what it acts in: a
:class:`~workbench.people.context.Ctx` (who acts, on which store) or a workspace, whose
``ctx`` that is.

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

#: The permission of reads open to whoever may open the store: in file mode a workspace
#: without a user reads; a server answers only signed-in callers in the first place.
READ = "read"


@dataclass(frozen=True)
class Operation:
    """One declared operation.

    Attributes
    ----------
    name : str
        The operation's name, as the workspace method and (later) the HTTP route spell it.
    permission : str
        The action of the permission table a caller's role must be allowed, or :data:`READ`.
    writes : bool
        Whether it changes the store (and so appends audit events).
    function : callable
        The function, permission check included; its first parameter is the ``Ctx`` or the
        workspace.
    checked_inside : bool
        The function checks the permission itself, at the moment its rule says: governance
        writes audit a refusal before raising it, a decision checks "not your own request"
        first, and some operations need the permission only for one of their modes.
    """

    name: str
    permission: str
    writes: bool
    function: Callable[..., Any]
    checked_inside: bool = False

    @property
    def signature(self) -> inspect.Signature:
        """The parameters a caller passes (without the ``Ctx``) and the result's annotation."""
        sig = inspect.signature(self.function)
        return sig.replace(parameters=list(sig.parameters.values())[1:])

    @property
    def doc(self) -> str:
        """The function's cleaned docstring (``inspect.getdoc``), or ""; the workspace method shows it."""
        return inspect.getdoc(self.function) or ""


def operation(permission: str, *, writes: bool,
              checked_inside: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a service function as an operation that needs ``permission``.

    Parameters
    ----------
    permission : str
        An action of the permission table (``"log_runs"``, ``"manage_users"`` ...), or
        :data:`READ`.
    writes : bool
        True when the operation changes the store.
    checked_inside : bool, default False
        The function checks ``permission`` itself (see :class:`Operation`); the wrapper does not.

    Returns
    -------
    callable
        A decorator. The decorated function checks ``ctx.require(permission)`` first (not for
        :data:`READ`).
    """

    def declare(func: Callable[..., Any]) -> Callable[..., Any]:
        if permission == READ or checked_inside:
            checked = func
        else:
            @functools.wraps(func)
            def checked(first, *args, **kwargs):
                getattr(first, "ctx", first).require(permission)  # a Ctx, or a workspace's
                return func(first, *args, **kwargs)

        name = func.__name__
        if name in OPERATIONS and OPERATIONS[name].function.__qualname__ != func.__qualname__:
            raise RuntimeError(f"operation {name!r} is declared twice ({OPERATIONS[name].function.__module__} "
                               f"and {func.__module__})")
        OPERATIONS[name] = Operation(name, permission, writes, checked, checked_inside)
        return checked

    return declare
