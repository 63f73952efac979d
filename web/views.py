"""Template helpers (times, durations, status labels) and the unauthenticated health check."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, g, jsonify

from appliance.platform import retention
from appliance.recordings.recordings import INTERPRETER_LANGUAGES
from web.i18n import _

TZ = ZoneInfo("Europe/Stockholm")


def clock_time(seconds: float | None) -> str:
    """Position or length as m:ss (h:mm:ss from one hour)."""
    if seconds is None:
        return "–"
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def local_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, TZ)


def local_time(ts: float) -> str:
    return local_datetime(ts).strftime("%Y-%m-%d %H:%M")


def status_label(status: str) -> str:
    return {
        "queued": _("Köad"),
        "transcribing": _("Transkriberas"),
        "ready": _("Klar"),
        "failed": _("Misslyckades"),
        "recording": _("Spelar in"),
    }.get(status, status)


def healthz():
    return jsonify(status="ok")


def purge_banner() -> dict:
    """Admins see a banner when the weekly purge has not succeeded for too long (DESIGN: retention)."""
    user = g.get("user")
    if user is None or "admin" not in user.roles:
        return {"purge_overdue": False}
    from web import appliance, db  # the app factory's module imports this one

    cfg = appliance().cfg
    return {"purge_overdue": retention.purge_overdue(cfg, db()), "purge_overdue_days": cfg.retention.purge_overdue_days}


def footer() -> dict:
    """The office's gallringsbeslut (the decision the purge rests on) in every page's footer."""
    from web import appliance

    return {"gallringsbeslut": appliance().cfg.retention.gallringsbeslut}


def init_app(app: Flask) -> None:
    app.add_url_rule("/healthz", "healthz", healthz)
    app.context_processor(footer)
    app.context_processor(purge_banner)
    app.jinja_env.globals.update(interpreter_languages=INTERPRETER_LANGUAGES)
    app.jinja_env.filters.update(clock_time=clock_time, local_time=local_time,
                                 iso_time=lambda ts: local_datetime(ts).isoformat(timespec="seconds"),
                                 status_label=status_label)
