"""The assistant on a recording's page: chat (questions, rewrites, suggested questions) and the topic table of
contents.

`POST /recordings/<rec_id>/chat/warm` (sent by static/chat.js when the question field first gets focus) has the
model server read the transcript ahead of the first question. `POST /recordings/<rec_id>/chat` asks a question (or
rewrites an earlier answer). With `Accept: text/event-stream` (static/chat.js) the answer streams as server-sent
events (web/sse.py): `text` pieces of the statement being written, each `statement` with its citations and grounding
check when complete, then `done` or `error` (the message to show; the page offers a retry). A plain form post waits
for the whole answer and returns to the page. Either way the question and answer are stored with the recording.

Everything goes through appliance.assistant.chat / topics, which authorise with access.require_recording (audited;
NotFound → 404). The model is reached over the OpenAI protocol (appliance.assistant.llm_client); the web never loads
a model.
"""

from __future__ import annotations

import threading
from contextlib import closing

from flask import Blueprint, Flask, Response, flash, g, jsonify, redirect, request, url_for

from appliance.assistant import chat, topics
from appliance.assistant.llm_client import LlmClient, LlmError
from appliance.errors import ApplianceError, NotFound
from web import appliance, db, sse
from web.auth import login_required, wants_json
from web.i18n import _

bp = Blueprint("chat", __name__)


def _client() -> LlmClient:
    return LlmClient(appliance().cfg.llm)


def _streaming() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json", "text/event-stream"]) \
        == "text/event-stream"


def _reveal() -> bool:
    return request.form.get("reveal") == "1"


def _back(rec_id: str, anchor: str = "chat"):
    return redirect(url_for("rec.recording", rec_id=rec_id, _anchor=anchor), code=303)


def _refused(rec_id: str, message: str, anchor: str = "chat"):
    if _streaming() or wants_json():
        return jsonify(error=message), 400
    flash(message, "error")
    return _back(rec_id, anchor)


@bp.post("/recordings/<rec_id>/chat")
@login_required
def ask(rec_id: str):
    conn, client = db(), _client()
    form = request.form
    try:
        req = chat.prepare(conn, g.user, rec_id, prompt=form.get("question"), rewrite=form.get("rewrite"),
                           source_id=form.get("source_id"), reveal=_reveal(), n_ctx=client.cfg.n_ctx)
    except NotFound:
        raise
    except ApplianceError as exc:  # empty or too long, no transcript, a vanished answer: nothing stored
        return _refused(rec_id, str(exc))
    if not _streaming():
        error = None
        try:
            for _ in chat.stream_answer(client, req):
                pass
        except LlmError as exc:
            error = str(exc)
        chat.finish(conn, req, error)
        if error:
            flash(error, "error")
        return _back(rec_id, f"chat-{req.message_id}")

    app_ctx = appliance()

    def work(emit, stop: threading.Event) -> dict:
        emit({"type": "start", "id": req.message_id, "kind": req.kind})
        with closing(app_ctx.connect()) as c:  # for showing finished statements with the real names
            for kind, value in chat.stream_answer(client, req):
                if stop.is_set():
                    break
                if kind == "text":
                    emit({"type": "text", "text": value})
                else:
                    emit({"type": "statement", **chat.for_display(c, req.recording_id, value).as_dict()})
        return {"id": req.message_id, "statements": len(req.statements),
                "flagged": sum(1 for s in req.statements if s.flagged)}

    def finish(error: str | None, completed: bool) -> None:
        c = app_ctx.connect()
        try:
            chat.finish(c, req, error if completed else chat.MSG_INTERRUPTED)
        finally:
            c.close()

    return Response(sse.run(work, finish), mimetype="text/event-stream", headers=sse.HEADERS)


@bp.post("/recordings/<rec_id>/chat/warm")
@login_required
def warm(rec_id: str):
    """The question field got focus: the model server reads the transcript now, so the first answer starts in
    seconds (static/chat.js sends this once per page; the answer is only whether it worked)."""
    return jsonify(warmed=chat.warm(db(), _client(), g.user, rec_id))  # NotFound → 404


@bp.post("/recordings/<rec_id>/chat/suggest")
@login_required
def suggest(rec_id: str):
    try:
        questions = chat.suggest_questions(db(), _client(), g.user, rec_id, reveal=_reveal())
    except NotFound:
        raise
    except ApplianceError as exc:  # LlmUnavailable included: the page shows it and the button retries
        return _refused(rec_id, str(exc), "chat")
    if wants_json():
        return jsonify(questions=questions)
    flash(_("Frågeförslagen är klara."), "info")
    return _back(rec_id)


@bp.post("/recordings/<rec_id>/chat/clear")
@login_required
def clear(rec_id: str):
    chat.clear_history(db(), g.user, rec_id)  # NotFound → 404
    flash(_("Frågorna och svaren är borttagna."), "info")
    return _back(rec_id)


@bp.post("/recordings/<rec_id>/topics")
@login_required
def make_topics(rec_id: str):
    """Generate the topic table of contents; streams progress to static/chat.js, or waits for a plain post."""
    conn, client = db(), _client()
    try:
        job = topics.prepare(conn, g.user, rec_id, reveal=_reveal(), n_ctx=client.cfg.n_ctx)
    except NotFound:
        raise
    except ApplianceError as exc:
        return _refused(rec_id, str(exc), "topics")
    if not _streaming():
        try:
            topics.generate(conn, client, job)
        except ApplianceError as exc:
            flash(str(exc), "error")
        else:
            flash(_("Innehållsförteckningen är klar."), "info")
        return _back(rec_id, "topics")

    app_ctx = appliance()

    def work(emit, stop: threading.Event) -> dict:
        c = app_ctx.connect()
        try:
            found = topics.generate(c, client, job, progress=lambda done, total: emit(
                {"type": "progress", "done": done, "total": total}), stop=stop)
        finally:
            c.close()
        return {"topics": len(found)}

    return Response(sse.run(work, lambda _error, _completed: None), mimetype="text/event-stream",
                    headers=sse.HEADERS)


def assistant_chat(rec) -> dict:
    """The chat panel of the recording page (which has authorised `rec` already)."""
    conn = db()
    return {"messages": chat.history_for(conn, rec.id), "suggestions": chat.suggestions_for(conn, rec.id),
            "rewrites": chat.REWRITES}


def assistant_topics(rec) -> list[topics.Topic]:
    """The topic table of contents of the recording page (which has authorised `rec` already)."""
    return topics.for_recording(db(), rec.id)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals.update(assistant_chat=assistant_chat, assistant_topics=assistant_topics)
