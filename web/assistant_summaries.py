"""Summaries on a recording's page and the office's templates (admin).

`POST /recordings/<rec_id>/summaries` queues a summary under a template (the assistant worker writes it);
the page polls `GET /recordings/<rec_id>/summaries/status` (static/drafts.js: progress, then a reload when
it is done or failed) and shows each summary with its citations as links that jump the player (the
`a[data-seek]` handler in static/chat.js) and the grounding checker's flags. A failure (model down or too
slow) shows its message and a retry button. The review gate (utkast → granskad → överförd) and the copy
button work on the same page; only reviewed text can be copied.

Admins add and remove the office's own templates under /admin/templates (404 for everyone else).
Everything goes through appliance.assistant.summaries / templates (access.require_recording: audited, 404).
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, abort, flash, g, jsonify, redirect, render_template, request, url_for

from appliance.assistant import summaries, templates
from appliance.errors import ApplianceError
from web import appliance, db, exports
from web.auth import login_required
from web.drafts_view import Cite, DraftView, draft_view
from web.errors import change_and_flash
from web.i18n import _
from web.recordings import shred_after_transfer
from web.views import clock_time

bp = Blueprint("summaries", __name__)


def _back(rec_id: str, anchor: str = "summaries"):
    return redirect(url_for("rec.recording", rec_id=rec_id, _anchor=anchor), code=303)


@bp.post("/recordings/<rec_id>/summaries")
@login_required
def create(rec_id: str):
    conn = db()
    made: list[int] = []
    ok = change_and_flash(
        lambda: made.append(summaries.request_summary(conn, g.user, rec_id, request.form.get("template", ""),
                                                      reveal=request.form.get("reveal") == "1")),
        _("Sammanfattningen skrivs. Den visas här när den är klar."))
    return _back(rec_id, f"summary-{made[0]}" if ok and made else "summaries")


@bp.get("/recordings/<rec_id>/summaries/status")
@login_required
def status(rec_id: str):
    """Job state and progress of the recording's summaries (no content): what the page polls."""
    return jsonify(drafts=[s.status_json() for s in summaries.list_summaries(db(), g.user, rec_id)])


@bp.post("/recordings/<rec_id>/summaries/review")
@login_required
def review(rec_id: str):
    state = request.form.get("state", "")
    sid = request.form.get("summary_id", "")
    done = {summaries.UTKAST: _("Sammanfattningen är ett utkast igen."),
            summaries.GRANSKAD: _("Sammanfattningen är markerad som granskad. Nu kan du kopiera texten."),
            summaries.OVERFORD: _("Sammanfattningen är markerad som överförd till verksamhetssystemet.")}
    if change_and_flash(lambda: summaries.set_review_state(db(), g.user, rec_id, sid, state),
                        done.get(state, "")) and state == summaries.OVERFORD:
        shred_after_transfer([rec_id])  # with audio_shred = transferred the audio goes now
    return _back(rec_id, f"summary-{sid}" if sid.isdigit() else "summaries")


@bp.get("/recordings/<rec_id>/summaries/<int:summary_id>/download.<any(txt, docx):fmt>")
@login_required
def download(rec_id: str, summary_id: int, fmt: str):
    """A reviewed summary as a Word or text file (web/exports.py: in memory, never stored); a draft not yet
    reviewed cannot leave, as with "Kopiera"."""
    s = summaries.get_summary(db(), g.user, rec_id, summary_id)  # NotFound → 404 (audited read)
    if s.status != "done" or not s.content or s.review_state == summaries.UTKAST:
        flash(_("Granska sammanfattningen innan du laddar ner den."), "error")
        return _back(rec_id, f"summary-{summary_id}")
    body = exports.draft_docx(s.content) if fmt == "docx" else exports.draft_txt(s.content)
    return exports.attachment(body, fmt, f"sammanfattning-{re.sub(r'[^a-z0-9-]', '', s.template_key)}-{s.id}")


@bp.post("/recordings/<rec_id>/summaries/edit")
@login_required
def edit(rec_id: str):
    """Correct (or, with empty text, remove) one statement of a draft, or accept a flagged one as it stands."""
    f = request.form
    sid = f.get("summary_id", "")
    if f.get("action") == "accept":
        change_and_flash(lambda: summaries.accept_statement(db(), g.user, rec_id, sid, f.get("section", ""),
                                                            f.get("statement", "")),
                         _("Påståendet är godtaget och kopieras med texten."))
        return _back(rec_id, f"summary-{sid}" if sid.isdigit() else "summaries")
    removed = not (f.get("text") or "").strip()
    change_and_flash(lambda: summaries.edit_statement(db(), g.user, rec_id, sid, f.get("section", ""),
                                                      f.get("statement", ""), f.get("text", "")),
                     _("Påståendet är borttaget.") if removed else _("Påståendet är ändrat och kontrollerat igen."))
    return _back(rec_id, f"summary-{sid}" if sid.isdigit() else "summaries")


@bp.post("/recordings/<rec_id>/summaries/retry")
@login_required
def retry(rec_id: str):
    sid = request.form.get("summary_id", "")
    change_and_flash(lambda: summaries.retry(db(), g.user, rec_id, sid), _("Sammanfattningen görs om."))
    return _back(rec_id, f"summary-{sid}" if sid.isdigit() else "summaries")


# --- the recording page's panel --------------------------------------------------------------------

def _view(rec, summary: summaries.Summary, by_number: dict) -> DraftView:
    """A summary for the page: a reviewed draft whose citations are lines of this recording's transcript."""
    def resolve(numbers) -> list[Cite]:
        return [Cite(str(n), f"#seg-{by_number[n].idx}", by_number[n].start,
                     _("Rad %(n)d vid %(t)s", n=n, t=clock_time(by_number[n].start)))
                if n in by_number else Cite(str(n), None, None, _("Rad %(n)d finns inte", n=n))
                for n in numbers]

    return draft_view(summary, "summary", summary.content, resolve,
                      review_url=url_for("summaries.review", rec_id=rec.id),
                      retry_url=url_for("summaries.retry", rec_id=rec.id),
                      edit_url=url_for("summaries.edit", rec_id=rec.id),
                      accept_url=url_for("summaries.edit", rec_id=rec.id), can_edit=rec.can_edit,
                      fields={"summary_id": summary.id}, text_id=f"summary-text-{summary.id}", level=4,
                      downloads={fmt: url_for("summaries.download", rec_id=rec.id, summary_id=summary.id, fmt=fmt)
                                 for fmt in exports.FORMATS})


def assistant_summaries(rec, segments) -> dict:
    """The summaries panel of the recording page (which has authorised `rec` already)."""
    conn = db()
    by_number = {s.idx + 1: s for s in segments}
    items = summaries.list_summaries(conn, g.user, rec.id)
    return {"items": [_view(rec, s, by_number) for s in items],
            "templates": templates.available(conn, appliance().cfg), "review_states": summaries.REVIEW_STATES,
            "pending": any(s.status in ("queued", "running") for s in items)}


def summary_counts(recs) -> dict[str, dict[str, int]]:
    """Finished summaries per review state for the recordings a list page shows (already authorised)."""
    return summaries.review_counts(db(), [r.id for r in recs])


# --- admin: the office's templates ----------------------------------------------------------------

def _admin() -> None:
    if g.get("user") is None or "admin" not in g.user.roles:
        abort(404)


def _templates_page(*, status: int = 200, error: str | None = None, form: dict | None = None):
    cfg = appliance().cfg
    conn = db()
    return render_template("admin_templates.html", builtin=list(templates.BUILTIN.values()),
                           office=templates.office_templates(conn), files=templates.file_templates(cfg),
                           templates_dir=cfg.assistant.templates_dir, error=error, form=form or {},
                           max_headings=templates.MAX_HEADINGS), status


@bp.get("/admin/templates")
@login_required
def admin_templates():
    _admin()
    return _templates_page()


@bp.post("/admin/templates")
@login_required
def admin_add_template():
    _admin()
    form = {k: request.form.get(k, "") for k in ("name", "headings", "instructions")}
    try:
        templates.add_office_template(db(), g.user, **form)
    except ApplianceError as exc:
        return _templates_page(status=400, error=str(exc), form=form)
    flash(_("Mallen är sparad. Handläggarna kan välja den nu."), "info")
    return redirect(url_for("summaries.admin_templates"), code=303)


@bp.post("/admin/templates/<int:template_id>/delete")
@login_required
def admin_delete_template(template_id: int):
    _admin()
    templates.delete_office_template(db(), g.user, template_id)  # NotFound → 404
    flash(_("Mallen är borttagen. Sammanfattningar som redan skrivits med den finns kvar."), "info")
    return redirect(url_for("summaries.admin_templates"), code=303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals.update(assistant_summaries=assistant_summaries, summary_counts=summary_counts)

