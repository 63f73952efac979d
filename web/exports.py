"""Downloads of text, the way offices work (issue 15): a transcript or a reviewed draft as .docx or .txt.

Files are built in memory for the one response and never stored (no temporary file, `Cache-Control: no-store`);
what goes into them was authorised and audited by the view that asks (web/pii.py, web/assistant_summaries.py,
web/case_drafts.py). A draft keeps its headings: as Word headings in .docx, as lines of their own in .txt (the same
text "Kopiera" copies, appliance.assistant.summarize.plain_text).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import docx
from docx.document import Document
from docx.shared import Pt
from flask import Response

from appliance.assistant.summarize import copied, plain_text

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TXT = "text/plain; charset=utf-8"
FORMATS = ("docx", "txt")


@dataclass(frozen=True)
class Line:
    """One transcript line as exported: its time (m:ss), speaker (may be empty) and text."""

    time: str
    speaker: str
    text: str


def _document() -> Document:
    doc = docx.Document()
    doc.styles["Normal"].font.name = "Calibri"
    doc.styles["Normal"].font.size = Pt(11)
    props = doc.core_properties  # nothing about the box, the user or the library in the file's properties
    props.author = props.last_modified_by = props.comments = props.keywords = props.title = ""
    return doc


def _bytes(doc: Document) -> bytes:
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def transcript_txt(lines: Sequence[Line]) -> str:
    return "".join(f"[{ln.time}] {ln.speaker + ': ' if ln.speaker else ''}{ln.text}\n" for ln in lines)


def transcript_docx(heading: str, note: str, lines: Sequence[Line]) -> bytes:
    """A heading, a note (what the file holds: pseudonymized or not, length), then one paragraph per line with its
    time and speaker in bold."""
    doc = _document()
    doc.add_heading(heading, level=1)
    doc.add_paragraph(note)
    for ln in lines:
        p = doc.add_paragraph()
        p.add_run(f"[{ln.time}] {ln.speaker + ':' if ln.speaker else ''}").bold = True
        p.add_run(" " + ln.text)
    return _bytes(doc)


def draft_txt(content: dict) -> str:
    return plain_text(content)


def draft_docx(content: dict) -> bytes:
    """The draft under its template's name: each section heading a Word heading, each statement a bullet; no line
    numbers (they mean nothing once the recording is purged) and no flagged statement the caseworker has neither
    edited nor accepted, as in the copied text."""
    doc = _document()
    doc.add_heading(content["template"]["name"], level=1)
    for section in content["sections"]:
        doc.add_heading(section["heading"], level=2)
        statements = [s["text"] for s in section["statements"] if copied(s)]
        for text in statements:
            doc.add_paragraph(text, style="List Bullet")
        if not statements:
            doc.add_paragraph("(inget antecknat)")
    return _bytes(doc)


def attachment(body: bytes | str, fmt: str, filename: str) -> Response:
    """The file as a download: built for this response only, never cached."""
    resp = Response(body, content_type=DOCX if fmt == "docx" else TXT)  # mimetype= would add a second charset
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
