"""The notebooks in notebooks/ run top to bottom against a fresh store, and leave what they promise.

Each notebook is executed with nbclient in a "python3" kernel that runs *this* interpreter
(the venv's ipykernel), in a temporary working directory, with ``WORKBENCH_STORE`` pointing
at a temporary store and ``WORKBENCH_USER`` unset. Afterwards the store is opened with
:func:`workbench.connect` and checked by the notebook's entry in ``STORE_CHECKS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable

import nbformat
import polars as pl
import pytest
from _server import serving
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

import workbench as wb
from workbench.demo.notebooks import token_variable
from workbench.store import shared
from workbench.workspace import operator_workspace

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT = 300  # seconds per cell


# -- the kernel ------------------------------------------------------------------------------
def _same_python(path: str) -> bool:
    try:
        return Path(path).resolve() == Path(sys.executable).resolve()
    except OSError:
        return False


def _default_kernel_is_ours() -> bool:
    """Does the "python3" kernelspec found on the default Jupyter path run this interpreter?

    jupyter_client replaces a bare ``python``/``python3``/``python3.11`` in ``argv[0]`` with
    ``sys.executable`` when it launches the kernel, so those count as ours.
    """
    try:
        argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except Exception:  # no such kernelspec
        return False
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    return argv0 in bare or _same_python(argv0)


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory) -> str | None:
    """None if the default "python3" kernel is this venv's; else a JUPYTER_PATH holding one that is."""
    if _default_kernel_is_ours():
        return None
    prefix = tmp_path_factory.mktemp("kernelspec")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", KERNEL],
                   check=True, capture_output=True)
    return str(prefix / "share" / "jupyter")


@pytest.fixture
def notebook_env(store_path, monkeypatch, jupyter_path):
    """Environment the kernel inherits: a temporary store, no preset user, this venv's kernel."""
    monkeypatch.setenv("WORKBENCH_STORE", str(store_path))
    monkeypatch.delenv("WORKBENCH_USER", raising=False)
    monkeypatch.delenv("WORKBENCH_ARTIFACTS", raising=False)
    if jupyter_path is not None:
        monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [jupyter_path, os.environ.get("JUPYTER_PATH")])))
    return store_path


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell in order; nbclient raises CellExecutionError on the first failing cell."""
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT, allow_errors=False,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


# -- what each notebook must leave in the store -------------------------------------------------
def _check_track_and_register(ws: wb.Workspace) -> None:
    runs = ws.search_runs("", experiment="notebook-credit")
    parents = runs.filter(runs["parent_run_id"].is_null())
    children = runs.filter(runs["parent_run_id"].is_not_null())
    assert parents.height == 1, parents
    assert children.height == 4, children  # one per value of C
    assert set(children["parent_run_id"]) == {parents["run_id"][0]}
    assert set(runs["status"]) == {"FINISHED"}, runs.select("run_name", "status")
    assert children["metrics.roc_auc"].min() > 0.6

    for child in children["run_id"]:
        curve = ws.metric_history(child, "test_log_loss")
        assert curve.height >= 3 and curve["step"].is_sorted() and curve["step"].n_unique() == curve.height

    # lineage: the children's train/test sets point at the raw frame logged on the parent
    (raw,) = ws.run_datasets(parents["run_id"][0]).filter(role="source").iter_rows(named=True)
    for child in children["run_id"]:
        ds = ws.run_datasets(child)
        assert {"train", "test"} <= set(ds["role"])
        for row in ds.iter_rows(named=True):
            assert row["parent_ids"] == [raw["id"]], row
        assert ds.filter(role="train")["n_rows"][0] == 6_000
        # the raw frame's marks, confirmed in the notebook, reached the derived data sets
        train_marks = ws.column_marks(ds.filter(role="train")["id"][0])
        assert train_marks.filter(pl.col("column") == "postcode_area").select("mark", "origin").row(0) == (
            "sensitive", "inherited")
    raw_marks = ws.column_marks(raw["id"])
    assert set(raw_marks["origin"]) == {"confirmed"}
    assert dict(zip(raw_marks["column"], raw_marks["mark"]))["applicant_id"] == "identifying"

    versions = ws.model_versions("notebook-credit-default")
    assert versions.height == 1
    mv = versions.row(0, named=True)
    assert mv["stage"] == "Staging"
    assert mv["run_id"] in set(children["run_id"])
    model = ws.models().filter(name="notebook-credit-default").row(0, named=True)
    assert model["risk_tier"] == "medium" and model["owner_team"]

    assert set(ws.users().filter(name="nb-user")["role"]) == {"data_scientist"}


def _check_evidence(ws: wb.Workspace) -> None:
    ev = ws.evidence("notebook-evidence-credit").filter(version=1)
    assert sorted(ev["kind"]) == ["explanation", "fairness"], ev
    (fair,) = ev.filter(kind="fairness").iter_rows(named=True)
    assert fair["verdict"] in {"pass", "fail", "review"}, fair

    (explanation_id,) = ev.filter(kind="explanation")["id"]
    summary, table = ws.evidence_detail(explanation_id)
    assert summary["additivity"]["passed"] is True, summary["additivity"]
    assert table is not None and table.height == 1_000, table


def _check_monitor(ws: wb.Workspace) -> None:
    name = "notebook-monitored-credit"
    ev = ws.evidence(name).filter(kind="drift")
    assert ev["verdict"].to_list() == ["fail"], ev  # the shifted month drifts past the high tier's share
    assert ws.monitored_versions().filter(name=name)["predictions"].to_list() == [3_600]
    report = ws.monitor((name, 1), "1w", alerts=False)
    assert report.windows["labelled"].to_list() == [600, 600, 600, 600, 0, 0]
    alerts = ws.alerts(name)
    assert alerts.height >= 1 and set(alerts["metric"]) <= {"drift_share", "auc", "error_rate"}
    assert alerts["window_start"].min() >= report.windows["window_start"][4]  # only the shifted weeks
    labels = ws.audit_events().filter(action="labels.log")
    assert '"unknown":2' in labels["payload"][0]


def _check_governance(ws: wb.Workspace) -> None:
    (req,) = ws.requests(name="notebook-governed").iter_rows(named=True)
    assert (req["status"], req["to_stage"], req["requested_by"]) == ("approved", "Production", "nb-user")
    full = ws.request(req["id"])
    assert [d["actor"] for d in full.decisions] == ["nb-lead"] and full.evidence["explanation"] is not None
    assert ws.get_model_version("notebook-governed", 1).stage == "Production"
    refused = ws.audit_events(action="refused")
    assert refused["actor"].to_list() == ["nb-user"] and "own" in refused["payload"][0]


STORE_CHECKS: dict[str, Callable[[wb.Workspace], None]] = {
    "01_track_and_register.ipynb": _check_track_and_register,
    "02_evidence.ipynb": _check_evidence,
    "03_monitor.ipynb": _check_monitor,
    "04_governance.ipynb": _check_governance,
}


# -- tests -------------------------------------------------------------------------------------
def test_notebooks_found():
    assert "01_track_and_register.ipynb" in {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_saved_clean(path):
    """Committed notebooks carry no outputs or execution counts, and name the python3 kernel."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"cell {i} has saved output"


@contextmanager
def _through_a_server(store, tmp_path, monkeypatch):
    """The notebook's environment names a running server and the demo accounts' tokens, not the file."""
    op = operator_workspace(store)
    op.add_user("nb-user", "data_scientist")
    op.add_user("nb-lead", "lead")
    tokens = {name: op.create_token("notebooks", user=name)["token"] for name in ("nb-user", "nb-lead")}
    shared.close(store)
    with serving(store, tmp_path / "serve.log") as (url, _):
        monkeypatch.setenv("WORKBENCH_URL", url)
        monkeypatch.setenv("WORKBENCH_TOKEN", tokens["nb-user"])
        monkeypatch.setenv(token_variable("nb-lead"), tokens["nb-lead"])
        monkeypatch.delenv("WORKBENCH_STORE")  # the notebook must not open the file (a served one refuses)
        yield


@pytest.mark.parametrize("side", ["file", "server"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, side, notebook_env, tmp_path, monkeypatch):
    """Unchanged both ways: on the store file, and through a server holding it (the environment decides)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with _through_a_server(notebook_env, tmp_path, monkeypatch) if side == "server" else nullcontext():
        execute(nb, workdir)

    kernel_python = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    assert _same_python(kernel_python), f"kernel ran {kernel_python}, not {sys.executable}"
    assert list(workdir.iterdir()) == [], "the notebook wrote into its working directory"

    ws = operator_workspace(notebook_env)  # reading the audit trail is not a data scientist's right
    try:
        check = ws.verify_audit()
        assert check.ok and check.n_events > 0, check
        STORE_CHECKS.get(path.name, lambda ws: None)(ws)
    finally:
        ws.close()


def test_a_notebook_through_a_server_without_the_accounts_token_is_told_which_variable_to_set(monkeypatch):
    from workbench.demo.notebooks import connect_as

    monkeypatch.setenv("WORKBENCH_URL", "http://127.0.0.1:9")  # never reached: the token is checked first
    monkeypatch.delenv("WORKBENCH_TOKEN", raising=False)
    monkeypatch.delenv("WORKBENCH_TOKEN_NB_LEAD", raising=False)
    monkeypatch.delenv("WORKBENCH_USER", raising=False)
    with pytest.raises(wb.ValidationError, match=r"\$WORKBENCH_TOKEN: an admin makes it"):
        connect_as("nb-user", "data_scientist")
    with pytest.raises(wb.ValidationError, match=r"\$WORKBENCH_TOKEN_NB_LEAD: .*--user nb-lead"):
        connect_as("nb-lead", "lead")
