"""Summary templates: the built-in ones (BBIC, the general journal note, advice to the client in plain
language), the office's own added by admins in the UI (table `assistant_templates`, migration 0010) and
those shipped as TOML files in `assistant.templates_dir`.

A template is a name, its headings in order and instructions for the model. The summary's JSON schema is
built from the headings, so the model can write under those headings and no others.

A template file (UTF-8 TOML, one per template, the file name without `.toml` is its key):

    name = "Uppföljning försörjningsstöd"
    headings = ["Aktuell situation", "Planering", "Överenskommelser"]
    instructions = "Skriv kort. Ta med datum för nästa möte om det nämns."
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appliance import clock
from appliance.config import Config
from appliance.errors import ApplianceError, NotFound
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.users.accounts import User

log = logging.getLogger(__name__)

MAX_NAME, MAX_HEADING, MAX_HEADINGS, MAX_INSTRUCTIONS = 80, 80, 30, 2000
_KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")


@dataclass(frozen=True)
class Template:
    key: str            # "bbic", "journal", "rad", "office-<id>", "file-<stem>"
    name: str
    headings: tuple[str, ...]
    instructions: str = ""
    source: str = "builtin"  # builtin, office (admin UI) or file
    groups: tuple[tuple[str, int], ...] = ()  # (group title, number of headings) for display, e.g. BBIC's sides
    hints: tuple[tuple[str, str], ...] = ()   # (heading, what belongs there) for the model, built-in templates only
    words: tuple[tuple[str, str], ...] = ()   # (heading, words that say a line belongs there) for guided drafting
    # Guided drafting: headings whose lines come at the end of a meeting (agreements, the next meeting), so a later
    # line ranks higher there; and how many statements a heading may hold when not the office's setting (0).
    late_headings: tuple[str, ...] = ()
    max_per_heading: int = 0

    def hint(self, heading: str) -> str:
        return dict(self.hints).get(heading, "")

    def word_list(self, heading: str) -> list[str]:
        """Words (word beginnings) that place a line under `heading` (appliance/assistant/sorting.py): the built-in
        templates' lists, else the words of the template's instructions that name the heading's topic."""
        return dict(self.words).get(heading, "").split()

    def grouped(self) -> list[tuple[str, list[str]]]:
        """Headings under their group titles ("" when the template has no groups)."""
        if not self.groups:
            return [("", list(self.headings))]
        out, pos = [], 0
        for title, count in self.groups:
            out.append((title, list(self.headings[pos:pos + count])))
            pos += count
        return out


_BBIC_SIDES = (
    ("Barnets utveckling", ("Hälsa", "Utbildning", "Känslo- och beteendemässig utveckling", "Identitet",
                            "Familj och sociala relationer", "Socialt uppträdande", "Förmåga att klara sig själv")),
    ("Föräldrarnas förmåga", ("Grundläggande omsorg", "Säkerhet", "Känslomässig tillgänglighet", "Stimulans",
                              "Vägledning och gränssättning", "Stabilitet")),
    ("Familj och miljö", ("Familjens bakgrund och funktionssätt", "Vidare familj", "Boende", "Arbete", "Ekonomi",
                          "Social integrering", "Lokalsamhällets resurser")),
)

# What belongs under a heading, in the model's prompt: a small model places "sover dåligt" or "slutade i basketlaget"
# far better with these than from the bare heading (measured with bench/assistant_quality.py).
_BBIC_HINTS = {
    "Hälsa": "kropp, sömn, ont, vård, tandvård",
    "Utbildning": "förskola, skola, närvaro, skolresultat, stöd i skolan",
    "Känslo- och beteendemässig utveckling": "hur barnet mår och reagerar, oro, ilska, nedstämdhet",
    "Identitet": "vem barnet är, intressen, kultur, tro",
    "Familj och sociala relationer": "relationer till föräldrar, syskon och vänner",
    "Socialt uppträdande": "hur barnet beter sig mot andra, konflikter",
    "Förmåga att klara sig själv": "vad barnet klarar på egen hand, ansvar",
    "Grundläggande omsorg": "mat, sömnrutiner, kläder, hygien, tillsyn",
    "Säkerhet": "skydd mot våld, hot och faror",
    "Känslomässig tillgänglighet": "förälderns värme, närvaro och ork",
    "Stimulans": "lek, läxhjälp, fritidsaktiviteter som föräldern ger",
    "Vägledning och gränssättning": "regler, gränser, hur föräldern reagerar",
    "Stabilitet": "fasta rutiner, kontinuitet, växelvis boende",
    "Familjens bakgrund och funktionssätt": "separation, konflikter mellan föräldrarna, förälderns hälsa",
    "Vidare familj": "mor- och farföräldrar, släkt som stöttar",
    "Boende": "bostad, trångboddhet, hyreskontrakt",
    "Arbete": "föräldrarnas arbete, sjukskrivning, arbetslöshet",
    "Ekonomi": "inkomster, skulder, bidrag",
    "Social integrering": "nätverk, föreningar, kontakter i samhället",
    "Lokalsamhällets resurser": "stöd och insatser: vårdcentral, kurator, fritidsgård, logoped, stödgrupp",
}
_JOURNAL_HINTS = {
    "Aktuell fråga": "varför samtalet hålls, vad som hänt",
    "Samtycke": "vad klienten samtycker till",
    "Språk": "modersmål, tolk",
    "Familj": "vilka som ingår i familjen, relationer, umgänge",
    "Arbete": "arbete, arbetslöshet, sjukskrivning, arbetsträning",
    "Utbildning": "skola, förskola, studier",
    "Hälsa och socialt": "fysisk och psykisk hälsa, sömn, missbruk, fritid",
    "Planering och uppföljning": "vad som ska göras och när, nästa möte",
    "Åtgärder och insatser": "insatser och stöd som ges eller erbjuds",
    "Ekonomi": "inkomster, hyra, skulder, bistånd",
    "Övriga kontakter": "skola, vård, myndigheter och andra kontakter",
}

# Guided drafting (appliance/assistant/sorting.py) places a line under the heading whose words it shares most (word
# beginnings, compared after a light Swedish stemming). General social-services vocabulary for each heading, not
# tuned to any one conversation.
_MONTHS_DAYS = ("januari februari mars april maj juni juli augusti september oktober november december måndag tisdag "
                "onsdag torsdag fredag lördag söndag")
_BBIC_WORDS = {
    "Hälsa": "hälsa frisk sjuk ont värk mage huvud sover sova somna sömn vaknar trött vikt läkare vårdcentral "
             "sjukhus akuten tandläkare medicin tal talet logoped allergi astma",
    "Utbildning": "skola skolan förskola förskolan lektion lektioner närvaro frånvaro klass klassen lärare mentor "
                  "fröken speciallärare läsa läser läxor betyg elevhälsa anpassningar utvecklingssamtal",
    "Känslo- och beteendemässig utveckling": "känner känslor mår ledsen nere arg ilska rädd oro orolig glad gladare "
                                             "reagerat reagerar gråter ångest nedstämd",
    "Identitet": "identitet intresse intressen kultur religion tro modersmål",
    "Familj och sociala relationer": "kompis kompisar vän vänner kamrater syskon syster systrar bror umgås saknar "
                                     "relation",
    "Socialt uppträdande": "konflikt konflikter bråkar slagit slår rasten rasterna beter beteende uppträder",
    "Förmåga att klara sig själv": "själv ansvar klarar",
    "Grundläggande omsorg": "mat äter frukost kläder hygien tvättar läggdags kvällarna sängen tillsyn omsorg",
    "Säkerhet": "säkerhet våld knuff slog hot hotfull skydd kontaktförbud polis säkerhetsplan farlig",
    "Känslomässig tillgänglighet": "rösten skriker tröstar värme ork orkar närvarande",
    "Stimulans": "leker lek bok böcker aktivitet fritidsaktivitet träning tränar",
    "Vägledning och gränssättning": "regler gränser nej tjat beröm skärm skärmtid",
    "Stabilitet": "rutiner rutin varannan överlämning överlämningarna flytta flyttade stabil",
    "Familjens bakgrund och funktionssätt": "separerade skilda sambo föräldrarna psykisk depression alkohol "
                                            "missbruk",
    "Vidare familj": "mormor morfar farmor farfar kusin moster faster morbror farbror släkt släktingar",
    "Boende": "bor boende bostad lägenhet tvåa trea rum vardagsrum hyresvärd hyreskontrakt trångt bostadssociala",
    "Arbete": "arbete arbetar jobb jobbar sjukskriven sjukskrivning arbetslös uppsagd arbetsförmedlingen halvtid",
    "Ekonomi": "ekonomi ekonomin pengar hyra hyran skuld skulder kronofogden bidrag lön sjukpenning "
               "försörjningsstöd räcker",
    "Social integrering": "förening föreningar lag laget nätverk fritid",
    "Lokalsamhällets resurser": "vårdcentralen kurator fritidsgård fritidsgården fritidsledare logoped stödgrupp "
                                "kvinnojour familjerätten familjebehandling elevhälsomöte öppenvården remiss",
}
_JOURNAL_WORDS = {
    "Aktuell fråga": "anmälan orosanmälan ansökt ansökan söker anledning hände hänt",
    "Samtycke": "samtycke samtycker godkänner",
    "Språk": "språk modersmål tolk",
    "Familj": "familj familjen mamma pappa barnen son dotter syskon sambo separerade träffar umgänge varannan "
              "mormor kusin bror syster överlämningarna",
    "Arbete": "arbete arbetar jobb jobbar sjukskriven arbetslös uppsagd arbetsförmedlingen halvtid arbetsträning "
              "a-kassan",
    "Utbildning": "skola skolan förskola förskolan lektion närvaro frånvaro gymnasiet lärare mentor klass läsa",
    "Hälsa och socialt": "hälsa mår sover sömn ont mage huvud trött frisk sjuk läkare akuten psykisk depression "
                         "alkohol nykter druckit missbruk medicin fritid rädd",
    "Planering och uppföljning": "nästa ses igen uppföljning möte mötet planering veckor månad " + _MONTHS_DAYS,
    "Åtgärder och insatser": "insats insatser stöd behandling familjebehandling remiss kurator stödgrupp "
                             "kvinnojour säkerhetsplan öppenvården erbjuda erbjuder",
    "Ekonomi": "ekonomi pengar hyra hyran skuld skulder kronofogden bidrag bistånd lön sjukpenning "
               "försörjningsstöd studiebidrag underhållsstöd räcker",
    "Övriga kontakter": "kontakta kontakt mejla ringer ringa",
}
_RAD_WORDS = {
    "Råd och överenskommelser": "ska föreslår boka bokar ses igen nästa kontakta skicka lämna ansöka remiss "
                                "numret ringa fortsätta erbjuda erbjuder " + _MONTHS_DAYS,
}

BUILTIN: dict[str, Template] = {
    "bbic": Template(
        "bbic", "BBIC (Barns behov i centrum)",
        tuple(f"{side}: {h}" for side, hs in _BBIC_SIDES for h in hs),
        "Sortera det som sägs om barnet och familjen under BBIC-triangelns rubriker: barnets utveckling, "
        "föräldrarnas förmåga och familj och miljö. Lämna en rubrik tom om inget sägs om den. Skriv i tredje "
        "person, t.ex. \"Mamma berättar att ...\".",
        groups=tuple((side, len(hs)) for side, hs in _BBIC_SIDES),
        hints=tuple((f"{side}: {h}", _BBIC_HINTS[h]) for side, hs in _BBIC_SIDES for h in hs),
        words=tuple((f"{side}: {h}", _BBIC_WORDS[h]) for side, hs in _BBIC_SIDES for h in hs)),
    "journal": Template(
        "journal", "Journalanteckning (allmän)",
        ("Aktuell fråga", "Samtycke", "Språk", "Familj", "Arbete", "Utbildning", "Hälsa och socialt",
         "Planering och uppföljning", "Åtgärder och insatser", "Ekonomi", "Övriga kontakter"),
        "Skriv en journalanteckning från samtalet under rubrikerna. Lämna en rubrik tom om inget sägs om den. "
        "Skriv i tredje person, t.ex. \"Klienten berättar att ...\".",
        hints=tuple(_JOURNAL_HINTS.items()), words=tuple(_JOURNAL_WORDS.items()),
        late_headings=("Planering och uppföljning",)),
    "rad": Template(
        "rad", "Råd till klienten (lätt språk)",
        ("Råd och överenskommelser",),
        "Skriv de råd och överenskommelser som klienten fick i samtalet som en lista till klienten: "
        "tilltala klienten med du, använd korta meningar och enkla ord som en tolvåring förstår.",
        words=tuple(_RAD_WORDS.items()), late_headings=("Råd och överenskommelser",), max_per_heading=6),
}


def _clean_headings(headings: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for h in headings:
        h = " ".join(str(h).split())
        if h and h not in out:
            out.append(h)
    if not out:
        raise ApplianceError("Ange minst en rubrik (en per rad).")
    if len(out) > MAX_HEADINGS:
        raise ApplianceError(f"En mall kan ha högst {MAX_HEADINGS} rubriker.")
    if any(len(h) > MAX_HEADING for h in out):
        raise ApplianceError(f"En rubrik får vara högst {MAX_HEADING} tecken.")
    return tuple(out)


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ApplianceError("Ge mallen ett namn.")
    if len(name) > MAX_NAME:
        raise ApplianceError(f"Mallens namn får vara högst {MAX_NAME} tecken.")
    return name


def _clean_instructions(text: str) -> str:
    text = (text or "").strip()
    if len(text) > MAX_INSTRUCTIONS:
        raise ApplianceError(f"Instruktionerna får vara högst {MAX_INSTRUCTIONS} tecken.")
    return text


# ------------------------------------------------------------------------------------------ files

def load_file(path: Path) -> Template:
    """One template file; ApplianceError naming the file and the problem when it is not usable."""
    key = "file-" + path.stem.lower()
    if not _KEY.match(path.stem.lower()):
        raise ApplianceError(f"Mallfilen {path.name}: filnamnet får bara innehålla a–z, 0–9, - och _.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ApplianceError(f"Mallfilen {path.name} kan inte läsas: {exc}") from exc
    unknown = set(data) - {"name", "headings", "instructions"}
    if unknown:
        raise ApplianceError(f"Mallfilen {path.name}: okänd nyckel {sorted(unknown)[0]!r} "
                             "(tillåtna: name, headings, instructions).")
    headings = data.get("headings")
    if not isinstance(headings, list) or not all(isinstance(h, str) for h in headings):
        raise ApplianceError(f"Mallfilen {path.name}: headings ska vara en lista med texter.")
    try:
        return Template(key, _clean_name(str(data.get("name", ""))), _clean_headings(headings),
                        _clean_instructions(str(data.get("instructions", ""))), source="file")
    except ApplianceError as exc:
        raise ApplianceError(f"Mallfilen {path.name}: {exc}") from exc


def file_templates(cfg: Config) -> list[Template]:
    """The templates in `assistant.templates_dir`; a broken file is logged and skipped, never fatal."""
    folder = cfg.assistant.templates_dir
    if folder is None or not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.toml")):
        try:
            out.append(load_file(path))
        except ApplianceError as exc:
            log.warning("%s", exc)
    return out


# ------------------------------------------------------------------------------------------ office (UI)

def _office(row) -> Template:
    return Template(f"office-{row['id']}", row["name"], tuple(json.loads(row["headings"])), row["instructions"],
                    source="office")


def office_templates(conn: Connection) -> list[Template]:
    return [_office(r) for r in conn.execute("SELECT * FROM assistant_templates ORDER BY name COLLATE NOCASE")]


def _require_admin(user: User) -> None:
    if "admin" not in user.roles or user.disabled:
        raise NotFound("Sidan finns inte.")


def add_office_template(conn: Connection, user: User, *, name: str, headings: str | list[str],
                        instructions: str = "") -> Template:
    """An admin adds the office's own template (headings: one per line). Audited by id, never the text."""
    _require_admin(user)
    lines = headings.splitlines() if isinstance(headings, str) else headings
    name, heads, instr = _clean_name(name), _clean_headings(lines), _clean_instructions(instructions)
    if conn.execute("SELECT 1 FROM assistant_templates WHERE name = ? COLLATE NOCASE", (name,)).fetchone():
        raise ApplianceError("Det finns redan en mall med det namnet.")
    with transaction(conn):
        cur = conn.execute("INSERT INTO assistant_templates (name, headings, instructions, created_by, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", (name, json.dumps(list(heads), ensure_ascii=False), instr,
                                                      user.id, clock.now()))
        audit.record(conn, user.actor, "template.add", f"template:{cur.lastrowid}")
    return get(conn, None, f"office-{cur.lastrowid}")


def delete_office_template(conn: Connection, user: User, template_id: int | str) -> None:
    _require_admin(user)
    try:
        tid = int(template_id)
    except (TypeError, ValueError):
        raise NotFound("Mallen finns inte.") from None
    with transaction(conn):
        if conn.execute("DELETE FROM assistant_templates WHERE id = ?", (tid,)).rowcount != 1:
            raise NotFound("Mallen finns inte.")
        audit.record(conn, user.actor, "template.delete", f"template:{tid}")


# ------------------------------------------------------------------------------------------ lookup

def available(conn: Connection | None, cfg: Config | None) -> list[Template]:
    """Every template a caseworker can choose: built-in, then the office's (UI), then files."""
    out = list(BUILTIN.values())
    if conn is not None:
        out += office_templates(conn)
    if cfg is not None:
        out += file_templates(cfg)
    return out


def get(conn: Connection | None, cfg: Config | None, key: str) -> Template:
    """The template with `key`, or ApplianceError (a clear message) when there is none."""
    key = (key or "").strip().lower()
    if key in BUILTIN:
        return BUILTIN[key]
    if key.startswith("office-") and conn is not None:
        try:
            row = conn.execute("SELECT * FROM assistant_templates WHERE id = ?", (int(key[7:]),)).fetchone()
        except ValueError:
            row = None
        if row is not None:
            return _office(row)
    if key.startswith("file-") and cfg is not None:
        for t in file_templates(cfg):
            if t.key == key:
                return t
    names = ", ".join(t.key for t in available(conn, cfg))
    raise ApplianceError(f"Mallen {key!r} finns inte. Välj en av: {names}.")
