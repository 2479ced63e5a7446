"""Shared fixtures: a fresh DuckDB store per test, its operator, and a data scientist."""

from __future__ import annotations

import os

import pytest

import workbench as wb
from workbench import workspace as _workspace
from workbench.workspace import operator_workspace


def pytest_configure(config):
    # One pseudonymisation key for the whole run, servers and demo stores included, so no
    # test writes a key file into the home folder; tests of key handling override it.
    os.environ["WORKBENCH_PSEUDONYM_KEY"] = "5e" * 32
    for name in ("WORKBENCH_PSEUDONYM_KEY_FILE", "WORKBENCH_ARTIFACT_KEY", "WORKBENCH_ARTIFACT_KEY_FILE"):
        os.environ.pop(name, None)


def _forget(path) -> None:
    """Close the process-wide Store for ``path`` (if any) and drop it from the cache."""
    key = str(path.resolve())
    with _workspace._stores_lock:
        hit = _workspace._stores.pop(key, None)
    if hit is not None:
        store, writer = hit
        try:
            writer.flush()
        except wb.WorkbenchError:
            pass  # a test that provoked a failed write already asserted on it
        store.close()


@pytest.fixture
def store_path(tmp_path, monkeypatch):
    """A path for a new store file (not created yet); its Store is closed afterwards."""
    monkeypatch.delenv("WORKBENCH_STORE", raising=False)
    monkeypatch.delenv("WORKBENCH_USER", raising=False)
    monkeypatch.delenv("WORKBENCH_ARTIFACTS", raising=False)
    path = tmp_path / "workbench.duckdb"
    yield path
    _forget(path)


@pytest.fixture
def op(store_path):
    """The local operator's workspace on the fresh store (may add users)."""
    return operator_workspace(store_path)


@pytest.fixture
def ws(op, store_path):
    """A workspace acting as ``dana``, a data scientist."""
    op.add_user("dana", "data_scientist")  # no password: argon2 costs ~0.2 s a hash
    return wb.connect(store=store_path, user="dana")
