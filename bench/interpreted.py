"""Interpreted meetings: how often each line gets the right language, and what it costs, against the raw library.

Makes a meeting with espeak-ng (tests/interpreted_audio.py: Swedish lines, each followed by an interpreter's line
in English or Arabic, `--pairs` of them) and prints, per other language:
- the accuracy of our path (models/languages.py `PerLineLanguages` over the faster-whisper backend: VAD stretches,
  each transcribed in both languages, the better mean log-probability kept) over the lines it produced;
- for comparison, Whisper's own language detection restricted to the two languages on the same VAD stretches
  (raw faster-whisper `WhisperModel.detect_language`), scored per stretch;
- the time of our path against one raw faster-whisper transcription of the whole file in Swedish (what a meeting
  without an interpreter costs), and the ratio.

Run from the repo root (embedded models in var/models, or --models DIR):
    .venv/bin/python bench/interpreted.py [--pairs 6] [--languages en ar]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the repo root without relying on an install

import numpy as np  # noqa: E402

from appliance.config import AsrConfig  # noqa: E402
from appliance.ports import TranscribeOptions  # noqa: E402
from appliance.recordings.audio import decode_audio  # noqa: E402
from models import load_transcriber  # noqa: E402
from models.languages import MIN_SILENCE_MS, PAD_S, per_line_languages  # noqa: E402
from models.vad import speech_regions  # noqa: E402
from tests.interpreted_audio import accuracy, make_meeting  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--languages", nargs="+", default=["en", "ar"])
    p.add_argument("--models", default=str(ROOT / "var" / "models"))
    args = p.parse_args()
    cfg = AsrConfig()
    ours = per_line_languages(load_transcriber(cfg, Path(args.models)))
    raw = ours.inner._model  # the raw faster_whisper.WhisperModel the backend wraps
    for other in args.languages:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"meeting_{other}.wav"
            truth = make_meeting(path, other, args.pairs)
            audio = decode_audio(path.read_bytes())
        seconds = len(audio) / 16000

        t0 = time.perf_counter()
        segs, _ = raw.transcribe(np.array(audio), language="sv", beam_size=cfg.beam_size, vad_filter=True,
                                 word_timestamps=True)
        list(segs)
        t_raw = time.perf_counter() - t0

        t0 = time.perf_counter()
        _, lines = ours.transcribe(np.array(audio), TranscribeOptions(language="sv", beam_size=cfg.beam_size,
                                                                      languages=("sv", other)))
        lines = [(s.start, s.end, s.language) for s in lines]
        t_ours = time.perf_counter() - t0
        right, total = accuracy(lines, truth)

        pad = int(PAD_S * 16000)
        detected = []
        t0 = time.perf_counter()
        for start, end in speech_regions(audio, MIN_SILENCE_MS):
            chunk = audio[max(0, start - pad):end + pad]
            _lang, _p, probs = raw.detect_language(chunk)
            probs = dict(probs)
            detected.append((start / 16000, end / 16000, max(("sv", other), key=lambda x: probs.get(x, 0.0))))
        t_detect = time.perf_counter() - t0
        d_right, d_total = accuracy(detected, truth)

        print(f"sv+{other}: {len(truth)} reference lines, {seconds:.1f} s of audio")
        print(f"  ours (transcribe both, keep the better): {right}/{total} lines right ({right / total:.0%}), "
              f"{t_ours:.1f} s")
        print(f"  raw detect_language per stretch:          {d_right}/{d_total} stretches right "
              f"({d_right / d_total:.0%}), {t_detect:.1f} s (detection only, no transcript)")
        print(f"  raw faster-whisper, Swedish only:         {t_raw:.1f} s; ours/raw = {t_ours / t_raw:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
