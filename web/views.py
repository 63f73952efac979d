"""Template helpers (times, durations, status labels) and the unauthenticated health check."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, jsonify

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
    }.get(status, status)


def healthz():
    return jsonify(status="ok")


def init_app(app: Flask) -> None:
    app.add_url_rule("/healthz", "healthz", healthz)
    app.jinja_env.filters.update(clock_time=clock_time, local_time=local_time,
                                 iso_time=lambda ts: local_datetime(ts).isoformat(timespec="seconds"),
                                 status_label=status_label)
