"""A synthetic long meeting for the recording page's tests and bench (issue 15): a 90-minute transcript has over a
thousand lines, more than any clip the tests can afford to transcribe. Lines are written to the database the way
the asr unit writes them (appliance.transcripts.store + speakers.store_machine), with Whisper-like word
probabilities, so doubtful words, speakers and the Förslag tab have something to show. Deterministic."""

from __future__ import annotations

from appliance.platform.db import Connection, transaction
from appliance.ports import Segment, Transcript, TranscriptInfo, Word
from appliance.transcripts import speakers
from appliance.transcripts.store import replace_segments

SENTENCES = (
    "Vi börjar med att gå igenom hur veckan har varit hemma.",
    "Han sover dåligt och vaknar flera gånger varje natt.",
    "Skolan har hört av sig om frånvaron under hösten.",
    "Jag tycker att samarbetet med förskolan fungerar bättre nu.",
    "Vi kan boka ett nytt möte om två veckor med skolkuratorn.",
    "Ekonomin är ansträngd sedan i våras och hyran är sen.",
    "Mormor hjälper till med hämtningar på tisdagar och torsdagar.",
    "Det har blivit lugnare efter att vi ändrade rutinerna på kvällen.",
    "Jag vill att ni kontaktar barnpsykiatrin innan nästa möte.",
    "Vi skriver in det i planen och följer upp det i december.",
)
DOUBTFUL = {"frånvaron", "barnpsykiatrin", "skolkuratorn"}  # words "Whisper" is unsure of (probability 0.3)
LINE_SECONDS = 5.0


def meeting(minutes: float = 90.0, speakers_n: int = 3) -> list[Segment]:
    """Lines of LINE_SECONDS each for `minutes`, speakers taking turns, with word timings and probabilities."""
    out = []
    for i in range(int(minutes * 60 / LINE_SECONDS)):
        text = f"{SENTENCES[i % len(SENTENCES)][:-1]} ({i + 1})."
        start = i * LINE_SECONDS
        tokens = text.split()
        step = (LINE_SECONDS - 0.5) / len(tokens)
        words = tuple(Word(start + k * step, start + (k + 1) * step, " " + w,
                           0.3 if w.strip(".,").lower() in DOUBTFUL else 0.95) for k, w in enumerate(tokens))
        out.append(Segment(start, start + LINE_SECONDS - 0.5, text, words, speaker=1 + (i // 2) % speakers_n))
    return out


def store_meeting(conn: Connection, rec_id: str, minutes: float = 90.0) -> int:
    """Replace the recording's transcript with a synthetic meeting and make it ready; returns the line count."""
    segments = meeting(minutes)
    with transaction(conn):  # one commit, as the asr unit's result transaction
        replace_segments(conn, rec_id, segments)
        speakers.store_machine(conn, rec_id, Transcript(TranscriptInfo("sv", minutes * 60), segments,
                                                        diarization="done", speakers=3))
        conn.execute("UPDATE recordings SET status = 'ready', progress = 1, duration = ? WHERE id = ?",
                     (minutes * 60, rec_id))
    return len(segments)
