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

BUILTIN: dict[str, Template] = {
    "bbic": Template(
        "bbic", "BBIC (Barns behov i centrum)",
        tuple(f"{side}: {h}" for side, hs in _BBIC_SIDES for h in hs),
        "Sortera det som sägs om barnet och familjen under BBIC-triangelns rubriker: barnets utveckling, "
        "föräldrarnas förmåga och familj och miljö. Lämna en rubrik tom om inget sägs om den.",
        groups=tuple((side, len(hs)) for side, hs in _BBIC_SIDES)),
    "journal": Template(
        "journal", "Journalanteckning (allmän)",
        ("Aktuell fråga", "Samtycke", "Språk", "Familj", "Arbete", "Utbildning", "Hälsa och socialt",
         "Planering och uppföljning", "Åtgärder och insatser", "Ekonomi", "Övriga kontakter"),
        "Skriv en journalanteckning från samtalet under rubrikerna. Lämna en rubrik tom om inget sägs om den."),
    "rad": Template(
        "rad", "Råd till klienten (lätt språk)",
        ("Råd och överenskommelser",),
        "Skriv de råd och överenskommelser som klienten fick i samtalet som en lista till klienten: "
        "tilltala klienten med du, använd korta meningar och enkla ord som en tolvåring förstår."),
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
