"""Experiments: the experiment list, a filterable, sortable, paged runs table, and run detail."""

import polars as pl
import streamlit as st

from workbench.people import roles
from workbench.protection import column_marks
from workbench.tracking import compare
from workbench.ui import compare_charts
from workbench.ui import widgets as ui

PAGE_SIZE = 200

ws = ui.require_page("experiments")
st.title("Experiments")

with ui.shown_errors():
    run_id = ui.query_param("run")
    if run_id:
        if st.button("Back to the runs", icon=":material/arrow_back:"):
            del st.query_params["run"]
            st.rerun()
        info = ws.get_run(run_id)  # an unknown id raises NotFoundError: shown as a message
        st.header(ui.plain(info["name"]))
        st.caption(f"Run `{info['run_id']}` in {ui.plain(info['experiment'])} by {ui.plain(info['user_name'])}, "
                   f"{info['status']}, started {info['start_time']:%Y-%m-%d %H:%M:%S} UTC"
                   + (f", git commit `{info['git_commit'][:12]}`" if info["git_commit"] else ""))
        if info.get("error"):
            st.error(ui.plain(info["error"]), icon=":material/error:")
        left, right = st.columns(2)
        left.subheader("Params")
        left.dataframe(pl.DataFrame({"param": list(info["params"]), "value": list(info["params"].values())},
                                    schema={"param": pl.String, "value": pl.String}), hide_index=True)
        right.subheader("Latest metrics")
        right.dataframe(pl.DataFrame({"metric": list(info["metrics"]), "value": list(info["metrics"].values())},
                                     schema={"metric": pl.String, "value": pl.Float64}), hide_index=True)
        curves = ws.metric_curves([run_id])
        stepped = curves.group_by("key").agg(pl.len().alias("n")).filter(pl.col("n") > 1)["key"].to_list()
        if stepped:
            st.subheader("Metric curves")
            st.plotly_chart(compare_charts.curves_figure(curves.filter(pl.col("key").is_in(stepped))), width="stretch")
        st.subheader("Tags")
        st.dataframe(pl.DataFrame({"tag": list(info["tags"]), "value": list(info["tags"].values())},
                                  schema={"tag": pl.String, "value": pl.String}), hide_index=True)
        st.subheader("Data sets")
        data = ws.run_datasets(run_id)
        if data.is_empty():
            ui.empty("No data sets logged: use `run.log_dataset(df, name, role)`.")
        else:
            names = dict(ws.datasets().select(["id", "name"]).iter_rows())
            data = data.with_columns(pl.col("parent_ids").list.eval(pl.element().replace_strict(names, default="?"))
                                     .list.join(", ").alias("derived from"))
            st.dataframe(data.select(["name", "role", "n_rows", "n_cols", "derived from", "digest", "source"]),
                         hide_index=True, width="stretch")
            may_mark = roles.allowed(ws.role, "mark_columns")
            for ds in data.select(["id", "name", "role"]).unique("id", maintain_order=True).iter_rows(named=True):
                marks = ws.column_marks(ds["id"])
                pending = int((marks["origin"] == "detected").sum())
                title = (f"Columns of {ui.plain(ds['name'])}: {int((marks['mark'] == 'identifying').sum())} identifying, "
                         f"{int((marks['mark'] == 'sensitive').sum())} sensitive"
                         + (f", {pending} proposed, not yet confirmed" if pending else ""))
                with st.expander(title, icon=":material/shield_person:" if pending else ":material/verified_user:"):
                    if marks.is_empty():
                        st.caption("No column was marked.")
                        continue
                    edited = st.data_editor(
                        marks.select(["column", "mark", "origin", "reason"]), hide_index=True, width="stretch",
                        disabled=["column", "origin", "reason"] if may_mark else True, key=f"marks-{ds['id']}",
                        column_config={"mark": st.column_config.SelectboxColumn(
                            "mark", options=list(column_marks.MARKS), required=True)})
                    st.caption("Identifying columns are stored as keyed tokens in prediction logs, reference data "
                               "and explanations; sensitive ones are shown only in aggregate.")
                    if may_mark and st.button("Confirm these marks", key=f"confirm-{ds['id']}"):
                        ws.mark_columns(ds["id"], dict(zip(edited["column"], edited["mark"])))
                        st.toast("Marks confirmed, and carried to derived data sets.", icon=":material/check:")
                        st.rerun()
        st.subheader("Artifacts")
        arts = ws.run_artifacts(run_id)
        if arts.is_empty():
            ui.empty("No artifacts: use `run.log_artifact(path)`.")
        else:
            st.dataframe(arts, hide_index=True, width="stretch")
        st.subheader("Model versions made from this run")
        versions = ws.model_versions().filter(pl.col("run_id") == run_id)
        if versions.is_empty():
            ui.empty("No model registered from this run.")
        else:
            st.dataframe(versions.select(["name", "version", "stage", "aliases", "created_by", "created_at"]),
                         hide_index=True)
        st.stop()

    exps = ws.experiments()
    if exps.is_empty():
        ui.empty("No experiments yet. Start one from a notebook with `ws.start_run('my-experiment')`.")
        st.stop()
    st.dataframe(exps.select(["name", "n_runs", "last_run", "created_by"]), hide_index=True, width="stretch")
    options = ["(all)", *exps["name"].to_list()]
    ui.from_url("experiments_experiment", "experiment", default="(all)", options=options)
    experiment = st.selectbox("Experiment", options, key="experiments_experiment")
    ui.keep_in_url("experiments_experiment", "experiment", None if experiment == "(all)" else experiment)
    ui.from_url("experiments_filter", "filter")
    query = st.text_input("Filter", key="experiments_filter",
                          placeholder="metrics.roc_auc > 0.75 AND params.family = 'random_forest'",
                          help="Compare metrics.x, params.x, tags.x, attributes.x; AND, OR, NOT, (), LIKE, IN, min()/max().")
    try:
        runs = ws.search_runs(query, experiment=None if experiment == "(all)" else experiment)
    except ui.wb.FilterSyntaxError as exc:
        st.error(ui.fenced(exc))
        st.stop()
    ui.keep_in_url("experiments_filter", "filter", query)  # only a filter that parses goes into a link
    st.caption(f"{runs.height} runs")
    if runs.is_empty():
        ui.empty("No run matches this filter. Loosen it, or pick another experiment.")
        st.stop()

    hidden = {"run_id", "git_commit", "parent_run_id"}
    columns = [c for c in runs.columns if c not in hidden]
    c1, c2, c3 = st.columns([3, 1, 1])
    default_cols = [c for c in columns if not c.startswith(("params.", "tags."))][:14]
    shown = c1.multiselect("Columns", columns, default=default_cols)
    sort_by = c2.selectbox("Sort by", columns, index=columns.index("start_time"))
    descending = c3.toggle("Descending", value=True)
    runs = runs.sort(sort_by, descending=descending, nulls_last=True)
    pages = max(1, -(-runs.height // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages}, {PAGE_SIZE} runs each)", 1, pages, 1) if pages > 1 else 1
    window = runs.slice((page - 1) * PAGE_SIZE, PAGE_SIZE)
    picked = st.dataframe(window.select(["run_id", *shown]), hide_index=True, width="stretch",
                          on_select="rerun", selection_mode="multi-row", key="runs_table",
                          column_config={"run_id": None})
    chosen_ids = window["run_id"].gather(picked.selection.rows).to_list() if picked.selection.rows else []
    b1, b2 = st.columns(2)
    if len(chosen_ids) == 1:
        b1.button("Open run", icon=":material/open_in_new:", on_click=lambda: st.query_params.update(run=chosen_ids[0]))
    if 2 <= len(chosen_ids) <= compare.MAX_COMPARE:
        b2.page_link(st.Page(ui.PAGES_DIR / "compare.py"), label=f"Compare {len(chosen_ids)} runs",
                     icon=":material/compare_arrows:", query_params={"runs": ",".join(chosen_ids)})
    elif len(chosen_ids) > compare.MAX_COMPARE:
        b2.warning(f"Select at most {compare.MAX_COMPARE} runs to compare.")
    else:
        st.caption("Select one run to open it, or 2 to 50 runs to compare them.")
