"""gunicorn access logging without secrets: paths only (no query strings), one-time links redacted.

Used as `--logger-class web.access_log.RedactingLogger` together with ACCESS_LOG_FORMAT.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
# Path segments that are bearer secrets: invitation links carry their token in the path.
_SECRET_PATHS = re.compile(r"^(/invite/)[^/]+")


def redact_path(path: str) -> str:
    return _SECRET_PATHS.sub(r"\1<redacted>", path)


class RedactingLogger(Logger):
    def access(self, resp, req, environ, request_time):  # noqa: ANN001 - gunicorn's signature
        # The web unit's own watchdog probe (web/gunicorn_conf.py) every 20 s is not a visit.
        if req.path == "/healthz" and environ.get("REMOTE_ADDR") in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
            return
        super().access(resp, req, environ, request_time)

    def atoms(self, resp, req, environ, request_time):  # noqa: ANN001 - gunicorn's signature
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_path(atoms.get("U", ""))
        return atoms
