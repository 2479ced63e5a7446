"""Experiments: the experiment list and a filterable runs table."""

import streamlit as st

from workbench import ui

st.title("Experiments")
with ui.shown_errors():
    ws = ui.workspace()
    exps = ws.experiments()
    if exps.is_empty():
        ui.empty("No experiments yet. Start one with `ws.start_run('my-experiment')`.")
        st.stop()
    st.dataframe(exps.select(["name", "n_runs", "last_run", "created_by"]), hide_index=True, width="stretch")
    experiment = st.selectbox("Experiment", ["(all)", *exps["name"].to_list()])
    query = st.text_input("Filter", placeholder="metrics.roc_auc > 0.75 AND params.family = 'random_forest'",
                          help="Compare metrics.x, params.x, tags.x, attributes.x; AND, OR, NOT, (), LIKE, IN, min()/max().")
    try:
        runs = ws.search_runs(query, experiment=None if experiment == "(all)" else experiment)
    except ui.wb.FilterSyntaxError as exc:
        st.error(f"```\n{exc}\n```")
        st.stop()
    st.caption(f"{runs.height} runs")
    if runs.is_empty():
        ui.empty("No run matches this filter.")
    else:
        st.dataframe(runs.drop(["run_id", "git_commit", "parent_run_id"]), hide_index=True, width="stretch")
