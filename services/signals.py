"""SIGTERM (systemd stopping the unit) and SIGINT end a service's loop gracefully: the loop checks the event."""

from __future__ import annotations

import logging
import signal
import threading

from appliance.platform import sdnotify

log = logging.getLogger(__name__)


def stop_on_signals(stopping: threading.Event, what: str) -> None:
    """Set `stopping` on SIGTERM or SIGINT; `what` says in the log what the service finishes first."""
    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: %s", signum, what)
        sdnotify.stopping(what)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
