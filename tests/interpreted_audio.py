"""An interpreted meeting made with espeak-ng: Swedish lines, each followed by the interpreter's line in another
language (English or Arabic), with pauses between turns; and the reference (start, end, language) of every line.
Shared by tests/test_interpreted.py and bench/interpreted.py."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

SV = ["Hej och välkommen hit i dag.", "Kan du berätta hur det går i skolan?", "Hur sover pojken på nätterna?",
      "Vi ses igen om två veckor.", "Har familjen fått något stöd från kommunen?", "Tack för att du kom hit."]
OTHER = {
    "en": ["The school is going well, thank you.", "He sleeps badly and wakes up at night.",
           "We have not received any help yet.", "My husband works in another city.",
           "I would like to talk to the teacher.", "Thank you very much for your time."],
    "ar": ["المدرسة تسير بشكل جيد شكرا لك", "هو ينام بشكل سيء ويستيقظ في الليل", "لم نحصل على أي مساعدة بعد",
           "زوجي يعمل في مدينة أخرى", "أريد أن أتحدث مع المعلم", "شكرا جزيلا على وقتك"],
}
VOICES = {"sv": "sv", "en": "en-gb", "ar": "ar"}
RATE = 16_000
PAUSE_S = 0.8


def _speak(text: str, voice: str, work: Path) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is missing: `apt-get install espeak-ng` (make test installs it)")
    raw, pcm = work / "raw.wav", work / "pcm.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(pcm)], check=True)
    with wave.open(str(pcm)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def make_meeting(path: Path, other: str, pairs: int) -> list[tuple[float, float, str]]:
    """Write `pairs` Swedish lines each followed by its `other`-language line to `path` (16 kHz mono WAV);
    returns the reference (start, end, language) of every line."""
    pieces, truth, t = [], [], 0.0
    gap = np.zeros(int(PAUSE_S * RATE), "<i2")
    with tempfile.TemporaryDirectory() as tmp:
        for sv, line in list(zip(SV, OTHER[other], strict=True))[:pairs]:
            for lang, text in (("sv", sv), (other, line)):
                pcm = _speak(text, VOICES[lang], Path(tmp))
                pieces += [pcm, gap]
                truth.append((t, t + len(pcm) / RATE, lang))
                t += (len(pcm) + len(gap)) / RATE
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate(pieces).tobytes())
    return truth


def accuracy(lines: list[tuple[float, float, str | None]], truth: list[tuple[float, float, str]],
             default: str = "sv") -> tuple[int, int]:
    """(lines whose language is that of the reference line they overlap most, lines) — a line without a
    language counts as `default`."""
    right = 0
    for start, end, lang in lines:
        ref = max(truth, key=lambda r: min(end, r[1]) - max(start, r[0]))
        right += (lang or default) == ref[2]
    return right, len(lines)
