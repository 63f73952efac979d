"""The metrics unit: health figures for IT's monitoring in Prometheus' text format, on loopback only.

`GET /metrics` answers queue lengths per job kind and state, how long finished jobs took and the
transcription's real-time factor (last 24 h), recordings per status and live captures, the age of the last
purge and whether it is overdue, and the free disk of the state volume — counts and seconds only, nothing about
people or content (no ids, no titles, no user names), so reading it is not a content read.

On a box the socket is systemd's (`appliance-metrics.socket`: 127.0.0.1:9105 in the host's network) and the
service itself has no network of its own (PrivateNetwork=yes; socket activation hands it the listening socket).
Elsewhere (`appliance metrics --port N`) it binds 127.0.0.1 itself; any other address is refused.
Run: `appliance metrics` or `python -m services.metrics`.
"""

from __future__ import annotations

import http.server
import logging
import os
import shutil
import socket
import socketserver
import threading
from contextlib import closing

from appliance import clock
from appliance.config import load_config
from appliance.errors import ApplianceError
from appliance.platform import jobs, retention, sdnotify
from appliance.platform.context import Appliance, open_appliance
from appliance.recordings import live, recordings
from services.signals import stop_on_signals

log = logging.getLogger(__name__)

WINDOW_S = 24 * 3600
DEFAULT_PORT = 9105
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
    if isinstance(value, int):
        text = str(value)  # exact: no rounding of big byte counts
    else:
        text = "NaN" if value != value else repr(float(value))  # Prometheus spells it NaN
    return f"{name}{{{inner}}} {text}" if inner else f"{name} {text}"


def collect(app: Appliance, now: float | None = None) -> str:
    """The figures, now, in Prometheus' text exposition format."""
    now = now or clock.now()
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict[str, str] | None, float]]) -> None:
        out.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}"])
        out.extend(_line(name, v, labels) for labels, v in samples)

    with closing(app.connect()) as conn:
        queue = jobs.counts_by_kind_and_state(conn)
        finished = jobs.finished_since(conn, now - WINDOW_S)
        statuses = recordings.counts_by_status(conn)
        capturing = len(live.capturing(conn))
        last_purge = retention.last_successful_purge(conn)
        overdue = retention.purge_overdue(app.cfg, conn, now)
    metric("samtalsstod_jobs", "gauge", "Jobs in the queue by kind and state.",
           [({"kind": k, "state": s}, n) for (k, s), n in sorted(queue.items())])
    by_kind: dict[str, list[float]] = {}
    rtf: list[float] = []
    for kind, state, seconds, audio in finished:
        by_kind.setdefault(kind, []).append(seconds)
        if kind == "transcribe" and state == "done" and audio:
            rtf.append(seconds / audio)
    out.extend(["# HELP samtalsstod_job_seconds Time the last attempt of jobs finished in the last 24 h took.",
                "# TYPE samtalsstod_job_seconds summary"])
    for kind, times in sorted(by_kind.items()):
        out += [_line("samtalsstod_job_seconds_sum", round(sum(times), 3), {"kind": kind}),
                _line("samtalsstod_job_seconds_count", len(times), {"kind": kind})]
    metric("samtalsstod_transcription_real_time_factor", "gauge",
           "Mean processing time per second of audio of uploads transcribed in the last 24 h (NaN: none).",
           [(None, round(sum(rtf) / len(rtf), 4) if rtf else float("nan"))])
    metric("samtalsstod_recordings", "gauge", "Recordings by status.",
           [({"status": s}, n) for s, n in sorted(statuses.items())])
    metric("samtalsstod_live_captures", "gauge", "Recordings being captured now.", [(None, capturing)])
    metric("samtalsstod_last_purge_timestamp_seconds", "gauge", "When the last purge finished (0: never).",
           [(None, round(last_purge or 0, 3))])
    metric("samtalsstod_purge_overdue", "gauge", "1 when no purge ran within retention.purge_overdue_days.",
           [(None, int(overdue))])
    disk = shutil.disk_usage(app.cfg.paths.state_dir)
    metric("samtalsstod_disk_free_bytes", "gauge", "Free space on the state volume.", [(None, disk.free)])
    metric("samtalsstod_disk_size_bytes", "gauge", "Size of the state volume.", [(None, disk.total)])
    return "\n".join(out) + "\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    app: Appliance

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        try:
            body = collect(self.app).encode("utf-8")
        except Exception:  # a locked or re-keying database must not take the endpoint down
            log.exception("collecting metrics failed")
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass  # scrapes every few seconds would flood the journal; nothing in them is worth keeping


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """An HTTP server on a socket it is given: it creates none itself, so the unit may forbid INET sockets
    (RestrictAddressFamilies=AF_UNIX) while serving systemd's loopback socket."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        host, port = sock.getsockname()[:2]
        socketserver.BaseServer.__init__(self, (host, port), handler)
        self.socket, self.server_name, self.server_port = sock, host, port


def listening_socket(port: int) -> socket.socket:
    """systemd's socket (LISTEN_FDS, fd 3) when socket-activated, else one bound to 127.0.0.1 here."""
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        return socket.socket(fileno=3)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    return sock


def serve(app: Appliance, sock: socket.socket, stopping: threading.Event) -> None:
    handler = type("Handler", (_Handler,), {"app": app})
    server = _Server(sock, handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    sdnotify.ready("metrics on loopback")
    while not stopping.wait(5):
        sdnotify.watchdog_ping()
    server.shutdown()


def main(config_path: str | None = None, port: int = DEFAULT_PORT) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        app = open_appliance(load_config(config_path))
    except ApplianceError as exc:
        log.error("metrics cannot start: %s", exc)
        return 2
    stopping = threading.Event()
    stop_on_signals(stopping, "stopping")
    serve(app, listening_socket(port), stopping)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
