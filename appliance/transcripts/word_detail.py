"""How much detail a recording's stored transcript has below the line, for the recording page to say.

Transcription backends differ (appliance.ports.TranscriberCapabilities): in-process faster-whisper and the
project's Triton model store every word with its times and probability; NVIDIA's TensorRT-LLM Whisper protocol
and Riva's Whisper models give lines only; some Riva models give words without confidences. What the page can
offer follows from what was stored: word times (else playback starts per line) and word probabilities (else
the correction suggestions come from the lexicon only). Counts only; the caller has authorised the read.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.platform.db import Connection


@dataclass(frozen=True)
class WordDetail:
    lines: int
    words: int
    probabilities: int  # words with a probability

    @property
    def word_timestamps(self) -> bool:
        return self.words > 0

    @property
    def word_probabilities(self) -> bool:
        return self.probabilities > 0


def for_recording(conn: Connection, rec_id: str) -> WordDetail:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM segments WHERE recording_id = :r) AS lines, count(w.segment_id) AS words, "
        "count(w.probability) AS probabilities FROM words w JOIN segments s ON s.id = w.segment_id "
        "WHERE s.recording_id = :r", {"r": rec_id}).fetchone()
    return WordDetail(int(row["lines"]), int(row["words"]), int(row["probabilities"]))
