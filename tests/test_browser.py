"""The real dashboard server (``workbench serve``) driven by Debian's chromium through Playwright."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import _demo_store
import polars as pl
import pytest
from _server import serving
from playwright.sync_api import Page, expect, sync_playwright

import workbench as wb
from workbench.people import roles
from workbench.store import shared
from workbench.ui import widgets as ui

pytestmark = [pytest.mark.browser, pytest.mark.both_backends]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
UI_TIMEOUT = 30_000  # ms for any element to appear
BAD_FILTER = "metrics.roc_auc > AND params.family = 'random_forest'"
GOOD_FILTER = "params.family = 'random_forest'"


_TOKENS: dict[str, dict[str, str]] = {}  # server url -> {user: API token}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = _demo_store.private_demo()  # the browser tests approve a request: a store of their own
    tokens = _demo_store.tokens_for(store, ("dana", "lee", "casey", "ada"))
    with serving(store, tmp_path_factory.mktemp("serve") / "serve.log") as (url, _):
        _TOKENS[url] = tokens
        yield url, store


def _ws(url: str, user: str = "casey"):
    """A workspace on the running server as ``user`` (the server holds the store file)."""
    return wb.connect(url, token=_TOKENS[url][user])


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _settled(page: Page) -> None:
    """As Streamlit's own e2e tests do: connected, and the script not running."""
    app = page.locator('[data-testid="stApp"]')
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED", timeout=UI_TIMEOUT)
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=UI_TIMEOUT)


def _runs_caption(page: Page):
    return page.get_by_test_id("stCaptionContainer").filter(has_text=re.compile(r"^\d+ runs$"))


def test_dashboard_in_a_browser(server, browser, tmp_path):
    url, store = server
    ws = _ws(url)
    try:
        counts = ws.counts()
        n_total = ws.search_runs().height
        n_good = ws.search_runs(GOOD_FILTER).height
        compare_ids = ws.search_runs("params.family = 'random_forest'")["run_id"].to_list()[:4]
        with pytest.raises(wb.FilterSyntaxError) as bad:
            ws.search_runs(BAD_FILTER)
    finally:
        ws.close()  # release the store file for the server process
    assert 0 < n_good < n_total

    shots = Path(__file__).parent / "artifacts" / "browser"
    page, errors = _new_page(browser)

    # Sign in as a data scientist; Home then shows the store's real counts.
    page.goto(url + "/")
    _settled(page)
    _sign_in(page, "dana")
    nav = page.get_by_test_id("stSidebarNavLink")
    expect(nav).to_have_text(_titles("Home", "Experiments", "Compare runs", "Models", "Explanations", "Fairness",
                                     "Drift & monitoring", "Approvals", "API tokens"))  # no audit, no users
    _shoot(page, shots, "1-home")
    expect(page.get_by_role("heading", name="Workbench")).to_be_visible()
    labels = page.get_by_test_id("stMetricLabel")
    values = page.get_by_test_id("stMetricValue")
    expect(values).to_have_count(5)
    expect(labels).to_have_text(["Experiments", "Runs", "Models", "Versions", "Users"])
    expect(values).to_have_text([str(counts[k]) for k in ["experiments", "runs", "models", "versions", "users"]])
    for i in range(5):
        expect(values.nth(i)).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)

    # Experiments, through the sidebar link.
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Experiments").click()
    expect(page).to_have_url(re.compile(r"/experiments$"))
    _settled(page)
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
    expect(_runs_caption(page)).to_have_text(f"{n_total} runs")

    box = page.get_by_test_id("stTextInput").locator("input")
    box.fill(BAD_FILTER)
    box.press("Enter")
    alert = page.get_by_test_id("stAlert").filter(has_text="Filter syntax error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(f"position {bad.value.position}")
    _settled(page)
    expect(_runs_caption(page)).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)

    box.fill(GOOD_FILTER)
    box.press("Enter")
    expect(_runs_caption(page)).to_have_text(f"{n_good} runs")
    _settled(page)
    expect(alert).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)

    _shoot(page, shots, "2-experiments-filtered")

    # Models.
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Models").click()
    expect(page).to_have_url(re.compile(r"/models(\?.*)?$"))
    _settled(page)
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    model_box = page.get_by_test_id("stSelectbox").get_by_role("combobox", name="Model")
    expect(model_box).to_be_visible()
    expect(model_box).to_have_value("credit-default")
    expect(page.get_by_test_id("stException")).to_have_count(0)

    _shoot(page, shots, "3-models")

    # A comparison opened from a shared link: the parallel-coordinates chart is drawn.
    # A new browser session: the link asks for sign-in, then shows its own view.
    page.context.clear_cookies()  # a browser that never signed in (no session cookie)
    page.goto(f"{url}/compare?runs={','.join(compare_ids)}")
    _settled(page)
    _sign_in(page, "dana")
    expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/compare\?runs="))
    expect(page.locator(".js-plotly-plot .parcoords").first).to_be_attached()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _shoot(page, shots, "4-compare")

    # A reviewer: no write actions, no Users page; the audit trail is there.
    _sign_out(page)
    _sign_in(page, "riley")
    links = page.get_by_test_id("stSidebarNavLink")
    expect(links).to_have_text(_titles("Home", "Experiments", "Compare runs", "Models", "Explanations", "Fairness",
                                       "Drift & monitoring", "Approvals", "Audit trail", "API tokens"))
    expect(page.get_by_role("button", name="Add user")).to_have_count(0)
    _shoot(page, shots, "5-reviewer-home")
    assert not errors, errors
    page.close()


def _row_where_age_counts(url) -> str:
    """A row of credit-default v1's explanation whose waterfall lists ``age`` (top 12 by |SHAP|)."""
    ws = _ws(url)
    try:
        ev = ws.evidence("credit-default").filter((pl.col("kind") == "explanation") & (pl.col("version") == 1))
        summary, values = ws.evidence_detail(ev["id"][0])
    finally:
        ws.close()
    assert summary["masked"] == ["age"]
    features = [r["feature"] for r in summary["global_importance"]]
    ranks = values.select("row_id", pl.concat_list([pl.col(f).abs() for f in features]).alias("a"))
    for row_id, contrib in ranks.iter_rows():
        if sorted(contrib, reverse=True).index(abs(contrib[features.index("age")])) < 12:
            return str(row_id)
    raise AssertionError("no row has age among its 12 largest contributions")


def test_reviewer_reads_explanations_and_fairness_in_a_browser(server, browser):
    url, store = server
    row_id = _row_where_age_counts(url)
    shots = Path(__file__).parent / "artifacts" / "browser"
    page, errors = _new_page(browser)
    page.goto(url + "/explanations")
    _settled(page)
    _sign_in(page, "riley")
    expect(page.get_by_role("heading", name="Explanations")).to_be_visible()
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="additivity holds").first).to_be_visible()
    charts = page.locator(".js-plotly-plot")
    expect(charts).to_have_count(5)  # importance, beeswarm, dependence, waterfall, two versions
    # a row's waterfall: a protected attribute's value is masked, its contribution shown
    box = page.get_by_test_id("stTextInput").locator("input")
    box.fill(row_id)
    box.press("Enter")
    _settled(page)
    expect(charts.filter(has_text="age = •••")).to_have_count(1)  # retried until the rerun drew it
    _settled(page)
    expect(charts.filter(has_text=re.compile(r"\bage = \d"))).to_have_count(0)
    box.fill("no-such-row")
    box.press("Enter")
    expect(page.get_by_test_id("stAlert").filter(has_text="'no-such-row' was not explained")).to_be_visible()
    _settled(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _shoot(page, shots, "6-explanations")

    page.get_by_test_id("stSidebarNavLink").filter(has_text="Fairness").click()
    _settled(page)
    expect(page.get_by_role("heading", name="Fairness")).to_be_visible()
    expect(page.get_by_text("Verdict: pass")).to_be_visible()
    version = page.get_by_test_id("stSelectbox").get_by_role("combobox", name="Model version")
    version.click()
    page.get_by_role("option", name="credit-default v5").click()
    _settled(page)
    expect(page.get_by_text("Verdict: fail")).to_be_visible()
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="four-fifths screen failed")).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_have_count(2)  # group bars, trend across versions
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _shoot(page, shots, "7-fairness-fail")

    page.get_by_test_id("stSidebarNavLink").filter(has_text="Drift & monitoring").click()
    _settled(page)
    expect(page.get_by_role("heading", name="Drift & monitoring")).to_be_visible()
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="1 breach the monitor policy")).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_have_count(3)  # timelines with the alert marker, canary, distributions
    expect(page.locator(".js-plotly-plot").first).to_contain_text("drift share")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _shoot(page, shots, "8-drift")
    assert not errors, errors
    page.close()


def test_a_lead_approves_a_pending_request_and_the_audit_trail_shows_it(server, browser):
    url, store = server
    ws = _ws(url, "casey")
    try:
        pending = ws.requests(status="pending").filter(pl.col("name") == "diabetes-progression").row(0, named=True)
    finally:
        ws.close()
    assert pending["requested_by"] == "dana" and not pending["stale"] and pending["failing_gates"] == []
    shots = Path(__file__).parent / "artifacts" / "browser"
    page, errors = _new_page(browser)
    link = f"{url}/approvals?request={pending['id']}"

    # the requester sees her request but no way to approve it
    page.goto(link)
    _settled(page)
    _sign_in(page, "dana")
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    expect(page.get_by_text("nobody decides their own request")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    _sign_out(page)

    # a lead opens the same link, approves
    page.goto(link)
    _settled(page)
    _sign_in(page, "lee")
    expect(page.get_by_test_id("stHeading").filter(has_text=f"#{pending['id']} diabetes-progression")).to_be_visible()
    page.get_by_role("textbox", name="Comment (a rejection needs one)").fill("Checked the MAE and the explanation.")
    page.get_by_role("button", name="Approve").click()
    _settled(page)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)  # decided: nothing left to approve
    expect(page.get_by_role("radio", name=re.compile(r"Awaiting me \(\d+\)"))).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _shoot(page, shots, "9-approved")

    # the audit trail shows the approval
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Audit trail").click()
    _settled(page)
    expect(page.get_by_text(re.compile(r"Chain intact: [\d,]+ events"))).to_be_visible()
    page.get_by_role("textbox", name="Action").fill("request.approve")
    page.get_by_role("textbox", name="Entity").fill(f"request/{pending['id']}")
    page.get_by_role("textbox", name="Entity").press("Enter")
    _settled(page)
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="1 event shown")).to_be_visible()
    _shoot(page, shots, "10-audit-approval")
    assert not errors, errors
    page.close()
    ws = _ws(url, "casey")
    try:
        assert ws.request(pending["id"]).status == "approved"
        event = ws.audit_events(action="request.approve", entity=f"request/{pending['id']}").row(0, named=True)
        assert event["actor"] == "lee"
    finally:
        ws.close()


def test_a_compliance_officer_downloads_a_validation_pack(server, browser, tmp_path):
    import hashlib

    url, store = server
    page, errors = _new_page(browser)
    page.goto(url + "/reports")
    _settled(page)
    _sign_in(page, "casey")
    expect(page.get_by_role("heading", name="Reports")).to_be_visible()
    kind = page.get_by_test_id("stSelectbox").get_by_role("combobox", name="Kind")
    kind.click()
    page.get_by_role("option", name="validation").click()
    _settled(page)
    page.get_by_role("button", name="Generate").click()
    _settled(page)
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"Download validation-credit-default-v4-.*\.html")).click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    text = saved.read_text()
    assert "<h1>Validation pack: credit-default v4</h1>" in text and "<script" not in text
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _shoot(page, Path(__file__).parent / "artifacts" / "browser", "11-reports")
    assert not errors, errors
    page.close()
    ws = _ws(url, "casey")
    try:
        event = ws.audit_events(action="report.export", entity=f"report/{saved.name}").row(0, named=True)
    finally:
        ws.close()
    assert event["actor"] == "casey"
    assert json.loads(event["payload"])["sha256"] == hashlib.sha256(saved.read_bytes()).hexdigest()


def test_every_second_change_sticks_and_a_reload_restores_the_last(server, browser):
    """Issue 15 item 12: each change to the filter, the Experiment box and the Model box is kept.

    They used to take their start value from the URL without a fixed key, so after the first
    change went into the URL the next run made a new widget and the second change was lost.
    """
    url, store = server
    ws = _ws(url)
    try:
        n_all = ws.search_runs().height
        n_in = {e: ws.search_runs(experiment=e).height for e in ("credit-risk", "diabetes-progression")}
        n_07, n_08 = (ws.search_runs(f"metrics.accuracy > {t}", experiment="credit-risk").height for t in (0.7, 0.8))
        n_versions = {m: ws.model_versions(m).height for m in ("credit-default", "diabetes-progression")}
    finally:
        ws.close()
    # every step must change what the table shows, or "the table reflects it" would prove nothing
    assert len({n_all, *n_in.values()}) == 3 and n_in["credit-risk"] > n_07 > n_08 > 0
    assert n_versions["credit-default"] != n_versions["diabetes-progression"]
    shots = Path(__file__).parent / "artifacts" / "browser"
    page, errors = _new_page(browser)
    page.goto(url + "/experiments")
    _settled(page)
    _sign_in(page, "dana")
    expect(_runs_caption(page)).to_have_text(f"{n_all} runs")

    experiment = page.get_by_test_id("stSelectbox").get_by_role("combobox", name="Experiment")
    for name in ("diabetes-progression", "credit-risk"):  # the second change is the one that was lost
        experiment.click()
        page.get_by_role("option", name=name, exact=True).click()
        _settled(page)
        expect(experiment).to_have_value(name)
        _url_holds(page, experiment=name)
        expect(_runs_caption(page)).to_have_text(f"{n_in[name]} runs")

    box = page.get_by_role("textbox", name="Filter")
    for query, n in (("metrics.accuracy > 0.7", n_07), ("metrics.accuracy > 0.8", n_08)):
        box.fill(query)
        box.press("Enter")
        _settled(page)
        expect(box).to_have_value(query)
        _url_holds(page, experiment="credit-risk", filter=query)
        expect(_runs_caption(page)).to_have_text(f"{n} runs")
    _shoot(page, shots, "12-experiments-second-change")

    # Open a run and go back: the boxes, not drawn while the run was shown, come back as they were.
    grid = page.get_by_test_id("stDataFrame").nth(1).bounding_box()  # the runs (the first lists experiments)
    page.mouse.click(grid["x"] + 16, grid["y"] + 35 + 17)  # the first row's selection box, below the header
    page.get_by_role("button", name="Open run").click()
    _settled(page)
    expect(page.get_by_role("button", name="Back to the runs")).to_be_visible()
    assert "run" in parse_qs(urlsplit(page.url).query)
    page.get_by_role("button", name="Back to the runs").click()
    _settled(page)
    expect(box).to_have_value("metrics.accuracy > 0.8")
    expect(experiment).to_have_value("credit-risk")
    _url_holds(page, experiment="credit-risk", filter="metrics.accuracy > 0.8")
    expect(_runs_caption(page)).to_have_text(f"{n_08} runs")

    # A reload keeps the sign-in (the session's cookie) and shows the last values; the URL is the
    # shareable link: opened in another browser, after sign-in, it shows them too.
    page.reload()
    _settled(page)
    expect(page.get_by_text("Signed in as dana")).to_be_visible()
    expect(box).to_have_value("metrics.accuracy > 0.8")
    expect(experiment).to_have_value("credit-risk")
    _url_holds(page, experiment="credit-risk", filter="metrics.accuracy > 0.8")
    expect(_runs_caption(page)).to_have_text(f"{n_08} runs")
    other, other_errors = _new_page(browser)  # a new browser context: no cookie
    other.goto(page.url)
    _settled(other)
    _sign_in(other, "dana")
    expect(other.get_by_role("textbox", name="Filter")).to_have_value("metrics.accuracy > 0.8")
    expect(_runs_caption(other)).to_have_text(f"{n_08} runs")
    assert not other_errors, other_errors
    other.close()

    page.get_by_test_id("stSidebarNavLink").filter(has_text="Models").click()
    _settled(page)
    model = page.get_by_test_id("stSelectbox").get_by_role("combobox", name="Model")
    versions = page.get_by_test_id("stDataFrame").nth(1).locator("table[role=grid]")  # the model's versions
    expect(model).to_have_value("credit-default")
    expect(versions).to_have_attribute("aria-rowcount", str(n_versions["credit-default"] + 1))  # + header row
    for name in ("diabetes-progression", "credit-default"):
        model.click()
        page.get_by_role("option", name=name, exact=True).click()
        _settled(page)
        expect(model).to_have_value(name)
        _url_holds(page, model=name)
        expect(versions).to_have_attribute("aria-rowcount", str(n_versions[name] + 1))
    model.click()
    page.get_by_role("option", name="diabetes-progression", exact=True).click()  # a third, to reload on
    _settled(page)
    _url_holds(page, model="diabetes-progression")
    _shoot(page, shots, "13-models-second-change")
    page.reload()
    _settled(page)
    expect(page.get_by_text("Signed in as dana")).to_be_visible()  # the session's cookie: no second sign-in
    expect(model).to_have_value("diabetes-progression")
    expect(versions).to_have_attribute("aria-rowcount", str(n_versions["diabetes-progression"] + 1))
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert not errors, errors
    page.close()


def test_approvals_queue_and_request_changes_stick(server, browser):
    """The Approvals page's Queue and Request took their start from the URL as well: same defect, same fix."""
    url, store = server
    ws = _ws(url)
    try:
        everything = ws.requests()
    finally:
        ws.close()
    # decided requests sit in "All" only for a lead who asked for none; none of the two picked is
    # the first of "All", so a Request box drawn afresh at its default could not pass for them
    first = str(everything["id"][0])
    decided = [str(i) for i in everything.filter(pl.col("status") != "pending")["id"] if str(i) != first]
    assert len(decided) >= 3 and everything.filter(pl.col("requested_by") == "lee").is_empty()
    page, errors = _new_page(browser)
    page.goto(url + "/approvals")
    _settled(page)
    _sign_in(page, "lee")

    def queue(name: str):
        return page.get_by_role("radio", name=re.compile(rf"^{name} \(\d+\)$"))

    def pick_queue(name: str) -> None:
        page.get_by_test_id("stRadio").get_by_text(re.compile(rf"^{name} \(\d+\)$")).click()
        _settled(page)
        expect(queue(name)).to_be_checked()

    def shows(rid: str) -> None:
        expect(box).to_have_value(re.compile(rf"^#{rid} "))
        _url_holds(page, request=rid)
        expect(page.get_by_test_id("stHeading").filter(has_text=re.compile(rf"^#{rid} "))).to_be_visible()

    box = page.get_by_test_id("stSelectbox").get_by_role("combobox", name="Request")
    expect(queue("Awaiting me")).to_be_checked()
    pick_queue("All")
    shown = parse_qs(urlsplit(page.url).query)["request"][0]
    expect(box).to_have_value(re.compile(rf"^#{shown} "))
    for rid in [i for i in decided if i != shown][:2]:
        box.click()
        page.get_by_role("option", name=re.compile(rf"^#{rid} ")).click()
        _settled(page)
        shows(rid)
        expect(queue("All")).to_be_checked()
    # a second and third queue change; the Request box, not drawn meanwhile, comes back as it was
    pick_queue("My requests")
    expect(page.get_by_text("Nothing here.")).to_be_visible()
    pick_queue("All")
    shows(rid)
    page.reload()
    _settled(page)
    expect(page.get_by_text("Signed in as lee")).to_be_visible()  # the session's cookie: no second sign-in
    expect(queue("All")).to_be_checked()  # the first queue that holds the link's request
    shows(rid)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert not errors, errors
    page.close()


def test_no_page_asks_any_host_but_the_server(server, browser):
    """Issue 15 item 12: every page, for every role that sees it, requests only from the server.

    The page icon was a ``:material/...:`` icon, which made every page fetch its favicon from
    fonts.gstatic.com: offline it fails, and a governance tool should reach nowhere else.
    """
    url, store = server
    ws = _ws(url)
    try:
        user_of = {r["role"]: r["name"] for r in ws.users().filter(~pl.col("disabled")).iter_rows(named=True)}
        compare_ids = ws.search_runs("params.family = 'random_forest'")["run_id"].to_list()[:4]
    finally:
        ws.close()
    assert set(user_of) == set(roles.ROLES) and len(compare_ids) >= 2
    server_host = urlsplit(url).hostname
    requested: list[str] = []

    def only_the_server(where: str) -> None:
        outside = sorted({u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                          and urlsplit(u).hostname not in (server_host, "localhost")})
        assert not outside, f"{where} asked other hosts: {outside}"

    for role in roles.ROLES:
        page, errors = _new_page(browser)
        page.on("request", lambda r: requested.append(r.url))
        page.goto(url + "/")
        _settled(page)
        only_the_server(f"the sign-in page ({role})")
        _sign_in(page, user_of[role])
        keys = roles.pages_for(role)
        expect(page.get_by_test_id("stSidebarNavLink")).to_have_text(_titles(*(ui.PAGES[k][1] for k in keys)))
        for key in keys:
            title = ui.PAGES[key][1]
            page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
            _settled(page)
            expect(page.get_by_role("heading", level=1)).to_have_text("Workbench" if key == "home" else title,
                                                                      timeout=UI_TIMEOUT)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            # the favicon is inline, not a URL another host serves
            assert page.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href").startswith("data:")
            only_the_server(f"{title} ({role})")
        if role == "data_scientist":  # a comparison draws its charts only when it has runs
            page.goto(f"{url}/compare?runs={','.join(compare_ids)}")
            _settled(page)
            expect(page.get_by_text(f"Signed in as {user_of[role]}")).to_be_visible()  # the session's cookie
            expect(page.locator(".js-plotly-plot .parcoords").first).to_be_attached(timeout=UI_TIMEOUT)
            only_the_server(f"a comparison ({role})")
        assert not errors, errors
        page.close()
    # the recorder saw the app itself load, so an empty "outside" list means something
    assert any(urlsplit(u).hostname == server_host and urlsplit(u).path.startswith("/_stcore/") for u in requested)


def _url_holds(page: Page, **params: str) -> None:
    """Wait until the page's URL holds exactly these query parameters (the shareable link)."""
    page.wait_for_url(lambda u: {k: v[0] for k, v in parse_qs(urlsplit(u).query).items()} == params)


def _new_page(browser) -> tuple[Page, list[str]]:
    """A page of the dashboard's size, and the list its uncaught script errors land in."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


def _titles(*names: str) -> list:
    """Navigation link texts: the icon's ligature name comes first, then the title."""
    return [re.compile(re.escape(n) + "$") for n in names]


def _sign_in(page: Page, name: str, password: str | None = None, *, lands_on: str | None = None) -> None:
    """Fill the sign-in form (the demo password unless one is given); ``lands_on``: the URL the
    cookie route brings the browser back to."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password or f"{name}-demo-pw")
    page.get_by_role("button", name="Sign in").click()
    if lands_on:
        page.wait_for_url(lands_on)
    _settled(page)
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()


def _sign_out(page: Page) -> None:
    """Sign out and wait until the browser is back on the sign-in form (through the cookie route)."""
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    _settled(page)


def _shoot(page: Page, folder: Path, name: str) -> None:
    """A screenshot of each step, kept as a test artifact (tests/artifacts/, git-ignored)."""
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_sign_in_survives_a_reload_and_ends_at_sign_out_or_when_the_account_is_disabled(server, browser):
    url, _ = server
    admin = _ws(url, "ada")
    admin.add_user("sam", "reviewer", "sam-reloads-pages-7")
    page, errors = _new_page(browser)
    page.goto(url + "/models")
    _settled(page)
    _sign_in(page, "sam", "sam-reloads-pages-7", lands_on=url + "/models")  # back to the page asked for
    cookie = next(c for c in page.context.cookies() if c["name"] == "wb_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    page.reload()  # a new Streamlit session: the cookie brings the sign-in back
    _settled(page)
    expect(page.get_by_text("Signed in as sam")).to_be_visible()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(url + "/")
    _settled(page)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "wb_session" not in {c["name"] for c in page.context.cookies()}
    page.reload()
    _settled(page)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # signed out for good
    # signed in again, then disabled by an admin: the next load is signed out
    _sign_in(page, "sam", "sam-reloads-pages-7")
    admin.set_user_disabled("sam", True)
    page.reload()
    _settled(page)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    trail = admin.audit_events(entity="user/sam")["action"].to_list()
    assert {"session.open", "session.cookie", "session.end", "user.disable"} <= set(trail)
    assert not errors, errors
    page.close()


def test_a_data_scientist_makes_a_token_on_the_tokens_page_and_a_notebook_uses_it(server, browser):
    url, _ = server
    page, errors = _new_page(browser)
    page.goto(url + "/tokens")
    _settled(page)
    _sign_in(page, "dana")
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_role("textbox", name="Name").fill("browser laptop")
    page.get_by_role("button", name="Make token").click()
    _settled(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="Copy it now")).to_be_visible()
    token = page.get_by_test_id("stCode").inner_text().strip()
    assert token.startswith("wbt_"), token
    _shoot(page, Path(__file__).parent / "artifacts" / "browser", "9-token-made")
    assert not errors, errors
    page.close()
    notebook = wb.connect(url, token=token)  # what the page showed works, as dana
    assert (notebook.user, notebook.role) == ("dana", "data_scientist")
    assert "browser laptop" in notebook.tokens()["name"].to_list()


def test_an_admin_unlocks_and_resets_a_password_on_the_users_page(browser, tmp_path):
    from datetime import datetime, timezone

    from workbench.people import auth
    from workbench.workspace import operator_workspace

    # its own store and server: the lock is made, and checked, in file mode while no server runs
    store = _demo_store.private_demo()
    op = operator_workspace(store)
    try:
        op.add_user("uma", "reviewer", "uma-first-passphrase")
        for i in range(5):  # five addresses guess her password: the account locks
            with pytest.raises(wb.PermissionDenied):
                auth.sign_in(store, "uma", "a-wrong-guess", address=f"203.0.113.{i}", now=datetime.now(timezone.utc))
        assert op.accounts().filter(pl.col("name") == "uma")["locked"].item()
    finally:
        shared.close(store)  # let the file go: the server holds it from now on

    with serving(store, tmp_path / "serve.log") as (url, _):
        _unlock_and_reset_on_the_users_page(browser, url)

    op = operator_workspace(store)
    try:
        assert not op.accounts().filter(pl.col("name") == "uma")["locked"].item()
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store, "uma", "uma-first-passphrase", address="198.51.100.4")
        assert auth.sign_in(store, "uma", "uma-second-passphrase", address="198.51.100.4").user == "uma"
        trail = op.audit_events(entity="user/uma").sort("seq")
        assert [a for a in trail["action"].to_list() if a.startswith("user.")] == [
            "user.add", "user.unlock", "user.set_password"]
        assert set(trail.filter(pl.col("action").is_in(["user.unlock", "user.set_password"]))["actor"]) == {"ada"}
    finally:
        op.close()


def _unlock_and_reset_on_the_users_page(browser, url: str) -> None:
    page, errors = _new_page(browser)
    page.goto(url + "/users")
    _settled(page)
    _sign_in(page, "ada")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()

    def choose(label: str, option: str) -> None:
        box = page.get_by_test_id("stSelectbox").get_by_role("combobox", name=label, exact=True)
        expect(box).to_be_visible()  # a rerun may redraw the box: click() scrolls and retries on the new one
        box.click()
        page.keyboard.type(option)  # the selectbox filters its options by what is typed
        page.get_by_role("option", name=option, exact=True).click()
        _settled(page)
        expect(box).to_have_value(option)

    choose("User", "uma")
    page.get_by_role("button", name="Unlock", exact=True).click()
    _settled(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="Unlocked uma.")).to_be_visible()

    choose("Account", "uma")
    page.get_by_role("textbox", name="New password").fill("uma-second-passphrase")
    page.get_by_role("button", name="Reset password").click()
    _settled(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="New password set for uma")).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert not errors, errors
    page.close()
