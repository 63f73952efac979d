"""systemd units: the committed files in services/units/ are templates; `appliance units render DIR` (and
`make deb`) writes them with the shared sandbox (`hardening.conf` where a unit says `# @hardening@`), the
web's worker count and the schedule from the config (retention.purge_at, retention.reminders,
retention.timezone), and, for a server-backed transcription backend, the asr unit's network drop-in
(`_asr_backend_dropin`)."""

from __future__ import annotations

from importlib import resources
from ipaddress import ip_address
from pathlib import Path

from appliance.config import Config, grpc_host

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


ASR_DROPIN = "appliance-asr.service.d/asr-backend.conf"


def _asr_backend_dropin(cfg: Config) -> str | None:
    """In-process Whisper needs no network (the asr unit has PrivateNetwork=yes). A Triton or Riva backend must
    reach its server: the drop-in gives the unit the host's network, confined to loopback (the triton unit) or
    to the central server's address. None for faster-whisper."""
    backend = cfg.asr.backend
    if backend == "faster-whisper":
        return None
    url = cfg.asr.triton.url if backend == "triton" else cfg.asr.riva.url
    host = grpc_host(url)
    local = host in ("127.0.0.1", "::1", "localhost")
    lines = [f'# Rendered by `appliance units render` for [asr] backend = "{backend}" ({url}).', "[Unit]"]
    if backend == "triton" and local:
        lines += ["Wants=appliance-triton.service", "After=appliance-triton.service"]
    lines += ["", "[Service]", "# The transcription server is reached over the network; nothing else is.",
              "PrivateNetwork=no", "RestrictAddressFamilies=", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
              "IPAddressDeny=any"]
    try:
        allow = "localhost" if local else str(ip_address(host))
    except ValueError:
        allow = None
    if allow is not None:
        lines.append(f"IPAddressAllow={allow}")
    else:  # systemd confines by address only: a host name cannot be allowed, so name the address instead
        lines += [f"# {host} is a host name: write its address into [asr.{backend}] url to confine the unit to it.",
                  "IPAddressDeny="]
    return "\n".join(lines) + "\n"


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
    dropin = _asr_backend_dropin(cfg)
    if dropin is not None:
        units[ASR_DROPIN] = dropin
    return units


def write(cfg: Config, target: Path, prefix: Path = Path("/opt/samtalsstod")) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(cfg, prefix).items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text, encoding="utf-8")
        written.append(target / name)
    return written
