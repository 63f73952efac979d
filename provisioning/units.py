"""systemd units: the committed files in services/units/ are templates; `appliance units render DIR` (and
`make deb`) writes them with the shared sandbox (`hardening.conf` where a unit says `# @hardening@`), the
web's worker count and the schedule from the config (retention.purge_at, retention.reminders,
retention.timezone)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from appliance.config import Config

_DAY = {"Mon": "Mon", "Tue": "Tue", "Wed": "Wed", "Thu": "Thu", "Fri": "Fri", "Sat": "Sat", "Sun": "Sun"}


def on_calendar(spec: str, timezone: str) -> str:
    """'Fri 18:00' → 'Fri *-*-* 18:00:00 Europe/Stockholm' (systemd.time(7))."""
    day, hm = spec.split()
    return f"{_DAY[day]} *-*-* {hm}:00 {timezone}"


def _template(name: str) -> str:
    return resources.files("services").joinpath("units", name).read_text(encoding="utf-8")


def _with_calendars(text: str, calendars: list[str]) -> str:
    lines = [line for line in text.splitlines() if not line.startswith("OnCalendar=")]
    at = lines.index("[Timer]") + 1
    return "\n".join(lines[:at] + [f"OnCalendar={c}" for c in calendars] + lines[at:]) + "\n"


HARDENING_MARK = "# @hardening@"
UNIT_SUFFIXES = (".service", ".timer", ".socket")


def _with_hardening(text: str) -> str:
    shared = _template("hardening.conf").rstrip("\n")
    return text.replace(HARDENING_MARK, shared)


def render(cfg: Config, prefix: Path = Path("/opt/samtalsstod")) -> dict[str, str]:
    r = cfg.retention
    units = {}
    for entry in resources.files("services").joinpath("units").iterdir():
        if entry.name.endswith(UNIT_SUFFIXES):
            text = _with_hardening(_template(entry.name)).replace("@WORKERS@", str(cfg.web.workers))
            units[entry.name] = text.replace("/opt/samtalsstod", str(prefix))
    units["appliance-purge.timer"] = _with_calendars(units["appliance-purge.timer"],
                                                     [on_calendar(r.purge_at, r.timezone)])
    units["appliance-remind.timer"] = _with_calendars(units["appliance-remind.timer"],
                                                      [on_calendar(s, r.timezone) for s in r.reminders])
    return units


def write(cfg: Config, target: Path, prefix: Path = Path("/opt/samtalsstod")) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(cfg, prefix).items():
        (target / name).write_text(text, encoding="utf-8")
        written.append(target / name)
    return written
