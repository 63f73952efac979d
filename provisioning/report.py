"""`appliance report --format html|pdf`: the compliance report for IT and the data-protection officer, and the box
half of `appliance doctor`.

What the box promises, as found now: the self-check (units, watchdogs, firewall, TLS, sealed key, clocks, last
purge, audit chain, disk encryption, models), retention and the gallringsbeslut, how many users hold each role,
the purge receipts of the last 12 weeks, how the audit log was reviewed, each unit's `systemd-analyze security`
exposure, and the software and model versions with their hashes. NO personal data: no names, no titles, no
content, no recording ids — counts, dates, fingerprints and hashes only (tests/test_box.py greps for canaries).

Root gathers what systemd, nftables and the package show; the facts inside the state directory (users, receipts,
audit chain) come from `appliance box facts`, run as the service user with the sealed key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
import subprocess
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config
from provisioning import box
from provisioning.doctor import Check

SERVICES = ("appliance-web.service", "appliance-asr.service", "appliance-assistant.service",
            "appliance-llm.service", "appliance-recorder.service")
ACTIVE = (*SERVICES, "appliance-web.socket", "appliance-metrics.socket", "appliance-purge.timer",
          "appliance-remind.timer", "appliance-shred.timer", "appliance-firewall.service")
RECEIPT_WEEKS = 12


def _out(cmd: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return p.returncode, p.stdout


# ------------------------------------------------------------------------------------------- root: the box

def box_checks(cfg: Config) -> list[Check]:
    """What root sees of the installed box (the state-directory checks run as the service user)."""
    checks = []
    states = {u: _out(["systemctl", "is-active", u])[1].strip() or "unknown" for u in ACTIVE}
    down = [u for u, s in states.items() if s != "active"]
    checks.append(Check("units", not down, "all active" if not down else f"not active: {', '.join(down)}",
                        "systemctl status UNIT; journalctl -u UNIT"))
    unarmed = [u for u in SERVICES
               if _out(["systemctl", "show", "-p", "WatchdogUSec", "--value", u])[1].strip() in ("", "0", "infinity")]
    checks.append(Check("watchdog", not unarmed, "armed for every service" if not unarmed
                        else f"no watchdog: {', '.join(unarmed)}", "reinstall the package's units"))
    rc, table = _out(["nft", "list", "table", "inet", "samtalsstod"])
    out_drop = rc == 0 and re.search(r"hook output priority filter; policy drop;", table)
    checks.append(Check("firewall", bool(out_drop), "loaded, outbound default drop" if out_drop
                        else "not loaded or outbound not default-deny", "appliance provision firewall …"))
    checks.append(_tls_check(cfg.paths.tls / "cert.pem"))
    sealed = box.sealed_with(box.CREDENTIAL)
    checks.append(Check("credential", sealed in ("tpm2", "tpm2+host", "host"), f"master key sealed to {sealed}",
                        "appliance provision credential (a box with a TPM2 seals to it)",
                        warning=sealed == "host"))
    checks.append(_disk_encryption(cfg.paths.state_dir))
    return checks


def _tls_check(path: Path, now: dt.datetime | None = None) -> Check:
    from cryptography import x509

    from provisioning.provision import cert_info

    try:
        cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError) as exc:
        return Check("tls", False, f"no certificate at {path} ({exc})", "appliance provision tls …")
    info = cert_info(cert)
    now = now or dt.datetime.now(dt.UTC)
    if info.not_after < now + dt.timedelta(days=14):
        return Check("tls", info.not_after > now, f"expires {info.not_after:%Y-%m-%d}",
                     "renew: appliance provision tls")
    if info.self_signed:
        return Check("tls", False, "self-signed (browsers warn every user)", "appliance provision tls --csr …")
    return Check("tls", True, f"issued by {info.issuer}, valid until {info.not_after:%Y-%m-%d}")


def _disk_encryption(state_dir: Path) -> Check:
    rc, source = _out(["findmnt", "-n", "-o", "SOURCE", "--target", str(state_dir)])
    source = source.strip()
    rc2, types = _out(["lsblk", "-n", "-s", "-o", "TYPE", source]) if source.startswith("/dev/") else (1, "")
    if rc == 0 and rc2 == 0 and "crypt" in types.split():
        return Check("disk encryption", True, f"{state_dir} lies on an encrypted volume ({source})")
    return Check("disk encryption", True, f"{state_dir} is not on a LUKS volume that lsblk shows ({source or '?'})",
                 "encrypt the state volume (LUKS, unlocked by the TPM)", warning=True)


def exposure_scores() -> dict[str, float | None]:
    scores: dict[str, float | None] = {}
    for unit in SERVICES:
        _, out = _out(["systemd-analyze", "security", "--no-pager", unit])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        scores[unit] = float(m.group(1)) if m else None
    return scores


def software() -> dict:
    _, version = _out(["dpkg-query", "-W", "-f=${Version}", "samtalsstod"])
    wheels = {}
    for w in sorted((box.PREFIX / "wheels").glob("*.whl")):
        wheels[w.name] = hashlib.sha256(w.read_bytes()).hexdigest()
    return {"package": version or "not installed from the package", "wheels": wheels}


# --------------------------------------------------------------------- service user: the state directory

def state_facts(cfg: Config, now: float | None = None) -> dict:
    """Counts and receipts from inside the state directory (`appliance box facts`); identifiers only."""
    from appliance.compliance import log_reviews
    from appliance.platform import audit
    from appliance.platform.context import open_appliance
    from appliance.users import accounts
    from models.store import all_specs, model_status
    from provisioning.doctor import run_checks

    app = open_appliance(cfg)
    now = now or dt.datetime.now(dt.UTC).timestamp()
    since = now - RECEIPT_WEEKS * 7 * 86400
    with closing(app.connect()) as conn:
        users = [u for u in accounts.list_users(conn) if not u.disabled]
        roles = Counter(r for u in users for r in u.roles)
        receipts = [{"ts": r["ts"], "deleted_recordings": r["data"].get("deleted_recordings"),
                     "old_key": r["data"].get("old_key_fingerprint"), "new_key": r["data"].get("new_key_fingerprint"),
                     "seq": r["seq"]}
                    for r in audit.entries(conn, action="purge.receipt", since=since)]
        reviews = audit.entries(conn, action="review.read", since=since)
        restarts = Counter(r["target"] for r in audit.entries(conn, action="unit.restart", since=since))
        recorded = log_reviews.report_data(cfg, conn, since=since, now=now)
        early = Counter(r["action"] for r in audit.entries(conn, action=("audio.shred", "dsr.erase", "rekey.receipt"),
                                                           since=since))
        verified = audit.verify(conn)
    specs = all_specs(cfg.paths.models)
    models = [{"name": st.name, "ok": st.ok, "files": {f.path: f.sha256 for f in specs[st.name].files}}
              for st in model_status(cfg.paths.models)]
    checks = [{"name": c.name, "ok": c.ok, "warning": c.warning, "message": c.message} for c in run_checks(cfg)
              if c.name not in ("language model", "desk microphones") and not c.name.startswith("model ")]
    return {"users": len(users), "roles": dict(sorted(roles.items())), "receipts": receipts,
            "reviews": len(reviews), "last_review": max((r["ts"] for r in reviews), default=None),
            "restarts": dict(restarts), "audit_ok": verified.ok, "audit_records": verified.records,
            "log_reviews": recorded, "early_erasures": dict(early),
            "models": models, "checks": checks}


# ------------------------------------------------------------------------------------------------- render

def gather(cfg: Config) -> dict:
    if box.needs_service_user():
        raw = subprocess.run(box.service_command(["box", "facts"]), capture_output=True, text=True, timeout=300,
                             check=True).stdout
        facts = json.loads(raw)
    else:
        facts = state_facts(cfg)
    return {"generated": dt.datetime.now(dt.UTC).timestamp(), "box": [c.__dict__ for c in box_checks(cfg)],
            "state": facts, "exposure": exposure_scores(), "software": software(),
            "retention": {"max_age_hours": cfg.retention.max_age_hours, "purge_at": cfg.retention.purge_at,
                          "timezone": cfg.retention.timezone, "gallringsbeslut": cfg.retention.gallringsbeslut,
                          "audit_retention_days": cfg.retention.audit_retention_days}}


def _day(ts: float | None, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return "–" if ts is None else dt.datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Table:
    head: tuple[str, ...]
    rows: list[tuple[str, ...]]
    verdict_column: int | None = None  # a column holding OK / VARNING / FEL (coloured)
    code_columns: tuple[int, ...] = ()  # hashes and fingerprints (small, may break anywhere)


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    level: int
    text: str = ""
    table: Table | None = None


def _verdict(c: dict) -> str:
    return "VARNING" if c["warning"] else "OK" if c["ok"] else "FEL"


def sections(r: dict) -> list[Section]:
    """The report as sections of text and tables: what both renderers (HTML, PDF) print, the same everywhere."""
    from appliance.compliance import log_reviews

    tz, ret, st = r["retention"]["timezone"], r["retention"], r["state"]
    lr, early = st["log_reviews"], st["early_erasures"]
    checks = [*r["box"], *st["checks"]]
    receipts = [(_day(x["ts"], tz), str(x["deleted_recordings"]), f"{x['old_key']} → {x['new_key']}", str(x["seq"]))
                for x in st["receipts"]] or [("Inga gallringar de senaste 12 veckorna.", "", "", "")]
    models = [(m["name"], "OK" if m["ok"] else "FEL", "\n".join(f"{p} {h}" for p, h in m["files"].items()))
              for m in st["models"]]
    return [
        Section("kontroller", "Självkontroll", 2, table=Table(
            ("Kontroll", "Resultat", "Detaljer"), [(c["name"], _verdict(c), c["message"]) for c in checks],
            verdict_column=1)),
        Section("gallring", "Gallring", 2, table=Table(("", ""), [
            ("Gallringsbeslut", ret["gallringsbeslut"] or "SAKNAS – gallringen körs inte"),
            ("Lagringstid", f"{ret['max_age_hours']:g} timmar"),
            ("Gallring", f"varje {ret['purge_at']} ({tz})"),
            ("Loggens lagringstid", f"{ret['audit_retention_days']} dagar")])),
        Section("kvitton", "Gallringskvitton, senaste 12 veckorna", 3, table=Table(
            ("Tid", "Raderade inspelningar", "Databasnyckel (gammal → ny)", "Loggpost"), receipts,
            code_columns=(2,))),
        Section("anvandare", "Användare och roller", 2, text=f"{st['users']} aktiva konton.",
                table=Table(("Roll", "Antal"), [(k, str(v)) for k, v in st["roles"].items()])),
        Section("logguppfoljning", "Logguppföljning", 2, table=Table(("", ""), [
            ("Granskningar av loggen (12 veckor)", str(st["reviews"])),
            ("Senaste granskning", _day(st["last_review"], tz)),
            ("Registrerade granskningar (12 veckor)", str(lr["count"])),
            ("Senaste registrerade granskning", _day(lr["last_review_at"], tz)
             + (f" – äldre än {lr['warn_after_days']} dagar" if lr["overdue"] else "")),
            ("Granskningar med avvikelse", str(lr["with_findings"])),
            ("Loggkedjan", "obruten" if st["audit_ok"] else "BRUTEN")])),
        Section("granskningar", "Registrerade granskningar, senaste 12 veckorna", 3, table=Table(
            ("Datum", "Av", "Sort", "Vad som granskades", "Resultat"),
            [(_day(v["reviewed_at"], tz), v["reviewer"], log_reviews.KINDS.get(v["kind"], v["kind"]), v["checked"],
              f"Avvikelse: {v['finding']}" if v["has_finding"] else "Inget avvikande") for v in lr["reviews"]]
            or [("Ingen granskning registrerad.", "", "", "", "")])),
        Section("radering", "Radering före gallringen, senaste 12 veckorna", 3, table=Table(("", ""), [
            ("Ljud raderat före texten (tillfällen)", str(early.get("audio.shred", 0))),
            ("Radering på begäran av den registrerade", str(early.get("dsr.erase", 0))),
            ("Nyckelbyten efter radering", str(early.get("rekey.receipt", 0)))])),
        Section("omstarter", "Omstarter av tjänster (vakthund, krasch)", 3, table=Table(
            ("Tjänst", "Antal"), [(u, str(n)) for u, n in st["restarts"].items()] or [("Inga.", "")])),
        Section("exponering", "Tjänsternas exponering (systemd-analyze security; lägre är bättre)", 2, table=Table(
            ("Tjänst", "Poäng"), [(u, "–" if s is None else f"{s:.1f}") for u, s in r["exposure"].items()])),
        Section("programvara", "Programvara och modeller", 2, text=f"Paket samtalsstod {r['software']['package']}.",
                table=Table(("Modell", "Status", "Filer (SHA-256)"), models, code_columns=(2,))),
        Section("hjul", "Installerade Python-paket (wheel)", 3, table=Table(
            ("Hjul (wheel)", "SHA-256"), list(r["software"]["wheels"].items()), code_columns=(1,))),
    ]


TITLE = "Samtalsstöd – efterlevnadsrapport"


def _intro(r: dict) -> str:
    tz = r["retention"]["timezone"]
    return (f"Skapad {_day(r['generated'], tz)} ({tz}). Rapporten innehåller inga personuppgifter: bara antal, "
            "datum, fingeravtryck och kontrollsummor.")


def render_html(r: dict) -> str:
    e = html.escape
    verdict_class = {"OK": "ok", "VARNING": "warn", "FEL": "fail"}
    parts = []
    for s in sections(r):
        parts.append(f'<h{s.level} id="{s.id}">{e(s.title)}</h{s.level}>')
        if s.text:
            parts.append(f"<p>{e(s.text)}</p>")
        if s.table is not None:
            tb = s.table
            head = "" if not any(tb.head) else "<tr>" + "".join(f"<th>{e(h)}</th>" for h in tb.head) + "</tr>"
            rows = []
            for row in tb.rows:
                cells = []
                for i, cell in enumerate(row):
                    text = "<br>".join(e(line) for line in cell.split("\n"))
                    if i == tb.verdict_column:
                        cells.append(f"<td class='{verdict_class.get(cell, '')}'>{text}</td>")
                    elif i in tb.code_columns:
                        cells.append(f"<td><code>{text}</code></td>")
                    elif i == 0 and not any(tb.head):
                        cells.append(f"<th>{text}</th>")
                    else:
                        cells.append(f"<td>{text}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            parts.append(f"<table>{head}{''.join(rows)}</table>")
    return f"""<!doctype html>
<html lang="sv"><head><meta charset="utf-8"><title>{TITLE}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#111}}table{{border-collapse:collapse;
width:100%;margin-bottom:1.5rem}}td,th{{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}}
.ok{{color:#05612a}}.fail{{color:#a00;font-weight:bold}}.warn{{color:#8a5300}}code{{font-size:.8em;word-break:break-all}}
</style></head><body>
<h1>{TITLE}</h1>
<p>{e(_intro(r))}</p>
{chr(10).join(parts)}
</body></html>
"""


def render_pdf(r: dict) -> bytes:
    """The same report as a PDF (reportlab, in memory): what a data-protection officer files."""
    import io

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer
    from reportlab.platypus import Table as PdfTable

    styles = getSampleStyleSheet()
    cell, code = styles["BodyText"].clone("cell", fontSize=8, leading=10), styles["Code"].clone(
        "hash", fontSize=6, leading=7, wordWrap="CJK")
    colour = {"OK": "#05612a", "VARNING": "#8a5300", "FEL": "#aa0000"}
    e = html.escape
    story = [Paragraph(e(TITLE), styles["Title"]), Paragraph(e(_intro(r)), styles["BodyText"]), Spacer(1, 4 * mm)]
    for s in sections(r):
        story.append(Paragraph(e(s.title), styles["Heading2" if s.level == 2 else "Heading3"]))
        if s.text:
            story.append(Paragraph(e(s.text), styles["BodyText"]))
        if s.table is None:
            continue
        tb = s.table
        data = [[Paragraph(f"<b>{e(h)}</b>", cell) for h in tb.head]] if any(tb.head) else []
        style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]
        for row in tb.rows:
            cells = []
            for i, c in enumerate(row):
                text = "<br/>".join(e(line) for line in c.split("\n"))
                if i == tb.verdict_column and c in colour:
                    text = f'<font color="{colour[c]}">{text}</font>'
                cells.append(Paragraph(text, code if i in tb.code_columns else cell))
            data.append(cells)
        width = A4[0] - 30 * mm
        columns = len(data[0])
        table = PdfTable(data, colWidths=[width / columns] * columns, repeatRows=1 if any(tb.head) else 0)
        table.setStyle(style)
        story += [table, Spacer(1, 4 * mm)]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, title=TITLE, author="Samtalsstöd", leftMargin=15 * mm, rightMargin=15 * mm,
                      topMargin=15 * mm, bottomMargin=15 * mm).build(story)
    return out.getvalue()
