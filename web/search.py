"""The search page: `/search?q=` over the transcripts and titles the user may read (appliance.transcripts.search)."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request

from appliance.transcripts import search as core_search
from web import db
from web.auth import login_required
from web.i18n import _

bp = Blueprint("search", __name__)


@bp.get("/search")
@login_required
def index():
    raw = request.args.get("q", "")
    results, error = None, None
    if raw.strip():
        if not g.user.can_read_content:
            error = _("Ditt konto har ingen behörighet att söka i utskrifter.")
        else:
            try:
                results = core_search.search(db(), g.user, raw)
            except core_search.BadQuery as exc:
                error = str(exc)
    shown = raw if len(raw) <= core_search.MAX_QUERY * 2 else raw[: core_search.MAX_QUERY * 2]
    return render_template("search.html", q=shown, results=results, error=error), 400 if error else 200
