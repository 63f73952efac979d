"""Data-subject requests (GDPR art. 15, 16, 17) for the responsible person: given a personnummer, which
recordings, drafts and chat histories hold it now, and erasing them on a documented request.

* **Search** (`search`): the number is validated (date and check digit: a personnummer or samordningsnummer)
  and looked up in the identifier index (`identifiers`: keyed hashes, never the number). The answer names no
  content: recording ids, owners, folders, deadlines, where in the material (transcript, title, summary …) and
  counts. Every search is audited (`dsr.search`) with its purpose and the request's reference (a diarienummer)
  and the number only as the audit log's keyed pseudonym (`audit.pseudonym`: lets an auditor see that two
  requests concern the same person, never who). Nothing of the request is stored in the database.
* **Erasure** (`erase`): the responsible person types the number again and confirms the decision; the
  recordings whose transcript, title, speakers or history hold it are deleted with everything derived from
  them (audio, summaries, chat, drafts), and of the others only the summaries, chat messages, suggested
  questions/topics and case drafts that hold it. One audited transaction (`dsr.erase`, the receipt: ids and
  counts) that also tells each owner (`user_notices`, shown on their next page; e-mailed with ids, counts and
  the reference when mail is on). Crypto-shredded at once: the web then re-keys the database
  (`retention.rekey`, `complete`) so that remnants of the erased rows end under a destroyed key; if the
  database stays busy the shred timer does it within 15 minutes (`rekey_pending`).

Only users with the `responsible` role may do either (NotFound otherwise, as for any page they may not see).
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage

from appliance import clock
from appliance.compliance import identifiers
from appliance.config import Config
from appliance.errors import ApplianceError, KeyError_, NotFound
from appliance.platform import audit, retention
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction
from appliance.users.accounts import User

log = logging.getLogger(__name__)

ROLE = "responsible"
PURPOSES = {
    "art15": "Registerutdrag (art. 15)",
    "art17": "Radering (art. 17)",
    "art16": "Rättelse (art. 16)",
    "other": "Annat, t.ex. tillsyn",
}
ERASE_PURPOSE = "art17"
_REFERENCE = re.compile(r"^[A-Za-z0-9ÅÄÖåäö][A-Za-z0-9ÅÄÖåäö ._:/+\-]{1,58}[A-Za-z0-9ÅÄÖåäö]$")
_ASCII = str.maketrans({"å": "a", "ä": "a", "ö": "o", "Å": "A", "Ä": "A", "Ö": "O", " ": "-", "/": "-"})

MSG_NUMBER = ("Ange ett giltigt personnummer eller samordningsnummer (ÅÅMMDD-NNNN eller ÅÅÅÅMMDDNNNN). Datumet och "
              "kontrollsiffran måste stämma.")
MSG_REFERENCE = ("Ange ärendets diarienummer eller referens: 3–60 tecken, bokstäver, siffror, mellanslag och "
                 "- / . : +. Skriv aldrig personnumret som referens.")
MSG_PURPOSE = "Välj vad begäran gäller."
MSG_CONFIRM = "Bekräfta att begäran är prövad och att materialet ska raderas."


@dataclass(frozen=True)
class _Request:
    purpose: str
    reference: str   # as audited: ASCII, no spaces
    digits: str = field(repr=False)  # YYMMDDNNNC: never logged, printed or stored


def parse(number: str | None, purpose: str | None, reference: str | None) -> _Request:
    """Validate a request's form fields (ApplianceError with a Swedish message that never repeats the number)."""
    if purpose not in PURPOSES:
        raise ApplianceError(MSG_PURPOSE)
    found = identifiers.number_key(number or "")
    if found is None:
        raise ApplianceError(MSG_NUMBER)
    ref = " ".join((reference or "").split())
    if not _REFERENCE.match(ref) or identifiers.holds_number(ref):
        raise ApplianceError(MSG_REFERENCE)
    audited = ref.translate(_ASCII)
    try:
        audit.check_data({"reference": audited})  # what the audit log accepts as an identifier
    except ValueError:
        raise ApplianceError(MSG_REFERENCE) from None
    return _Request(purpose, audited, found[1])


def reference_to_show(text: str | None) -> str:
    """The typed reference to put back into a form: empty when it holds a personnummer (never echoed)."""
    ref = " ".join((text or "").split())[:60]
    return "" if identifiers.holds_number(ref) else ref


def _require_role(user: User) -> None:
    if ROLE not in user.roles or user.disabled:
        raise NotFound("Sidan finns inte.")


# --- what holds it -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordingHolding:
    recording_id: str
    owner_id: int
    owner_name: str
    folder_name: str
    created_at: float
    deadline: float
    hidden: bool                 # past its deadline: hidden from everyone, gone at the next purge
    parts: tuple[str, ...]       # keys of identifiers.PARTS
    summaries: tuple[int, ...]
    chat_messages: tuple[int, ...]

    @property
    def whole(self) -> bool:
        """An erasure deletes the recording itself (its transcript or what names it holds the number)."""
        return bool(set(self.parts) & identifiers.RECORDING_PARTS)

    @property
    def places(self) -> list[str]:
        return [identifiers.PARTS[p] for p in self.parts]


@dataclass(frozen=True)
class DraftHolding:
    draft_id: int
    owner_id: int
    owner_name: str
    created_at: float
    deadline: float | None       # it goes with its first source to be purged
    sources: int


@dataclass(frozen=True)
class Findings:
    recordings: tuple[RecordingHolding, ...]
    drafts: tuple[DraftHolding, ...]

    @property
    def empty(self) -> bool:
        return not self.recordings and not self.drafts


def _owner_name(conn: Connection, user_id: int) -> str:
    row = conn.execute("SELECT username, display_name FROM users WHERE id = ?", (user_id,)).fetchone()
    return (row["display_name"] or row["username"]) if row else f"user:{user_id}"


def _findings(app: Appliance, conn: Connection, digits: str) -> Findings:
    cfg = app.cfg
    hits = identifiers.lookup(app, conn, digits)
    by_rec: dict[str, list[identifiers.Hit]] = {}
    drafts: set[int] = set()
    for h in hits:
        if h.case_draft_id is not None:
            drafts.add(h.case_draft_id)
        elif h.recording_id is not None:
            by_rec.setdefault(h.recording_id, []).append(h)
    recs = []
    for rid, rec_hits in by_rec.items():
        row = conn.execute("SELECT r.*, f.name AS folder_name FROM recordings r LEFT JOIN folders f "
                           "ON f.id = r.folder_id WHERE r.id = ?", (rid,)).fetchone()
        if row is None:
            continue
        parts = tuple(p for p in identifiers.PARTS if any(h.part == p for h in rec_hits))
        recs.append(RecordingHolding(
            rid, row["owner_id"], _owner_name(conn, row["owner_id"]), row["folder_name"] or "", row["created_at"],
            retention.deadline(cfg.retention, row["created_at"]), not retention.visible(cfg, row), parts,
            tuple(sorted({h.summary_id for h in rec_hits if h.summary_id is not None})),
            tuple(sorted({h.message_id for h in rec_hits if h.message_id is not None}))))
    out_drafts = []
    for did in sorted(drafts):
        row = conn.execute("SELECT owner_id, created_at FROM case_drafts WHERE id = ?", (did,)).fetchone()
        if row is None:
            continue
        created = [r[0] for r in conn.execute("SELECT r.created_at FROM case_draft_sources s JOIN recordings r "
                                              "ON r.id = s.recording_id WHERE s.draft_id = ?", (did,))]
        deadline = min((retention.deadline(cfg.retention, c) for c in created), default=None)
        out_drafts.append(DraftHolding(did, row["owner_id"], _owner_name(conn, row["owner_id"]), row["created_at"],
                                       deadline, len(created)))
    recs.sort(key=lambda r: (r.created_at, r.recording_id))
    return Findings(tuple(recs), tuple(out_drafts))


def _subject(app: Appliance, digits: str) -> str:
    return audit.pseudonym(audit.pseudonym_key(app.cfg, app.master_key), digits)


def search(app: Appliance, conn: Connection, user: User, number: str | None, *, purpose: str | None,
           reference: str | None) -> Findings:
    """Which material holds the number now (no content). Audited with the purpose and reference; a refused
    form (bad number or reference) is audited as failed, without either."""
    _require_role(user)
    try:
        req = parse(number, purpose, reference)
    except ApplianceError:
        with transaction(conn):
            audit.record(conn, user.actor, "dsr.search", "dsr:request", result="failed", role=ROLE)
        raise
    found = _findings(app, conn, req.digits)
    with transaction(conn):
        audit.record(conn, user.actor, "dsr.search", "dsr:request", role=ROLE, data={
            "purpose": req.purpose, "reference": req.reference, "subject": _subject(app, req.digits),
            "recordings": [r.recording_id for r in found.recordings],
            "case_drafts": [d.draft_id for d in found.drafts]})
    return found


# --- erasure -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Erasure:
    reference: str
    recordings: tuple[str, ...]
    summaries: tuple[int, ...]
    chat_messages: tuple[int, ...]
    assistant: tuple[str, ...]        # recordings whose suggested questions / topics were removed
    case_drafts: tuple[int, ...]
    owners: tuple[int, ...]

    @property
    def items(self) -> list[str]:
        return ([f"recording:{i}" for i in self.recordings] + [f"summary:{i}" for i in self.summaries]
                + [f"chat_message:{i}" for i in self.chat_messages] + [f"assistant:{i}" for i in self.assistant]
                + [f"case_draft:{i}" for i in self.case_drafts])

    @property
    def empty(self) -> bool:
        return not self.items


def _marks(values) -> str:
    return ",".join("?" * len(values))


def erase(app: Appliance, conn: Connection, user: User, number: str | None, *, reference: str | None,
          confirmed: bool) -> Erasure:
    """Erase what holds the number (art. 17), in one audited transaction that also tells the owners; blobs
    go at once, the re-key follows (`complete`). Returns the receipt (ids and counts)."""
    _require_role(user)
    req = parse(number, ERASE_PURPOSE, reference)
    if not confirmed:
        raise ApplianceError(MSG_CONFIRM)
    found = _findings(app, conn, req.digits)
    whole = [r for r in found.recordings if r.whole]
    partial = [r for r in found.recordings if not r.whole]
    summaries = tuple(s for r in partial for s in r.summaries)
    messages = tuple(m for r in partial for m in r.chat_messages)
    assistant = tuple(r.recording_id for r in partial if "assistant" in r.parts)
    owners: dict[int, dict[str, list]] = {}
    for r in found.recordings:
        owners.setdefault(r.owner_id, {"recordings": [], "other": []})[
            "recordings" if r.whole else "other"].append(r.recording_id)
    for d in found.drafts:
        owners.setdefault(d.owner_id, {"recordings": [], "other": []})["other"].append(f"case_draft:{d.draft_id}")
    rec_ids = [r.recording_id for r in whole]
    # A case draft made from an erased recording goes with it (trigger, migration 0014); count what is left.
    draft_ids = tuple(d.draft_id for d in found.drafts)
    result = Erasure(req.reference, tuple(rec_ids), summaries, messages, assistant, draft_ids,
                     tuple(sorted(owners)))
    now = clock.now()
    with transaction(conn):
        if rec_ids:
            conn.execute(f"DELETE FROM recordings WHERE id IN ({_marks(rec_ids)})", rec_ids)  # noqa: S608
            conn.executemany("INSERT OR IGNORE INTO pending_blob_deletions (blob_id) VALUES (?)",
                             [(i,) for i in rec_ids])
        if summaries:
            conn.execute(f"DELETE FROM summaries WHERE id IN ({_marks(summaries)})", summaries)  # noqa: S608
        if messages:
            conn.execute(f"DELETE FROM chat_messages WHERE id IN ({_marks(messages)})", messages)  # noqa: S608
        for rid in assistant:
            conn.execute("DELETE FROM chat_suggestions WHERE recording_id = ?", (rid,))
            conn.execute("DELETE FROM topics WHERE recording_id = ?", (rid,))
        if draft_ids:
            conn.execute(f"DELETE FROM case_drafts WHERE id IN ({_marks(draft_ids)})", draft_ids)  # noqa: S608
        retention.mark_pending_rekey(conn, result.items, "erasure")
        for owner_id, what in owners.items():
            conn.execute("INSERT INTO user_notices (user_id, kind, reference, recording_ids, drafts, other, "
                         "created_at) VALUES (?, 'erasure', ?, ?, ?, ?, ?)",
                         (owner_id, req.reference, json.dumps(what["recordings"]),
                          sum(1 for o in what["other"] if o.startswith("case_draft:")),
                          sum(1 for o in what["other"] if not o.startswith("case_draft:")), now))
        audit.record(conn, user.actor, "dsr.erase", "dsr:request", role=ROLE, data={
            "purpose": ERASE_PURPOSE, "reference": req.reference, "subject": _subject(app, req.digits),
            "recordings": list(rec_ids), "summaries": list(summaries), "chat_messages": list(messages),
            "assistant": list(assistant), "case_drafts": list(draft_ids),
            "owners": [f"user:{o}" for o in sorted(owners)], "rekey": "pending"})
    retention.finish_blob_deletions(app, conn)
    _mail_owners(app.cfg, conn, result, owners)
    log.info("data-subject erasure: %d recording(s), %d other item(s) erased; re-key pending",
             len(rec_ids), len(result.items) - len(rec_ids))
    return result


def complete(app: Appliance, *, actor: str, timeout_s: float = 20.0) -> retention.RekeyReport | None:
    """Re-key now so the erased rows' remnants are undecryptable (the caller holds no connection). None when
    the database stayed busy: the shred timer completes it within its interval."""
    try:
        return retention.rekey(app, actor=actor, timeout_s=timeout_s)
    except (TimeoutError, KeyError_) as exc:  # busy, or a master-key rotation is unfinished
        log.warning("re-key after an erasure postponed (%s); the shred timer does it", type(exc).__name__)
        return None


def _mail_owners(cfg: Config, conn: Connection, result: Erasure, owners: dict[int, dict[str, list]]) -> None:
    """Best effort: the notice in the product is the record; an unreachable relay does not undo an erasure."""
    if not cfg.mail.enabled:
        return
    for owner_id, what in owners.items():
        row = conn.execute("SELECT email FROM users WHERE id = ? AND email IS NOT NULL", (owner_id,)).fetchone()
        if row is None:
            continue
        msg = EmailMessage()
        msg["From"], msg["To"] = cfg.mail.sender, row["email"]
        msg["Subject"] = "Samtalsstöd: material raderat på begäran av den registrerade"
        msg.set_content(
            f"Ansvarig för behandlingen har raderat material i dina mappar på begäran av den registrerade "
            f"(ärende {result.reference}): {len(what['recordings'])} inspelning(ar) och {len(what['other'])} "
            f"annat (sammanfattningar, frågor och svar, utkast).\n\nLogga in för att se vilka: {cfg.mail.base_url}/\n")
        try:
            with smtplib.SMTP(cfg.mail.smtp_host, cfg.mail.smtp_port, timeout=30) as smtp:
                if cfg.mail.starttls:
                    smtp.starttls()
                smtp.send_message(msg)
        except OSError as exc:
            log.warning("could not e-mail user %s about an erasure: %s", owner_id, type(exc).__name__)


# --- owners' notices -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Notice:
    id: int
    reference: str
    recording_ids: tuple[str, ...]
    drafts: int
    other: int
    created_at: float


def notices_for(conn: Connection, user: User) -> list[Notice]:
    """The user's unseen notices (ids, counts, the request's reference: no content)."""
    return [Notice(r["id"], r["reference"], tuple(json.loads(r["recording_ids"])), r["drafts"], r["other"],
                   r["created_at"])
            for r in conn.execute("SELECT * FROM user_notices WHERE user_id = ? AND seen_at IS NULL ORDER BY id",
                                  (user.id,))]


def mark_seen(conn: Connection, user: User, notice_id: int | str) -> None:
    with transaction(conn):
        conn.execute("UPDATE user_notices SET seen_at = ? WHERE id = ? AND user_id = ? AND seen_at IS NULL",
                     (clock.now(), int(notice_id) if str(notice_id).isdigit() else -1, user.id))
