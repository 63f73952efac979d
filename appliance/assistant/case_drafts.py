"""Case drafts: one BBIC-structured draft from several recordings of one case (mother, father, school …) plus
journal notes the caseworker pastes, each statement citing the conversation and the line it rests on.

How: the sources' transcripts (through `transcript.numbered_segments`, so pseudonymized unless the
caseworker reveals personal data for this request) and the notes (one line per paragraph) are numbered into
one sequence, each line labelled with its conversation ("Samtal A", "Samtal B", "Journalanteckning"), and
summarised under the BBIC template by the same code as a summary (`summarize.summarize`: grammar-constrained
headings, map-reduce for long material, the grounding checker). The global numbers are then mapped back to
"conversation letter + line number" (`A12`, `B3`, `J2` for the notes), and a citation of a recording links
to that line in its player. It runs as a job (`case_draft`) in the assistant unit, with progress the page
polls; it is a reviewed draft like a summary (appliance/assistant/drafts.py: the same table shape, states,
review gate utkast → granskad → överförd, and page markup).

Purge rule: a draft quotes every source, so it must not outlive any of them. Each source row cascades from
its recording, and a trigger (migration 0014) deletes the whole draft when any source row goes: deleting
one recording (by hand or by the Friday purge) deletes every draft made from it, pasted notes included. A
draft is visible only to its creator, and only while she may still read every source (access is checked,
and audited, per source on every read; a source past its deadline or unshared hides the draft: 404).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from appliance import clock
from appliance.assistant import drafts, templates
from appliance.assistant.drafts import DraftWork, ReviewedDraft
from appliance.assistant.transcript import NumberedSegment, numbered_segments
from appliance.errors import ApplianceError, NotFound
from appliance.ids import parse_id
from appliance.platform import audit, jobs
from appliance.platform.db import Connection, transaction
from appliance.recordings import recordings
from appliance.transcripts import pseudonymize
from appliance.users import access
from appliance.users.accounts import User, get_user

TEMPLATE = "bbic"
NOTES_LABEL = "J"
MAX_SOURCES = 8
MAX_NOTES = 20_000
MAX_TITLE = 200
MSG_DRAFT = "Utkastet finns inte eller så saknar du behörighet."
MSG_NO_SOURCES = "Välj minst en inspelning som utkastet ska bygga på."
MSG_TOO_MANY = f"Välj högst {MAX_SOURCES} inspelningar."
MSG_NOT_READY = "Alla valda inspelningar måste vara färdigtranskriberade."
MSG_NOTES_TOO_LONG = f"Journalanteckningarna är för långa (högst {MAX_NOTES} tecken)."

TABLE = drafts.DraftTable(
    "case_drafts", "case_draft",
    drafts.Wording(
        not_ready="Utkastet är inte klart än och kan inte granskas.",
        review_first="Markera utkastet som granskat innan du markerar det som överfört.",
        only_failed_retry="Bara ett misslyckat utkast kan göras om.",
        only_utkast_edits="Bara ett utkast kan ändras. Gör det till ett utkast igen först.",
        attempts="Utkastet avbröts upprepade gånger. Försök igen; om felet kvarstår, kontakta IT."),
    lambda _conn, draft_id: f"case_draft:{draft_id}")
CASE_DRAFT = drafts.job_kind("case_draft", TABLE)


@dataclass(frozen=True)
class Source:
    label: str
    recording_id: str
    title: str


@dataclass(frozen=True)
class Cite:
    """One citation as the caseworker sees it: `A12` (conversation A, line 12) or `J2` (note paragraph 2)."""
    label: str
    number: int
    recording_id: str | None
    idx: int | None
    start: float | None

    @property
    def text(self) -> str:
        return f"{self.label}{self.number}"


@dataclass(frozen=True)
class CaseDraft(ReviewedDraft):
    id: int
    owner_id: int
    title: str
    notes: str
    status: str
    progress: float
    error: str | None
    content: dict | None
    review_state: str
    reveal: bool
    created_at: float
    sources: tuple[Source, ...]

    def cites(self, numbers: list[int]) -> list[Cite]:
        refs = (self.content or {}).get("refs", {})
        out = []
        for n in numbers:
            r = refs.get(str(n))
            if r is not None:
                out.append(Cite(r["label"], r["number"], r.get("recording_id"), r.get("idx"), r.get("start")))
        return out


def _draft(conn: Connection, r) -> CaseDraft:
    sources = tuple(Source(s["label"], s["recording_id"], s["title"]) for s in conn.execute(
        "SELECT s.label, s.recording_id, r.title FROM case_draft_sources s JOIN recordings r ON r.id = s.recording_id "
        "WHERE s.draft_id = ? ORDER BY s.pos", (r["id"],)))
    return CaseDraft(r["id"], r["owner_id"], r["title"], r["notes"], r["status"], r["progress"], r["error"],
                     drafts.load_content(r["content"]), r["review_state"], bool(r["reveal"]), r["created_at"],
                     sources)


def _did(draft_id: int | str) -> int:
    did = parse_id(draft_id)
    if did is None:
        raise NotFound(MSG_DRAFT)
    return did


# --- the caseworker's side ------------------------------------------------------------------------

def candidates(conn: Connection, user: User) -> list:
    """Finished recordings the user may read (the form's choices; not a content read, titles only)."""
    return [r for r in recordings.visible_rows(conn, user) if r["status"] == "ready"]


def clean_notes(text: str | None) -> str:
    text = "\n".join(line.rstrip() for line in (text or "").replace("\r\n", "\n").split("\n")).strip()
    if len(text) > MAX_NOTES:
        raise ApplianceError(MSG_NOTES_TOO_LONG)
    return "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())


def create(conn: Connection, user: User, *, title: str | None, recording_ids: list[str], notes: str | None = None,
           reveal: bool = False) -> int:
    """Queue a case draft from the chosen recordings (each access-checked and audited; NotFound for one the
    user may not read) and the pasted notes. Bad input raises ApplianceError and stores nothing."""
    ids = list(dict.fromkeys(i for i in recording_ids if i))
    if not ids:
        raise ApplianceError(MSG_NO_SOURCES)
    if len(ids) > MAX_SOURCES:
        raise ApplianceError(MSG_TOO_MANY)
    notes = clean_notes(notes)
    rows = [access.require_recording(conn, user, rid, "recording.case_draft") for rid in ids]
    if any(r["status"] != "ready" for r in rows):
        raise ApplianceError(MSG_NOT_READY)
    title = " ".join((title or "").split())[:MAX_TITLE] or "Sammanställt utkast"
    t = clock.now()
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO case_drafts (owner_id, title, notes, status, reveal, created_at) "
            "VALUES (?, ?, ?, 'queued', ?, ?)", (user.id, title, notes, int(reveal), t))
        draft_id = int(cur.lastrowid)
        jobs.enqueue(conn, CASE_DRAFT, draft_id)  # deleted with the draft (trigger, migration 0017)
        conn.executemany("INSERT INTO case_draft_sources (draft_id, recording_id, label, pos) VALUES (?, ?, ?, ?)",
                         [(draft_id, rid, string.ascii_uppercase[i], i) for i, rid in enumerate(ids)])
        audit.record(conn, user.actor, "case_draft.create", f"case_draft:{draft_id}", role=access.content_role(user),
                     data={"recordings": ids, "notes_chars": len(notes), "revealed": bool(reveal)})
    return draft_id


def _owned_row(conn: Connection, user: User, draft_id: int | str):
    row = conn.execute("SELECT * FROM case_drafts WHERE id = ?", (_did(draft_id),)).fetchone()
    if row is None or row["owner_id"] != user.id or not user.can_read_content:
        with transaction(conn):
            audit.record(conn, user.actor, "case_draft.read", f"case_draft:{_did(draft_id)}", result="denied",
                         role=access.content_role(user))
        raise NotFound(MSG_DRAFT)
    return row


def get(conn: Connection, user: User, draft_id: int | str) -> CaseDraft:
    """The draft, for its creator while she may read every source (each checked and audited; 404 otherwise)."""
    row = _owned_row(conn, user, draft_id)
    draft = _draft(conn, row)
    try:
        for s in draft.sources:
            access.require_recording(conn, user, s.recording_id, "recording.case_draft")
    except NotFound:
        raise NotFound(MSG_DRAFT) from None
    if not draft.sources:  # cannot happen (the trigger deletes such a draft); fail closed anyway
        raise NotFound(MSG_DRAFT)
    return draft


def list_for_user(conn: Connection, user: User) -> list[CaseDraft]:
    """The user's drafts whose sources she can all still see (titles and states; audited as one list read)."""
    visible = {r["id"] for r in recordings.visible_rows(conn, user)}
    out = []
    for r in conn.execute("SELECT * FROM case_drafts WHERE owner_id = ? ORDER BY created_at DESC", (user.id,)):
        d = _draft(conn, r)
        if d.sources and all(s.recording_id in visible for s in d.sources):
            out.append(d)
    with transaction(conn):
        audit.record(conn, user.actor, "case_draft.list", user.actor, detail=f"count:{len(out)}",
                     role=access.content_role(user))
    return out


def set_review_state(conn: Connection, user: User, draft_id: int | str, state: str) -> CaseDraft:
    """The review gate (appliance/assistant/drafts.py); transferred marks every source as documented."""
    d = get(conn, user, draft_id)
    with transaction(conn):
        drafts.set_review_state(conn, TABLE, d, state, user_id=user.id,
                                transferred_recordings=[s.recording_id for s in d.sources])
        audit.record(conn, user.actor, "case_draft.review", f"case_draft:{d.id}", role=access.content_role(user),
                     data={"from": d.review_state, "to": state})
    return get(conn, user, d.id)


def accept_statement(conn: Connection, user: User, draft_id: int | str, section: int | str,
                     statement: int | str) -> CaseDraft:
    """The creator accepts a flagged statement as it stands (she checked it against the sources): it is copied
    with the rest from now on. Audited by ids only."""
    d = get(conn, user, draft_id)
    content, sec, idx = drafts.accepted_content(TABLE, d, section, statement)
    with transaction(conn):
        drafts.store_content(conn, TABLE, d.id, content)
        audit.record(conn, user.actor, "case_draft.accept", f"case_draft:{d.id}", role=access.content_role(user),
                     data={"section": sec, "statement": idx})
    return get(conn, user, d.id)


def retry(conn: Connection, user: User, draft_id: int | str) -> CaseDraft:
    d = get(conn, user, draft_id)
    with transaction(conn):
        drafts.requeue(conn, TABLE, CASE_DRAFT, d)
        audit.record(conn, user.actor, "case_draft.retry", f"case_draft:{d.id}", role=access.content_role(user))
    return get(conn, user, d.id)


def delete(conn: Connection, user: User, draft_id: int | str) -> None:
    d = get(conn, user, draft_id)
    with transaction(conn):
        conn.execute("DELETE FROM case_drafts WHERE id = ?", (d.id,))
        audit.record(conn, user.actor, "case_draft.delete", f"case_draft:{d.id}", role=access.content_role(user))


# --- the worker's side ------------------------------------------------------------------------------

def work(conn: Connection, draft_id: str) -> DraftWork | None:
    """What the assistant unit needs to write the draft (None: deleted meanwhile, with one of its sources)."""
    r = TABLE.row(conn, int(draft_id))
    if r is None:
        return None
    draft = _draft(conn, r)
    segments, refs = combined_segments(conn, draft)
    return DraftWork(TABLE, draft.id, segments, template(conn), draft.reveal,
                     finish=lambda content: content_for(content, draft, refs),
                     audit_data={"sources": len(draft.sources)})


def combined_segments(conn: Connection, draft: CaseDraft) -> tuple[list[NumberedSegment], dict[int, dict]]:
    """All sources as one numbered sequence for the model, and global number → citation (label, line, link)."""
    segments: list[NumberedSegment] = []
    refs: dict[int, dict] = {}
    owner = get_user(conn, draft.owner_id)
    for src in draft.sources:
        for s in numbered_segments(conn, src.recording_id, reveal=draft.reveal, user=owner):
            n = len(segments) + 1
            who = f"Samtal {src.label}" + (f", {s.speaker}" if s.speaker else "")
            # Each recording numbers its placeholders from 1: "[PERSON 1]" of conversation B becomes
            # "[PERSON B1]", so the model never takes two different people for one.
            text = _PLACEHOLDER.sub(lambda m, lab=src.label: f"[{m.group(1)} {lab}{m.group(2)}]", s.text)
            segments.append(NumberedSegment(n, s.idx, s.start, s.end, text, who))
            refs[n] = {"label": src.label, "number": s.number, "recording_id": src.recording_id, "idx": s.idx,
                       "start": s.start}
    paragraphs = _paragraphs(draft.notes)
    if not draft.reveal:
        paragraphs, _ = pseudonymize_notes(paragraphs)
    for k, text in enumerate(paragraphs, 1):
        n = len(segments) + 1
        segments.append(NumberedSegment(n, -1, 0.0, 0.0, " ".join(text.split()), "Journalanteckning"))
        refs[n] = {"label": NOTES_LABEL, "number": k, "recording_id": None, "idx": None, "start": None}
    return segments, refs


def pseudonymize_notes(paragraphs: list[str]) -> tuple[list[str], dict[str, str]]:
    """The pasted notes with personal data replaced, like the transcripts (privacy first): the same detector
    (appliance/pseudonymize.py), placeholders numbered within the notes ("[PERSON J1]"), since the notes
    belong to no recording's placeholder list. Also returns placeholder → value, to show the draft."""
    numbers: dict[tuple[str, str], str] = {}
    values: dict[str, str] = {}
    out = []
    for text in paragraphs:
        parts, pos = [], 0
        for span in pseudonymize.detect(text):
            kind_label = pseudonymize.LABELS.get(span.kind, "UPPGIFT")
            key = (span.kind, span.key)
            if key not in numbers:
                numbers[key] = f"[{kind_label} {NOTES_LABEL}{sum(1 for k in numbers if k[0] == span.kind) + 1}]"
                values[numbers[key]] = span.text
            parts += [text[pos:span.start], numbers[key]]
            pos = span.end
        out.append("".join(parts) + text[pos:])
    return out, values


_PLACEHOLDER = re.compile(r"\[([A-ZÅÄÖ\-]+) (\d+)\]")                 # a recording's own: [PERSON 1]
_LABELLED = re.compile(r"\[([A-ZÅÄÖ\-]+) ([A-Z])(\d+)\]")            # in a draft: [PERSON B1], [PERSON J1]


def _paragraphs(notes: str) -> list[str]:
    return [p.strip() for p in notes.split("\n") if p.strip()]


def readable(conn: Connection, d: CaseDraft) -> dict:
    """The draft's content as the caseworker reads and copies it: the placeholders the model saw ("[PERSON B1]":
    conversation B's "[PERSON 1]"; "[PERSON J1]": the notes') are put back to the real values. The caller has
    authorised the draft (`get`)."""
    if not d.content:
        return {}
    _, note_values = pseudonymize_notes(_paragraphs(d.notes))
    by_label = {src.label: src.recording_id for src in d.sources}

    def real(m: re.Match) -> str:
        kind, label, number = m.group(1), m.group(2), m.group(3)
        if label == NOTES_LABEL:
            return note_values.get(m.group(), m.group())
        rec_id = by_label.get(label)
        return pseudonymize.reidentify(conn, rec_id, f"[{kind} {number}]") if rec_id else m.group()

    sections = []
    for sec in d.content.get("sections", []):
        statements = []
        for st in sec.get("statements", []):
            statements.append({**st, "text": _LABELLED.sub(real, st["text"])})
        sections.append({**sec, "statements": statements})
    return {**d.content, "sections": sections}


def template(conn: Connection):
    return templates.get(conn, conn.cfg, TEMPLATE)


def content_for(result_json: dict, draft: CaseDraft, refs: dict[int, dict]) -> dict:
    """The summary's JSON plus what the page needs to show citations as conversation + line."""
    return {**result_json, "title": draft.title,
            "sources": [{"label": s.label, "recording_id": s.recording_id} for s in draft.sources],
            "refs": {str(n): r for n, r in refs.items()}}
