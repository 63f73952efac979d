"""Admin API: `Authorization: Bearer <token>` on /api/admin/* only, for monitoring. No content, ever.

Tokens are created by admins (`/admin/tokens`) and have admin scope only; the session cookie is not
accepted here and a bearer token is not accepted anywhere else (content routes only know the session
cookie, so a token there is ignored and the request is unauthenticated). Every use is audited.
"""

from __future__ import annotations

import shutil

from flask import Blueprint, g, jsonify, request

from appliance.platform import audit, retention
from appliance.platform import jobs as job_queue
from appliance.users import accounts, api_tokens
from web import appliance, csrf, db

bp = Blueprint("api", __name__, url_prefix="/api/admin")
csrf.exempt(bp)  # no cookies are honoured here, so there is nothing to forge


def _unauthorized():
    response = jsonify(error="Giltig API-nyckel krävs (Authorization: Bearer).")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="samtalsstod-admin"'
    return response


@bp.before_request
def _authenticate():
    g.user = None  # a session cookie grants nothing here
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized()
    conn = db()
    found = api_tokens.authenticate(conn, token.strip())
    target = f"api:{(request.endpoint or 'unknown').removeprefix('api.')}"
    if found is None:
        audit.record(conn, "token:unknown", "api.request", target, result="denied")
        return _unauthorized()
    audit.record(conn, found.actor, "api.request", target, role="admin")  # fail closed: no record, no answer
    g.api_token = found
    return None


@bp.get("/health")
def health():
    conn = db()
    cfg = appliance().cfg
    counts = job_queue.counts_by_state(conn)
    jobs = {state: counts.get(state, 0) for state in ("queued", "running", "done", "failed")}
    usage = shutil.disk_usage(cfg.paths.state_dir)
    return jsonify(
        jobs=jobs,
        recordings=conn.execute("SELECT count(*) FROM recordings").fetchone()[0],
        last_purge=retention.last_successful_purge(conn),
        purge_overdue=retention.purge_overdue(cfg, conn),
        disk={"free_bytes": usage.free, "total_bytes": usage.total},
    )


@bp.get("/users")
def users():
    out = [{"id": u.id, "roles": sorted(u.roles),
            "status": "disabled" if u.disabled else ("invited" if u.invited else "active"),
            "totp_enrolled": u.totp_enrolled, "guidelines_version": u.guidelines_version}
           for u in accounts.list_users(db())]
    return jsonify(users=out)
