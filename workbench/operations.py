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
import numbers
import os
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import ValidationError

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


#: What an annotation admits, for the check every call gets: numbers of any kind (numpy's too),
#: paths where text is asked for a path, and the other annotated classes as they are.
_ADMITS: dict[Any, tuple[type, ...]] = {
    int: (numbers.Integral,), float: (numbers.Real,), bool: (bool, numbers.Integral), str: (str,),
    dict: (Mapping,), list: (list, tuple), tuple: (tuple, list), bytes: (bytes, bytearray),
}


class _ArgumentTypes:
    """The types an operation's annotations name, checked on every call: a value of another
    type is refused with a :class:`~workbench.errors.ValidationError` naming the parameter,
    before it can reach a query (a dict where a run id belongs must not become a database
    error). Annotations this cannot judge (a class only imported for type checking, generics
    it does not know) are not checked; the function's own checks still apply."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self._signature = inspect.signature(func)
        self._checks: dict[str, tuple[tuple[type, ...], bool, str]] | None = None

    def _build(self) -> dict[str, tuple[tuple[type, ...], bool, str]]:
        try:
            hints = typing.get_type_hints(self.func)
        except Exception:  # a name imported for type checking only: judge nothing rather than guess
            return {}
        checks = {}
        for name, hint in hints.items():
            if name == "return":
                continue
            args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
            admits: list[type] = []
            for arg in args:
                arg = typing.get_origin(arg) or arg
                if arg is type(None):
                    continue
                if arg in _ADMITS:
                    admits.extend(_ADMITS[arg])
                elif arg is Path:
                    admits.append(os.PathLike)
                elif isinstance(arg, type) and arg.__module__.split(".")[0] in ("workbench", "builtins"):
                    admits.append(arg)
                else:
                    break  # Any, a frame, a model, Iterable ...: not judged here
            else:
                label = " or ".join(sorted({getattr(a, "__name__", str(a)) for a in args}))
                checks[name] = (tuple(admits), type(None) in args, label.replace("NoneType", "None"))
        return checks

    def check(self, first, args: tuple, kwargs: dict) -> None:
        """Raise ValidationError for an argument whose type its annotation does not admit."""
        if self._checks is None:
            self._checks = self._build()
        if not self._checks:
            return
        try:
            bound = self._signature.bind_partial(first, *args, **kwargs).arguments
        except TypeError:
            return  # the call itself raises its TypeError, as Python would say it
        for name, value in bound.items():
            rule = self._checks.get(name)
            if rule is None or (value is None and rule[1]):
                continue
            admits, _, label = rule
            if not isinstance(value, admits) or (isinstance(value, bool) and bool not in admits):
                raise ValidationError(f"{self.func.__name__}: {name} must be {label}, not {type(value).__name__} "
                                      f"{reprlib.repr(value)}.")


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
        types = _ArgumentTypes(func)
        if permission == READ or checked_inside:
            @functools.wraps(func)
            def checked(first, *args, **kwargs):
                types.check(first, args, kwargs)
                return func(first, *args, **kwargs)
        else:
            @functools.wraps(func)
            def checked(first, *args, **kwargs):
                getattr(first, "ctx", first).require(permission)  # a Ctx, or a workspace's
                types.check(first, args, kwargs)
                return func(first, *args, **kwargs)

        name = func.__name__
        if name in OPERATIONS and OPERATIONS[name].function.__qualname__ != func.__qualname__:
            raise RuntimeError(f"operation {name!r} is declared twice ({OPERATIONS[name].function.__module__} "
                               f"and {func.__module__})")
        OPERATIONS[name] = Operation(name, permission, writes, checked, checked_inside)
        return checked

    return declare
