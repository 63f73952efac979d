"""Desk microphones: the database side of the `recorder` unit.

The web and the recorder (services/recorder.py) never talk over a socket or port: the web writes what it
wants into `recorder_requests` (desired: recording, paused, stopped), the recorder polls it, captures, and
writes back what it did (state, acknowledged chunks, a Swedish error message). The recorder also publishes
its heartbeat and the capture devices it offers in `recorder_service`, so the web only offers microphones
the box really has and can tell when the recorder is not running. Tables: migration 0012.

A desk recording is an ordinary live recording (appliance/live.py, source 'desk'): consent, chunks, pause
marks, stop and the live transcript are live's. The control row only steers the capture and dies with its
recording.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import sqlcipher3

from appliance import clock
from appliance.config import Config
from appliance.errors import ApplianceError
from appliance.platform import audit
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction
from appliance.recordings import live
from appliance.users import access
from appliance.users.accounts import User

log = logging.getLogger(__name__)

RECORDING, PAUSED, STOPPED = "recording", "paused", "stopped"
ACTIVE = ("pending", "recording", "paused")  # the recorder still has work on these (spelled out in the SQL)
DESIRED = (RECORDING, PAUSED, STOPPED)
ACTIONS = {RECORDING: "recording.desk_resume", PAUSED: "recording.desk_pause", STOPPED: "recording.desk_stop"}
STATUS_ACTION = "recording.desk_status"

MSG_NOT_RUNNING = ("Inspelningstjänsten för bordsmikrofoner är inte igång. Försök igen om en stund eller "
                   "kontakta IT.")
MSG_NO_DEVICE = "Mikrofonen finns inte (längre) på enheten. Välj en annan mikrofon."
MSG_BUSY = "Mikrofonen används redan för en annan inspelning. Välj en annan mikrofon eller vänta tills den är ledig."
MSG_FINISHED_HERE = ("Inspelningstjänsten svarade inte, så inspelningen avslutades härifrån. "
                     "Allt som hann sparas finns kvar.")


class DeskError(ApplianceError):
    """A desk-microphone request that cannot be done; the message says why (in Swedish)."""


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    description: str

    @property
    def label(self) -> str:
        return f"{self.description} ({self.name})" if self.description else self.name


@dataclass(frozen=True)
class RecorderInfo:
    alive: bool
    devices: tuple[DeviceInfo, ...]
    heartbeat: float | None


@dataclass(frozen=True)
class DeskControl:
    recording_id: str
    user_id: int
    device: str
    desired: str
    state: str
    acked_chunks: int
    captured_seconds: float
    error: str | None
    recorder_alive: bool

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def label(self) -> str:
        """What the recording page says about the capture (Swedish)."""
        if self.state == "failed":
            return "Avbruten"
        if self.state == STOPPED:
            return "Stoppad"
        if self.desired == STOPPED:
            return "Stoppar …"
        if self.state == "pending":
            return "Startar mikrofonen …"
        if self.desired != self.state:
            return "Pausar …" if self.desired == PAUSED else "Återupptar …"
        return "Spelar in" if self.state == RECORDING else "Pausad"

    def to_json(self) -> dict:
        return {"device": self.device, "desired": self.desired, "state": self.state, "label": self.label,
                "seconds": round(self.captured_seconds, 1), "chunks": self.acked_chunks, "error": self.error,
                "recorder_alive": self.recorder_alive, "active": self.active}


# --- the recorder's heartbeat and devices -----------------------------------------------------------

def publish(conn: Connection, worker: str, devices: list[DeviceInfo] | None = None) -> None:
    """The recorder is alive (and, when given, offers these devices)."""
    with transaction(conn):
        if devices is None:
            conn.execute("INSERT INTO recorder_service (id, worker, heartbeat) VALUES (1, ?, ?) "
                         "ON CONFLICT(id) DO UPDATE SET worker = excluded.worker, heartbeat = excluded.heartbeat",
                         (worker, clock.now()))
        else:
            listed = json.dumps([{"name": d.name, "description": d.description} for d in devices])
            conn.execute("INSERT INTO recorder_service (id, worker, heartbeat, devices) VALUES (1, ?, ?, ?) "
                         "ON CONFLICT(id) DO UPDATE SET worker = excluded.worker, heartbeat = excluded.heartbeat, "
                         "devices = excluded.devices", (worker, clock.now(), listed))


def recorder_info(conn: Connection, cfg: Config) -> RecorderInfo:
    row = conn.execute("SELECT heartbeat, devices FROM recorder_service WHERE id = 1").fetchone()
    if row is None:
        return RecorderInfo(False, (), None)
    alive = clock.now() - row["heartbeat"] <= cfg.recorder.stale_seconds
    devices = tuple(DeviceInfo(d["name"], d.get("description", "")) for d in json.loads(row["devices"]))
    return RecorderInfo(alive, devices if alive else (), row["heartbeat"])


def free_devices(conn: Connection, cfg: Config) -> list[DeviceInfo]:
    """The offered devices that no running desk recording holds."""
    busy = {r[0] for r in conn.execute(
        "SELECT device FROM recorder_requests WHERE state IN ('pending', 'recording', 'paused')")}
    return [d for d in recorder_info(conn, cfg).devices if d.name not in busy]


# --- the web's side ---------------------------------------------------------------------------------

def start(app: Appliance, conn: Connection, user: User, *, device: str, title: str,
          folder_id: int | str | None = None, speakers: int | str | None = None,
          consent_confirmed: bool = False) -> str:
    """Start a desk recording: a live recording (consent, disk space, folder: live.start) plus the request
    the recorder picks up. Raises DeskError (nothing stored) when the recorder is not running, the device
    is not offered or already in use."""
    device = (device or "").strip()
    info = recorder_info(conn, app.cfg)
    if not info.alive:
        raise DeskError(MSG_NOT_RUNNING)
    if not device:
        raise DeskError("Välj vilken bordsmikrofon som ska spela in.")
    if device not in {d.name for d in info.devices}:
        raise DeskError(MSG_NO_DEVICE)
    if device not in {d.name for d in free_devices(conn, app.cfg)}:
        raise DeskError(MSG_BUSY)
    rec_id = live.start(app, conn, user, title=title, folder_id=folder_id, speakers=speakers, source="desk",
                        consent_confirmed=consent_confirmed, device=device)
    now = clock.now()
    try:
        with transaction(conn):
            conn.execute("INSERT INTO recorder_requests (recording_id, user_id, device, desired, state, created_at, "
                         "updated_at) VALUES (?, ?, ?, 'recording', 'pending', ?, ?)",
                         (rec_id, user.id, device, now, now))
    except sqlcipher3.IntegrityError:
        # Another recording took the device a moment ago: undo this one (it holds no audio yet).
        with transaction(conn):
            conn.execute("DELETE FROM recordings WHERE id = ?", (rec_id,))
            audit.record(conn, user.actor, "recording.delete", f"recording:{rec_id}", role=access.content_role(user),
                         detail="reason:device_busy")
        app.blobs.delete(rec_id)
        raise DeskError(MSG_BUSY) from None
    log.info("desk recording %s requested", rec_id)
    return rec_id


def _control(conn: Connection, row, alive: bool) -> DeskControl:
    return DeskControl(row["recording_id"], row["user_id"], row["device"], row["desired"], row["state"],
                       row["acked_chunks"], row["captured_seconds"], row["error"], alive)


def control_of(conn: Connection, cfg: Config, rec_id: str) -> DeskControl | None:
    """The desk control of a recording (None for other recordings). No access check: for pages that made one."""
    row = conn.execute("SELECT * FROM recorder_requests WHERE recording_id = ?", (rec_id,)).fetchone()
    return _control(conn, row, recorder_info(conn, cfg).alive) if row is not None else None


def status(conn: Connection, user: User, rec_id: str) -> DeskControl | None:
    """The desk control for the status poll (viewer rights, audited); None for other recordings."""
    access.require_recording(conn, user, rec_id, STATUS_ACTION)
    return control_of(conn, conn.cfg, rec_id)


def request(app: Appliance, conn: Connection, user: User, rec_id: str, desired: str) -> DeskControl:
    """Ask the recorder to pause, resume or stop (editor rights, audited). A stop while the recorder is not
    running finishes the recording here, keeping every stored chunk; pause and resume need the recorder."""
    if desired not in DESIRED:
        raise DeskError("Okänd begäran.")
    access.require_recording(conn, user, rec_id, ACTIONS[desired])
    control = control_of(conn, app.cfg, rec_id)
    if control is None:
        raise DeskError("Det här är ingen inspelning från en bordsmikrofon.")
    if not control.active:
        raise DeskError("Inspelningen är redan stoppad.")
    if not control.recorder_alive:
        if desired != STOPPED:
            raise DeskError(MSG_NOT_RUNNING + " Du kan stoppa inspelningen; det som redan spelats in finns kvar.")
        session = live.session(conn, rec_id)
        if session is not None and session.state != STOPPED:
            live.stop(app, conn, user, rec_id)
        report(conn, rec_id, state=STOPPED, error=MSG_FINISHED_HERE)
        with transaction(conn):
            conn.execute("UPDATE recorder_requests SET desired = 'stopped' WHERE recording_id = ?", (rec_id,))
        return control_of(conn, app.cfg, rec_id)
    with transaction(conn):
        conn.execute("UPDATE recorder_requests SET desired = ?, updated_at = ? WHERE recording_id = ? "
                     "AND state IN ('pending', 'recording', 'paused')", (desired, clock.now(), rec_id))
    return control_of(conn, app.cfg, rec_id)


# --- the recorder's side ----------------------------------------------------------------------------

def active_requests(conn: Connection) -> list[DeskControl]:
    """What the recorder has to serve: requests not yet finished, oldest first."""
    rows = conn.execute("SELECT * FROM recorder_requests WHERE state IN ('pending', 'recording', 'paused') "
                        "ORDER BY created_at").fetchall()
    return [_control(conn, r, True) for r in rows]


def set_desired(conn: Connection, rec_id: str, desired: str) -> None:
    """The recorder follows a pause or resume made through live's routes (already access-checked there)."""
    with transaction(conn):
        conn.execute("UPDATE recorder_requests SET desired = ?, updated_at = ? WHERE recording_id = ? "
                     "AND state IN ('pending', 'recording', 'paused') AND desired != 'stopped'",
                     (desired, clock.now(), rec_id))


def report(conn: Connection, rec_id: str, *, state: str | None = None, error: str | None = None,
           worker: str | None = None, acked_chunks: int | None = None,
           captured_seconds: float | None = None) -> None:
    """The recorder tells what it did. Only given fields change; a finished request stays finished."""
    now = clock.now()
    with transaction(conn):
        conn.execute("UPDATE recorder_requests SET state = coalesce(?, state), error = coalesce(?, error), "
                     "worker = coalesce(?, worker), acked_chunks = coalesce(?, acked_chunks), "
                     "captured_seconds = coalesce(?, captured_seconds), heartbeat = ?, updated_at = ? "
                     "WHERE recording_id = ? AND state IN ('pending', 'recording', 'paused')",
                     (state, error, worker, acked_chunks, captured_seconds, now, now, rec_id))

def next_chunk(conn: Connection, rec_id: str) -> int:
    """The number the next captured chunk gets: one past the highest live stored (live_chunks, migration
    0011). Read from live's table, not from acked_chunks: a crash between live's acknowledgement and our
    report must not make the next capture reuse a stored number."""
    return conn.execute("SELECT coalesce(max(seq) + 1, 0) FROM live_chunks WHERE recording_id = ?",
                        (rec_id,)).fetchone()[0]
