"""Documentation before deletion (`/before-deletion`), for managers and the responsible person: the recordings
in their teams that the next purge deletes within 24 hours without a transferred draft, counts per caseworker
and the reminder history — ids, owners and times only (appliance/compliance/before_deletion.py, which decides
who sees what and audits the view; 404 for everyone else)."""

from __future__ import annotations

from flask import Blueprint, g, render_template

from appliance.compliance import before_deletion
from web import appliance, db
from web.auth import login_required

bp = Blueprint("before_deletion", __name__)


@bp.get("/before-deletion")
@login_required
def index():
    page = before_deletion.at_risk(appliance().cfg, db(), g.user)  # NotFound → 404
    return render_template("before_deletion.html", p=page, window=before_deletion.WINDOW_HOURS)
