"""Hostile text in every user-written field, shown by the real dashboard (``workbench serve``) in chromium.

A store is seeded with HTML, script, javascript: links, markdown images of an outside host and
Streamlit's own markup in every field a person writes: experiment and run names, param and tag
keys and values, metric keys, data set name and source, artifact name, model name, description,
owner team, use case, alias, card text, stage reason, request justification, comments, decision
and override reasons, schedule name, data columns and group values (the evidence pages draw
them), a run's error text. (User names cannot hold any of it: they are refused, and the Users
page shows that refusal.) Every page is then opened by an admin (the Reports page by a lead),
with the hostile item selected where a page needs a selection, and must show the text as typed
while no script runs, no element is injected and nothing is fetched from the outside host.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

import numpy as np
import polars as pl
import pytest
from _server import serving
from playwright.sync_api import Page, expect, sync_playwright
from test_browser import CHROMIUM, CHROMIUM_ARGS, _new_page, _settled, _sign_in

import workbench as wb
from workbench.workspace import operator_workspace

pytestmark = pytest.mark.browser

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=1</script>"
LINK = "[link](javascript:window.__pwned=1)"
MD = "**b** ![](http://pixel.invalid/p) :red[r] $x$"
ANCHOR = '<a href="http://pixel.invalid/a">a</a>'
JS_ANCHOR = '<a href="javascript:window.__pwned=1">js</a>'
#: what a shared link can carry into an error message
REFLECTED = "![x](http://pixel.invalid/r.png) [sign in again](http://pixel.invalid/phish)"


def hostile(tag: str) -> str:
    """One field's hostile text: a tag to tell the fields apart, then every kind of markup."""
    return f"{tag} {IMG} {SCRIPT} {LINK} {MD} {ANCHOR} {JS_ANCHOR}"


MODEL = hostile("model")
FEATURE_A, FEATURE_B = f"a {IMG}", f"b {LINK}"
SENSITIVE = f"s {MD} {IMG}"
GROUPS = (f"g1 {IMG}", f"g2 {MD}")
ARTIFACT = f"art {IMG} {LINK} **b**"  # an artifact name may not hold '/'


def _seed(path) -> dict:
    """The hostile store; returns the ids the pages are opened with."""
    op = operator_workspace(path)
    for name, role in [("ada", "admin"), ("dana", "data_scientist"), ("lee", "lead"), ("casey", "compliance_officer")]:
        op.add_user(name, role, f"{name}-demo-pw")
    dana, lee, casey = (wb.connect(path, user=u) for u in ("dana", "lee", "casey"))
    rng = np.random.default_rng(0)
    n = 400
    group = rng.choice(GROUPS, n)
    X = pl.DataFrame({FEATURE_A: rng.normal(size=n) + np.where(group == GROUPS[0], 1.5, -1.5),
                      FEATURE_B: rng.normal(size=n), SENSITIVE: group})
    y = (X[FEATURE_A] + rng.normal(size=n) > 0).cast(pl.Int64).to_numpy()
    from sklearn.linear_model import LogisticRegression

    inputs = X.select([FEATURE_A, FEATURE_B]).to_pandas()
    model = LogisticRegression().fit(inputs, y)
    source = path.parent / "artifact.txt"
    runs = []
    for i in range(2):
        with dana.start_run(hostile("exp"), name=hostile(f"run{i}"), tags={hostile("tkey"): hostile("tval")}) as run:
            run.log_params({hostile("pkey"): hostile("pval"), "C": i})
            for step in range(3):
                run.log_metrics({hostile("mkey"): 0.5 + 0.1 * step + i, "auc": 0.7 + i / 10})
            run.log_dataset(X, hostile("ds"), source=hostile("src"))
            source.write_text(f"artifact {i}\n")
            run.log_artifact(source, name=ARTIFACT)
            mv = run.register_model(LogisticRegression(C=1 + i).fit(inputs, y), MODEL, risk_tier="medium")
        runs.append(run.run_id)
    with pytest.raises(RuntimeError):
        with dana.start_run(hostile("exp"), name=hostile("failed")) as failed:
            raise RuntimeError(hostile("error"))
    dana.update_model(MODEL, description=hostile("desc"), owner_team=hostile("team"), use_case=hostile("use"))
    for field in ("intended_use", "out_of_scope_use", "limitations", "ethical_considerations"):
        dana.set_card_text(MODEL, field, hostile(field))
    dana.set_alias(MODEL, f"alias {IMG}", 1)
    dana.set_stage(MODEL, 1, "Staging", reason=hostile("stage"))
    dana.explain(mv, inputs, max_rows=100)
    dana.fairness(mv, X, y, sensitive_features=[SENSITIVE], n_bootstrap=5, min_group_size=10)
    features = X.select([FEATURE_A, FEATURE_B])
    scores = model.predict_proba(inputs)[:, 1]
    dana.log_reference(mv, features.with_columns(pl.Series("prediction", scores)))
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    dana.log_predictions(mv, features.with_columns(pl.Series("timestamp", [start + timedelta(hours=3 * i) for i in range(n)]),
                                                   pl.Series("prediction", scores)))
    rejected = dana.request_promotion(mv, "Staging", hostile("justification"))
    lee.comment(rejected.id, hostile("comment"))
    lee.decide(rejected.id, False, hostile("rejection"))
    approved = dana.request_promotion((MODEL, 1), "Production", hostile("justification2"))
    lee.decide(approved.id, True, hostile("approval"), override_reason=hostile("override"))
    out = path.parent / "reports"
    out.mkdir()
    casey.add_schedule(hostile("schedule"), "0 6 * * *", "model-card", MODEL, "md", out)
    assert [o["status"] for o in casey.run_due_schedules(now=datetime.now(timezone.utc) + timedelta(days=2))] == ["ok"]
    for ws in (dana, lee, casey, op):
        ws.close()
    return {"runs": runs, "failed": failed.run_id, "rejected": rejected.id, "approved": approved.id}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    store = folder / "hostile.duckdb"
    ids = _seed(store)
    with serving(store, folder / "serve.log") as (url, _):
        yield url, ids


class Watch:
    """What a page did that it must not: dialogs, uncaught errors, requests to the outside host."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", lambda r: self.outside.append(r.url) if urlsplit(r.url).hostname == "pixel.invalid" else None)


def _inert(page: Page, watch: Watch, where: str) -> None:
    """No script of the data ran, no element of it exists, nothing of it was fetched, no traceback."""
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)
    found = page.evaluate("""() => ({
        pwned: typeof window.__pwned,
        injected: document.querySelectorAll('img[src="x"], [onerror], img[src*="pixel.invalid"], a[href^="javascript" i]').length,
        scripts: [...document.scripts].filter(s => s.textContent.includes("__pwned")).length,
        // a link to the outside host may only be its own address, as typed (an autolinked URL), never disguised
        disguised: [...document.querySelectorAll('a[href*="pixel.invalid"]')].filter(a => {
            try { return new URL(a.textContent.trim()).href !== a.href; } catch (e) { return true; }
        }).map(a => a.outerHTML),
    })""")
    assert found == {"pwned": "undefined", "injected": 0, "scripts": 0, "disguised": []}, (where, found)
    assert (watch.dialogs, watch.errors, watch.outside) == ([], [], []), where


def _open(page: Page, url: str, user: str = "ada") -> None:
    """A page by its address in a new browser session, so sign in first (a link opens its own view after sign-in)."""
    page.context.clear_cookies()  # the last open's session cookie would sign this one in
    page.goto(url)
    _settled(page)
    _sign_in(page, user)


def _cell(page: Page, text: str):
    """A data-frame cell holding exactly ``text`` (the grid draws on a canvas; its accessible table holds the text)."""
    return page.locator('[data-testid="stDataFrame"] td').filter(has_text=re.compile(f"^{re.escape(text)}$"))


def _shown(page: Page, testid: str, text: str) -> None:
    """``text`` appears, as typed, in a visible element of that kind."""
    expect(page.get_by_test_id(testid).filter(has_text=text).first).to_be_visible()


def test_hostile_text_is_shown_as_text_on_every_page(served, tmp_path):
    url, ids = served
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page, _ = _new_page(browser)
            watch = Watch(page)
            _walk(page, watch, url, ids, tmp_path)
        finally:
            browser.close()


def _walk(page: Page, watch: Watch, url: str, ids: dict, tmp_path) -> None:
    run0, run1 = (hostile(f"run{i}") for i in range(2))

    # Home: recent runs and registered models
    _open(page, url + "/")
    expect(_cell(page, run0).first).to_be_attached()
    expect(_cell(page, MODEL).first).to_be_attached()
    _inert(page, watch, "home")

    # Experiments: the hostile experiment chosen by its link; a filter with backticks and markup
    _open(page, f"{url}/experiments?experiment={quote(hostile('exp'))}")
    expect(page.get_by_role("combobox", name="Experiment")).to_have_value(hostile("exp"))
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text=re.compile(r"^3 runs$"))).to_be_visible()
    expect(_cell(page, hostile("exp")).first).to_be_attached()
    bad_filter = f"``` {IMG} ![p](http://pixel.invalid/f.png) ```"
    box = page.get_by_role("textbox", name="Filter")
    box.fill(bad_filter)
    box.press("Enter")
    _settled(page)
    alert = page.get_by_test_id("stAlert").filter(has_text="Filter syntax error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(bad_filter)
    _inert(page, watch, "experiments")

    # A run's page: its name, experiment, params, tags, metrics, data set, artifact
    _open(page, f"{url}/experiments?run={ids['runs'][0]}")
    expect(page.get_by_role("heading", name=run0, exact=True)).to_be_visible()
    _shown(page, "stCaptionContainer", f"in {hostile('exp')} by dana")
    # (a grid lays out only the columns in view: the first column of each table is checked)
    for text in (hostile("pkey"), hostile("mkey"), hostile("tkey"), hostile("ds"), ARTIFACT, MODEL):
        expect(_cell(page, text).first).to_be_attached()
    expect(page.locator(".js-plotly-plot").first).to_contain_text(f"{run0} · {hostile('mkey')}")
    _inert(page, watch, "run detail")

    # A failed run: its error text
    _open(page, f"{url}/experiments?run={ids['failed']}")
    expect(page.get_by_role("heading", name=hostile("failed"), exact=True)).to_be_visible()
    _shown(page, "stAlert", f"RuntimeError: {hostile('error')}")
    _inert(page, watch, "failed run")

    # Compare
    _open(page, f"{url}/compare?runs={','.join(ids['runs'])}")
    caption = page.get_by_test_id("stCaptionContainer").filter(has_text="2 runs: ")
    expect(caption).to_be_visible()
    expect(caption).to_contain_text(run0)
    expect(caption).to_contain_text(run1)
    expect(page.locator(".js-plotly-plot .parcoords").first).to_be_attached()  # the page was drawn to its end
    expect(_cell(page, hostile("mkey")).first).to_be_attached()
    _inert(page, watch, "compare")

    # Models: the hostile model chosen by its link; its card text as a reader sees it (admins cannot edit it)
    _open(page, f"{url}/models?model={quote(MODEL)}")
    expect(page.get_by_role("combobox", name="Model")).to_have_value(MODEL)
    expect(_cell(page, hostile("team")).first).to_be_attached()
    # v1 is in Production, so its aliases cell also holds `champion`, which follows Production
    aliases = page.locator('[data-testid="stDataFrame"] td').filter(has_text=f"alias {IMG}")
    expect(aliases.first).to_be_attached()
    expect(aliases.first).to_contain_text("champion")
    page.get_by_test_id("stExpander").get_by_text("Model card text").click()
    for field in ("intended_use", "out_of_scope_use", "limitations", "ethical_considerations"):
        _shown(page, "stMarkdownContainer", f"{field.replace('_', ' ').capitalize()}: {hostile(field)}")
    _inert(page, watch, "models")

    # Explanations: feature names in the charts; a hostile row id typed in
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Explanations").click()
    _settled(page)
    expect(page.get_by_role("combobox", name="Model version")).to_have_value(f"{MODEL} v2")
    expect(page.locator(".js-plotly-plot").first).to_contain_text(FEATURE_A)
    box = page.get_by_role("textbox", name="Row id")
    box.fill(REFLECTED)
    box.press("Enter")
    _settled(page)
    _shown(page, "stAlert", f"Row id {REFLECTED!r} was not explained")
    _inert(page, watch, "explanations")

    # Fairness: the sensitive column as the radio's option, a group named in the failed screen
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Fairness").click()
    _settled(page)
    expect(page.get_by_test_id("stRadio").get_by_text(SENSITIVE, exact=True)).to_be_visible()
    expect(page.get_by_text("Verdict: fail")).to_be_visible()
    _shown(page, "stCaptionContainer", f"group {GROUPS[1]})")
    expect(page.locator(".js-plotly-plot").first).to_contain_text(GROUPS[0])
    _inert(page, watch, "fairness")

    # Drift & monitoring
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Drift & monitoring").click()
    _settled(page)
    expect(page.get_by_role("combobox", name="Model version")).to_have_value(f"{MODEL} v2 (None)")
    expect(page.get_by_role("combobox", name="Distribution of")).to_have_value(re.compile(re.escape(FEATURE_A)
                                                                                         + "|prediction"))
    _inert(page, watch, "drift")

    # Approvals: the rejected request (justification, comment, decision) and the approved one (override)
    _open(page, f"{url}/approvals?request={ids['rejected']}")
    _shown(page, "stHeading", f"#{ids['rejected']} {MODEL} v2: None → Staging")
    _shown(page, "stMarkdownContainer", hostile("justification"))
    page.get_by_role("tab", name="History").click()
    _shown(page, "stMarkdownContainer", f": {hostile('comment')}")
    expect(_cell(page, hostile("rejection")).first).to_be_attached()
    expect(_cell(page, hostile("stage")).first).to_be_attached()
    _inert(page, watch, "approvals, rejected")
    page.get_by_role("combobox", name="Request").click()
    page.get_by_role("option", name=re.compile(f"^#{ids['approved']} ")).click()
    _settled(page)
    _shown(page, "stMarkdownContainer", hostile("justification2"))
    page.get_by_role("tab", name="History").click()
    expect(_cell(page, hostile("override")).first).to_be_attached()
    _inert(page, watch, "approvals, approved")

    # Audit trail: the hostile model's events, found by its name typed into the filter
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Audit trail").click()
    _settled(page)
    entity = page.get_by_role("textbox", name="Entity")
    entity.fill(MODEL)
    entity.press("Enter")
    _settled(page)
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text=re.compile(r"^\d+ events? shown"))).to_be_visible()
    expect(_cell(page, MODEL).first).to_be_attached()
    _inert(page, watch, "audit")

    # Users: a hostile user name is refused, and the refusal shows the name as typed
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Users").click()
    _settled(page)
    page.get_by_role("textbox", name="User name").fill(REFLECTED)
    page.get_by_role("textbox", name="Password", exact=True).fill("long-enough-password")
    page.get_by_role("button", name="Add user").click()
    _settled(page)
    _shown(page, "stAlert", f"User name {REFLECTED!r} is not valid")
    _inert(page, watch, "users")

    # A link that carries hostile text into an error message (the Compare page's: test_hostile_input)
    _open(page, f"{url}/experiments?run={quote(REFLECTED)}")
    _shown(page, "stAlert", f"No run with id {REFLECTED!r}")
    _inert(page, watch, "a hostile link")

    # Reports (a lead): the schedule, and a model card of the hostile model downloaded under a safe name
    _open(page, url + "/reports", "lee")
    expect(_cell(page, hostile("schedule")).first).to_be_attached()
    expect(page.get_by_role("combobox", name="Model")).to_have_value(MODEL)
    page.get_by_role("button", name="Generate").click()
    _settled(page)
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"^Download model-card-")).click()
    name = download.value.suggested_filename
    assert re.fullmatch(r"model-card-[A-Za-z0-9._-]+\.html", name), name
    saved = tmp_path / name
    download.value.save_as(saved)
    text = saved.read_text()
    assert f"<h1>Model card: {html.escape(MODEL)} v1</h1>" in text and "<img" not in text and "<script" not in text
    _inert(page, watch, "reports")
