"""The server's entry: the dashboard (Home.py) and the API (/api) as one ASGI app on one port.

``workbench serve`` runs this file with ``streamlit run``, which finds the ``st.App`` below and
serves it with uvicorn (its port, TLS and websocket settings as before). The lifespan opens the
store once and holds it (a DuckDB file for good, with a claim beside it that turns other
openers away), and closes it, committed, at shutdown.
"""

import os
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from starlette.routing import Mount

from workbench.server.api import make_api
from workbench.server.app import lifespan_of

_STORE = os.environ["WORKBENCH_STORE"]  # set by `workbench serve` (the resolved path, or the URL)
_OPERATOR = "wbo_" + secrets.token_urlsafe(32)  # new per start; only the claim file (owner-only) holds it

app = st.App(Path(__file__).with_name("Home.py"), routes=[Mount("/api", app=make_api(_STORE, _OPERATOR))],
             lifespan=asynccontextmanager(lifespan_of(_STORE, os.environ.get("WORKBENCH_SERVER_URL", ""), _OPERATOR,
                                                      float(os.environ.get("WORKBENCH_SCHEDULER_POLL") or 0))))
