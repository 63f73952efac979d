"""Every failure becomes a friendly Swedish page (or JSON for fetch requests); never a stack trace.

ApplianceError messages are written to be shown. Anything else is logged (type and trace, no request
data) and answered with a generic 500 page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, flash, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from appliance.errors import (
    ApplianceError,
    AudioGone,
    AuthError,
    BadAudio,
    IntegrityError,
    KeyError_,
    ModelError,
    NotFound,
    Throttled,
)
from appliance.platform.audit import AuditUnavailable
from web.auth import wants_json
from web.i18n import _

log = logging.getLogger(__name__)

_STATUS = [(NotFound, 404), (AudioGone, 410), (Throttled, 429), (AuthError, 401), (BadAudio, 400),
           (IntegrityError, 500), (KeyError_, 500), (ModelError, 503), (AuditUnavailable, 503)]

_HTTP_MESSAGES = {
    400: ("Felaktig begäran", "Begäran kunde inte behandlas. Gå tillbaka och försök igen."),
    401: ("Inloggning krävs", "Logga in för att fortsätta."),
    403: ("Åtkomst nekad", "Begäran godtogs inte. Ladda om sidan och försök igen."),
    404: ("Sidan finns inte", "Sidan eller inspelningen finns inte, eller så saknar du behörighet."),
    405: ("Otillåten metod", "Den här sidan kan inte användas på det sättet."),
    410: ("Ljudet är raderat", "Ljudet är raderat enligt kontorets regler; utskriften finns kvar."),
    413: ("Filen är för stor", "Filen är för stor, högst %(mb)s MB."),
    429: ("För många försök", "För många försök. Vänta en stund och försök igen."),
    500: ("Något gick fel", "Något gick fel i Samtalsstöd. Försök igen om en stund. "
                            "Kvarstår felet, kontakta IT-supporten."),
}


def _respond(status: int, title: str, message: str):
    if wants_json():
        return jsonify(error=message), status
    return render_template("error.html", status=status, title=title, message=message), status


def _appliance_error(exc: ApplianceError):
    status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)
    if status >= 500:
        log.error("appliance error %s on %s", type(exc).__name__, request.endpoint)
    title = _HTTP_MESSAGES.get(status, _HTTP_MESSAGES[400])[0]
    return _respond(status, _(title), str(exc))


def too_large_message() -> str:
    from web import appliance

    return _(_HTTP_MESSAGES[413][1], mb=appliance().cfg.web.max_upload_mb)


def too_large(_exc: RequestEntityTooLarge):
    """An upload over `web.max_upload_mb` (the upload page answers with its own form: web/recordings.py)."""
    return _respond(413, _(_HTTP_MESSAGES[413][0]), too_large_message())


def _csrf_error(_exc: CSRFError):
    return _respond(400, _("Formuläret har gått ut"),
                    _("Formuläret har gått ut eller kom inte från Samtalsstöd. "
                      "Ladda om sidan och försök igen."))


def _http_error(exc: HTTPException):
    status = exc.code or 500
    title, message = _HTTP_MESSAGES.get(status, (exc.name, _HTTP_MESSAGES[400][1]))
    response = make_response(_respond(status, _(title), _(message)))
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:  # RFC 9110: a 405 says what is allowed
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response


def _unexpected(exc: Exception):
    log.exception("unhandled %s on %s", type(exc).__name__, request.endpoint)
    title, message = _HTTP_MESSAGES[500]
    return _respond(500, _(title), _(message))


def init_app(app: Flask) -> None:
    app.register_error_handler(ApplianceError, _appliance_error)
    app.register_error_handler(RequestEntityTooLarge, too_large)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def change_and_flash(change: Callable[[], object], success: str) -> bool:
    """Run a user's change from a form: NotFound propagates (a 404, no existence leak), any other domain
    error becomes an error message on the page they return to, success a confirmation."""
    try:
        change()
    except NotFound:
        raise
    except ApplianceError as exc:
        flash(str(exc), "error")
        return False
    flash(success, "info")
    return True
