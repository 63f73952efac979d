"""Security headers, the per-request CSP nonce, in-memory uploads, a Fetch-Metadata check and bounded ids."""

from __future__ import annotations

import io
import secrets
from typing import IO

from flask import Flask, Request, Response, abort, g, request
from werkzeug.routing import IntegerConverter

from appliance.ids import NO_ID, parse_id

# Endpoints whose responses may be cached by the browser (no content, no personal data).
_CACHEABLE_ENDPOINTS = frozenset({"static"})
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class InMemoryRequest(Request):
    """Uploaded files are parsed into memory, never spooled to a temp file.

    Werkzeug's default stream factory writes uploads larger than 500 KB to a temporary file; plaintext
    audio must never touch disk, so every file part goes into a BytesIO. MAX_CONTENT_LENGTH bounds it.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` in every route: an id past SQLite's 64-bit range becomes NO_ID, an id no row has.

    So /folders/99999999999999999999999 is a 404 like any unknown id, and the access check audits it like
    one, instead of an OverflowError (a 500) when the id is bound to a query.
    """

    def to_python(self, value: str) -> int:
        n = parse_id(value)
        return NO_ID if n is None else n


def csp_nonce() -> str:
    """This request's CSP nonce (created on first use, so error pages get one too)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def content_security_policy(nonce: str) -> str:
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ])


def _reject_cross_site_writes() -> None:
    # Fetch Metadata: browsers say where a request came from. A form posted from another site is refused
    # even before the CSRF token check (Referer is never sent: Referrer-Policy is no-referrer).
    site = request.headers.get("Sec-Fetch-Site")
    if request.method in _UNSAFE_METHODS and site in ("cross-site", "same-site"):
        abort(403)


def _security_headers(response: Response) -> Response:
    h = response.headers
    h["Content-Security-Policy"] = content_security_policy(csp_nonce())
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    h["Permissions-Policy"] = "microphone=(self), camera=(), geolocation=(), payment=(), usb=()"
    h["X-Frame-Options"] = "DENY"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    if request.endpoint not in _CACHEABLE_ENDPOINTS:
        h["Cache-Control"] = "no-store"
        h.pop("Expires", None)
        h.pop("Last-Modified", None)
    return response


def init_app(app: Flask) -> None:
    app.request_class = InMemoryRequest
    app.url_map.converters["int"] = BoundedIntConverter  # before any blueprint adds its rules
    app.before_request(_reject_cross_site_writes)
    app.after_request(_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
