"""Reports: every kind in every format for the demo models, self-contained, audited, readable."""

from __future__ import annotations

import hashlib
import json
import re

import _demo_store
import pytest
from _demo_store import run_cli

import workbench as wb
from workbench.reports import documents as reports


@pytest.fixture(scope="module")
def demo():
    """A private copy of the demo store (exports append audit events) and a compliance officer on it."""
    path = _demo_store.demo_copy()
    ws = wb.connect(path, user="casey")
    yield path, ws
    ws.close()


@pytest.mark.parametrize("kind,model,version", [("model-card", "credit-default", None), ("validation", "credit-default", 3),
                                                ("audit", "credit-default", None), ("model-card", "diabetes-progression", 1),
                                                ("validation", "diabetes-progression", 2)])
@pytest.mark.parametrize("fmt", reports.FORMATS)
def test_every_kind_in_every_format(demo, tmp_path, kind, model, version, fmt):
    path, ws = demo
    out = reports.export(ws, kind, model, version, fmt, tmp_path)
    data = out.read_bytes()
    assert out.parent == tmp_path and out.suffix == f".{fmt}" and len(data) > 500
    # the export is on record with the file's digest
    event = ws.audit_events(action="report.export", entity=f"report/{out.name}").row(0, named=True)
    assert json.loads(event["payload"])["sha256"] == hashlib.sha256(data).hexdigest()
    title = {"model-card": "Model card", "validation": "Validation pack", "audit": "Audit extract"}[kind]
    if fmt == "json":
        doc = json.loads(data)
        assert doc["report"]["kind"] == kind and doc["report"]["store"] == str(path)
        assert doc["report"]["workbench_version"] == wb.__version__ and doc["report"]["generated_at"]
        assert list(doc) == sorted(doc)  # stable keys
    elif fmt == "md":
        text = data.decode()
        assert text.startswith(f"# {title}: {model}") and str(path) in text and wb.__version__ in text
    elif fmt == "html":
        text = data.decode()
        assert f"<h1>{title}: {model}" in text and str(path) in text
        # opens offline: no script, and nothing fetched from anywhere
        assert "<script" not in text.lower()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
        assert "@import" not in text and "url(" not in text
    else:
        _check_pdf(data, title, model, tmp_path)


def _check_pdf(data: bytes, title: str, model: str, tmp_path) -> None:
    import io

    import pypdf
    import pypdfium2

    reader = pypdf.PdfReader(io.BytesIO(data))
    text = "".join(page.extract_text() for page in reader.pages)
    assert f"{title}: {model}" in text and "generated at" in text
    image = pypdfium2.PdfDocument(data)[0].render(scale=1).to_pil()
    image.save(tmp_path / "page1.png")
    assert image.size[0] > 500 and (tmp_path / "page1.png").stat().st_size > 5_000
    colours = image.convert("L").getextrema()
    assert colours[0] < 100 and colours[1] > 200  # ink on paper, not a blank page


def test_missing_evidence_is_stated_not_fatal(demo):
    _, ws = demo
    card = reports.model_card(ws, "diabetes-progression", 1)
    assert {"fairness evidence", "drift evidence"} <= set(card["missing"])
    assert card["explanation"]["top_features"] and card["fairness"] is None
    assert "out of scope use (not written yet)" in card["missing"]
    html_text = reports.to_html(card)
    assert "No fairness report stored." in html_text and "drift evidence" in html_text


def test_validation_pack_binds_decisions_to_evidence_hashes(demo):
    _, ws = demo
    pack = reports.validation_pack(ws, "credit-default", 3)
    (approved,) = [h for h in pack["approval_history"] if h["status"] == "approved"]
    assert [d["role"] for d in approved["decisions"]] == ["lead", "compliance_officer"]
    assert all(d["evidence_sha256"] == approved["evidence_sha256"] for d in approved["decisions"])
    assert approved["decisions"][0]["override_reason"]
    assert pack["audit_check"]["ok"] and pack["gates"]["risk_tier"] == "high"
    champion = reports.validation_pack(ws, "credit-default", 4)
    assert [a["metric"] for a in champion["alerts"]] == ["drift_share"]
    assert "an approval (no promotion request for this version)" in champion["missing"]


def test_user_text_is_escaped_in_html(demo):
    _, ws = demo
    card = reports.model_card(ws, "credit-default")
    card["model_details"]["overview"] = "<script>alert(1)</script> & <b>bold</b>"
    text = reports.to_html(card)
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in text


def test_bad_input_gives_clear_messages(demo, tmp_path):
    _, ws = demo
    with pytest.raises(wb.NotFoundError, match="'nope'"):
        reports.export(ws, "model-card", "nope", None, "html", tmp_path)
    with pytest.raises(wb.NotFoundError, match="no version 99"):
        reports.export(ws, "validation", "credit-default", 99, "html", tmp_path)
    with pytest.raises(wb.ValidationError, match="kind must be one of"):
        reports.export(ws, "summary", "credit-default", None, "html", tmp_path)
    with pytest.raises(wb.ValidationError, match="format must be one of"):
        reports.export(ws, "model-card", "credit-default", None, "docx", tmp_path)
    with pytest.raises(wb.ValidationError, match="does not exist"):
        reports.export(ws, "model-card", "credit-default", None, "html", tmp_path / "missing")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(wb.ValidationError, match="is a file, not a folder"):
        reports.export(ws, "model-card", "credit-default", None, "html", tmp_path / "a-file")
    with pytest.raises(wb.ValidationError, match="Could not write /proc/"):
        reports.export(ws, "model-card", "credit-default", None, "md", "/proc")
    with pytest.raises(wb.PermissionDenied):  # data scientists export no reports
        reports.export(wb.connect(ws.store.location, user="dana"), "model-card", "credit-default", None, "md", tmp_path)


def test_cli_report_export(demo, tmp_path):
    path, ws = demo
    ws.close()
    ok = run_cli("report", "export", "--kind", "validation", "--model", "credit-default", "--version", "3",
                 "--format", "json", "--out", tmp_path, "--store", path)
    assert ok.returncode == 0, ok.stderr
    written = tmp_path / ok.stdout.strip().rsplit("/", 1)[-1]
    assert json.loads(written.read_text())["report"]["kind"] == "validation"
    bad = run_cli("report", "export", "--kind", "validation", "--model", "credit-default", "--format", "json",
                  "--out", tmp_path / "nowhere", "--store", path)
    assert bad.returncode == 1 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_card_text_written_by_the_owner_appears_and_is_audited(demo):
    path, ws = demo
    dana = wb.connect(path, user="dana")
    dana.set_card_text("diabetes-progression", "limitations", "Trained on 442 patients from one study; <not> general.")
    card = reports.model_card(ws, "diabetes-progression", 1)
    assert card["considerations"]["limitations"].startswith("Trained on 442 patients")
    assert "limitations (not written yet)" not in card["missing"]
    assert "&lt;not&gt; general" in reports.to_html(card)
    event = ws.audit_events(action="model_card.text").row(0, named=True)
    assert event["actor"] == "dana" and json.loads(event["payload"])["field"] == "limitations"
    with pytest.raises(wb.ValidationError, match="field must be one of"):
        dana.set_card_text("diabetes-progression", "colour", "blue")
    with pytest.raises(wb.PermissionDenied):
        wb.connect(path, user="riley").set_card_text("diabetes-progression", "limitations", "none")
