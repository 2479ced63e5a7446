"""Streamlit helpers shared by the dashboard pages: the workspace, errors, empty states.

Pages stay thin: widgets, a call into :mod:`workbench`, a chart. This module holds the
little they share, so a page never opens the store or formats an error itself.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

import workbench as wb

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@st.cache_resource(show_spinner=False)
def _workspace(store: str) -> wb.Workspace:
    return wb.connect(store)


def workspace() -> wb.Workspace:
    """The read-only workspace on ``$WORKBENCH_STORE`` (one per server process)."""
    return _workspace(os.environ.get("WORKBENCH_STORE") or "data/workbench.duckdb")


@contextmanager
def shown_errors():
    """Show a workbench error as a message, never as a traceback."""
    try:
        yield
    except wb.WorkbenchError as exc:
        st.error(str(exc), icon=":material/error:")


def empty(message: str) -> None:
    st.info(message, icon=":material/info:")
