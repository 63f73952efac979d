"""The transcript as the language model gets it: numbered segments.

ALL transcript text that goes into any prompt (summaries, chat, topics, case drafts) comes through
`numbered_segments`, so pseudonymization ("[PERSON 1]" instead of names) is applied in one place; only an
explicit per-request choice by the caseworker (`reveal=True`) hands the model the real text. Numbers are the
segment index + 1 (people count from one); `idx` is the segment's index for links into the player.
In an interpreted meeting only the lines in the recording's own language reach the model: the interpreter's
other-language lines say the same again (migration 0024, models/languages.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.platform.db import Connection
from appliance.transcripts import pseudonymize
from appliance.users.accounts import User


@dataclass(frozen=True)
class NumberedSegment:
    number: int          # what the model cites: idx + 1
    idx: int             # the segment's index in the recording (player links, edits)
    start: float
    end: float
    text: str
    speaker: str | None = None  # "Talare 1", or the name caseworkers gave (pseudonymized like the text)

    def line(self) -> str:
        """The segment as one prompt line: `[12] Talare 1: text`. No clock time: it cost a tenth of a long
        transcript's tokens (reading the prompt is the slow part on a CPU) and no answer needs it; citations carry
        the time to the page."""
        who = f" {self.speaker}:" if self.speaker else ""
        return f"[{self.number}]{who} {self.text}"

    def for_check(self) -> str:
        """What a citation of this line vouches for (appliance/assistant/grounding.py): its words and who said
        them ("Mamma berättar att ..." cites a line the mother said)."""
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


def numbered_segments(conn: Connection, recording_id: str, *, reveal: bool = False,
                      user: User | None = None) -> list[NumberedSegment]:
    """The transcript (edited text where edited) of a recording the caller has already authorised with
    access.require_recording, numbered for citations. Empty lines are left out (numbers stay stable).

    Personal data is replaced by the recording's placeholders ("[PERSON 1]", appliance/pseudonymize.py)
    unless the caseworker chose `reveal` for this request; that choice is audited (`pii.reveal`, by `user`).
    """
    segments = pseudonymize.segments_for_model(conn, recording_id, reveal=reveal, user=user)
    row = conn.execute("SELECT language FROM recordings WHERE id = ?", (recording_id,)).fetchone()
    own = row["language"] if row else "sv"
    return [NumberedSegment(s.idx + 1, s.idx, s.start, s.end, s.text.strip(), s.speaker_name or None)
            for s in segments if s.text.strip() and not s.other_language(own)]


def by_number(segments: list[NumberedSegment]) -> dict[int, NumberedSegment]:
    return {s.number: s for s in segments}
