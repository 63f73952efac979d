"""Pseudonymization: find personal data in a transcript and replace it by placeholders ("[PERSON 1]").

What is detected (`detect`, pure functions over one line of text):

* personnummer and samordningsnummer (YYMMDD-NNNC, YYYYMMDDNNNC, "+" for 100+ years): date and Luhn check
  digit validated (python-stdnum); a samordningsnummer has the day of month plus 60;
* Swedish phone numbers (0… or +46/0046…, 8–10 digits nationally), e-mail addresses;
* street addresses ("Storgatan 12 B", "Norra Vägen 3") and postcodes followed by a town ("123 45 Växjö");
* person names: capitalised words in a shipped first-name list (gender-guesser's name dictionary, names
  used in Sweden plus names common anywhere), a following capitalised surname, names after a cue
  ("jag heter …"), and typical Swedish surnames ("…sson", "…berg", "…ström"). Words that are also common
  Swedish words ("Per", "Dag", "Bo") count only inside a sentence, where Whisper's capital means a name.

Per recording, every value found gets a stable placeholder number per kind, stored in `pii_entities`
(inside the encrypted database; cascades with the recording, so the purge removes the mapping). New
detections are `pending` and already pseudonymized (privacy first); the caseworker confirms or rejects
them and adds their own (any word or phrase, replaced wherever it occurs). Rejected values are left as
they are. The assistant and exports read `segments_for_model`, which pseudonymizes unless the caseworker
explicitly asked to reveal personal data for that one request (audited).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

from appliance import clock
from appliance.errors import ApplianceError
from appliance.ids import parse_id
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.recordings import recordings
from appliance.users import access
from appliance.users.accounts import User

# kind → placeholder label ("[PNR 1]"); the order is the order of the kind list in the UI.
LABELS: dict[str, str] = {
    "person": "PERSON",
    "pnr": "PNR",
    "pnr_possible": "MÖJLIGT-PNR",  # date valid, check digit wrong: a slip of the tongue or a mis-heard digit
    "samordningsnummer": "SAMORDNINGSNR",
    "phone": "TELEFON",
    "email": "EPOST",
    "address": "ADRESS",
    "postcode": "POSTNR",
}
KIND_NAMES: dict[str, str] = {
    "person": "Namn",
    "pnr": "Personnummer",
    "pnr_possible": "Möjligt personnummer (kontrollsiffran stämmer inte)",
    "samordningsnummer": "Samordningsnummer",
    "phone": "Telefonnummer",
    "email": "E-postadress",
    "address": "Adress",
    "postcode": "Postnummer",
}
STATUSES = ("pending", "confirmed", "rejected")
MAX_MANUAL = 200


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str
    key: str  # the value normalised for matching (digits only for numbers, casefolded text otherwise)
    text: str  # as written


@dataclass(frozen=True)
class Entity:
    id: int
    kind: str
    value: str
    key: str
    number: int
    source: str  # detected | manual
    status: str  # pending | confirmed | rejected

    @property
    def placeholder(self) -> str:
        return f"[{LABELS[self.kind]} {self.number}]" if self.number else f"[{LABELS[self.kind]}]"

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]


# --- detection -------------------------------------------------------------------------------------------

_PNR_RE = re.compile(r"(?<![\d\w])(\d{6}|\d{8})(?: ?([-+]) ?)?(\d{4})(?![\d\w])")
_PHONE_RE = re.compile(r"(?<![\w+])(?:\+46|0046|0)(?:[ \-]?\(0\))?(?:[ \-]?\d){6,10}(?!\d)")
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
_STREET_SUFFIX = (r"(?:gatan|gata|vägen|väg|gränd|gränden|stigen|backen|torget|torg|allén|allé|leden|"
                  r"platsen|plan|stråket|slingan|liden|höjden|parken|kroken|bryggan|kajen|esplanaden)")
_ADDRESS_RE = re.compile(
    r"(?<![\w])(?:(?i:stora|lilla|norra|södra|östra|västra|gamla|nya) [\w\-]*" + _STREET_SUFFIX
    + r"|[A-Za-zÅÄÖåäö][\w\-]*" + _STREET_SUFFIX + ")")
_HOUSE_NUMBER_RE = re.compile(r" (\d{1,4}(?:[A-Za-z]| [A-Z])?)(?![\wåäöÅÄÖ])")  # "12", "5a", "12 B"
_POSTCODE_RE = re.compile(r"(?<![\d\w])(\d{3}) ?(\d{2}) ([A-ZÅÄÖ][a-zåäöé]+(?:[ \-][A-ZÅÄÖ][a-zåäöé]+)?)")
_WORD_RE = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w\-']*")
_NAME_CUE_RE = re.compile(r"\b(?:heter|hette|kallas|namnet är|namn är|kalla mig)\s+([A-ZÅÄÖa-zåäö][\w\-]+)",
                          re.IGNORECASE)
_SURNAME_RE = re.compile(r"^[A-ZÅÄÖ][a-zåäöé]+(?:sson|son|sén|berg|ström|lund|qvist|kvist|gren|holm|dahl|"
                         r"blad|stedt|stam|bäck|mark|fors|löf|lind|sjö|ling|ander|ius)$")
_SENTENCE_END = ".!?:…\n"


def _valid_date(digits: str) -> tuple[bool, bool]:
    """(is a valid personnummer date, is a valid samordningsnummer date) for YYMMDD or YYYYMMDD digits."""
    yy, mm, dd = int(digits[-6:-4]), int(digits[-4:-2]), int(digits[-2:])
    century = int(digits[:2]) if len(digits) == 8 else None

    def ok(day: int) -> bool:
        for cc in ([century] if century is not None else [19, 20]):
            try:
                date(cc * 100 + yy, mm, day)
                return True
            except ValueError:
                continue
        return False
    return ok(dd), dd > 60 and ok(dd - 60)


def _luhn_ok(ten_digits: str) -> bool:
    from stdnum import luhn  # python-stdnum: the check digit of personnummer and samordningsnummer

    return luhn.is_valid(ten_digits)


def identity_number_kind(text: str) -> str | None:
    """'pnr', 'samordningsnummer', 'pnr_possible' (a valid date but a wrong check digit: still someone's
    number, said or heard wrong, so it is pseudonymized too) or None for a written number (separators
    allowed)."""
    m = _PNR_RE.fullmatch(text.strip())
    if not m:
        return None
    date_part, _sep, tail = m.groups()
    pnr_date, sam_date = _valid_date(date_part)
    if not _luhn_ok(date_part[-6:] + tail):
        return "pnr_possible" if pnr_date or sam_date else None
    if pnr_date:
        return "pnr"
    if sam_date:
        return "samordningsnummer"
    return None


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _phone_key(text: str) -> str | None:
    d = _digits(text)
    if text.startswith("+46"):
        d = "0" + d[2:]
    elif text.startswith("0046"):
        d = "0" + d[4:]
    d = d.replace("(0)", "")
    if d.startswith("00"):
        d = d[1:]
    return d if 8 <= len(d) <= 10 and d[1] != "0" else None


@cache
def _common_words() -> frozenset[str]:
    text = resources.files("appliance.data").joinpath("sv_common_words.txt").read_text(encoding="utf-8")
    return frozenset(w.strip().casefold() for w in text.split() if w.strip() and not w.startswith("#"))


_NAME_COUNTRIES = (
    "great_britain ireland usa italy malta portugal spain france belgium luxembourg the_netherlands east_frisia "
    "germany austria swiss iceland denmark norway sweden finland estonia latvia lithuania poland czech_republic "
    "slovakia hungary romania bulgaria bosniaand croatia kosovo macedonia montenegro serbia slovenia albania "
    "greece russia belarus moldova ukraine armenia azerbaijan georgia the_stans turkey arabia israel china india "
    "japan korea vietnam other_countries").split()


@cache
def first_names() -> frozenset[str]:
    """First names (as written) used in Sweden or common anywhere, from gender-guesser's offline dictionary.

    The dictionary's country columns hold a frequency digit (1–D, hex) per country; we keep a name if Sweden
    has it at all or any country has it at frequency 4 or more (that covers names of Swedes of every origin).
    """
    sweden = _NAME_COUNTRIES.index("sweden")
    data = resources.files("gender_guesser").joinpath("data/nam_dict.txt").read_text(encoding="utf-8")
    names: set[str] = set()
    for line in data.splitlines():
        if line.startswith("#") or len(line) < 31 or "+" in line[:30]:
            continue
        name, freq = line[3:29].strip(), line[30:].rstrip("$ ")
        if not name or " " in name:
            continue
        if (len(freq) > sweden and freq[sweden] != " ") or any(c in "456789ABCD" for c in freq):
            names.add(name)
    return frozenset(names)


def sentence_start(text: str, pos: int) -> bool:
    """Whether the word at `pos` begins a sentence (quotes and dashes before it do not count)."""
    before = text[:pos].rstrip(" \"'(«»–-")
    return not before or before[-1] in _SENTENCE_END


def _name_key(value: str) -> str:
    """A name's matching key: casefolded, without a genitive -s ("Lisas" and "Lisa" are one person)."""
    key = value.casefold()
    last = key.rsplit(" ", 1)[-1]
    base = last[:-1]
    if last.endswith("s") and len(last) > 3 and (base.capitalize() in first_names() or _SURNAME_RE.match(
            base.capitalize())):
        key = key[:-1]
    return key


def _name_spans(text: str, extra: frozenset[str]) -> list[Span]:
    names, common = first_names(), _common_words()
    words = list(_WORD_RE.finditer(text))
    spans: list[Span] = []
    i = 0
    while i < len(words):
        w = words[i]
        token = w.group()
        folded = token.casefold()
        is_name = False
        if folded in extra:
            is_name = True
        elif token[:1].isupper() and not token.isupper():
            base = token[:-1] if token.endswith("s") and len(token) > 3 else token  # genitive: "Lisas"
            if token in names or base in names or _SURNAME_RE.match(token) or _SURNAME_RE.match(base):
                is_name = folded not in common or not sentence_start(text, w.start())
        if not is_name:
            i += 1
            continue
        end = w.end()
        j = i + 1
        # "Anna Karlsson", "Anna-Lena Berg Ek": following capitalised words directly after join the name.
        while j < len(words) and text[end:words[j].start()] == " " and words[j].group()[:1].isupper() \
                and words[j].group().casefold() not in common:
            end = words[j].end()
            j += 1
        value = text[w.start():end]
        spans.append(Span(w.start(), end, "person", _name_key(value), value))
        i = j
    for m in _NAME_CUE_RE.finditer(text):
        token = m.group(1)
        if token.casefold() not in common:
            spans.append(Span(m.start(1), m.end(1), "person", _name_key(token), token))
    return spans


IDENTITY_KINDS = ("pnr", "samordningsnummer")


def identity_numbers(text: str) -> list[Span]:
    """Valid personnummer and samordningsnummer in `text` (what `detect` finds of those kinds, without running
    the other detectors); `key` is the ten digits YYMMDDNNNC, whatever the century or separator."""
    out = []
    for m in _PNR_RE.finditer(text):
        kind = identity_number_kind(m.group())
        if kind in IDENTITY_KINDS:
            out.append(Span(m.start(), m.end(), kind, _digits(m.group(1))[-6:] + m.group(3), m.group()))
    return out


def detect(text: str, *, extra_names: Iterable[str] = ()) -> list[Span]:
    """Personal data in one line of text, non-overlapping, in order. `extra_names`: names known for this
    recording (speakers' names, the caseworker's additions) matched whole-word, case-insensitively."""
    found: list[Span] = []
    for m in _PNR_RE.finditer(text):
        kind = identity_number_kind(m.group())
        if kind:
            found.append(Span(m.start(), m.end(), kind, _digits(m.group(1))[-6:] + m.group(3), m.group()))
    for m in _EMAIL_RE.finditer(text):
        found.append(Span(m.start(), m.end(), "email", m.group().casefold(), m.group()))
    for m in _PHONE_RE.finditer(text):
        key = _phone_key(m.group().rstrip(" -"))
        if key:
            s = m.group().rstrip(" -")
            found.append(Span(m.start(), m.start() + len(s), "phone", key, s))
    for m in _ADDRESS_RE.finditer(text):
        n = _HOUSE_NUMBER_RE.match(text, m.end())
        if n:
            value = text[m.start():n.end()]
            found.append(Span(m.start(), n.end(), "address", " ".join(value.casefold().split()), value))
    for m in _POSTCODE_RE.finditer(text):
        found.append(Span(m.start(), m.end(), "postcode", m.group(1) + m.group(2) + " " + m.group(3).casefold(),
                          m.group()))
    found.extend(_name_spans(text, frozenset(n.casefold() for n in extra_names if n)))
    return _without_overlaps(found)


# A possible personnummer yields to a phone number on the same digits ("0701234567" has a date shape).
_PRIORITY = {"pnr": 0, "samordningsnummer": 0, "email": 1, "phone": 2, "pnr_possible": 2.5, "address": 3,
             "postcode": 4, "person": 5, "manual": 6}


def _without_overlaps(spans: Sequence[Span]) -> list[Span]:
    """Keep the most specific span where spans overlap (numbers before names), then the longest."""
    chosen: list[Span] = []
    for s in sorted(spans, key=lambda s: (_PRIORITY.get(s.kind, 9), -(s.end - s.start), s.start)):
        if all(s.end <= c.start or s.start >= c.end for c in chosen):
            chosen.append(s)
    return sorted(chosen, key=lambda s: s.start)


# --- per recording ---------------------------------------------------------------------------------------

def _entity(row) -> Entity:
    return Entity(row["id"], row["kind"], row["value"], row["match_key"], row["number"], row["source"],
                  row["status"])


def _entities(conn: Connection, rec_id: str) -> list[Entity]:
    rows = conn.execute("SELECT * FROM pii_entities WHERE recording_id = ? ORDER BY kind, number", (rec_id,))
    return [_entity(r) for r in rows]


def _known_names(entities: Sequence[Entity]) -> list[str]:
    return [e.value for e in entities if e.kind == "person" and e.status != "rejected"]


def _spans_for(text: str, entities: Sequence[Entity]) -> list[Span]:
    """Detected spans plus every occurrence of a value the recording already knows (manual additions and
    names found elsewhere in it), whole words, case-insensitively; a part of a known full name ("Mirza" of
    "Mirza Hodžić") counts as that person."""
    common = _common_words()
    spans = list(detect(text, extra_names=[]))
    for e in entities:
        if e.status == "rejected" and e.source == "detected":
            continue
        kind, key = (e.kind if e.source == "detected" else "manual"), e.key
        values = [e.value]
        if e.kind == "person":
            values += [w for w in e.value.split() if len(w) >= 3 and w.casefold() not in common]
        for value in values:
            # An optional genitive -s: "Lisas" is Lisa.
            for m in re.finditer(r"(?<![\w])" + re.escape(value) + r"s?(?![\w])", text, re.IGNORECASE):
                spans.append(Span(m.start(), m.end(), kind, key, m.group()))
    return _without_overlaps(spans)


def _next_numbers(entities: Sequence[Entity]) -> dict[str, int]:
    top: dict[str, int] = {}
    for e in entities:
        top[e.kind] = max(top.get(e.kind, 0), e.number)
    return top


def sync(conn: Connection, rec_id: str) -> list[Entity]:
    """Detect personal data in the recording's current transcript and store new values as `pending` with the
    next placeholder number of their kind. Returns all entities. The caller has authorised the recording."""
    with transaction(conn):
        entities = _entities(conn, rec_id)
        known = {(e.kind, e.key) for e in entities}
        numbers = _next_numbers(entities)
        segments = recordings.transcript_segments(conn, rec_id)
        for text in [s.text for s in segments] + _speaker_names_as_text(segments):
            for span in detect(text):
                if (span.kind, span.key) in known:
                    continue
                numbers[span.kind] = numbers.get(span.kind, 0) + 1
                conn.execute(
                    "INSERT INTO pii_entities (recording_id, kind, value, match_key, number, source, status, "
                    "created_at) VALUES (?, ?, ?, ?, ?, 'detected', 'pending', ?)",
                    (rec_id, span.kind, span.text, span.key, numbers[span.kind], clock.now()))
                known.add((span.kind, span.key))
        return _entities(conn, rec_id)


_NAME_CONTEXT = "med "  # a speaker's name is read as if inside a sentence, where a capital means a name


def _speaker_names_as_text(segments: Sequence[recordings.TranscriptSegment]) -> list[str]:
    """Names caseworkers gave speakers ("Anna Svensson" rather than "Mamma"), as text the detector reads."""
    return [_NAME_CONTEXT + n for n in dict.fromkeys(s.speaker_name for s in segments if s.speaker_name)]


def _speaker_for_model(name: str, entities: Sequence[Entity]) -> str:
    return pseudonymize_text(_NAME_CONTEXT + name, entities)[len(_NAME_CONTEXT):] if name else name


@dataclass(frozen=True)
class MarkedSegment:
    """A transcript line cut into plain text and personal-data parts, for highlighting."""
    idx: int
    start: float
    parts: tuple[tuple[str, Entity | None], ...]


def _entity_for(span: Span, by_key: dict[tuple[str, str], Entity], manual: dict[str, Entity],
                persons: Sequence[Entity]) -> Entity | None:
    if span.kind == "manual":
        return manual.get(span.key)
    found = by_key.get((span.kind, span.key)) or manual.get(span.key)
    if found is None and span.kind == "person":  # "Mirza" alone, known as "Mirza Hodžić": that person
        owners = [e for e in persons if span.key in e.key.split()]
        found = owners[0] if len(owners) == 1 else None
    return found


def _cut(text: str, entities: Sequence[Entity]) -> list[tuple[str, Entity | None]]:
    """`text` as plain parts and personal-data parts. A detected part the recording does not know yet (text
    from outside the transcript, e.g. a question) gets an unnumbered stand-in entity of its kind (id 0)."""
    by_key = {(e.kind, e.key): e for e in entities if e.source == "detected"}
    manual = {e.key: e for e in entities if e.source == "manual"}
    persons = [e for e in entities if e.kind == "person" and e.status != "rejected"]
    parts: list[tuple[str, Entity | None]] = []
    pos = 0
    for span in _spans_for(text, entities):
        entity = _entity_for(span, by_key, manual, persons)
        if entity is None:
            if span.kind == "manual":
                continue
            entity = Entity(0, span.kind, span.text, span.key, 0, "detected", "pending")
        if span.start > pos:
            parts.append((text[pos:span.start], None))
        parts.append((text[span.start:span.end], entity))
        pos = span.end
    if pos < len(text):
        parts.append((text[pos:], None))
    return parts


def review(conn: Connection, user: User, rec_id: str) -> tuple[list[Entity], list[MarkedSegment]]:
    """The Personuppgifter tab: entities and the transcript with detections marked (viewer rights, audited)."""
    access.require_recording(conn, user, rec_id, "recording.pii")
    entities = sync(conn, rec_id)
    marked = [MarkedSegment(s.idx, s.start, tuple(_cut(s.text, entities)))
              for s in recordings.transcript_segments(conn, rec_id)]
    return entities, marked


def pseudonymize_text(text: str, entities: Sequence[Entity]) -> str:
    """Replace every non-rejected personal-data part of `text` by its placeholder."""
    return "".join(part if entity is None or entity.status == "rejected" else entity.placeholder
                   for part, entity in _cut(text, entities))


def segments_for_model(conn: Connection, rec_id: str, *, reveal: bool = False,
                       user: User | None = None) -> list[recordings.TranscriptSegment]:
    """The transcript as the assistant and exports get it: pseudonymized, or (reveal=True, a choice the
    caseworker makes per request) the real text, audited as `pii.reveal`. The caller has authorised the
    recording; `user` names who revealed."""
    from dataclasses import replace

    segments = recordings.transcript_segments(conn, rec_id)
    if reveal:
        with transaction(conn):
            audit.record(conn, user.actor if user else "system", "pii.reveal", f"recording:{rec_id}",
                         role=access.content_role(user) if user else None)
        return segments
    entities = sync(conn, rec_id)
    return [replace(s, text=pseudonymize_text(s.text, entities),
                    speaker_name=_speaker_for_model(s.speaker_name, entities)) for s in segments]


def reidentifier(conn: Connection, rec_id: str) -> Callable[[str], str]:
    """`reidentify` for many texts of one recording: the entities are read once."""
    mapping = {e.placeholder: e.value for e in _entities(conn, rec_id)}
    return lambda text: re.sub(r"\[[A-ZÅÄÖ\-]+ \d+\]", lambda m: mapping.get(m.group(), m.group()), text)


def reidentify(conn: Connection, rec_id: str, text: str) -> str:
    """Put the real values back into model output that uses this recording's placeholders (for the
    caseworker's eyes only; the caller has authorised the recording)."""
    return reidentifier(conn, rec_id)(text)


def decide(conn: Connection, user: User, rec_id: str, entity_id: int | str, status: str) -> Entity:
    """Confirm, reject or reset (pending) one detection or addition. Editor rights; audited (ids only)."""
    if status not in STATUSES:
        raise ApplianceError("Okänt val. Välj bekräfta eller ta bort.")
    access.require_recording(conn, user, rec_id, "recording.pii_decide")
    with transaction(conn):
        row = conn.execute("SELECT * FROM pii_entities WHERE id = ? AND recording_id = ?",
                           (_int(entity_id), rec_id)).fetchone()
        if row is None:
            raise ApplianceError("Uppgiften finns inte längre. Ladda om sidan.")
        if row["source"] == "manual" and status == "rejected":
            conn.execute("DELETE FROM pii_entities WHERE id = ?", (row["id"],))
        else:
            conn.execute("UPDATE pii_entities SET status = ?, decided_by = ?, decided_at = ? WHERE id = ?",
                         (status, user.id, clock.now(), row["id"]))
        audit.record(conn, user.actor, "pii.decide", f"recording:{rec_id}", role=access.content_role(user),
                     data={"entity": row["id"], "kind": row["kind"], "status": status})
    return _entity({**dict(row), "status": status})


def add_manual(conn: Connection, user: User, rec_id: str, value: str, kind: str = "person") -> Entity:
    """The caseworker's own addition: `value` is replaced wherever it occurs in the recording. Editor rights."""
    value = " ".join((value or "").split())
    if kind not in LABELS:
        raise ApplianceError("Välj vilken sorts uppgift det är.")
    if not value or len(value) > MAX_MANUAL:
        raise ApplianceError(f"Skriv ordet eller uttrycket som ska döljas (högst {MAX_MANUAL} tecken).")
    access.require_recording(conn, user, rec_id, "recording.pii_decide")
    with transaction(conn):
        entities = _entities(conn, rec_id)
        key = value.casefold()
        existing = next((e for e in entities if e.key == key and e.kind == kind), None)
        if existing is not None:
            conn.execute("UPDATE pii_entities SET status = 'confirmed', decided_by = ?, decided_at = ? WHERE id = ?",
                         (user.id, clock.now(), existing.id))
            entity_id = existing.id
        else:
            number = _next_numbers(entities).get(kind, 0) + 1
            entity_id = conn.execute(
                "INSERT INTO pii_entities (recording_id, kind, value, match_key, number, source, status, "
                "decided_by, decided_at, created_at) VALUES (?, ?, ?, ?, ?, 'manual', 'confirmed', ?, ?, ?)",
                (rec_id, kind, value, key, number, user.id, clock.now(), clock.now())).lastrowid
        audit.record(conn, user.actor, "pii.add", f"recording:{rec_id}", role=access.content_role(user),
                     data={"entity": entity_id, "kind": kind})
        row = conn.execute("SELECT * FROM pii_entities WHERE id = ?", (entity_id,)).fetchone()
    return _entity(row)


def _int(value: int | str) -> int | None:
    return parse_id(value)
