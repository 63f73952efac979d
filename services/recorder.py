"""The recorder unit: captures the box's desk microphones (ALSA) for recordings started in the web.

Control goes through the database only (appliance/desk.py): every `poll_seconds` the loop reads the
requests the web wrote, starts a capture (services/alsa.py: `arecord` in a child process) for a new one,
passes pause/resume/stop on to running ones, and publishes its heartbeat and the offered devices. Captured
audio goes chunk by chunk into `live.append_chunk`, which stores it encrypted and durably before returning:
desk recordings get the same chunks, pause marks, stop and live transcript as browser recordings.

The recorder acts on behalf of the user who started the recording (the request row holds the user id);
pause, resume and stop go through live's access-checked functions as that user.

Crashes: what `append_chunk` acknowledged is stored. A single recorder runs per state dir (a file lock),
so a request left 'recording' or 'paused' when this process starts belongs to a recorder that died; it is
taken over: capture resumes with the next chunk number, with a pause/resume mark pair where audio is
missing and a notice on the recording page. On SIGTERM (systemd stop, an upgrade) the captures flush their
last partial chunk and the recordings stay open for the next start to take over.
Run: `appliance recorder` or `python -m services.recorder`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import threading
import time
from contextlib import closing
from pathlib import Path

from appliance.config import load_config
from appliance.errors import ApplianceError, NotFound
from appliance.platform import sdnotify
from appliance.platform.context import Appliance, open_appliance
from appliance.platform.db import Connection
from appliance.recordings import desk, live
from appliance.users import accounts
from services.alsa import PAUSED, RECORDING, STOPPED, Capture, DeviceError, list_devices, offered
from services.signals import stop_on_signals

log = logging.getLogger(__name__)

MSG_TAKEN_OVER = ("Inspelningstjänsten startades om under inspelningen. Några sekunder kan saknas där "
                  "utskriften visar en paus.")
MSG_INTERNAL = "Inspelningen avbröts av ett internt fel. Allt som hann sparas finns kvar."


class CaptureEnded(Exception):
    """live stopped the recording itself (maximum length): the capture ends normally."""


class DeskSink:
    """Where a desk capture goes: live's chunks and marks, on short-lived connections (a purge can re-key the
    database between two chunks)."""

    def __init__(self, app: Appliance, rec_id: str, user_id: int) -> None:
        self.app, self.rec_id, self.user_id = app, rec_id, user_id

    def _user(self, conn: Connection) -> accounts.User:
        return accounts.get_user(conn, self.user_id)  # fresh: rights may have changed since the start

    def chunk(self, seq: int, pcm: bytes) -> None:
        with closing(self.app.connect()) as conn:
            ack = live.append_chunk(self.app, conn, self.rec_id, seq, pcm)
            desk.report(conn, self.rec_id, acked_chunks=seq + 1, captured_seconds=ack.seconds)
        if ack.state == STOPPED:
            raise CaptureEnded

    def paused(self, next_seq: int) -> None:
        with closing(self.app.connect()) as conn:
            live.pause(self.app, conn, self._user(conn), self.rec_id, at_seq=next_seq)
            desk.report(conn, self.rec_id, state=PAUSED)

    def resumed(self, next_seq: int) -> None:
        with closing(self.app.connect()) as conn:
            live.resume(self.app, conn, self._user(conn), self.rec_id, at_seq=next_seq)
            desk.report(conn, self.rec_id, state=RECORDING)


class RecorderService:
    def __init__(self, app: Appliance, worker_id: str | None = None) -> None:
        self.app = app
        self.cfg = app.cfg.recorder
        self.worker = worker_id or f"recorder:{socket.gethostname()}:{os.getpid()}"
        self.captures: dict[str, Capture] = {}
        self.users: dict[str, int] = {}  # recording id → the user the capture acts for
        self.stopping = threading.Event()
        self._beat_at = 0.0
        self._devices_at = 0.0

    # --- the loop ---------------------------------------------------------------------------------

    def run_forever(self) -> None:
        log.info("recorder %s ready", self.worker)
        sdnotify.ready("recording")
        try:
            while not self.stopping.is_set():
                sdnotify.watchdog_ping()
                try:
                    self.run_once()
                except Exception:  # a database hiccup must not end the unit; captures keep running
                    log.exception("recorder poll failed; retrying")
                self.stopping.wait(self.cfg.poll_seconds)
        finally:
            self.detach_all()
        log.info("recorder %s stopped", self.worker)

    def run_once(self) -> None:
        now = time.monotonic()
        with closing(self.app.connect()) as conn:
            if now - self._beat_at >= self.cfg.heartbeat_seconds:
                devices = None
                if now - self._devices_at >= self.cfg.device_refresh_seconds:
                    devices = self.devices()
                    self._devices_at = now
                desk.publish(conn, self.worker, devices)
                self._beat_at = now
            requests = {r.recording_id: r for r in desk.active_requests(conn)}
            for rec_id, req in requests.items():
                capture = self.captures.get(rec_id)
                if capture is not None:
                    capture.want(self._follow_live(conn, req, capture))
                else:
                    self._begin(conn, req)
        for rec_id, capture in list(self.captures.items()):
            if rec_id not in requests and capture.is_alive():
                capture.stop()  # finished from elsewhere, or the recording was deleted
            if not capture.is_alive():
                del self.captures[rec_id]
                self._finish(rec_id, capture)

    def _follow_live(self, conn: Connection, req: desk.DeskControl, capture: Capture) -> str:
        """What the capture should do: what the web asked through appliance.recordings.desk, or a pause, resume or stop
        made through live's own routes (the browser dictaphone's), which must steer the microphone too:
        a pause there must never leave the desk microphone storing audio."""
        with capture.transition:  # no pause/resume of our own half done: live's state and ours agree
            session = live.session(conn, req.recording_id)
            if session is None or session.state == STOPPED:
                return STOPPED
            if req.desired == RECORDING and capture.state == RECORDING and session.state == PAUSED:
                desk.set_desired(conn, req.recording_id, PAUSED)
                return PAUSED
            if req.desired == PAUSED and capture.state == PAUSED and session.state == RECORDING:
                desk.set_desired(conn, req.recording_id, RECORDING)
                return RECORDING
        return req.desired

    def devices(self) -> list[desk.DeviceInfo]:
        try:
            found = offered(list_devices(), self.app.cfg.recorder.device_pattern)
        except DeviceError as exc:
            log.error("cannot list capture devices: %s", exc)
            return []
        return [desk.DeviceInfo(d.name, d.description) for d in found]

    # --- one recording --------------------------------------------------------------------------------

    def _begin(self, conn: Connection, req: desk.DeskControl) -> None:
        rec_id = req.recording_id
        session = live.session(conn, rec_id)
        if session is None or session.state == STOPPED:  # finished from its page meanwhile
            desk.report(conn, rec_id, state=STOPPED)
            return
        try:
            user = accounts.get_user(conn, req.user_id)
            if req.desired == STOPPED:  # stopped before the capture began (or while no recorder ran)
                live.stop(self.app, conn, user, rec_id)
                desk.report(conn, rec_id, state=STOPPED)
                return
            if not re.search(self.cfg.device_pattern, req.device):  # the office no longer offers it
                raise DeviceError(desk.MSG_NO_DEVICE)
            first_seq = desk.next_chunk(conn, rec_id)
            if req.state in (RECORDING, PAUSED):
                # Its recorder died mid-recording: mark where audio is missing, then carry on.
                log.warning("recording %s: taking over from a recorder that stopped (next chunk %d)", rec_id,
                            first_seq)
                if session.state == RECORDING:
                    live.pause(self.app, conn, user, rec_id, at_seq=first_seq)
                    live.resume(self.app, conn, user, rec_id, at_seq=first_seq)
                desk.report(conn, rec_id, error=MSG_TAKEN_OVER)
        except (ApplianceError, DeviceError) as exc:
            self._fail(conn, rec_id, req.user_id, str(exc))
            return
        # The capture starts in live's state; if the web wants otherwise, the capture's own transition
        # puts the pause or resume mark at the right chunk.
        capture = Capture(req.device, DeskSink(self.app, rec_id, req.user_id),
                          chunk_seconds=self.cfg.chunk_seconds, first_seq=first_seq, state=session.state)
        capture.want(req.desired)
        self.captures[rec_id] = capture
        self.users[rec_id] = req.user_id
        capture.start()
        desk.report(conn, rec_id, state=session.state, worker=self.worker)
        log.info("recording %s: capturing from chunk %d", rec_id, first_seq)

    def _finish(self, rec_id: str, capture: Capture) -> None:
        """The capture ended: stop the recording (asr finishes the transcript) and report why."""
        user_id = self.users.pop(rec_id)
        exc = capture.sink_error
        with closing(self.app.connect()) as conn:
            if self.stopping.is_set() and exc is None and capture.error is None:
                log.info("recording %s: capture detached for the next recorder to take over", rec_id)
                return
            if isinstance(exc, CaptureEnded) or isinstance(exc, live.NotRecording):
                desk.report(conn, rec_id, state=STOPPED)  # max length, or stopped from elsewhere
                return
            if isinstance(exc, NotFound):  # deleted meanwhile, or the user lost access
                desk.report(conn, rec_id, state="failed", error=str(exc))
                return
            if exc is not None:
                if isinstance(exc, ApplianceError):
                    message = str(exc)
                else:
                    log.error("recording %s: capture failed: %s", rec_id, type(exc).__name__)
                    message = MSG_INTERNAL
                self._fail(conn, rec_id, user_id, message)
                return
            if capture.error is not None:
                self._fail(conn, rec_id, user_id, capture.error)
                return
            try:
                live.stop(self.app, conn, accounts.get_user(conn, user_id), rec_id, chunks=capture.seq)
            except ApplianceError as err:
                desk.report(conn, rec_id, state="failed", error=str(err))
                return
            desk.report(conn, rec_id, state=STOPPED)
        log.info("recording %s: capture stopped after %d chunk(s)", rec_id, capture.seq)

    def _fail(self, conn: Connection, rec_id: str, user_id: int, message: str) -> None:
        """End a recording whose capture cannot go on: keep what was stored, let asr finish it, say why."""
        try:
            session = live.session(conn, rec_id)
            if session is not None and session.state != STOPPED:
                live.stop(self.app, conn, accounts.get_user(conn, user_id), rec_id)
        except ApplianceError as exc:
            log.warning("recording %s: could not be stopped after a capture failure: %s", rec_id,
                        type(exc).__name__)
        desk.report(conn, rec_id, state="failed", error=message)
        log.warning("recording %s: capture failed", rec_id)

    def detach_all(self) -> None:
        """Shutting down: flush every capture's last chunk; the recordings stay open for the next start."""
        self.stopping.set()
        for rec_id, capture in list(self.captures.items()):
            capture.stop()
            del self.captures[rec_id]
            self._finish(rec_id, capture)


def lock_single(state_dir: Path) -> int:
    """One recorder per state dir (the file lock dies with the process, so a crash never leaves it held)."""
    fd = os.open(state_dir / "recorder.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ApplianceError("Another recorder is already running for this state directory") from None
    return fd


def main(config_path: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(config_path)
        app = open_appliance(cfg)
        lock_fd = lock_single(cfg.paths.state_dir)  # held (open) for the life of the process
    except ApplianceError as exc:
        log.error("recorder cannot start: %s", exc)
        return 2
    service = RecorderService(app)

    stop_on_signals(service.stopping, "flushing captures and stopping")
    service.run_forever()
    os.close(lock_fd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
