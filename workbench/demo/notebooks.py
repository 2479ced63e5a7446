"""How the example notebooks connect: through a server when one is named, else to a store file.

The notebooks run unchanged both ways; the environment decides:

- ``$WORKBENCH_URL`` set: through that server. The notebook's own user is the one of
  ``$WORKBENCH_TOKEN``; another demo account (the lead who signs off) uses
  ``$WORKBENCH_TOKEN_<NAME>`` (``nb-lead``: ``$WORKBENCH_TOKEN_NB_LEAD``). An admin makes the
  accounts and tokens (``workbench users add``, ``workbench tokens create``): a client cannot.
- Otherwise the store file ``$WORKBENCH_STORE`` (default ``data/workbench.duckdb``), acting as
  the named account, which is created once if it is a demo account (``nb-...``). File mode
  trusts the name: it is for one person on one machine.
"""

from __future__ import annotations

import os

from ..errors import NotFoundError, ValidationError


def token_variable(name: str) -> str:
    """The environment variable that holds the token of demo account ``name``.

    >>> token_variable("nb-lead")
    'WORKBENCH_TOKEN_NB_LEAD'
    """
    return "WORKBENCH_TOKEN_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def connect_as(name: str, role: str):
    """A workspace acting as demo account ``name`` (see the module's docstring).

    Parameters
    ----------
    name : str
        The account: the notebook's user (``$WORKBENCH_USER``, default ``nb-user``) or another
        demo account such as ``nb-lead``.
    role : str
        The role a missing demo account is created with (file mode only).

    Returns
    -------
    Workspace or RemoteWorkspace
    """
    import workbench as wb

    if os.environ.get("WORKBENCH_URL"):
        own = name == os.environ.get("WORKBENCH_USER", "nb-user")
        variable = "WORKBENCH_TOKEN" if own else token_variable(name)
        token = os.environ.get(variable)
        if not token:
            raise ValidationError(f"Connecting to {os.environ['WORKBENCH_URL']} as {name!r} needs their token in "
                                  f"${variable}: an admin makes it with `workbench tokens create --user {name}`.")
        ws = wb.connect(os.environ["WORKBENCH_URL"], token=token)
        if ws.user != name:
            raise ValidationError(f"${variable} is a token of {ws.user!r}, not of {name!r}.")
        return ws
    try:
        return wb.connect(user=name)
    except NotFoundError:
        if not name.startswith("nb-"):
            raise  # a named account is made by an admin: workbench users add <name> --role <role>
        from ..workspace import operator_workspace

        operator_workspace(os.environ.get("WORKBENCH_STORE")).add_user(name, role)
        print(f"One-time setup: created user {name!r} ({role}).")
        return wb.connect(user=name)


__all__ = ["connect_as", "token_variable"]
