"""Live transcription: time from stop to the final transcript, for recordings of 1, 5 and 20 minutes.

Each recording is Swedish espeak speech with pauses between sentences (a one-minute loop, repeated), fed
as 16 kHz s16le chunks through appliance.recordings.live.append_chunk — faster than real time (`--speed`) — while a
real asr worker (services.asr.AsrWorker, the embedded Whisper model, in a thread of this process, with the
configured poll interval) transcribes finished speech as it arrives. Then `live.stop` and we wait until the
recording is 'ready'. Goal: stop -> final under 5 s and flat in the recording's length.

For comparison, in the same run and on the same audio: the time a whole-file transcription takes
(services.transcription.transcribe_audio, what an upload gets, i.e. what a "re-run the whole file at stop"
final pass would cost), and the word error rate of both transcripts against the spoken text, to judge
whether a whole-file final pass would be better.

Run from the repo root:  .venv/bin/python bench/live_latency.py [--minutes 1 5 20] [--speed 3]
(20 minutes fed at 2x takes 10 minutes plus the whole-file pass; on this 2-core box run it once, alone.)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SENTENCES = [
    "Hej, jag heter Anna och jag arbetar som socialsekreterare här på socialtjänsten.",
    "Vi ska prata om barnets skola, familjens ekonomi och hur ni har det hemma.",
    "Du berättade förra gången att pojken har svårt att komma i tid till skolan.",
    "Hur har det gått de senaste veckorna?",
    "Jag vill också fråga om boendet, eftersom hyresvärden har skickat ett brev.",
    "Ni behöver inte svara på allt i dag.",
    "Vi kommer att skriva en journalanteckning efter samtalet.",
    "Har du några frågor till mig innan vi går vidare?",
]
RATE = 16_000
LOOP_S = 60


def _words(text: str) -> list[str]:
    return re.findall(r"[a-zåäöé]+", text.lower())


def wer(ref: list[str], hyp: list[str]) -> float:
    """Word error rate (Levenshtein over words / reference length)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(1, len(ref))


def speech_loop(tmp: Path) -> tuple[np.ndarray, list[str]]:
    """One minute of int16 speech with 0.4..1.6 s pauses between sentences, and its words."""
    from appliance.recordings.audio import decode_audio

    rng = np.random.default_rng(7)
    parts, words = [], []
    while True:
        for k, text in enumerate(SENTENCES):
            wav = tmp / f"s{k}.wav"
            if not wav.exists():
                subprocess.run(["espeak-ng", "-v", "sv", "-s", "150", "-w", str(wav), text], check=True)
            audio = decode_audio(wav.read_bytes())
            gap = np.zeros(int(rng.uniform(0.4, 1.6) * RATE), dtype=np.float32)
            if sum(len(p) for p in parts) + len(audio) + len(gap) > LOOP_S * RATE:
                loop = np.concatenate(parts)
                loop = np.concatenate([loop, np.zeros(LOOP_S * RATE - len(loop), dtype=np.float32)])
                return (np.clip(loop, -1, 1) * 32767).astype("<i2"), words
            parts += [audio, gap]
            words += _words(text)


def run_one(minutes: int, loop: np.ndarray, loop_words: list[str], transcriber, args) -> dict:
    from appliance.config import load_config
    from appliance.platform.context import init_state
    from appliance.recordings import live, recordings
    from appliance.users import accounts
    from services.asr import AsrWorker
    from services.transcription import options_for, transcribe_audio

    pcm = np.tile(loop, minutes).tobytes()
    ref = loop_words * minutes
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        env = {"APPLIANCE_PATHS__STATE_DIR": tmp, "APPLIANCE_RECORDING__MAX_MINUTES": str(minutes + 5)}
        if args.poll is not None:
            env["APPLIANCE_ASR__POLL_SECONDS"] = str(args.poll)
        app = init_state(load_config(environ=env))
        conn = app.connect()
        user = accounts.create_user(conn, "bench", ["caseworker"])[0]
        rid = live.start(app, conn, user, title="bench", source="browser", consent_confirmed=True)
        worker = AsrWorker(app, transcriber, worker_id="bench")
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()
        step = int(args.chunk * RATE) * 2
        t_start = time.monotonic()
        for seq, i in enumerate(range(0, len(pcm), step)):
            live.append_chunk(app, conn, rid, seq, pcm[i:i + step])
            due = t_start + (i + step) / 2 / RATE / args.speed
            time.sleep(max(0.0, due - time.monotonic()))
        behind = (len(pcm) // 2 - live.session(conn, rid).transcribed_samples) / RATE
        t0 = time.monotonic()
        live.stop(app, conn, user, rid)
        while conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] != "ready":
            time.sleep(0.02)
        stop_to_final = time.monotonic() - t0
        worker.stopping.set()
        thread.join()
        live_text = " ".join(s.text for s in recordings.transcript_segments(conn, rid))
        with app.blobs.open(rid, conn.execute("SELECT dek FROM recordings WHERE id = ?", (rid,)).fetchone()[0]) as r:
            wav = r.read_all()
        options = options_for(app.cfg.asr, conn=conn)
        t1 = time.monotonic()
        whole = transcribe_audio(transcriber, wav, options)
        whole_s = time.monotonic() - t1
        conn.close()
    whole_text = " ".join(s.text for s in whole.segments)
    return {"minutes": minutes, "behind_at_stop": behind, "stop_to_final": stop_to_final, "whole_file": whole_s,
            "wer_live": wer(ref, _words(live_text)), "wer_whole": wer(ref, _words(whole_text))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--speed", type=float, default=2.0, help="feed this many times faster than real time")
    parser.add_argument("--chunk", type=float, default=2.5, help="chunk length in seconds (the browser's)")
    parser.add_argument("--poll", type=float, default=None, help="asr poll interval (default: the config's)")
    parser.add_argument("--models", type=Path,
                        default=Path(os.environ.get("TEST_MODEL_STORE", ROOT / "var" / "models")))
    args = parser.parse_args()

    from appliance.config import load_config
    from models import load_transcriber

    cfg = load_config(environ={})
    transcriber = load_transcriber(cfg.asr, args.models)
    with tempfile.TemporaryDirectory() as tmp:
        loop, words = speech_loop(Path(tmp))
    print(f"model {transcriber.name}, beam {cfg.asr.beam_size}, {os.cpu_count()} CPUs, fed at {args.speed}x real time "
          f"in {args.chunk} s chunks, asr poll {args.poll if args.poll is not None else cfg.asr.poll_seconds} s")
    print(f"{'length':>7} {'behind at stop':>15} {'stop->final':>12} {'whole file':>11} {'ratio':>7} "
          f"{'WER live':>9} {'WER whole':>10}")
    for minutes in args.minutes:
        r = run_one(minutes, loop, words, transcriber, args)
        print(f"{minutes:>5} m {r['behind_at_stop']:>13.1f} s {r['stop_to_final']:>10.2f} s {r['whole_file']:>9.1f} s "
              f"{r['whole_file'] / max(r['stop_to_final'], 1e-6):>6.1f}x {r['wer_live']:>9.1%} {r['wer_whole']:>10.1%}"
              f"   (load average {os.getloadavg()[0]:.1f})", flush=True)
    print("stop->final: live.stop() (assembling the WAV) until status 'ready'; whole file: transcribing the same "
          "audio from scratch, what a whole-file final pass would add; ratio = whole file / stop->final.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
