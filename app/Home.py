"""Dashboard entry point: navigation over the pages the signed-in user's role may open.

Signed out, every page is reachable by its URL (navigation hidden) and shows the sign-in
form, so a shared link opens its own view right after sign-in.
"""

from pathlib import Path

import streamlit as st

from workbench.people import auth, roles
from workbench.ui import widgets as ui

# A file, sent inline as a data URL: a ":material/...:" page icon makes the browser fetch the
# favicon from fonts.gstatic.com, and the dashboard makes no request outside its own server.
st.set_page_config(page_title="Workbench", page_icon=Path(__file__).parent / "icon.svg", layout="wide")

signed = ui.signed_in()
keys = roles.pages_for(signed.role) if signed else list(ui.PAGES)
pages = []
for key in keys:
    script, title, icon = ui.PAGES[key]
    pages.append(st.Page(ui.PAGES_DIR / script, title=title, icon=icon, default=key == "home"))
nav = st.navigation(pages, position="sidebar" if signed else "hidden")
if signed is not None:
    with st.sidebar:
        st.caption(f"Signed in as **{ui.plain(signed.user)}** ({signed.role.replace('_', ' ')})")
        if st.button("Sign out", icon=":material/logout:"):
            if signed.method == "oidc":
                with ui.shown_errors():
                    auth.sign_out(ui.store_location(), signed)
                del st.session_state[ui.SIGNED]
                st.logout()  # also end the identity provider's session (reruns the app)
            with ui.shown_errors():
                ui.sign_out()  # under the server, also the session and its cookie
            st.rerun()
nav.run()
