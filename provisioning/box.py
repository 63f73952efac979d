"""The installed box: what runs on a box that a dev checkout has no use for.

- `appliance unit-stopped UNIT` / `unit-started UNIT`: every long-running unit's `ExecStopPost=` and
  `ExecStartPre=`. systemd sets `$SERVICE_RESULT`; a stop that was not a clean one (the watchdog killed a hung
  process, a crash, a timeout) becomes an audit record `unit.restart` with the unit, the result and the exit
  code, so IT and the responsible person see restarts in the log they already review. A clean stop writes
  nothing.
- `as_service()`: IT runs `appliance …` as root on a box; the commands that open the database or the model
  store re-run themselves as the service user in a transient unit with the sealed master key
  (`systemd-run -p LoadCredentialEncrypted=master-key`), so nothing in the state directory ends up owned by
  root and the key is never in a file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from appliance.config import Config
from appliance.platform import audit, keys

log = logging.getLogger(__name__)

SERVICE_USER = "samtalsstod"
PREFIX = Path("/opt/samtalsstod")
CONFIG_PATH = Path("/etc/samtalsstod/appliance.toml")
CREDSTORE = Path("/etc/credstore.encrypted")
CREDENTIAL = CREDSTORE / keys.CREDENTIAL_NAME
APPLIANCE_EXE = str(PREFIX / ".venv" / "bin" / "appliance")
# The first 16 bytes of a systemd credential name the key it is sealed with (systemd's src/shared/creds-util.h).
_SEALING = {"5a1c6a86df9d4096b1d5a65e0862f19a": "host", "0c7cc07b117645919c4b0bea08bc20fe": "tpm2",
            "faf7eb9341e3412ca1a436f95a29362f": "tpm2", "93a894094874449090caf2fc93cab553": "tpm2+host",
            "af4950a849134eb1a73846304ff30c05": "tpm2+host"}
UNIT_RE = re.compile(r"^[A-Za-z0-9@_.:-]{1,80}$")
# Results systemd reports for a stop the unit did not ask for (systemd.exec(5), $SERVICE_RESULT).
_CLEAN = {"", "success"}


def _results_dir(cfg: Config) -> Path:
    return cfg.paths.state_dir / "unit-results"


def unit_stopped(cfg: Config, unit: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """A unit's ExecStopPost=: note an unclean stop for the audit log; returns the note, None for a clean stop.

    systemd does not hand the credentials to ExecStopPost= (measured: EACCES on $CREDENTIALS_DIRECTORY), so the
    audit record cannot be signed here: the note goes into the state directory and the unit's next start
    (`unit_started`, its ExecStartPre=) writes the record before the service runs."""
    env = os.environ if environ is None else environ
    result = env.get("SERVICE_RESULT", "")
    if result in _CLEAN:
        return None
    if not UNIT_RE.match(unit):
        raise ValueError(f"not a unit name: {unit!r}")
    code, status = env.get("EXIT_CODE", ""), env.get("EXIT_STATUS", "")
    note = {"service_result": result if re.match(r"^[a-z-]{1,40}$", result) else "other",
            "exit_code": code if re.match(r"^[a-z]{1,20}$", code) else None,
            "exit_status": status if re.match(r"^[A-Z0-9]{1,12}$", status) else None,
            "stopped_at": time.time()}
    folder = _results_dir(cfg)
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{unit}.{time.time_ns()}.json"
    path.write_text(json.dumps(note), encoding="utf-8")
    log.warning("%s stopped uncleanly (%s); the restart is audited when it starts again", unit, result)
    return path


def unit_started(cfg: Config, unit: str) -> list[dict]:
    """A unit's ExecStartPre=: the audit records `unit.restart` of its unclean stops noted since the last start."""
    folder = _results_dir(cfg)
    notes = sorted(folder.glob(f"{unit}.*.json")) if folder.is_dir() and UNIT_RE.match(unit) else []
    if not notes:
        return []
    log_ = audit.AuditLog.for_state(cfg, keys.load_master_key(cfg))
    out = []
    for path in notes:
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            note = {"service_result": "unknown"}
        data = {k: v for k, v in note.items() if k in ("service_result", "exit_code", "exit_status", "stopped_at")}
        out.append(log_.append(actor="system:systemd", action="unit.restart", target=f"unit:{unit}",
                               result="failed", detail=str(data.get("service_result", "unknown")), data=data))
        path.unlink()
    return out


def sealed_with(path: Path = CREDENTIAL) -> str:
    """What a credential file is sealed to: tpm2, host, tpm2+host, none (missing) or unknown."""
    import base64
    import binascii

    try:
        raw = path.read_bytes()
    except OSError:
        return "none"
    try:
        blob = base64.b64decode(b"".join(raw.split()), validate=True)  # systemd-creds writes wrapped base64
    except (binascii.Error, ValueError):
        blob = raw
    return _SEALING.get(blob[:16].hex(), "unknown")


def on_box() -> bool:
    """An installed, provisioned box: the package's config and the sealed credential exist."""
    try:
        return CONFIG_PATH.is_file() and CREDENTIAL.exists()
    except PermissionError:  # the service user may not look into root's credential store: only root asks this
        return False


def needs_service_user() -> bool:
    """Root on a provisioned box without the credential at hand: run as the service user instead."""
    return os.geteuid() == 0 and on_box() and not os.environ.get("CREDENTIALS_DIRECTORY")


def service_command(argv: list[str], *, stdin_file: bool = False) -> list[str]:
    """`systemd-run` running `appliance ARGV` as the service user in the units' sandbox, with the master key."""
    exe = APPLIANCE_EXE
    props = [f"User={SERVICE_USER}", f"Group={SERVICE_USER}", f"LoadCredentialEncrypted={keys.CREDENTIAL_NAME}",
             f"Environment=APPLIANCE_CONFIG={CONFIG_PATH}", "StateDirectory=samtalsstod", "StateDirectoryMode=0700",
             "UMask=0077", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
             "PrivateDevices=yes"]
    cmd = [shutil.which("systemd-run") or "systemd-run", "--quiet", "--collect", "--wait", "--pipe",
           "--service-type=exec"]
    for p in props:
        cmd += ["-p", p]
    return [*cmd, exe, *argv]


def reexec_as_service(argv: list[str], stdin_path: Path | None = None) -> None:
    """Replace this process with the transient unit (stdin from `stdin_path` when given: root reads the file)."""
    if stdin_path is not None:
        fd = os.open(stdin_path, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    cmd = service_command(argv)
    os.execv(cmd[0], cmd)  # noqa: S606 - a fixed argv, no shell


def record(cfg: Config, step: str, data: dict) -> dict:
    """`appliance box record STEP`: the audit record of a provisioning step (as the service user)."""
    master = keys.load_master_key(cfg)
    return audit.AuditLog.for_state(cfg, master).append(
        actor="it:provision", action="box.provision", target=f"step:{step}", data=audit.check_data(data))


def first_users(cfg: Config, admin: str, responsible: str, admin_email: str | None = None,
                responsible_email: str | None = None) -> list[str]:
    """The first administrator and responsible person, each with a one-time enrolment link; users that exist
    are left alone (idempotent: `appliance user invite NAME` makes a new link)."""
    from contextlib import closing

    from appliance.platform.context import open_appliance
    from appliance.users import accounts, invitations

    app = open_appliance(cfg)
    lines = []
    with closing(app.connect()) as conn:
        for name, role, email in ((admin, "admin", admin_email), (responsible, "responsible", responsible_email)):
            existing = accounts.find_user(conn, name)
            if existing is not None:
                lines.append(f"{name}: exists already (roles: {', '.join(sorted(existing.roles))}); "
                             f"`appliance user invite {name}` makes a new enrolment link")
                continue
            user, token = invitations.invite(conn, cfg, username=name, roles=[role], actor="it:provision",
                                             email=email)
            mailed = invitations.send(cfg, conn, user, token) if email else False
            lines.append(f"{name} ({role}): one-time enrolment link, valid {cfg.accounts.invitation_hours} h"
                         f"{', also e-mailed' if mailed else ''}:\n  {invitations.link(cfg, token)}")
    return lines


# --- rotating the master key (the service user's half; root's is provisioning/provision.py) -------------

def rotate_begin(cfg: Config, new_hex: str) -> dict:
    """`appliance box rotate-key begin` (the new key on stdin): every wrapped key also wrapped under the new one."""
    current, new = keys.load_master_key(cfg), bytes.fromhex(new_hex.strip())
    if len(new) != keys.KEY_BYTES:
        raise ValueError("the new master key must be 32 bytes (64 hex digits)")
    files = keys.rotate_begin(cfg, current, new)
    return audit.AuditLog.for_state(cfg, current).append(
        actor="it:provision", action="key.rotate_begin", target="key:master",
        data={"old_key_fingerprint": keys.fingerprint(current), "new_key_fingerprint": keys.fingerprint(new),
              "files": files})


def rotate_finish(cfg: Config, sealed: str) -> dict:
    """`appliance box rotate-key finish`, run with the new credential: the old key's wrappings dropped; the
    receipt names the new key by fingerprint and what it is sealed to."""
    current = keys.load_master_key(cfg)
    files = keys.rotate_finish(cfg, current)
    return audit.AuditLog.for_state(cfg, current).append(
        actor="it:provision", action="key.rotate", target="key:master",
        data={"new_key_fingerprint": keys.fingerprint(current), "files": files, "sealed": sealed})
