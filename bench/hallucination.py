"""Words from no speech: Whisper's hallucination guards measured with silence, room noise, hum and music inserted
between Swedish sentences (espeak-ng), against the raw library in the same run.

The clip: four sentences with 5 s of silence, pink noise (room tone), brown noise + 50 Hz hum and plucked-string
music between them. For each way of transcribing it prints the words whose middle lies inside an insert (more
than MARGIN_S from any sentence: invented words), all words, and the real-time factor:
- raw faster-whisper without VAD, with `condition_on_previous_text` on and off;
- raw faster-whisper with its Silero `vad_filter` (default parameters);
- our path (`services.transcription.transcribe_audio` with the configured options and the diarizer: Silero
  `vad_filter`, no conditioning on previous text, lines in which the diarizer heard no speech dropped).

Run from the repo root (needs espeak-ng and sox):  .venv/bin/python bench/hallucination.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from appliance.config import load_config  # noqa: E402
from appliance.ports import SAMPLE_RATE  # noqa: E402
from appliance.recordings.audio import decode_audio  # noqa: E402
from tests.nonspeech_audio import insert_effects  # noqa: E402

SENTENCES = ("Hej, jag heter Anna och jag arbetar som socialsekreterare.",
             "Vi ska prata om barnets skola och familjens ekonomi.",
             "Pappa bor i en annan stad och träffar barnen varannan helg.",
             "Vi ses igen om två veckor.")
INSERT_S = 5.0
MARGIN_S = 0.3  # Whisper's word times are approximate: a word this close to a sentence belongs to it
INSERTS = insert_effects(INSERT_S)


def build(folder: Path) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """The clip and its parts [(start, end, 'speech' | insert name)]; inserts after sentences 1-4 (the last one
    after the last sentence: music or noise at the end of a recording, where Whisper likes to invent a farewell)."""
    parts, spans, t = [], [], 0.0
    for i, text in enumerate(SENTENCES):
        raw, wav = folder / f"s{i}_raw.wav", folder / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", "sv", "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", str(wav)], check=True)
        name = list(INSERTS)[i]
        ins = folder / f"i{i}.wav"
        subprocess.run(["sox", "-n", "-r", str(SAMPLE_RATE), "-c", "1", str(ins), *INSERTS[name]], check=True)
        for path, kind in ((wav, "speech"), (ins, name)):
            audio = decode_audio(path.read_bytes())
            parts.append(audio)
            spans.append((t, t + len(audio) / SAMPLE_RATE, kind))
            t += len(audio) / SAMPLE_RATE
    return np.concatenate(parts), spans


def invented(words: list[tuple[float, float, str]], spans: list[tuple[float, float, str]]) -> list[str]:
    """Words whose middle is inside an insert, farther than MARGIN_S from every sentence."""
    speech = [(a - MARGIN_S, b + MARGIN_S) for a, b, kind in spans if kind == "speech"]
    return [w for s, e, w in words if not any(a <= (s + e) / 2 <= b for a, b in speech)]


def main() -> int:
    from faster_whisper import WhisperModel

    from models import load_diarizer, load_transcriber
    from services.transcription import options_for, transcribe_audio

    cfg = load_config(environ={})
    store = Path(cfg.paths.models if cfg.paths.models.is_absolute() else ROOT / cfg.paths.models)
    transcriber = load_transcriber(cfg.asr, store)
    diarizer = load_diarizer(cfg.diarization, store)
    raw = WhisperModel(str(store / cfg.asr.model), device="cpu", compute_type=cfg.asr.compute_type,
                       local_files_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        audio, spans = build(Path(tmp))
        wav = Path(tmp) / "clip.wav"
        subprocess.run(["sox", *[str(Path(tmp) / f) for i in range(4) for f in (f"s{i}.wav", f"i{i}.wav")],
                        str(wav)], check=True)
        data = wav.read_bytes()
    seconds = len(audio) / SAMPLE_RATE

    def raw_run(**kw):
        segments, _ = raw.transcribe(audio, language="sv", beam_size=cfg.asr.beam_size, word_timestamps=True, **kw)
        return [(w.start, w.end, w.word) for s in segments for w in s.words]

    def ours():
        transcript = transcribe_audio(transcriber, data, options_for(cfg.asr), diarizer=diarizer)
        return [(w.start, w.end, w.word) for s in transcript.segments for w in s.words]

    runs = {
        "raw, no VAD, conditioned": lambda: raw_run(vad_filter=False),
        "raw, no VAD, not conditioned": lambda: raw_run(vad_filter=False, condition_on_previous_text=False),
        "raw, Silero vad_filter": lambda: raw_run(vad_filter=True),
        "ours (transcribe_audio)": ours,
    }
    print(f"clip: {seconds:.1f} s, {len(SENTENCES)} sentences ({sum(len(s.split()) for s in SENTENCES)} words), "
          f"inserts: {', '.join(INSERTS)} ({INSERT_S:.0f} s each)")
    for name, fn in runs.items():
        t = time.perf_counter()
        words = fn()
        took = time.perf_counter() - t
        bad = invented(words, spans)
        print(f"{name:<30} invented words {len(bad):>2} {bad!s:<40} all words {len(words):>3}  "
              f"RTF {took / seconds:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
