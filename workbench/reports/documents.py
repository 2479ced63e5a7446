"""Reports for people outside the dashboard: model cards, validation packs, audit extracts.

A report is first a **document**: a plain dict with stable keys (the JSON format is that
dict), filled from the store. What is missing (no fairness report, no approval yet, no
stated limitations) is said in the document's ``missing`` list rather than failing. The
same document is then written as Markdown, as self-contained HTML (inline CSS and inline
SVG charts: nothing is fetched when it opens) or as PDF (that HTML printed by headless
Chromium, so the two show the same content and charts).

Kinds: ``model-card`` (the Model Card Toolkit's sections), ``validation`` (the card plus the
approval gates, every request with who decided what on which evidence hash, open alerts and
the audit chain's verification) and ``audit`` (the events of a model or a time range, the
verification result and the head digest). Every file states the store, the time and the
workbench version; :func:`export` records an audit event holding the file's sha256.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from .._version import __version__
from ..errors import ValidationError, WorkbenchError
from ..governance import requests as governance
from ..protection import small_groups
from ..store import artifacts, audit, schema

KINDS = tuple(k.value for k in schema.ReportKind)  # ("model-card", "validation", "audit")
FORMATS = ("html", "pdf", "json", "md")
#: Model card fields a person writes; until they do, the card says they are missing.
TEXT_FIELDS = ("intended_use", "out_of_scope_use", "limitations", "ethical_considerations")


# -- the document -------------------------------------------------------------------------------------
def _header(ws, kind: str, name: str | None, version: int | None) -> dict:
    return {"kind": kind, "model": name, "version": version, "store": ws.store.display,
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "generated_by": ws.user, "workbench_version": __version__}


def model_card(ws, name: str, version: int | None = None) -> dict:
    """The Model Card Toolkit's sections for one version (default: Production, else the latest).

    Parameters
    ----------
    ws : Workspace
        The workspace to read with.
    name : str
        The registered model.
    version : int, optional
        The version; default: the Production version, else the latest.

    Returns
    -------
    dict
        The document: ``report`` (header), ``model_details``, ``considerations``, ``data``,
        ``metrics``, ``explanation``, ``fairness``, ``drift`` and ``missing``.

    Raises
    ------
    NotFoundError
        For an unknown model or version.
    """
    if version is None:
        stages = ws.model_versions(name)["stage"].to_list()
        version = "Production" if "Production" in stages else None
    mv = ws.get_model_version(name, version)
    model = ws.models().filter(pl.col("name") == name).row(0, named=True)
    missing = []
    run = ws.get_run(mv.run_id) if mv.run_id else None
    datasets = ws.run_datasets(mv.run_id).to_dicts() if mv.run_id else []
    evidence, stored = {}, ws.evidence(name).filter(pl.col("version") == mv.version)
    for kind in governance.EVIDENCE_KINDS:
        rows = stored.filter(pl.col("kind") == kind)
        if rows.is_empty():
            missing.append(f"{kind} evidence")
            evidence[kind] = None
            continue
        summary, table = ws.evidence_detail(int(rows["id"][0]))
        evidence[kind] = {"evidence_id": int(rows["id"][0]), "verdict": rows["verdict"][0], "summary": summary,
                          "table": table.to_dicts() if table is not None and kind != "explanation" else None}
    written = ws.card_text(name)
    considerations = {field: written[field] for field in TEXT_FIELDS}
    considerations["intended_use"] = considerations["intended_use"] or model["use_case"]
    missing += [f"{field.replace('_', ' ')} (not written yet)" for field, text in considerations.items() if not text]
    if not datasets:
        missing.append("training and evaluation data (the source run logged none)")
    return {
        "report": _header(ws, "model-card", name, mv.version),
        "model_details": {"name": name, "version": mv.version, "stage": mv.stage, "aliases": list(mv.aliases),
                          "overview": model["description"], "owners": model["owner_team"], "risk_tier": model["risk_tier"],
                          "model_class": mv.model_class, "sha256": mv.sha256, "registered_by": mv.created_by,
                          "registered_at": mv.created_at.isoformat(), "source_run": mv.run_id,
                          "git_commit": run["git_commit"] if run else None},
        "considerations": considerations,
        "data": [{"name": d["name"], "role": d["role"], "digest": d["digest"], "rows": d["n_rows"], "columns": d["n_cols"],
                  "source": d["source"], "parents": d["parent_ids"],
                  "identifying_columns": _marked(ws, d["id"], "identifying"),
                  "sensitive_columns": _marked(ws, d["id"], "sensitive")} for d in datasets],
        "metrics": dict(sorted(run["metrics"].items())) if run else {},
        "explanation": _explanation(evidence["explanation"]),
        "fairness": _fairness(evidence["fairness"]),
        "drift": _drift(evidence["drift"]),
        "missing": missing,
    }


def _explanation(ev: dict | None) -> dict | None:
    if ev is None:
        return None
    s = ev["summary"]
    return {"evidence_id": ev["evidence_id"], "explainer": s["explainer"], "output": s["output"],
            "rows_explained": s["sampled"]["rows_explained"], "additivity_passed": s["additivity"]["passed"],
            "top_features": [{"feature": r["feature"], "mean_abs_shap": r["mean_abs_shap"]}
                             for r in s["global_importance"][:10]], "masked": s.get("masked", [])}


def _marked(ws, dataset_id: int, mark: str) -> list[str]:
    """Columns of a data set with ``mark`` (a proposal not yet confirmed is flagged so)."""
    marks = ws.column_marks(dataset_id).filter(pl.col("mark") == mark)
    return [c if origin != "detected" else f"{c} (proposed)" for c, origin in marks.select("column", "origin").rows()]


def _fairness(ev: dict | None) -> dict | None:
    if ev is None:
        return None
    s = ev["summary"]
    keep = ("selection_rate", "tpr", "fpr", "accuracy", "count", "flagged_small", "mean_prediction", "mae")
    table = small_groups.pool(pl.DataFrame(ev["table"]), small_groups.min_size(s)).to_dicts() if ev["table"] else []
    return {"evidence_id": ev["evidence_id"], "verdict": ev["verdict"], "reasons": s.get("reasons", []),
            **{k: s.get(k) for k in ("demographic_parity_difference", "demographic_parity_ratio",
                                      "equalized_odds_difference", "equal_opportunity_difference")},
            "small_groups_pooled_under": small_groups.min_size(s),
            "by_group": [{"feature": r["feature"], "group": r["group"], **{k: r.get(k) for k in keep if k in r}}
                         for r in table]}


def _drift(ev: dict | None) -> dict | None:
    if ev is None:
        return None
    s = ev["summary"]
    return {"evidence_id": ev["evidence_id"], "verdict": ev["verdict"], "drift_share": s["drift_share"],
            "dataset_drift": s["dataset_drift"], "drifted_columns": s["drifted_columns"],
            "reference_rows": s["reference_rows"], "current_rows": s["current_rows"]}


def validation_pack(ws, name: str, version: int | None = None) -> dict:
    """The model card plus gates, approval history, open alerts and the audit chain's check.

    Parameters and errors as for :func:`model_card`; the document adds ``gates``,
    ``approval_history``, ``alerts`` and ``audit_check``.
    """
    card = model_card(ws, name, version)
    v = card["model_details"]["version"]
    requests = ws.requests(name=name).filter(pl.col("version") == v)
    history = []
    for rid in requests["id"].to_list():
        r = ws.request(rid)
        history.append({"id": r.id, "to_stage": r.to_stage, "status": r.status, "stale": r.stale,
                        "requested_by": r.requested_by, "requested_at": r.requested_at.isoformat(),
                        "justification": r.justification, "evidence_sha256": r.evidence_sha256, "gates": r.gates,
                        "decisions": [{"actor": d["actor"], "role": d["role"], "approve": d["approve"],
                                       "comment": d["comment"], "override_reason": d["override_reason"],
                                       "evidence_sha256": d["evidence_sha256"], "at": d["created_at"].isoformat()}
                                      for d in r.decisions]})
    tier = card["model_details"]["risk_tier"]
    _, snap = ws.ctx.snapshot(lambda conn: governance.current_gates(conn, name, v, tier))
    alerts = ws.alerts(name).filter(pl.col("version") == v)
    check = ws.verify_audit()
    missing = list(card["missing"]) + ([] if history else ["an approval (no promotion request for this version)"])
    card["report"] = _header(ws, "validation", name, v)
    return {**card, "gates": {"risk_tier": tier, "policy": ws.gate_policy(tier), "results": snap},
            "approval_history": history,
            "alerts": [{"window_start": a["window_start"].isoformat(), "metric": a["metric"], "value": a["value"],
                        "rule": a["rule"], "command_exit_code": a["exit_code"]} for a in alerts.to_dicts()],
            "audit_check": _audit_check(check),
            "missing": missing}


def _audit_check(check) -> dict:
    """The chain's check as a report states it: the chain, and the tables against it."""
    return {"ok": check.ok, "events": check.n_events, "head_hash": check.head_hash,
            "first_broken_seq": check.first_broken_seq, "reason": check.reason,
            "problems": list(check.problems), "warnings": list(check.warnings)}


def audit_extract(ws, name: str | None = None, *, since=None, until=None) -> dict:
    """The events of a model (its versions, its requests) or of a time range, with the chain's check.

    Parameters
    ----------
    ws : Workspace
        The workspace to read with.
    name : str, optional
        Only this model's events; default: every event.
    since, until : datetime, date or ISO str, optional
        The time range (UTC, ``until`` exclusive), as :meth:`Workspace.audit_events` takes it.

    Raises
    ------
    NotFoundError
        For an unknown model.
    ValidationError
        If ``since`` or ``until`` is text that is not an ISO date or time.
    """
    events = ws.audit_events(since=since, until=until).sort("seq")
    if name is not None:
        ws.get_model_version(name)  # an unknown model is refused, not an empty extract
        ids = {str(i) for i in ws.requests(name=name)["id"].to_list()}
        events = events.filter((pl.col("entity_id") == name) | pl.col("entity_id").str.starts_with(f"{name}/")
                               | ((pl.col("entity_type") == "request") & pl.col("entity_id").is_in(list(ids))))
    check = ws.verify_audit()
    return {"report": _header(ws, "audit", name, None),
            "range": {"since": str(since) if since else None, "until": str(until) if until else None},
            "audit_check": _audit_check(check),
            "events": [{**{k: v for k, v in e.items() if k != "ts"}, "ts": e["ts"].isoformat(),
                        "payload": json.loads(e["payload"])} for e in events.to_dicts()],
            "missing": [] if events.height else ["events (none in this range)"]}


def build(ws, kind: str, name: str | None, version: int | None = None, **options) -> dict:
    """The document of one report, filled from the store.

    Parameters
    ----------
    ws : Workspace
        The workspace to read with.
    kind : str
        One of :data:`KINDS`.
    name : str or None
        The registered model; None only for an audit extract of every model.
    version : int, optional
        The version (not for an audit extract).
    **options
        For an audit extract: ``since`` and ``until``.

    Returns
    -------
    dict
        As :func:`model_card`, :func:`validation_pack` or :func:`audit_extract` return it.

    Raises
    ------
    ValidationError
        For an unknown kind, or no model name for a model card or validation pack.
    """
    if kind not in KINDS:
        raise ValidationError(f"kind must be one of {KINDS}, got {kind!r}.")
    if kind != "audit" and not name:
        raise ValidationError(f"A {kind} report needs a model name (--model).")
    if kind == "model-card":
        return model_card(ws, name, version)
    if kind == "validation":
        return validation_pack(ws, name, version)
    return audit_extract(ws, name, **options)


# -- renderers -------------------------------------------------------------------------------------------
def to_json(doc: dict) -> bytes:
    """The document as UTF-8 JSON: sorted keys, values JSON cannot hold as their ``str``."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False, default=str) + "\n").encode()


def _title(doc: dict) -> str:
    r = doc["report"]
    what = {"model-card": "Model card", "validation": "Validation pack", "audit": "Audit extract"}[r["kind"]]
    target = f"{r['model']} v{r['version']}" if r["version"] else (r["model"] or "all models")
    return f"{what}: {target}"


def _sections(doc: dict) -> list[tuple[str, list]]:
    """(title, blocks) in reading order; a block is ("kv", dict) | ("table", rows) | ("text", str) | ("bars", ...)."""
    r, out = doc["report"], []
    out.append(("About this report", [("kv", {"store": r["store"], "generated at (UTC)": r["generated_at"],
                                               "generated by": r["generated_by"], "workbench": r["workbench_version"]})]))
    if doc.get("missing"):
        out.append(("Missing", [("list", doc["missing"])]))
    if "model_details" in doc:
        out.append(("Model details", [("kv", doc["model_details"])]))
        out.append(("Intended use and considerations", [("kv", {k.replace("_", " "): v or "not written yet"
                                                                 for k, v in doc["considerations"].items()})]))
        out.append(("Training and evaluation data", [("table", doc["data"])] if doc["data"] else [("text", "None logged.")]))
        out.append(("Metrics", [("kv", doc["metrics"])] if doc["metrics"] else [("text", "None logged.")]))
        ex = doc["explanation"]
        out.append(("Explanation", [("text", "No explanation stored.")] if ex is None else [
            ("kv", {k: v for k, v in ex.items() if k != "top_features"}),
            ("bars", ("mean |SHAP| of the top features", [(t["feature"], t["mean_abs_shap"]) for t in ex["top_features"]]))]))
        fa = doc["fairness"]
        out.append(("Fairness", [("text", "No fairness report stored.")] if fa is None else [
            ("kv", {k: v for k, v in fa.items() if k != "by_group"}), ("table", fa["by_group"]),
            ("bars", ("selection rate by group", [(f"{g['feature']}: {g['group']}", g.get("selection_rate") or 0)
                                                  for g in fa["by_group"] if g.get("selection_rate") is not None]))]))
        dr = doc["drift"]
        out.append(("Drift", [("text", "No drift report stored.")] if dr is None else [("kv", dr)]))
    if "gates" in doc:
        out.append((f"Approval gates ({doc['gates']['risk_tier']} risk)", [("table", doc["gates"]["results"])]))
        hist = []
        for h in doc["approval_history"]:
            hist.append(("kv", {k: v for k, v in h.items() if k not in ("gates", "decisions")}))
            hist.append(("table", h["decisions"]) if h["decisions"] else ("text", "No decision yet."))
        out.append(("Approval history", hist or [("text", "No promotion request for this version.")]))
        out.append(("Alerts", [("table", doc["alerts"])] if doc["alerts"] else [("text", "None recorded.")]))
    if "audit_check" in doc:
        out.append(("Audit chain", [("kv", doc["audit_check"])]))
    if "events" in doc:
        out.append(("Events", [("table", [{**e, "payload": json.dumps(e["payload"], sort_keys=True)} for e in doc["events"]])]))
    return out


def _shown(v) -> str:
    """A value as people read it: floats to 4 significant digits, nothing for None."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


#: What could turn a value into a link, an image, HTML or code in a Markdown viewer. (Emphasis
#: with * or _ is left: it only styles, and identifiers and paths are full of underscores.)
_MD_ACTIVE = str.maketrans({c: "\\" + c for c in "\\`[]<>&|"})


def _md_cell(v) -> str:
    """A value as Markdown text on one line, shown as written."""
    return _shown(v).translate(_MD_ACTIVE).replace("\n", " ")


def to_markdown(doc: dict) -> str:
    """The document as Markdown; what users wrote is escaped so it never becomes a link, image or HTML."""
    lines = [f"# {_md_cell(_title(doc))}", ""]
    for title, blocks in _sections(doc):
        lines += [f"## {title}", ""]
        for kind, body in blocks:
            if kind == "kv":
                lines += [f"- **{_md_cell(k)}**: {_md_cell(v)}" for k, v in body.items()]
            elif kind == "list":
                lines += [f"- {_md_cell(v)}" for v in body]
            elif kind == "text":
                lines.append(body)
            elif kind == "table" and body:
                cols = list(body[0])
                lines += ["| " + " | ".join(map(_md_cell, cols)) + " |", "|" + "---|" * len(cols)]
                lines += ["| " + " | ".join(_md_cell(row.get(c)) for c in cols) + " |" for row in body]
            elif kind == "bars":
                label, pairs = body
                lines += [f"*{_md_cell(label)}*:", *[f"- {_md_cell(k)}: {v:.4g}" for k, v in pairs]]
            lines.append("")
    return "\n".join(lines)


_CSS = """body{font:14px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{font-size:1.6em}h2{font-size:1.15em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top;word-break:break-word}th{background:#f3f3f3}dl{display:grid;grid-template-columns:
19em 1fr;gap:2px 1em}dt{font-weight:600}dd{margin:0;word-break:break-word}.missing{color:#b00020}
@media print{h2{break-after:avoid}table{break-inside:auto}}"""


def _svg_bars(label: str, pairs: list[tuple[str, float]]) -> str:
    """A horizontal bar chart as inline SVG (no script, no font download)."""
    if not pairs:
        return ""
    top = max(abs(v) for _, v in pairs) or 1.0
    row, width, left = 22, 640, 260
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(pairs) + 30}" role="img" '
             f'aria-label="{html.escape(label)}"><text x="0" y="14" font-size="12" font-weight="600">'
             f'{html.escape(label)}</text>']
    for i, (name, value) in enumerate(pairs):
        y = 24 + i * row
        w = max(1.0, (width - left - 60) * abs(value) / top)
        parts.append(f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end">{html.escape(str(name))[:40]}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#1f4e79"/>'
                     f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="11">{value:.4g}</text>')
    return "".join(parts) + "</svg>"


def to_html(doc: dict) -> str:
    """The document as one self-contained HTML page (inline CSS and SVG charts; every value escaped)."""
    e = lambda v: html.escape(_shown(v))  # noqa: E731 - every value users wrote is text
    out = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(_title(doc))}</title>"
           f"<style>{_CSS}</style></head><body><h1>{e(_title(doc))}</h1>"]
    for title, blocks in _sections(doc):
        out.append(f"<h2>{e(title)}</h2>")
        for kind, body in blocks:
            if kind == "kv":
                out.append("<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in body.items()) + "</dl>")
            elif kind == "list":
                out.append("<ul class=\"missing\">" + "".join(f"<li>{e(v)}</li>" for v in body) + "</ul>")
            elif kind == "text":
                out.append(f"<p>{e(body)}</p>")
            elif kind == "table" and body:
                cols = list(body[0])
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>" + "".join(
                    "<tr>" + "".join(f"<td>{e(row.get(c))}</td>" for c in cols) + "</tr>" for row in body) + "</table>")
            elif kind == "bars":
                out.append(_svg_bars(*body))
    return "".join(out) + "</body></html>\n"


def chromium() -> str:
    """The headless Chromium that prints PDFs: ``$WORKBENCH_CHROMIUM``, else the first found on the PATH.

    Raises
    ------
    WorkbenchError
        If none is found.
    """
    path = os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    if not path:
        raise WorkbenchError("PDF reports are printed by headless Chromium, which is not installed: "
                             "apt-get install chromium (or set WORKBENCH_CHROMIUM to its path).")
    return path


def to_pdf(html_text: str) -> bytes:
    """The HTML printed to PDF by headless Chromium (same content, same charts).

    Raises
    ------
    WorkbenchError
        If Chromium is not installed, takes longer than 120 s, or writes no PDF.
    """
    with tempfile.TemporaryDirectory(prefix="wb-report-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise WorkbenchError("Chromium did not finish printing the PDF within 120 s.") from None
        if not pdf.exists() or pdf.stat().st_size == 0:
            raise WorkbenchError(f"Chromium could not print the PDF (exit {run.returncode}): {run.stderr[-400:]}")
        return pdf.read_bytes()


def check_format(fmt: str) -> str:
    """``fmt`` unchanged if it is one of :data:`FORMATS`, else a :class:`ValidationError`."""
    if fmt not in FORMATS:
        raise ValidationError(f"format must be one of {FORMATS}, got {fmt!r}.")
    return fmt


def check_folder(folder) -> Path:
    """An existing, writable folder to write reports into, or a clear refusal.

    Raises
    ------
    ValidationError
        If ``folder`` does not exist, is a file, or is not writable.
    """
    out = Path(folder)
    if not out.exists():
        raise ValidationError(f"The output folder {out} does not exist.")
    if not out.is_dir():
        raise ValidationError(f"The output path {out} is a file, not a folder.")
    if not os.access(out, os.W_OK):
        raise ValidationError(f"The output folder {out} is not writable.")
    return out


def render(doc: dict, fmt: str) -> bytes:
    """The document's bytes in ``fmt`` (``"html"``, ``"pdf"``, ``"json"`` or ``"md"``).

    Raises
    ------
    ValidationError
        For an unknown format.
    WorkbenchError
        If a PDF cannot be printed (see :func:`to_pdf`).
    """
    check_format(fmt)
    if fmt == "json":
        return to_json(doc)
    if fmt == "md":
        return to_markdown(doc).encode()
    page = to_html(doc)
    return page.encode() if fmt == "html" else to_pdf(page)


_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(doc: dict, fmt: str) -> str:
    """``kind-model-vN-stamp.fmt``. The model name is a label, never a path: outside letters, digits,
    ``.``, ``_`` and ``-`` it is replaced (and a digest of the real name added), and it is cut so
    the file name stays well under the 255 bytes a file system allows."""
    r = doc["report"]
    stamp = r["generated_at"].replace(":", "").replace("-", "")[:15]
    model = r["model"] or "all"
    safe = _UNSAFE_IN_NAME.sub("_", model).strip("._-")[:100] or "model"
    if safe != model:  # two names that read alike never share a file
        safe += "-" + artifacts.sha256_bytes(model.encode("utf-8", "surrogatepass"))[:8]
    model = safe
    target = f"{model}-v{r['version']}" if r["version"] else model
    return f"{r['kind']}-{target}-{stamp}.{fmt}"


def export(ws, kind: str, name: str | None, version: int | None, fmt: str, out_dir, **options) -> Path:
    """Build, render and write one report into ``out_dir``; the export is audited with the file's sha256.

    Parameters
    ----------
    ws : Workspace
        Whose user exports; their role needs the ``reports`` permission.
    kind, name, version, **options
        As for :func:`build`.
    fmt : str
        One of :data:`FORMATS`.
    out_dir : str or Path
        An existing, writable folder.

    Returns
    -------
    Path
        The file written, named by :func:`file_name`.

    Raises
    ------
    PermissionDenied
        For a role without the ``reports`` permission.
    ValidationError
        For an unknown kind or format, a missing model name, or a folder that does not exist,
        is not writable or could not be written.
    NotFoundError
        For an unknown model or version.
    """
    ws.ctx.require("reports")
    out = check_folder(out_dir)
    check_format(fmt)
    doc = build(ws, kind, name, version, **options)
    data = render(doc, fmt)
    path = out / file_name(doc, fmt)
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ValidationError(f"Could not write {path}: {exc.strerror or exc} (is the folder writable?).") from None
    record(ws, doc, fmt, path.name, data, folder=str(out.resolve()))
    return path


def record(ws, doc: dict, fmt: str, file_name_: str, data: bytes, folder: str | None = None) -> None:
    """The audit event of an export: which report, and the sha256 of the bytes handed out."""
    r = doc["report"]
    ws.ctx.call(lambda conn: (None, [audit.Event(ws.user, ws.role, "report.export", "report", file_name_, {
        "kind": r["kind"], "model": r["model"], "version": r["version"], "format": fmt, "folder": folder,
        "sha256": artifacts.sha256_bytes(data), "bytes": len(data), "missing": doc.get("missing", [])})]))
