"""The identifier index: which stored material holds a given personnummer, without storing the number.

Every personnummer and samordningsnummer detected (appliance/transcripts/pseudonymize.py `identity_numbers`:
date and check digit valid) in the material of a recording or a case draft is stored as an HMAC-SHA256 under a
subkey of the master key (`keys.subkey(cfg, master, "identifier-index")`, wrapped like the audit key, so it
outlives a rotation of the master key) over its ten digits
YYMMDDNNNC, so "19850312-1234", "850312-1234" and "8503121234" are one number. A lookup hashes the number asked
for the same way. What is indexed, per recording: the current transcript lines, the title, the speakers'
names, the history (machine text under edits, edit and rename history, the pseudonymization list), summaries,
chat questions and answers, suggested questions and topics (model output is read with its placeholders put
back, as the caseworker sees it); per case draft: its title, notes and text.

Staying right: triggers on every table that holds such material (migration 0021) mark the recording or draft
in `identifier_index_dirty` in the writer's own transaction (a transcript edit, a speaker rename, a new answer
…), and `refresh` re-indexes what is marked before every search; each source is re-indexed in one write
transaction, so a write cannot slip between reading the material and clearing its mark. Deleted material
takes its rows with it (foreign keys cascade).

What the hash does and does not protect: without the master key nobody can tell which number a row stands for;
with it, the roughly 40 million valid numbers could be tried in minutes — but the master key also opens the
database that holds the material itself, so the index gives away nothing the key holder could not read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from appliance.assistant import case_drafts
from appliance.platform import audit, keys
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction
from appliance.recordings import recordings
from appliance.transcripts import pseudonymize

log = logging.getLogger(__name__)

KEY_PURPOSE = "identifier-index"
_DOMAIN = b"samtalsstod identifier v1\n"

# Where in a recording's material a number was found (shown in Swedish by the responsible person's page).
PARTS = {
    "transcript": "utskriften",
    "title": "titeln",
    "speakers": "talarnas namn",
    "history": "redigeringshistorik eller maskinutskrift",
    "summary": "sammanfattning",
    "chat": "frågor och svar",
    "assistant": "föreslagna frågor eller innehållsförteckning",
    "draft": "sammanställt utkast",
}
# Erasing these means erasing the recording itself (its transcript or what names it).
RECORDING_PARTS = frozenset({"transcript", "title", "speakers", "history"})


def index_key(app: Appliance) -> bytes:
    return keys.subkey(app.cfg, app.master_key, KEY_PURPOSE)


def digest(key: bytes, ten_digits: str) -> bytes:
    return hmac.new(key, _DOMAIN + ten_digits.encode("ascii"), hashlib.sha256).digest()


def number_key(text: str) -> tuple[str, str] | None:
    """(kind, ten digits) when `text` is one valid personnummer or samordningsnummer, else None."""
    found = pseudonymize.identity_numbers(" " + (text or "").strip() + " ")
    if len(found) != 1 or found[0].text != (text or "").strip():
        return None
    return found[0].kind, found[0].key


def holds_number(text: str) -> bool:
    """Whether `text` contains a valid personnummer or samordningsnummer anywhere."""
    return bool(pseudonymize.identity_numbers(text or ""))


def _strings(value) -> Iterator[str]:
    """Every string inside a JSON value (statements, headings …), not its numbers or keys."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _json_strings(raw: str | None) -> Iterator[str]:
    if not raw:
        return
    try:
        yield from _strings(json.loads(raw))
    except ValueError:
        yield raw


@dataclass(frozen=True)
class _Row:
    part: str
    summary_id: int | None = None
    message_id: int | None = None


def _recording_material(conn: Connection, rec_id: str) -> Iterator[tuple[_Row, str]]:
    row = conn.execute("SELECT title FROM recordings WHERE id = ?", (rec_id,)).fetchone()
    if row is None:
        return
    yield _Row("title"), row["title"]
    for seg in recordings.transcript_segments(conn, rec_id):
        yield _Row("transcript"), seg.text
        if seg.edited:
            yield _Row("history"), seg.machine_text
    for r in conn.execute("SELECT name FROM recording_speakers WHERE recording_id = ?", (rec_id,)):
        yield _Row("speakers"), r["name"]
    for r in conn.execute("SELECT before, after FROM segment_edits WHERE recording_id = ? UNION ALL "
                          "SELECT before, after FROM speaker_edits WHERE recording_id = ?", (rec_id, rec_id)):
        yield _Row("history"), r["before"]
        yield _Row("history"), r["after"]
    for r in conn.execute("SELECT value FROM pii_entities WHERE recording_id = ?", (rec_id,)):
        yield _Row("history"), r["value"]

    def real(text: str) -> str:  # model output with its placeholders put back, as the caseworker reads it
        return pseudonymize.reidentify(conn, rec_id, text)

    for r in conn.execute("SELECT id, content FROM summaries WHERE recording_id = ?", (rec_id,)):
        for text in _json_strings(r["content"]):
            yield _Row("summary", summary_id=r["id"]), real(text)
    for r in conn.execute("SELECT id, prompt, answer FROM chat_messages WHERE recording_id = ?", (rec_id,)):
        yield _Row("chat", message_id=r["id"]), r["prompt"]
        for text in _json_strings(r["answer"]):
            yield _Row("chat", message_id=r["id"]), real(text)
    for r in conn.execute("SELECT question AS text FROM chat_suggestions WHERE recording_id = ? UNION ALL "
                          "SELECT title AS text FROM topics WHERE recording_id = ?", (rec_id, rec_id)):
        yield _Row("assistant"), real(r["text"])


def _draft_material(conn: Connection, draft_id: int) -> Iterator[str]:
    row = case_drafts.TABLE.row(conn, draft_id)
    if row is None:
        return
    draft = case_drafts._draft(conn, row)  # the row as a value, without the caseworker's access check
    yield draft.title
    yield draft.notes
    yield from _strings(case_drafts.readable(conn, draft))


def _hashes(key: bytes, text: str) -> set[bytes]:
    return {digest(key, span.key) for span in pseudonymize.identity_numbers(text or "")}


def _index_recording(conn: Connection, key: bytes, rec_id: str) -> int:
    conn.execute("DELETE FROM identifier_index WHERE recording_id = ? AND case_draft_id IS NULL", (rec_id,))
    rows: set[tuple] = set()
    for where, text in _recording_material(conn, rec_id):
        for h in _hashes(key, text):
            rows.add((h, where.part, rec_id, where.summary_id, where.message_id))
    # The history holds the current text too (an edit's "after"): "history" means held only there.
    current = {r[0] for r in rows if r[1] in ("transcript", "title", "speakers")}
    rows = {r for r in rows if r[1] != "history" or r[0] not in current}
    conn.executemany("INSERT INTO identifier_index (hash, part, recording_id, summary_id, message_id) "
                     "VALUES (?, ?, ?, ?, ?)", sorted(rows, key=repr))
    return len(rows)


def _index_draft(conn: Connection, key: bytes, draft_id: int) -> int:
    conn.execute("DELETE FROM identifier_index WHERE case_draft_id = ?", (draft_id,))
    found: set[bytes] = set()
    for text in _draft_material(conn, draft_id):
        found |= _hashes(key, text)
    conn.executemany("INSERT INTO identifier_index (hash, part, case_draft_id) VALUES (?, 'draft', ?)",
                     [(h, draft_id) for h in sorted(found)])
    return len(found)


def refresh(app: Appliance, conn: Connection, *, actor: str = "service:index") -> int:
    """Re-index every recording and case draft marked as changed; returns how many were re-indexed. System
    work (nobody is shown anything), audited once per run with the number of sources read (`identifiers.index`)."""
    key = index_key(app)
    done = 0
    for source, sid in conn.execute("SELECT source, id FROM identifier_index_dirty").fetchall():
        with transaction(conn):
            if conn.execute("DELETE FROM identifier_index_dirty WHERE source = ? AND id = ?",
                            (source, sid)).rowcount == 0:
                continue  # another process did it meanwhile
            if source == "recording":
                _index_recording(conn, key, sid)
            else:
                _index_draft(conn, key, int(sid))
        done += 1
    if done:
        with transaction(conn):
            audit.record(conn, actor, "identifiers.index", "identifier_index", data={"sources": done})
        log.info("identifier index: %d source(s) re-indexed", done)
    return done


@dataclass(frozen=True)
class Hit:
    part: str
    recording_id: str | None
    summary_id: int | None
    message_id: int | None
    case_draft_id: int | None


def lookup(app: Appliance, conn: Connection, ten_digits: str) -> list[Hit]:
    """Where the number is held now (refreshing the index first). The caller has checked who may ask."""
    refresh(app, conn)
    h = digest(index_key(app), ten_digits)
    return [Hit(r["part"], r["recording_id"], r["summary_id"], r["message_id"], r["case_draft_id"])
            for r in conn.execute("SELECT part, recording_id, summary_id, message_id, case_draft_id "
                                  "FROM identifier_index WHERE hash = ?", (h,))]
