"""systemd readiness and watchdog for the units (Type=notify, WatchdogSec=), through systemd-python.

`ready()` tells systemd the unit is up and, when the unit has `WatchdogSec=`, starts a thread that sends
`WATCHDOG=1` every third of that interval — but only while the service's loop keeps calling
`watchdog_ping()` (or `alive` says so): a frozen process (SIGSTOP, a C library holding the GIL) sends
nothing, and a Python loop stuck longer than `stall_seconds` stops the pings too, so systemd kills and
restarts it (`Restart=always`; `appliance unit-stopped` audits the restart). Outside systemd (tests,
`appliance run`) every call is a no-op.

Here, not in services/, because the web unit's gunicorn master uses it too (web may not import services).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_last_beat = time.monotonic()
_thread: threading.Thread | None = None
_stop = threading.Event()


def _notify(state: str) -> bool:
    if not os.environ.get("NOTIFY_SOCKET"):
        return False
    try:
        from systemd import daemon
    except ImportError:  # systemd-python is a dependency; a dev box without it simply has no notifications
        return False
    return bool(daemon.notify(state))


def watchdog_interval() -> float | None:
    """Seconds between pings systemd expects for this process (None: no watchdog)."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6
    except ValueError:
        return None


def watchdog_ping() -> None:
    """The service's loop is alive: call it every iteration and from long work's progress callbacks."""
    global _last_beat
    _last_beat = time.monotonic()
    if watchdog_interval() is not None:
        _notify("WATCHDOG=1")


def ready(status: str = "", *, stall_seconds: float = 600.0, alive: Callable[[], bool] | None = None) -> None:
    """READY=1, and the watchdog thread when the unit has WatchdogSec=.

    `alive` replaces the loop's beats as the liveness test (the web unit asks its own /healthz);
    `stall_seconds` is how long the loop may go without `watchdog_ping()` (a long decode, a slow model request)
    before the pings stop."""
    global _thread
    watchdog_ping()
    _notify("READY=1" + (f"\nSTATUS={status}" if status else ""))
    interval = watchdog_interval()
    if interval is None or _thread is not None:
        return
    check = alive or (lambda: time.monotonic() - _last_beat < stall_seconds)

    def _run() -> None:
        while not _stop.wait(interval / 3):
            try:
                ok = check()
            except Exception:  # noqa: BLE001 - a failing liveness test means: do not ping
                ok = False
            if ok:
                _notify("WATCHDOG=1")
            else:
                log.warning("liveness check failed: not pinging the systemd watchdog")

    _thread = threading.Thread(target=_run, name="sd-watchdog", daemon=True)
    _thread.start()


def stopping(status: str = "") -> None:
    """STOPPING=1: systemd shows the unit as deactivating while the loop finishes its current step."""
    _stop.set()
    _notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))
