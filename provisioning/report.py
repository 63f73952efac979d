"""`appliance report --format html`: the compliance report for IT and the data-protection officer, and the box
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
from pathlib import Path

from appliance.config import Config
from provisioning import box
from provisioning.doctor import Check

SERVICES = ("appliance-web.service", "appliance-asr.service", "appliance-assistant.service",
            "appliance-llm.service", "appliance-recorder.service")
ACTIVE = (*SERVICES, "appliance-web.socket", "appliance-purge.timer", "appliance-remind.timer",
          "appliance-firewall.service")
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
        verified = audit.verify(conn)
    specs = all_specs(cfg.paths.models)
    models = [{"name": st.name, "ok": st.ok, "files": {f.path: f.sha256 for f in specs[st.name].files}}
              for st in model_status(cfg.paths.models)]
    checks = [{"name": c.name, "ok": c.ok, "warning": c.warning, "message": c.message} for c in run_checks(cfg)
              if c.name not in ("language model", "desk microphones") and not c.name.startswith("model ")]
    return {"users": len(users), "roles": dict(sorted(roles.items())), "receipts": receipts,
            "reviews": len(reviews), "last_review": max((r["ts"] for r in reviews), default=None),
            "restarts": dict(restarts), "audit_ok": verified.ok, "audit_records": verified.records,
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


def render_html(r: dict) -> str:
    e = html.escape
    tz = r["retention"]["timezone"]
    rows = lambda items: "".join(items)  # noqa: E731 - a tiny local join
    checks = [*r["box"], *r["state"]["checks"]]
    def verdict(c: dict) -> tuple[str, str]:
        return ("warn", "VARNING") if c["warning"] else ("ok", "OK") if c["ok"] else ("fail", "FEL")

    check_rows = rows(f"<tr><td>{e(c['name'])}</td><td class='{verdict(c)[0]}'>{verdict(c)[1]}</td>"
                      f"<td>{e(c['message'])}</td></tr>" for c in checks)
    role_rows = rows(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in r["state"]["roles"].items())
    receipt_rows = rows(f"<tr><td>{_day(x['ts'], tz)}</td><td>{x['deleted_recordings']}</td>"
                        f"<td><code>{e(str(x['old_key']))}</code> → <code>{e(str(x['new_key']))}</code></td>"
                        f"<td>{x['seq']}</td></tr>" for x in r["state"]["receipts"]) or \
        "<tr><td colspan='4'>Inga gallringar de senaste 12 veckorna.</td></tr>"
    exp_rows = rows(f"<tr><td>{e(u)}</td><td>{'–' if s is None else f'{s:.1f}'}</td></tr>"
                    for u, s in r["exposure"].items())
    model_rows = rows(f"<tr><td>{e(m['name'])}</td><td>{'OK' if m['ok'] else 'FEL'}</td><td>"
                      + "<br>".join(f"{e(p)} <code>{h}</code>" for p, h in m["files"].items()) + "</td></tr>"
                      for m in r["state"]["models"])
    wheel_rows = rows(f"<tr><td>{e(n)}</td><td><code>{h}</code></td></tr>" for n, h in r["software"]["wheels"].items())
    restart_rows = rows(f"<tr><td>{e(u)}</td><td>{n}</td></tr>" for u, n in r["state"]["restarts"].items()) or \
        "<tr><td colspan='2'>Inga.</td></tr>"
    ret = r["retention"]
    return f"""<!doctype html>
<html lang="sv"><head><meta charset="utf-8"><title>Samtalsstöd – efterlevnadsrapport</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#111}}table{{border-collapse:collapse;
width:100%;margin-bottom:1.5rem}}td,th{{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}}
.ok{{color:#05612a}}.fail{{color:#a00;font-weight:bold}}.warn{{color:#8a5300}}code{{font-size:.8em;word-break:break-all}}
</style></head><body>
<h1>Samtalsstöd – efterlevnadsrapport</h1>
<p>Skapad {_day(r['generated'], tz)} ({e(tz)}). Rapporten innehåller inga personuppgifter: bara antal, datum,
fingeravtryck och kontrollsummor.</p>
<h2 id="kontroller">Självkontroll</h2>
<table><tr><th>Kontroll</th><th>Resultat</th><th>Detaljer</th></tr>{check_rows}</table>
<h2 id="gallring">Gallring</h2>
<table><tr><th>Gallringsbeslut</th><td>{e(ret['gallringsbeslut'] or 'SAKNAS – gallringen körs inte')}</td></tr>
<tr><th>Lagringstid</th><td>{ret['max_age_hours']:g} timmar</td></tr>
<tr><th>Gallring</th><td>varje {e(ret['purge_at'])} ({e(tz)})</td></tr>
<tr><th>Loggens lagringstid</th><td>{ret['audit_retention_days']} dagar</td></tr></table>
<h3 id="kvitton">Gallringskvitton, senaste 12 veckorna</h3>
<table><tr><th>Tid</th><th>Raderade inspelningar</th><th>Databasnyckel (gammal → ny)</th><th>Loggpost</th></tr>
{receipt_rows}</table>
<h2 id="anvandare">Användare och roller</h2>
<p>{r['state']['users']} aktiva konton.</p>
<table><tr><th>Roll</th><th>Antal</th></tr>{role_rows}</table>
<h2 id="logguppfoljning">Logguppföljning</h2>
<table><tr><th>Granskningar av loggen (12 veckor)</th><td>{r['state']['reviews']}</td></tr>
<tr><th>Senaste granskning</th><td>{_day(r['state']['last_review'], tz)}</td></tr>
<tr><th>Loggkedjan</th><td>{'obruten' if r['state']['audit_ok'] else 'BRUTEN'}</td></tr></table>
<h3 id="omstarter">Omstarter av tjänster (vakthund, krasch)</h3>
<table><tr><th>Tjänst</th><th>Antal</th></tr>{restart_rows}</table>
<h2 id="exponering">Tjänsternas exponering (systemd-analyze security; lägre är bättre)</h2>
<table><tr><th>Tjänst</th><th>Poäng</th></tr>{exp_rows}</table>
<h2 id="programvara">Programvara och modeller</h2>
<p>Paket samtalsstod {e(r['software']['package'])}.</p>
<table><tr><th>Modell</th><th>Status</th><th>Filer (SHA-256)</th></tr>{model_rows}</table>
<table><tr><th>Hjul (wheel)</th><th>SHA-256</th></tr>{wheel_rows}</table>
</body></html>
"""
