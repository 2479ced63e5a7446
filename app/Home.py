"""Dashboard entry point: navigation over the scripts in the top-level pages/ folder."""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent.parent / "pages"

st.set_page_config(page_title="Workbench", page_icon=":material/verified:", layout="wide")
nav = st.navigation([
    st.Page(PAGES / "overview.py", title="Home", icon=":material/home:", default=True),
    st.Page(PAGES / "experiments.py", title="Experiments", icon=":material/science:"),
    st.Page(PAGES / "models.py", title="Models", icon=":material/inventory_2:"),
])
nav.run()
