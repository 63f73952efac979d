"""No words from no speech: Swedish espeak-ng sentences with silence, room noise (pink noise), a hum with rumble and
music (plucked strings) between them, through the real pipeline (Whisper base with its Silero VAD, the diarizer's
speech gate): every transcribed word lies on a sentence, none in an insert. bench/hallucination.py compares with
raw faster-whisper settings."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from appliance.config import load_config
from appliance.ports import SAMPLE_RATE, DiarizeOptions
from appliance.recordings.audio import decode_audio
from models import load_transcriber
from services.transcription import options_for, transcribe_audio
from tests.conftest import speak_swedish
from tests.nonspeech_audio import insert_effects

SENTENCES = ("Hej, jag heter Anna och jag arbetar som socialsekreterare.",
             "Vi ska prata om barnets skola och familjens ekonomi.",
             "Pappa bor i en annan stad och träffar barnen varannan helg.")
INSERT_S = 4.0
INSERTS = insert_effects(INSERT_S)
MARGIN_S = 0.3  # Whisper's word times are approximate


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """silence, sentence, room noise, sentence, hum, sentence, music: the wav and [(start, end, kind)]."""
    tmp = tmp_path_factory.mktemp("hallucination")
    kinds = list(INSERTS)
    order = [kinds[0], SENTENCES[0], kinds[1], SENTENCES[1], kinds[2], SENTENCES[2], kinds[3]]
    parts, spans, t = [], [], 0.0
    for i, part in enumerate(order):
        if part in INSERTS:
            path = tmp / f"{i}.wav"
            subprocess.run(["sox", "-n", "-r", str(SAMPLE_RATE), "-c", "1", str(path), *INSERTS[part]], check=True)
            kind = part
        else:
            path, kind = speak_swedish(part, tmp / f"{i}"), "speech"
        audio = decode_audio(path.read_bytes())
        parts.append(audio)
        spans.append((t, t + len(audio) / SAMPLE_RATE, kind))
        t += len(audio) / SAMPLE_RATE
    wav = tmp / "clip.wav"
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2")
    subprocess.run(["sox", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16", "-c", "1", "-",
                    str(wav)], input=pcm.tobytes(), check=True)
    return wav, spans


def test_inserts_are_not_speech_to_the_diarizer(clip, diarizer):
    """Room noise, hum and music between the sentences: the diarizer's speech lies on the sentences."""
    wav, spans = clip
    result = diarizer.diarize(decode_audio(wav.read_bytes()), DiarizeOptions())
    assert result.turns
    for t in result.turns:
        inside = sum(max(0.0, min(t.end, b) - max(t.start, a)) for a, b, kind in spans if kind != "speech")
        assert inside < 0.5, (t, spans)


def test_no_words_from_silence_noise_or_music(clip, model_store, diarizer):
    wav, spans = clip
    cfg = load_config(environ={})
    transcript = transcribe_audio(load_transcriber(cfg.asr, model_store), wav.read_bytes(), options_for(cfg.asr),
                                  diarizer=diarizer)
    words = [w for s in transcript.segments for w in s.words]
    speech = [(a - MARGIN_S, b + MARGIN_S) for a, b, kind in spans if kind == "speech"]
    invented = [(round(w.start, 1), w.word) for w in words
                if not any(a <= (w.start + w.end) / 2 <= b for a, b in speech)]
    assert invented == [], invented
    text = " ".join(s.text for s in transcript.segments).lower()
    assert sum(k in text for k in ("hej", "jag", "prata", "familj", "barn", "pappa")) >= 3, text  # speech came through
    assert transcript.diarization == "done" and all(s.speaker for s in transcript.segments)
