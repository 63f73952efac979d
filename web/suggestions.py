"""The Förslag tab (correction suggestions for a recording) and the office's lexicon page.

`/recordings/<rec_id>/suggestions`: viewers see the suggestions read-only; editors accept (this occurrence
or all of that word) or dismiss. `?panel=1` sends the list alone for the recording page's Förslag tab
(static/workspace.js), and its forms come back there. Everything goes through appliance.transcripts.suggestions,
which authorises with access.require_recording (NotFound → 404) and writes accepted corrections as edits with history.

`/lexicon`: the shipped terms and the office's own; caseworkers and managers (content roles) add and remove
office terms; everyone else gets 404, as for any page they may not see.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from appliance.errors import ApplianceError, NotFound
from appliance.recordings import recordings
from appliance.transcripts import lexicon, suggestions
from web import db
from web.auth import login_required
from web.errors import change_and_flash
from web.i18n import _, ngettext

bp = Blueprint("suggestions", __name__)


@bp.get("/recordings/<rec_id>/suggestions")
@login_required
def index(rec_id: str):
    conn = db()
    items = suggestions.list_for_user(conn, g.user, rec_id)  # NotFound → 404 (audited)
    rec = recordings.get_recording(conn, g.user, rec_id)
    page = "_panel.html" if request.args.get("panel") == "1" else "suggestions.html"
    return render_template(page, panel_template="_suggestions_list.html", panel=page == "_panel.html", rec=rec,
                           items=items, threshold=suggestions.LOW_PROBABILITY)


def _back(rec_id: str):
    """Back to the page, or to the recording page's Förslag tab that sent the form (it asks for ?panel=1)."""
    panel = "1" if request.form.get("panel") == "1" else None
    return redirect(url_for("suggestions.index", rec_id=rec_id, panel=panel), code=303)


@bp.post("/recordings/<rec_id>/suggestions/accept")
@login_required
def accept(rec_id: str):
    try:
        n = suggestions.accept(db(), g.user, rec_id, request.form.get("sid", ""),
                               all_occurrences=request.form.get("scope") == "all",
                               replacement=request.form.get("replacement") or None)
    except NotFound:
        raise
    except ApplianceError as exc:
        flash(str(exc), "error")
    else:
        flash(ngettext("Rättat på %(num)d ställe.", "Rättat på %(num)d ställen.", n), "info")
    return _back(rec_id)


@bp.post("/recordings/<rec_id>/suggestions/dismiss")
@login_required
def dismiss(rec_id: str):
    everywhere = request.form.get("scope") == "all"
    change_and_flash(lambda: suggestions.dismiss(db(), g.user, rec_id, request.form.get("sid", ""),
                                                 all_occurrences=everywhere),
                     _("Förslaget är avfärdat."))
    return _back(rec_id)


def _content_users_only() -> None:
    if not g.user.can_read_content:
        abort(404)


@bp.get("/lexicon")
@login_required
def lexicon_page():
    _content_users_only()
    conn = db()
    return render_template("lexicon.html", office=lexicon.office_terms(conn), shipped=lexicon.shipped_terms(),
                           max_term=lexicon.MAX_TERM)


@bp.post("/lexicon/add")
@login_required
def lexicon_add():
    _content_users_only()
    change_and_flash(lambda: lexicon.add_term(db(), g.user, request.form.get("term", "")),
                     _("Termen är tillagd i kontorets ordlista."))
    return redirect(url_for("suggestions.lexicon_page"), code=303)


@bp.post("/lexicon/<int:term_id>/remove")
@login_required
def lexicon_remove(term_id: int):
    _content_users_only()
    change_and_flash(lambda: lexicon.remove_term(db(), g.user, term_id), _("Termen är borttagen."))
    return redirect(url_for("suggestions.lexicon_page"), code=303)

