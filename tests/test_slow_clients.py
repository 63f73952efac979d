"""Issue 18, finding 3: a few slow clients must not take the web unit down. The probe: TLS connections that
send `POST /login` (or `/upload`) headers with a Content-Length and then only a few bytes of the body.
gunicorn's gthread workers (2 × 4 threads) blocked on those body reads, so seven connections made new
handshakes and /healthz time out. Here 50 are held open against the real web unit (gunicorn as `appliance
run` and the systemd unit start it), while /healthz and a password sign-in must each answer within 2 s."""

from __future__ import annotations

import socket
import ssl
import time
from contextlib import ExitStack

import requests

from tests.test_hardening import CSRF_RE, gunicorn  # noqa: F401 - the real web unit fixture
from tests.web_fixtures import PASSWORD

SLOW_CLIENTS = 50
WITHIN_S = 2.0


def _stalled_post(port: int, path: str, declared: int) -> ssl.SSLSocket:
    """A TLS connection that sent the request headers and 10 bytes of a `declared`-byte body, then stalls."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
              f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {declared}\r\n\r\n"
              "username=a".encode())
    return s


def _timed(fn) -> tuple[float, object]:
    t = time.monotonic()
    result = fn()
    return time.monotonic() - t, result


def test_finding3_slow_clients_do_not_starve_the_web_unit(gunicorn):  # noqa: F811
    base, _log = gunicorn
    port = int(base.rsplit(":", 1)[1])
    with ExitStack() as stack:
        for i in range(SLOW_CLIENTS):
            path, declared = ("/upload", 50_000_000) if i % 10 == 0 else ("/login", 1000)
            stack.callback(stack.enter_context(_stalled_post(port, path, declared)).close)
        time.sleep(0.5)  # let the server pick them all up
        took, health = _timed(lambda: requests.get(base + "/healthz", verify=False, timeout=10))  # noqa: S501
        assert health.status_code == 200 and took < WITHIN_S, f"/healthz took {took:.2f} s"
        with requests.Session() as s:
            took_page, page = _timed(lambda: s.get(base + "/login", verify=False, timeout=10))  # noqa: S501
            token = CSRF_RE.search(page.text).group(1)
            took_post, r = _timed(lambda: s.post(base + "/login", verify=False, allow_redirects=False, timeout=10,
                                                 data={"csrf_token": token, "username": "anna",
                                                       "password": PASSWORD}))
        assert r.status_code == 303 and r.headers["Location"].endswith("/enrol-totp"), r.status_code
        assert took_page < WITHIN_S and took_post < WITHIN_S, (took_page, took_post)
