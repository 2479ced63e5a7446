"""Streamlit helpers shared by the dashboard pages: sign-in state, the workspace, errors.

Pages stay thin: widgets, a call into :mod:`workbench`, a chart. This module holds the
little they share, so a page never opens the store, checks a role or formats an error
itself. Permissions are decided in :mod:`workbench.people.roles` and refused again by the
services; the dashboard only hides what a role cannot use.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence
from urllib.parse import quote, urlencode, urlsplit

import polars as pl
import streamlit as st

import workbench as wb
from workbench.people import auth, roles, sessions

PAGES_DIR = Path(__file__).resolve().parents[2] / "pages"
SIGNED = "wb_signed"  # session_state key holding auth.SignedIn

#: page key -> (script, title, icon), in navigation order
PAGES = {
    "home": ("overview.py", "Home", ":material/home:"),
    "experiments": ("experiments.py", "Experiments", ":material/science:"),
    "compare": ("compare.py", "Compare runs", ":material/compare_arrows:"),
    "models": ("models.py", "Models", ":material/inventory_2:"),
    "explanations": ("explanations.py", "Explanations", ":material/insights:"),
    "fairness": ("fairness.py", "Fairness", ":material/balance:"),
    "drift": ("drift.py", "Drift & monitoring", ":material/monitoring:"),
    "approvals": ("approvals.py", "Approvals", ":material/approval:"),
    "reports": ("reports.py", "Reports", ":material/description:"),
    "audit": ("audit.py", "Audit trail", ":material/policy:"),
    "users": ("users.py", "Users", ":material/group:"),
    "tokens": ("tokens.py", "API tokens", ":material/key:"),
}


def store_location() -> str:
    """The store the dashboard serves: ``$WORKBENCH_STORE``, else ``data/workbench.duckdb``."""
    return os.environ.get("WORKBENCH_STORE") or "data/workbench.duckdb"


@st.cache_resource(show_spinner=False)
def _workspace(store: str, user: str | None) -> wb.Workspace:
    return wb.connect(store, user=user)


def served() -> bool:
    """Whether the dashboard runs inside ``workbench serve`` (with its ``/api`` routes), where a
    sign-in is kept in a cookie and survives a reload."""
    return bool(os.environ.get("WORKBENCH_SERVER_URL"))


def redirect(path: str) -> None:
    """Send the browser to ``path`` on this server, and stop the script.

    Streamlit has no public call for this. ``st.login`` sends the browser to its HTTP route with
    a message the frontend follows (``window.location``); the sign-in's cookie route needs the
    same, so this sends that message. ``tests/test_browser.py`` signs in and reloads: it fails
    if a Streamlit upgrade stops following it.
    """
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None:
        msg = ForwardMsg()
        msg.auth_redirect.url = path
        ctx.enqueue(msg)
    st.stop()


def _here() -> str:
    """This page's path and query, to come back to after the cookie route."""
    try:
        path = urlsplit(st.context.url or "/").path or "/"
        query = {k: st.query_params.get_all(k) for k in st.query_params}  # st.context.url has no query
    except (AttributeError, TypeError, ValueError):  # AppTest's context has no URL
        return "/"
    return path + (f"?{urlencode(query, doseq=True)}" if query else "")


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(sessions.COOKIE)
    except (AttributeError, TypeError):  # AppTest's context gives a mock
        return None
    return value if isinstance(value, str) else None


def signed_in() -> auth.SignedIn | None:
    """The signed-in user of this browser session, or None (an expired session is ended).

    Under the server a reload starts a new Streamlit session: the ``wb_session`` cookie
    brings the sign-in back (:func:`workbench.people.sessions.resume`, which reads the account
    from the store again)."""
    signed = st.session_state.get(SIGNED)
    if signed is None and served():
        signed = sessions.resume(store_location(), _cookie())
        if signed is not None:
            st.session_state[SIGNED] = signed
    if signed is None:
        return None
    if auth.is_expired(signed):
        del st.session_state[SIGNED]
        try:  # the trail records the end of the session too
            auth.sign_out(store_location(), signed)
            sessions.end(store_location(), _cookie(), reason="expired")
        except wb.WorkbenchError:
            pass
        st.session_state["wb_expired"] = signed.expires_at
        return None
    reason = auth.revoked(store_location(), signed)
    if reason:
        del st.session_state[SIGNED]
        try:
            auth.sign_out(store_location(), signed)
            sessions.end(store_location(), _cookie(), reason=reason)
        except wb.WorkbenchError:
            pass
        st.session_state["wb_revoked"] = reason
        return None
    return signed


def workspace() -> wb.Workspace:
    """The signed-in user's workspace (one per user per server process)."""
    signed = signed_in()
    return _workspace(store_location(), signed.user if signed else None)


def require_page(key: str) -> wb.Workspace:
    """Stop the page unless a signed-in user's role may open it (also when opened directly)."""
    signed = signed_in()
    if signed is None:  # on this very URL, so a shared link shows its view after sign-in
        sign_in_form()
        st.stop()
    if key not in roles.pages_for(signed.role):
        st.error(f"Your role ({signed.role}) may not open this page.", icon=":material/block:")
        st.stop()
    return workspace()


def client_address() -> str | None:
    """The browser's IP address, which failed sign-ins are counted and blocked by.

    ``st.context.ip_address`` (None on localhost). Behind a reverse proxy every browser
    arrives from the proxy's address, so there ``$WORKBENCH_CLIENT_IP_HEADER`` names the
    header the proxy sets (e.g. ``X-Forwarded-For``) and its last entry, the one the proxy
    itself appended, is used: earlier entries come from the client and can be forged.
    """
    header = os.environ.get("WORKBENCH_CLIENT_IP_HEADER", "").strip()
    if header:
        value = st.context.headers.get(header)
        if value:
            return value.split(",")[-1].strip()
    address = st.context.ip_address
    return address if isinstance(address, str) else None  # AppTest's context gives a mock


def token_table(tokens: pl.DataFrame) -> pl.DataFrame:
    """API tokens as people read them: plain headers, dates to the minute, blanks for "never"."""

    def when(col: str) -> pl.Expr:
        return pl.col(col).cast(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%d %H:%M").fill_null("")

    return tokens.select(
        pl.col("id").alias("Id"), pl.col("user").alias("User"), pl.col("name").alias("Name"),
        pl.col("status").alias("Status"),
        # the list as JSON text: PostgreSQL's jsonb spaces it, DuckDB's does not
        pl.col("operations").str.replace_all(r'[\[\]"\s]', "").str.replace_all(",", ", ")
        .fill_null("all the role may do").alias("Limited to"),
        when("created_at").alias("Made"), pl.col("created_by").alias("Made by"), when("expires_at").alias("Expires"),
        when("last_used_at").alias("Last used"), when("revoked_at").alias("Revoked"))


def sign_in_form() -> None:
    """The sign-in form (and the identity provider's button where OIDC is configured)."""
    st.title("Sign in")
    expired = st.session_state.pop("wb_expired", None)
    if expired is not None:
        st.warning(f"Your session expired at {expired:%Y-%m-%d %H:%M} UTC; sign in again.", icon=":material/timer_off:")
    revoked = st.session_state.pop("wb_revoked", None)
    if revoked:
        st.warning(plain(revoked), icon=":material/block:")
    with st.form("sign_in"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            st.session_state[SIGNED] = auth.sign_in(store_location(), name.strip(), password,
                                                    address=client_address())
        except wb.WorkbenchError as exc:
            st.error(plain(exc), icon=":material/error:")
        else:
            _keep_signed_in()
            st.rerun()
    if auth.oidc_configured():
        if not st.user.is_logged_in:
            st.button("Sign in with your organisation", on_click=st.login)
            return
        if st.session_state.get("wb_oidc_tried"):  # once per session: no failed event per rerun
            return
        st.session_state["wb_oidc_tried"] = True
        try:
            st.session_state[SIGNED] = auth.sign_in_oidc(store_location(), st.user.get("email") or st.user.get("name"))
        except wb.WorkbenchError as exc:
            st.error(plain(exc), icon=":material/error:")
        else:
            _keep_signed_in()
            st.rerun()


def _keep_signed_in() -> None:
    """Under the server: record the sign-in as a session and let the browser fetch its cookie
    (the one-time code's route sends it back here), so a reload keeps it."""
    if served():
        code = sessions.issue(store_location(), st.session_state[SIGNED], address=client_address())
        redirect(f"/api/session/open?code={code}&next={quote(_here(), safe='')}")


def sign_out() -> None:
    """End this browser's sign-in: the audit event, and under the server the session and its cookie."""
    signed = st.session_state.pop(SIGNED, None)
    if signed is not None:
        auth.sign_out(store_location(), signed)
    if served():
        redirect("/api/session/close?next=/")


@contextmanager
def shown_errors():
    """Show a workbench error as a message, never as a traceback.

    The message is shown as plain text: it often quotes what a user typed or named (a run
    id from a link, a model name), which must not become a link or an image there.
    """
    try:
        yield
    except wb.WorkbenchError as exc:
        st.error(plain(exc), icon=":material/error:")


def empty(message: str) -> None:
    """Say that there is nothing to show here, and how to get something.

    ``message`` is markdown written by the page: pass any user text in it through :func:`plain`.
    """
    st.info(message, icon=":material/info:")


def query_param(name: str) -> str | None:
    """The URL's query parameter ``name``, or None when it is missing or empty."""
    value = st.query_params.get(name)
    return value or None


_URL_SEEN = "wb_url_seen:"  # + widget key: the URL value that widget last took or wrote


def from_url(key: str, param: str, default: str = "", options: Sequence[str] | None = None) -> None:
    """Start the widget with key ``key`` at the URL's ``param``, when the URL has news for it.

    Call it just before the widget, and create the widget with ``key=key`` and no
    ``value``/``index``. A start value passed as ``value``/``index`` is part of a key-less
    widget's identity: once the page wrote the first change to the URL, the next run made
    a new widget at that value and the user's second change was thrown away. So the value
    lives under a fixed key, and the URL sets it only when it says something the widget has
    not seen yet (a new session from a shared link or a reload, a link that changed it).

    Parameters
    ----------
    key : str
        The widget's key in ``st.session_state``.
    param : str
        The query parameter that holds the widget's value.
    default : str
        The value when the URL has none, or one not among ``options``.
    options : sequence of str, optional
        A selectbox's options: a value from the URL, or a kept value, outside them gives
        ``default``.
    """
    url = query_param(param)
    if key not in st.session_state or url_news(key, param):
        value = url if url is not None and (options is None or url in options) else default
        st.session_state[_URL_SEEN + key] = url
    else:  # the user's latest choice
        value = st.session_state[key]
        if options is not None and value not in options:
            value = default
    hold(key, value)


def hold(key: str, value: object) -> None:
    """Set the widget with key ``key`` to ``value`` just before it is drawn, on every run.

    A keyed widget that some run did not draw (the page stopped before it, or showed a run
    instead of the list) keeps its value on the server, while the browser draws it afresh at
    its default: the page would filter by one value and show another. Setting the value on
    every run sends it to the browser too. ``st.session_state[key]`` read before this call
    already holds the user's latest change, so setting it back loses nothing.

    Parameters
    ----------
    key : str
        The widget's key.
    value : object
        The value it shows; one of its options for a selectbox or radio.
    """
    st.session_state[key] = value


def url_news(key: str, param: str) -> bool:
    """Whether the URL's ``param`` says something the widget ``key`` has neither taken nor written.

    Parameters
    ----------
    key : str
        The widget's key, as given to :func:`from_url`.
    param : str
        The query parameter.

    Returns
    -------
    bool
        True when a link (or a reload) changed the parameter since the widget last synced with it.
    """
    return st.session_state.get(_URL_SEEN + key) != query_param(param)


def keep_in_url(key: str, param: str, value: str | None) -> None:
    """Put the widget ``key``'s ``value`` in the URL's ``param`` (removed when empty), so links stay shareable.

    Parameters
    ----------
    key : str
        The widget's key, as given to :func:`from_url`.
    param : str
        The query parameter.
    value : str or None
        What the URL should hold; None or ``""`` removes the parameter.
    """
    if value:
        st.query_params[param] = value
    else:
        st.query_params.pop(param, None)
    st.session_state[_URL_SEEN + key] = value or None


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~$:&="})


def plain(text: object) -> str:
    """User-written text for a markdown element, shown as typed: no markup, links or HTML.

    Every Streamlit element whose text is markdown needs it: ``st.markdown``, ``st.caption``,
    ``st.error`` and the other alerts, headings, button labels, ``st.radio`` options.
    """
    return str(text).translate(_MARKDOWN)


def fenced(text: object) -> str:
    """Text as a markdown code block, kept whole even when it holds backticks itself."""
    text = str(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"
