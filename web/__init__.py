"""The web unit: Flask app factory. Server-rendered Swedish UI over the appliance core.

`web` talks only to `appliance` (the core) and libraries; it never loads a model.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, g
from flask_wtf.csrf import CSRFProtect

from appliance.config import load_config
from appliance.platform.context import Appliance, open_appliance
from appliance.platform.db import Connection, transaction

log = logging.getLogger(__name__)

csrf = CSRFProtect()

SECRET_NAME = "flask_secret_key"  # noqa: S105 - a row name, not a secret
STATE_COOKIE = "__Host-state"  # Flask's signed cookie: CSRF token, flash messages, pre-auth step
EXT_KEY = "samtalsstod.appliance"


def appliance() -> Appliance:
    return current_app.extensions[EXT_KEY]


def db() -> Connection:
    """This request's database connection (opened on first use, closed at teardown)."""
    conn = g.get("db_conn")
    if conn is None:
        conn = g.db_conn = appliance().connect()
    return conn


def _close_db(_exc: BaseException | None) -> None:
    conn = g.pop("db_conn", None)
    if conn is not None:
        conn.close()


def _load_secret_key(app_ctx: Appliance) -> bytes:
    """The Flask signing key: random, created once, kept only in the encrypted database."""
    conn = app_ctx.connect()
    try:
        with transaction(conn):
            conn.execute("INSERT OR IGNORE INTO app_secrets (name, value) VALUES (?, ?)",
                         (SECRET_NAME, secrets.token_bytes(32)))
            row = conn.execute("SELECT value FROM app_secrets WHERE name = ?", (SECRET_NAME,)).fetchone()
        return bytes(row["value"])
    finally:
        conn.close()


def create_app(app_ctx: Appliance | None = None, config_overrides: dict[str, Any] | None = None) -> Flask:
    if app_ctx is None:
        app_ctx = open_appliance(load_config())
    web_cfg = app_ctx.cfg.web

    app = Flask(__name__)
    app.extensions[EXT_KEY] = app_ctx
    app.config.update(
        SECRET_KEY=_load_secret_key(app_ctx),
        SESSION_COOKIE_NAME=STATE_COOKIE,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=web_cfg.session_absolute_hours),
        # Room for the multipart envelope and the title around the largest accepted file.
        MAX_CONTENT_LENGTH=web_cfg.max_upload_mb * 1024 * 1024 + 64 * 1024,
        # Referer is never sent (Referrer-Policy: no-referrer), so flask-wtf's referrer check cannot run;
        # the token, SameSite cookies and the Sec-Fetch-Site check protect the forms instead.
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_TIME_LIMIT=web_cfg.session_absolute_hours * 3600,
        PREFERRED_URL_SCHEME="https",
        JSON_AS_ASCII=False,
    )
    if config_overrides:
        app.config.update(config_overrides)
    app.json.ensure_ascii = False

    from web import (
        admin,
        api,
        assistant_chat,
        assistant_summaries,
        auth,
        before_deletion,
        case_drafts,
        desk,
        errors,
        folders,
        i18n,
        live,
        pii,
        recordings,
        review,
        search,
        security,
        speakers,
        subject_requests,
        suggestions,
        views,
        workspace,
    )

    security.init_app(app)
    auth.init_app(app)  # loads the signed-in user before CSRF runs, so error pages know who is there
    csrf.init_app(app)
    errors.init_app(app)
    views.init_app(app)
    workspace.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(recordings.bp)
    app.register_blueprint(folders.bp)
    app.register_blueprint(review.bp)
    subject_requests.init_app(app)  # data-subject requests; owners' notices of an erasure
    app.register_blueprint(before_deletion.bp)  # documentation before deletion (managers, responsible)
    app.register_blueprint(search.bp)
    app.register_blueprint(suggestions.bp)
    app.register_blueprint(speakers.bp)
    app.register_blueprint(pii.bp)
    assistant_chat.init_app(app)  # chat and topics on the recording page
    case_drafts.init_app(app)  # case drafts across several recordings
    assistant_summaries.init_app(app)  # summaries and the review gate; admin templates
    app.register_blueprint(desk.bp)
    app.register_blueprint(live.bp)  # new recording, leaflet, browser dictaphone, live transcript
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    app.teardown_appcontext(_close_db)
    app.jinja_env.globals.update(_=i18n._, ngettext=i18n.ngettext)
    return app
