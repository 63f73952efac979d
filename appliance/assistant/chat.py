"""Chat about one recording: free questions with cited answers, rewrites of an answer, suggested questions.

An answer is grammar-constrained JSON, `{"statements": [{"text", "segments"}]}`, so every statement carries
the transcript segment numbers it rests on (the numbers are limited to those in the prompt); it streams to
the browser statement by statement (`statement_stream.StatementStream`) and is checked by the grounding
checker (`grounding.check`) when complete. A rewrite takes an earlier answer and an instruction and answers
with cited statements again: an own instruction as one request like a question; the preset "du" by rule
(`du_form`), the preset "enkelt" one statement per request behind a guard (`plain_language`), since the
embedded model given the whole answer copies it back. Both presets keep each statement's citations.

Everything is stored with the recording (`chat_messages`, `chat_suggestions`, migration 0014) and deleted
with it. Asking reads the transcript, so it is an audited content read (`recording.chat`, viewer rights:
a colleague with read access may ask too; the history shows who asked). Clearing the history needs editor
rights. The audit log gets ids, counts and whether personal data was revealed to the model, never text.

The transcript reaches the prompt only through `transcript.numbered_segments` (pseudonymized unless the
caseworker ticks "Visa personuppgifter för modellen i denna begäran" for that one request). A long transcript
does not fit a small context: the segments that share the most words with the question (and their
neighbours) are chosen until the prompt budget is used (`select_context`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from appliance import clock
from appliance.assistant import du_form, grounding, plain_language, prompts
from appliance.assistant.llm_client import LlmError
from appliance.assistant.statement_stream import StatementStream, StreamedStatement
from appliance.assistant.transcript import NumberedSegment, numbered_segments
from appliance.errors import ApplianceError
from appliance.ids import parse_id
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.ports import ChatModel
from appliance.transcripts import pseudonymize
from appliance.transcripts.search import stem
from appliance.users import access
from appliance.users.accounts import User

log = logging.getLogger(__name__)

MAX_PROMPT = 1000
MAX_STATEMENTS = 5
MAX_STATEMENT_CHARS = 300
MAX_CITES = 3  # a small model otherwise cites runs of lines ("[10, 11, 12, 13]")
ANSWER_TOKENS = 600
CHARS_PER_TOKEN = 2.5  # conservative for Swedish text in small models' tokenizers
PROMPT_OVERHEAD_TOKENS = 350  # instructions, the question, the chat template
MSG_EMPTY = "Skriv en fråga."
MSG_TOO_LONG = f"Frågan är för lång (högst {MAX_PROMPT} tecken)."
MSG_NO_TRANSCRIPT = "Inspelningen har ingen utskrift än, så det finns inget att fråga om."
MSG_NO_SOURCE = "Svaret som skulle skrivas om finns inte längre. Ladda om sidan."
MSG_INTERRUPTED = "Svaret avbröts innan det var klart. Försök igen."

# Rewrite prompts offered beside every answer (the Helsingborg pilot's examples first).
REWRITES: dict[str, tuple[str, str]] = {
    "du": ("Byt ut klientens namn till du",
           "Byt ut klientens namn till du. Texten ska vara riktad till klienten."),
    "enkelt": ("Enkelt språk (12-åring)",
               "Använd ett språk som inte är formellt och som kan läsas av en 12-åring."),
    "kortare": ("Kortare", "Gör texten kortare. Behåll bara det viktigaste."),
    "formellt": ("Formellt journalspråk", "Skriv om texten i sakligt och formellt journalspråk."),
}

# Task instructions, after the transcript (prompts.task_messages: the system message and the transcript block are
# the same for every request about a recording, so the model server reads the transcript once).
TASK_QUESTION = ("Svara på handläggarens fråga om samtalet, kort och bara utifrån transkriptet. Svara med ett "
                 "eller några påståenden; ange för varje påstående numret på raden där det sägs. Om transkriptet "
                 "inte besvarar frågan, säg det.")
QUESTION_HEAD = "Fråga:"  # the question's own words come after it: all before is the same for every question
TASK_REWRITE = ("Skriv om texten nedan enligt handläggarens instruktion. Behåll alla uppgifter i texten: ta inte "
                "bort någon och lägg inte till något nytt. Skriv ett påstående för varje mening och behåll numren på "
                "raderna som meningen bygger på.")
TASK_SUGGEST = ("Föreslå korta frågor som handläggaren kan ställa om det här samtalet för att få fram det "
                "viktigaste till dokumentationen. Varje fråga ska handla om något som faktiskt tas upp i samtalet.")

@dataclass(frozen=True)
class Citation:
    number: int
    idx: int | None     # segment index (player link); None when the number does not exist
    start: float | None


@dataclass(frozen=True)
class AnswerStatement:
    text: str
    citations: tuple[Citation, ...]
    status: str          # grounding status (ok, uncited, unknown_citation, unsupported)
    status_text: str

    @property
    def flagged(self) -> bool:
        return self.status != grounding.OK

    def as_dict(self) -> dict:
        return {"text": self.text, "status": self.status, "status_text": self.status_text, "flagged": self.flagged,
                "citations": [{"number": c.number, "idx": c.idx, "start": c.start} for c in self.citations]}


@dataclass(frozen=True)
class ChatMessage:
    id: int
    kind: str            # question or rewrite
    prompt: str
    statements: tuple[AnswerStatement, ...]
    state: str           # running, done, failed
    error: str | None
    revealed: bool
    asked_by: str
    created_at: float
    source_id: int | None = None

    @property
    def flagged(self) -> int:
        return sum(1 for s in self.statements if s.flagged)

    def plain_text(self) -> str:
        return "\n".join(s.text for s in self.statements)


@dataclass
class ChatRequest:
    """A question ready for the model: the stored row, the messages, and what citations may refer to."""

    message_id: int
    recording_id: str
    kind: str
    messages: list[dict]
    response_format: dict
    segments: dict[int, NumberedSegment]
    revealed: bool
    statements: list[AnswerStatement] = field(default_factory=list)
    # A preset rewrite that is not one request for the whole answer (see `preset_rewrite`): statements already
    # written by rule, or statements the model rewrites one at a time.
    ready: list[tuple[str, tuple[int, ...]]] | None = None
    one_by_one: list[tuple[str, tuple[int, ...]]] | None = None


# --- context selection -------------------------------------------------------------------------

def prompt_budget_chars(n_ctx: int, answer_tokens: int = ANSWER_TOKENS) -> int:
    """How many characters of transcript lines fit the context next to the instructions and the answer."""
    return max(600, int((n_ctx - answer_tokens - PROMPT_OVERHEAD_TOKENS) * CHARS_PER_TOKEN))


def select_context(segments: list[NumberedSegment], query: str, budget_chars: int,
                   must: frozenset[int] = frozenset()) -> list[NumberedSegment]:
    """The transcript lines to show the model, in transcript order: all of them when they fit, else the
    lines sharing the most content words with `query` (and `must`, e.g. an answer's citations), each with
    its neighbours for context, until `budget_chars` is used."""
    if sum(len(s.line()) + 1 for s in segments) <= budget_chars:
        return list(segments)
    words = {stem(w) for w in grounding.content_words(query)}
    pos = {s.number: i for i, s in enumerate(segments)}

    def score(s: NumberedSegment) -> int:
        return len(words & {stem(w) for w in grounding.content_words(s.text)})

    ranked = [s.number for s in segments if s.number in must]
    ranked += [s.number for s in sorted(segments, key=lambda s: (-score(s), s.number)) if score(s) > 0]
    ranked += [s.number for s in segments]  # then from the start: the conversation's opening sets the scene
    chosen: set[int] = set()
    used = 0
    for number in ranked:
        i = pos.get(number)
        if i is None:
            continue
        for j in (i, i - 1, i + 1):
            if 0 <= j < len(segments) and segments[j].number not in chosen:
                cost = len(segments[j].line()) + 1
                if used + cost > budget_chars:
                    continue
                chosen.add(segments[j].number)
                used += cost
        if used >= budget_chars:
            break
    return [s for s in segments if s.number in chosen]


def answer_schema(numbers: list[int]) -> dict:
    """JSON schema of an answer: statements with text and the segment numbers they rest on (at least one, and
    only numbers that were in the prompt can be written)."""
    cite: dict = {"type": "integer", "enum": numbers} if numbers else {"type": "integer"}
    return {"type": "json_object", "schema": {
        "type": "object",
        "properties": {"statements": {
            "type": "array", "minItems": 1, "maxItems": MAX_STATEMENTS,
            "items": {"type": "object",
                      "properties": {"text": {"type": "string", "minLength": 1, "maxLength": MAX_STATEMENT_CHARS},
                                     "segments": {"type": "array", "minItems": 1, "maxItems": MAX_CITES,
                                                  "items": cite}},
                      "required": ["text", "segments"]}}},
        "required": ["statements"]}}




# --- reading -----------------------------------------------------------------------------------

def _statement(raw: dict, segments: dict[int, NumberedSegment]) -> AnswerStatement:
    cites = tuple(Citation(n, segments[n].idx if n in segments else None,
                           segments[n].start if n in segments else None) for n in raw.get("segments", []))
    return AnswerStatement(raw.get("text", ""), cites, raw.get("status", grounding.UNCITED),
                           grounding.STATUS_TEXT.get(raw.get("status", ""), ""))


def check_statements(raw: list[StreamedStatement], segments: dict[int, NumberedSegment]) -> list[AnswerStatement]:
    """Grounding check of streamed statements against the transcript lines they cite."""
    texts = {n: s.for_check() for n, s in segments.items()}
    out = []
    for st in raw:
        text = " ".join(st.text.split())
        if not text:
            continue
        numbers = grounding.refine_citations(text, tuple(dict.fromkeys(st.segments)), texts, MAX_CITES)
        checked = grounding.check_statement(grounding.Statement(text, numbers), texts)
        out.append(_statement({"text": text, "segments": list(numbers), "status": checked.status}, segments))
    return out


def _message(row, segments: dict[int, NumberedSegment]) -> ChatMessage:
    try:
        raw = json.loads(row["answer"] or "[]")
    except ValueError:
        raw = []
    return ChatMessage(row["id"], row["kind"], row["prompt"], tuple(_statement(r, segments) for r in raw),
                       row["state"], row["error"], bool(row["revealed"]), row["asked_by"] or "–", row["created_at"],
                       row["source_id"])


@dataclass(frozen=True)
class Position:
    idx: int
    start: float


def segment_positions(conn: Connection, rec_id: str) -> dict[int, Position]:
    """Segment number → (index, start time), for citation links; no text (that only reaches prompts through
    numbered_segments)."""
    return {r["idx"] + 1: Position(r["idx"], r["start"])
            for r in conn.execute("SELECT idx, start FROM segments WHERE recording_id = ?", (rec_id,))}


_HISTORY_SQL = ("SELECT m.*, u.display_name AS asked_by FROM chat_messages m LEFT JOIN users u ON u.id = m.user_id "
                "WHERE m.recording_id = ?")


def for_display(conn: Connection, rec_id: str, statement: AnswerStatement) -> AnswerStatement:
    """The statement as the caseworker reads it: the recording's placeholders ("[PERSON 1]") that the model
    saw are put back to the real values (stored answers keep the placeholders)."""
    return dataclasses.replace(statement, text=pseudonymize.reidentify(conn, rec_id, statement.text))


def history_for(conn: Connection, rec_id: str) -> list[ChatMessage]:
    """The recording's questions and answers for display, oldest first (the caller has authorised it)."""
    segments = segment_positions(conn, rec_id)
    real = pseudonymize.reidentifier(conn, rec_id)  # as for_display, the entities read once
    out = []
    for r in conn.execute(_HISTORY_SQL + " ORDER BY m.id", (rec_id,)):
        m = _message(r, segments)
        out.append(dataclasses.replace(m, statements=tuple(dataclasses.replace(st, text=real(st.text))
                                                           for st in m.statements)))
    return out


def suggestions_for(conn: Connection, rec_id: str) -> list[str]:
    return [r["question"] for r in conn.execute(
        "SELECT question FROM chat_suggestions WHERE recording_id = ? ORDER BY pos", (rec_id,))]


def message_for(conn: Connection, rec_id: str, message_id: int) -> ChatMessage | None:
    row = conn.execute(_HISTORY_SQL + " AND m.id = ?", (rec_id, message_id)).fetchone()
    return _message(row, segment_positions(conn, rec_id)) if row else None


# --- asking ------------------------------------------------------------------------------------

def _clean_prompt(text: str | None) -> str:
    text = " ".join((text or "").split())
    if not text:
        raise ApplianceError(MSG_EMPTY)
    if len(text) > MAX_PROMPT:
        raise ApplianceError(MSG_TOO_LONG)
    return text


# --- the requests (no database: also what bench/assistant_quality.py sends) ------------------------------

def question_messages(segments: list[NumberedSegment], question: str,
                      n_ctx: int) -> tuple[list[dict], list[NumberedSegment]]:
    """The messages for a question about `segments` (already pseudonymized as the request needs) and the lines
    they show the model (all of them when they fit: then every question shares the transcript prefix)."""
    context = select_context(segments, question, prompt_budget_chars(n_ctx))
    return prompts.task_messages(context, f"{TASK_QUESTION}\n\n{QUESTION_HEAD} {question}"), context


def rewrite_messages(segments: list[NumberedSegment], source: list[tuple[str, tuple[int, ...]]], instruction: str,
                     n_ctx: int) -> tuple[list[dict], list[NumberedSegment]]:
    """The messages for rewriting `source` (statements with the line numbers they cite) by `instruction`."""
    plain = "\n".join(text for text, _ in source)
    cited = frozenset(n for _, numbers in source for n in numbers)
    context = select_context(segments, plain, prompt_budget_chars(n_ctx) - len(plain), cited)
    earlier = "\n".join(f"- {text} [{', '.join(str(n) for n in numbers)}]" for text, numbers in source)
    task = f"{TASK_REWRITE}\n\nInstruktion: {instruction}\n\nText att skriva om:\n{earlier}"
    return prompts.task_messages(context, task), context


def preset_rewrite(preset: str | None, source: list[tuple[str, tuple[int, ...]]]) \
        -> tuple[list[tuple[str, tuple[int, ...]]] | None, list[tuple[str, tuple[int, ...]]] | None]:
    """(ready, one_by_one) for the presets the embedded model cannot do as one request (it copies the answer
    back): "du" by rule (`du_form`; `source` with the real names, so the client's gender is known), "enkelt"
    one statement at a time (`plain_language`). (None, None): one request for the whole answer, as for an own
    instruction, or "du" when no client is named."""
    if preset == "du":
        rewritten = du_form.rewrite_all([text for text, _ in source])
        if rewritten is not None:
            return [(text, numbers) for text, (_, numbers) in zip(rewritten, source, strict=True)], None
    if preset == plain_language.INSTRUCTION_KEY:
        return None, list(source)
    return None, None


def warm_messages(segments: list[NumberedSegment], n_ctx: int) -> list[dict] | None:
    """The beginning every question about `segments` shares (everything up to the question's own words; rewrites
    and suggestions share the transcript part), or None when the transcript does not fit whole (then each question
    shows the model other lines and there is nothing to share)."""
    if sum(len(s.line()) + 1 for s in segments) > prompt_budget_chars(n_ctx):
        return None
    return prompts.task_messages(segments, f"{TASK_QUESTION}\n\n{QUESTION_HEAD}")


def prepare(conn: Connection, user: User, rec_id: str, *, prompt: str | None = None, rewrite: str | None = None,
            source_id: int | str | None = None, reveal: bool = False, n_ctx: int = 4096) -> ChatRequest:
    """Authorise (audited, NotFound otherwise), validate and store a question or rewrite as `running`.

    A question needs `prompt`. A rewrite needs `source_id` (an earlier answer of this recording) and either a
    preset key `rewrite` (REWRITES) or its own instruction in `prompt`. Bad input raises ApplianceError and
    stores nothing."""
    access.require_recording(conn, user, rec_id, "recording.chat")
    source: ChatMessage | None = None
    if source_id not in (None, ""):
        sid = parse_id(source_id)
        source = message_for(conn, rec_id, sid) if sid is not None else None
        if source is None or source.state != "done" or not source.statements:
            raise ApplianceError(MSG_NO_SOURCE)
        if rewrite in REWRITES and not (prompt or "").strip():  # an own instruction wins over the preset
            prompt = REWRITES[rewrite][1]
    prompt = _clean_prompt(prompt)
    preset = next((key for key, (_, text) in REWRITES.items() if text == prompt), None)
    all_segments = numbered_segments(conn, rec_id, reveal=reveal, user=user)
    if not all_segments:
        raise ApplianceError(MSG_NO_TRANSCRIPT)
    all_segments_by = {s.number: s for s in all_segments}
    # What the caseworker typed and earlier answers get the transcript's placeholders too (unless revealed),
    # so a name in the question does not reach the model when the transcript's names do not.
    entities = [] if reveal else pseudonymize.sync(conn, rec_id)

    def for_model(text: str) -> str:
        return text if reveal else pseudonymize.pseudonymize_text(text, entities)

    ready = one_by_one = None
    if source is None:
        kind = "question"
        messages, context = question_messages(all_segments, for_model(prompt), n_ctx)
    else:
        kind = "rewrite"
        # stored answers keep the placeholders the model saw: the rules need the real names (genders)
        reidentify = pseudonymize.reidentifier(conn, rec_id)
        real = [(reidentify(s.text), tuple(c.number for c in s.citations)) for s in source.statements]
        ready, one_by_one = preset_rewrite(preset, real)
        ready = [(for_model(text), numbers) for text, numbers in ready] if ready is not None else None
        one_by_one = [(for_model(text), numbers) for text, numbers in one_by_one] if one_by_one else None
        if ready is not None or one_by_one is not None:
            messages, context = [], []  # no transcript line goes to the model (the audit says 0)
        else:
            messages, context = rewrite_messages(all_segments, [(for_model(t), ns) for t, ns in real],
                                                 for_model(prompt), n_ctx)
    numbers = [s.number for s in context]
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO chat_messages (recording_id, user_id, kind, prompt, state, revealed, created_at, source_id) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
            (rec_id, user.id, kind, prompt, int(reveal), clock.now(), source.id if source else None))
        message_id = int(cur.lastrowid)
        audit.record(conn, user.actor, f"chat.{kind}", f"recording:{rec_id}", role=access.content_role(user),
                     data={"message": message_id, "revealed": bool(reveal), "segments_in_prompt": len(numbers)})
    return ChatRequest(message_id, rec_id, kind, messages, answer_schema(numbers), all_segments_by, reveal,
                       ready=ready, one_by_one=one_by_one)


def stream_answer(client: ChatModel, req: ChatRequest) -> Iterator[tuple[str, object]]:
    """Ask the model; yield ("text", piece) as the current statement's text grows and ("statement",
    AnswerStatement) when one is complete and checked. Raises LlmError (a message to show) on failure;
    `req.statements` holds what was complete so far either way."""
    def finished(statement: StreamedStatement) -> Iterator[tuple[str, object]]:
        checked = check_statements([statement], req.segments)
        req.statements.extend(checked)
        for st in checked:
            yield "statement", st

    if req.ready is not None:
        for text, numbers in req.ready:
            yield "text", text
            yield from finished(StreamedStatement(text, list(numbers)))
        return
    if req.one_by_one is not None:
        for source, numbers in req.one_by_one:
            pieces = []
            for piece in client.stream(plain_language.messages(source), max_tokens=plain_language.max_tokens(source)):
                pieces.append(piece)
                yield "text", piece
            # a rewrite that lost a fact or made a word up is not shown: the statement stays as it was
            text = plain_language.accept(source, "".join(pieces)) or source
            yield from finished(StreamedStatement(text, list(numbers)))
        return
    reader = StatementStream()
    for piece in client.stream(req.messages, response_format=req.response_format, max_tokens=ANSWER_TOKENS):
        for kind, value in reader.feed(piece):
            if kind == "text":
                yield "text", value
            else:
                yield from finished(value)


def finish(conn: Connection, req: ChatRequest, error: str | None = None) -> None:
    """Store the answer (or the failure and whatever was complete before it)."""
    if error is None and not req.statements:
        error = MSG_INTERRUPTED
    answer = json.dumps([{"text": s.text, "segments": [c.number for c in s.citations], "status": s.status}
                         for s in req.statements], ensure_ascii=False)
    with transaction(conn):
        conn.execute("UPDATE chat_messages SET answer = ?, state = ?, error = ?, finished_at = ? WHERE id = ?",
                     (answer, "failed" if error else "done", error, clock.now(), req.message_id))
    log.info("chat message %s: %s, %d statements, %d flagged", req.message_id, "failed" if error else "done",
             len(req.statements), sum(1 for s in req.statements if s.flagged))


def ask(conn: Connection, client: ChatModel, user: User, rec_id: str, **kwargs) -> ChatMessage:
    """Ask and wait for the whole answer (forms without JavaScript, the CLI, tests): the same path as the
    streamed one. The LLM being down is stored as a failed answer with its message, not raised."""
    req = prepare(conn, user, rec_id, n_ctx=client.cfg.n_ctx, **kwargs)
    error = None
    try:
        for _ in stream_answer(client, req):
            pass
    except LlmError as exc:
        error = str(exc)
    finish(conn, req, error)
    return message_for(conn, rec_id, req.message_id)


def warm(conn: Connection, client: ChatModel, user: User, rec_id: str) -> bool:
    """Have the model server read the recording's transcript before the first question (the caseworker opened the
    question field): the question then costs only its own words. Viewer rights, audited like a question (the
    transcript goes to the model); the default, pseudonymized transcript, which is what a question sends unless
    she reveals personal data. Returns whether the server read it (False: too long to share, or the server is
    busy or down: the question then simply takes longer)."""
    access.require_recording(conn, user, rec_id, "recording.chat")
    messages = warm_messages(numbered_segments(conn, rec_id), client.cfg.n_ctx)
    if messages is None:
        return False
    try:
        client.complete(messages, max_tokens=1)
    except LlmError as exc:
        log.info("chat warm-up of recording %s failed: %s", rec_id, type(exc).__name__)
        return False
    return True


def clear_history(conn: Connection, user: User, rec_id: str) -> int:
    """Delete the recording's questions and answers (editor rights; NotFound otherwise)."""
    access.require_recording(conn, user, rec_id, "recording.chat_clear")
    with transaction(conn):
        n = conn.execute("DELETE FROM chat_messages WHERE recording_id = ?", (rec_id,)).rowcount
        audit.record(conn, user.actor, "chat.cleared", f"recording:{rec_id}", role=access.content_role(user),
                     data={"count": n})
    return n


# --- suggested questions -------------------------------------------------------------------------

MAX_SUGGESTIONS = 4
SUGGEST_SCHEMA = {"type": "json_object", "schema": {
    "type": "object",
    "properties": {"questions": {"type": "array", "minItems": 2, "maxItems": MAX_SUGGESTIONS,
                                 "items": {"type": "string", "minLength": 5, "maxLength": 160}}},
    "required": ["questions"]}}


def spread(segments: list[NumberedSegment], budget_chars: int) -> list[NumberedSegment]:
    """Lines from the whole conversation (evenly spaced) that fit `budget_chars`: for overviews."""
    total = sum(len(s.line()) + 1 for s in segments)
    if total <= budget_chars:
        return list(segments)
    step = total / budget_chars
    picked, used = [], 0
    for i, s in enumerate(segments):
        if int(i % max(1, round(step))) == 0 and used + len(s.line()) + 1 <= budget_chars:
            picked.append(s)
            used += len(s.line()) + 1
    return picked


def suggest_messages(segments: list[NumberedSegment], n_ctx: int) -> list[dict]:
    """The messages asking for suggested questions about `segments`."""
    context = spread(segments, prompt_budget_chars(n_ctx, 300))
    return prompts.task_messages(context, f"{TASK_SUGGEST} Föreslå {MAX_SUGGESTIONS - 1} frågor.")


def suggest_questions(conn: Connection, client: ChatModel, user: User, rec_id: str, *,
                      reveal: bool = False) -> list[str]:
    """Generate suggested questions from the content and store them (replacing earlier ones). Viewer
    rights; raises LlmError (message to show, nothing changed) when the model fails."""
    access.require_recording(conn, user, rec_id, "recording.chat")
    segments = numbered_segments(conn, rec_id, reveal=reveal, user=user)
    if not segments:
        raise ApplianceError(MSG_NO_TRANSCRIPT)
    messages = suggest_messages(segments, client.cfg.n_ctx)
    reply = client.complete(messages, response_format=SUGGEST_SCHEMA, max_tokens=300)
    questions = parse_suggestions(reply.text)
    if not questions:
        raise LlmError("Språkmodellen gav inga frågeförslag. Försök igen.")
    with transaction(conn):
        conn.execute("DELETE FROM chat_suggestions WHERE recording_id = ?", (rec_id,))
        conn.executemany("INSERT INTO chat_suggestions (recording_id, pos, question, created_at) VALUES (?, ?, ?, ?)",
                         [(rec_id, i, q, clock.now()) for i, q in enumerate(questions)])
        audit.record(conn, user.actor, "chat.suggested", f"recording:{rec_id}", role=access.content_role(user),
                     data={"count": len(questions), "revealed": bool(reveal)})
    return questions


_COMPLETE_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_suggestions(text: str) -> list[str]:
    """The suggested questions of the model's JSON; of an answer cut off at max_tokens, the questions it
    finished (the schema bounds each question, not how long a small model dawdles before the last one)."""
    try:
        data = json.loads(text)
        items = data.get("questions") if isinstance(data, dict) else None
    except ValueError:
        _, found, rest = text.partition('"questions"')
        items = [json.loads(f'"{m.group(1)}"', strict=False)
                 for m in _COMPLETE_STRING.finditer(rest.partition("[")[2])] if found else None
    out: list[str] = []
    for q in items if isinstance(items, list) else []:
        q = " ".join(str(q).split())[:160]
        if len(q) >= 5 and q.casefold() not in {x.casefold() for x in out}:
            out.append(q if q.endswith("?") else q + "?")
    return out[:MAX_SUGGESTIONS]
