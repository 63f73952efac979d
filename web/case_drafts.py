"""Case drafts across conversations (appliance/assistant/case_drafts.py): choose several recordings of one
case plus pasted journal notes, get one BBIC-structured draft whose statements cite conversation and line.

The draft is written by the assistant unit (a `case_draft` job); the page polls `/drafts/<id>/status` (no
content) and reloads when it is done. Review gate as for summaries (utkast → granskad → överförd), with a
"copy to clipboard" of the plain text once reviewed. Only the creator sees a draft, and only while she may
read every source (checked and audited per source in the core; 404 otherwise).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for

from appliance.assistant import case_drafts, drafts
from appliance.errors import ApplianceError, NotFound
from web import db, exports
from web.auth import login_required
from web.drafts_view import Cite, draft_view
from web.errors import change_and_flash
from web.i18n import _
from web.recordings import shred_after_transfer

bp = Blueprint("drafts", __name__)


def _content_users_only() -> None:
    if not g.user.can_read_content:
        abort(404)


@bp.get("/drafts")
@login_required
def index():
    _content_users_only()
    return render_template("drafts.html", drafts=case_drafts.list_for_user(db(), g.user))


@bp.route("/drafts/new", methods=["GET", "POST"])
@login_required
def new():
    _content_users_only()
    conn = db()
    form = request.form
    error = None
    if request.method == "POST":
        try:
            draft_id = case_drafts.create(conn, g.user, title=form.get("title"),
                                          recording_ids=form.getlist("recording_id"), notes=form.get("notes"),
                                          reveal=form.get("reveal") == "1")
        except NotFound:
            raise
        except ApplianceError as exc:  # nothing chosen, too many, notes too long, not transcribed: nothing stored
            error = str(exc)
        else:
            return redirect(url_for("drafts.draft", draft_id=draft_id), code=303)
    return render_template("draft_new.html", candidates=case_drafts.candidates(conn, g.user), error=error,
                           chosen=set(form.getlist("recording_id")), title=form.get("title", ""),
                           notes=form.get("notes", ""), max_notes=case_drafts.MAX_NOTES,
                           max_sources=case_drafts.MAX_SOURCES), 400 if error else 200


@bp.get("/drafts/<draft_id>")
@login_required
def draft(draft_id: str):
    conn = db()
    d = case_drafts.get(conn, g.user, draft_id)  # NotFound → 404 (audited per source)
    v = draft_view(d, "case_draft", case_drafts.readable(conn, d), lambda numbers: _cites(d, numbers),
                   review_url=url_for("drafts.review", draft_id=d.id), retry_url=url_for("drafts.retry", draft_id=d.id),
                   accept_url=url_for("drafts.accept", draft_id=d.id),
                   text_id="draft-text",
                   downloads={fmt: url_for("drafts.download", draft_id=d.id, fmt=fmt) for fmt in exports.FORMATS},
                   help=_("Källorna anges som samtal och rad: A12 är rad 12 i samtal A (klicka för att lyssna), J2 är "
                          "stycke 2 i journalanteckningarna."))
    return render_template("draft.html", d=d, v=v)


def _cites(d: case_drafts.CaseDraft, numbers: list[int]) -> list[Cite]:
    """Citations as conversation + line, linking to that line of its recording (the notes have no page)."""
    return [Cite(c.text, url_for("rec.recording", rec_id=c.recording_id, t=f"{c.start:.2f}", _anchor=f"seg-{c.idx}"),
                 None, _("Samtal %(l)s, rad %(n)d", l=c.label, n=c.number))
            if c.recording_id else Cite(c.text, None, None, _("Journalanteckning, stycke %(n)d", n=c.number))
            for c in d.cites(numbers)]


@bp.get("/drafts/<draft_id>/download.<any(txt, docx):fmt>")
@login_required
def download(draft_id: str, fmt: str):
    """The reviewed draft as a Word or text file (web/exports.py: in memory, never stored), as the page shows it
    (real names back in place of the placeholders); a draft not yet reviewed cannot leave, as with "Kopiera"."""
    conn = db()
    d = case_drafts.get(conn, g.user, draft_id)  # NotFound → 404 (audited per source)
    if d.status != "done" or not d.content or d.review_state == drafts.UTKAST:
        flash(_("Granska utkastet innan du laddar ner det."), "error")
        return _back(draft_id)
    content = case_drafts.readable(conn, d)
    body = exports.draft_docx(content) if fmt == "docx" else exports.draft_txt(content)
    return exports.attachment(body, fmt, f"utkast-{d.id}")


@bp.get("/drafts/<draft_id>/status")
@login_required
def status(draft_id: str):
    return jsonify(drafts=[case_drafts.get(db(), g.user, draft_id).status_json()])


def _back(draft_id: str):
    return redirect(url_for("drafts.draft", draft_id=draft_id), code=303)


@bp.post("/drafts/<draft_id>/review")
@login_required
def review(draft_id: str):
    state = request.form.get("state", "")
    changed: list = []
    if change_and_flash(lambda: changed.append(case_drafts.set_review_state(db(), g.user, draft_id, state)),
                        _("Granskningsläget är ändrat.")) and state == drafts.OVERFORD:
        shred_after_transfer([s.recording_id for s in changed[0].sources])  # audio_shred = transferred
    return _back(draft_id)


@bp.post("/drafts/<draft_id>/accept")
@login_required
def accept(draft_id: str):
    """Accept a statement the checker flagged as it stands: it is copied with the rest from now on."""
    f = request.form
    change_and_flash(lambda: case_drafts.accept_statement(db(), g.user, draft_id, f.get("section", ""),
                                                          f.get("statement", "")),
                     _("Påståendet är godtaget och kopieras med texten."))
    return _back(draft_id)


@bp.post("/drafts/<draft_id>/retry")
@login_required
def retry(draft_id: str):
    change_and_flash(lambda: case_drafts.retry(db(), g.user, draft_id), _("Utkastet skrivs på nytt."))
    return _back(draft_id)


@bp.post("/drafts/<draft_id>/delete")
@login_required
def delete(draft_id: str):
    case_drafts.delete(db(), g.user, draft_id)  # NotFound → 404
    flash(_("Utkastet är borttaget."), "info")
    return redirect(url_for("drafts.index"), code=303)


def init_app(app) -> None:
    app.register_blueprint(bp)
