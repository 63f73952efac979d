"""One way to show a reviewed draft (appliance/assistant/drafts.py), whether a summary on the recording page
(web/assistant_summaries.py) or a case draft on its own page (web/case_drafts.py): `draft_view` builds what the
`draft_body` macro of templates/_draft.html renders — progress, the error and a retry, sections with cited
statements and the checker's flags, the review gate and the text to copy. Only the citations differ (a line of
this recording's transcript, or conversation + line of a case), so the caller resolves them (`Cite`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.assistant import grounding
from appliance.assistant.drafts import ReviewedDraft
from appliance.assistant.summarize import copied, plain_text
from web.i18n import _


@dataclass(frozen=True)
class Cite:
    """One citation link: its label ("12", "B2"), where it goes (None: not a transcript line), the player
    position to seek to on this page (None: another page), and what a screen reader says."""

    text: str
    href: str | None
    seek: float | None
    aria: str


def _words(noun: str) -> dict[str, str]:
    """Swedish agreement differs: en sammanfattning är granskad, ett utkast är granskat."""
    if noun == "summary":
        return {"failed": _("Sammanfattningen misslyckades."),
                "slow": _("Sammanfattningen har inte börjat ännu. Assistenten kan vara upptagen eller nere; sidan "
                          "fortsätter att vänta. Kvarstår det, kontakta IT."),
                "mark_reviewed": _("Markera som granskad"),
                "mark_transferred": _("Markera som överförd till verksamhetssystemet"),
                "as_text": _("Sammanfattningen som text"),
                "check_against": _("utskriften")}
    return {"failed": _("Utkastet misslyckades."),
            "slow": _("Utkastet har inte börjat ännu. Assistenten kan vara upptagen eller nere; sidan fortsätter att "
                      "vänta. Kvarstår det, kontakta IT."),
            "mark_reviewed": _("Markera som granskat"),
            "mark_transferred": _("Markera som överfört till verksamhetssystemet"),
            "as_text": _("Utkastet som text"),
            "check_against": _("underlaget")}


@dataclass(frozen=True)
class DraftView:
    d: ReviewedDraft
    noun: str
    sections: list[dict]
    plain_text: str
    review_url: str
    retry_url: str
    text_id: str
    level: int = 3  # heading level of the sections
    edit_url: str | None = None  # statements can be corrected while a draft (summaries)
    accept_url: str | None = None  # a flagged statement can be accepted as it stands while a draft
    can_edit: bool = True
    fields: dict = field(default_factory=dict)  # hidden form fields naming the draft
    help: str | None = None
    downloads: dict = field(default_factory=dict)  # format ("docx", "txt") → URL of the reviewed draft's file

    @property
    def words(self) -> dict[str, str]:
        return _words(self.noun)


def statement_view(st: dict, cites: list[Cite]) -> dict:
    """A stored statement for the page: text, resolved citations, the checker's verdict in words."""
    return {**st, "cites": cites, "flagged": st.get("status", grounding.OK) != grounding.OK,
            "status_text": grounding.STATUS_TEXT.get(st.get("status", ""), st.get("status", "")),
            "missing": st.get("missing", []), "edited": st.get("edited", False),
            "accepted": st.get("accepted", False), "copied": copied(st)}


def sections_view(content: dict | None, resolve) -> list[dict]:
    """The draft's sections with each statement's citations resolved by `resolve(numbers) -> list[Cite]`."""
    return [{"heading": sec["heading"],
             "statements": [statement_view(st, resolve(st.get("citations", []))) for st in sec["statements"]]}
            for sec in (content or {}).get("sections", [])]


def draft_view(d: ReviewedDraft, noun: str, content: dict | None, resolve, **kwargs) -> DraftView:
    return DraftView(d, noun, sections_view(content, resolve), plain_text(content) if content else "", **kwargs)
