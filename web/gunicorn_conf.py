"""gunicorn settings of the web unit, shared by the systemd unit and `appliance run`
(`gunicorn -c python:web.gunicorn_conf --bind … --certfile … --keyfile … web.wsgi:app`).

gevent workers: a connection waiting for a slow client's headers or body is a parked greenlet, not a
thread, so slow or stalled clients cannot starve the unit (gthread's 2 × 4 threads blocked on body reads:
issue 18, finding 3). Each worker takes up to 500 connections; tests/test_slow_clients.py holds 50 open.
"""

from __future__ import annotations

import http.client
import ssl

worker_class = "gevent"
worker_connections = 500
timeout = 300
control_socket_disable = True  # gunicorn ≥ 23's control socket: nothing on the box needs it
# Paths only (no query strings), invitation tokens redacted (web/access_log.py).
logger_class = "web.access_log.RedactingLogger"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


def post_worker_init(worker) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """A client that drops a TLS handshake (a browser rejecting the self-signed certificate, a port probe) or
    its connection is routine, not an error: gevent's hub would print each as a traceback into the journal."""
    from gevent import get_hub

    hub = get_hub()
    hub.NOT_ERROR = (*hub.NOT_ERROR, ssl.SSLError, ConnectionError)


def _healthz(server) -> bool:  # noqa: ANN001 - gunicorn's arbiter
    """Our own /healthz answers through the listening socket (the whole path a browser takes)."""
    name = server.LISTENERS[0].sock.getsockname()
    if not isinstance(name, tuple):  # a Unix socket (tests): alive while the arbiter runs
        return True
    host = {"0.0.0.0": "127.0.0.1", "::": "127.0.0.1", "": "127.0.0.1"}.get(name[0], name[0])  # noqa: S104
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the office certificate names the box, not loopback
    conn = http.client.HTTPSConnection(host, name[1], timeout=10, context=ctx)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def when_ready(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Under systemd (Type=notify, WatchdogSec=): ping the watchdog while /healthz answers, so a web unit that
    stopped serving is restarted (gunicorn itself sends READY=1). A no-op elsewhere."""
    from appliance.platform import sdnotify

    sdnotify.ready("serving", alive=lambda: _healthz(server))
