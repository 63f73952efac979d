"""Time and WER of the transcription backends on the same audio, in one run, as ratios against in-process.

Rows (each transcribes the same decoded 16 kHz audio with the same settings: Swedish, beam 5, VAD, words):

* in-process — raw faster-whisper (`WhisperModel.transcribe`, the library the asr unit wraps), the baseline;
* triton — the `triton` backend (models/triton_asr.py) against a real tritonserver on loopback serving the
  project's model repository (models/triton/whisper, same model, same CPU), default settings: pieces of
  <= 300 s cut at silences, 2 in flight;
* triton-30s — the same with pieces of <= 30 s (what a GPU server with parallel workers wants; on a CPU every
  piece pads its last 30-second window, so it costs more);
* triton-trtllm — the same server's `whisper_bls_ct2` model through the TensorRT-LLM Whisper protocol (text per
  30-second window; faster-whisper stands in for the engine);
* riva-standin — the `riva` backend against the Riva stand-in (tests/riva_standin.py: Riva's gRPC protocol,
  faster-whisper in this process behind it), offline recognition in pieces of <= 300 s.

Model loading and server start-up are outside the timings (each side has its model loaded; one short warm-up
request each). WER is against the text espeak-ng spoke (Whisper base on espeak Swedish is poor in absolute
terms; the comparison is what counts). Goal: triton within 1.15x of in-process on CPU for a 5-minute file.
Whisper samples on this audio (temperature fallback), so WER moves a little from run to run.

Run from the repo root (needs the Triton server virtualenv, `make triton-venv`):
    .venv/bin/python bench/asr_backends.py [--minutes 5] [--repeats 1] [--only in-process,triton]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the repo root without relying on an install

import jiwer  # noqa: E402
import numpy as np  # noqa: E402

ROWS = ("in-process", "triton", "triton-30s", "triton-trtllm", "riva-standin")


def _wer(reference: str, text: str) -> float:
    from tests.long_speech import words_of

    return jiwer.wer(" ".join(words_of(reference)), " ".join(words_of(text)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", default=",".join(ROWS), help=f"comma-separated rows out of {', '.join(ROWS)}")
    args = ap.parse_args()
    rows = [r for r in args.only.split(",") if r]
    if "in-process" not in rows:
        rows.insert(0, "in-process")

    from faster_whisper import WhisperModel

    from appliance.config import AsrConfig, load_config
    from appliance.ports import SAMPLE_RATE, TranscribeOptions
    from models import load_transcriber
    from models.store import verify_model
    from services import triton_server
    from tests.conftest import free_port
    from tests.long_speech import conversation_of
    from tests.riva_standin import RivaStandIn, serve

    work = Path(tempfile.mkdtemp(prefix="bench-asr-backends-"))
    cfg = load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(work / "state"),
                               "APPLIANCE_PATHS__MODELS_DIR": str(ROOT / "var" / "models")})
    audio, reference = conversation_of(work, args.minutes)
    seconds = len(audio) / SAMPLE_RATE
    options = TranscribeOptions(language="sv", beam_size=5, vad_filter=True, word_timestamps=True)
    print(f"audio: {seconds:.0f} s of espeak-ng Swedish ({len(reference.split())} words), Whisper base int8, CPU")

    model_dir = verify_model(cfg.paths.models, cfg.asr.model)
    raw = WhisperModel(str(model_dir), device="cpu", compute_type="int8", local_files_only=True)

    def in_process(a: np.ndarray) -> str:
        segments, _ = raw.transcribe(a, language="sv", beam_size=5, vad_filter=True, word_timestamps=True)
        return " ".join(s.text.strip() for s in segments)

    runs = {"in-process": in_process}
    server = standin_server = None
    try:
        if any(r.startswith("triton") for r in rows):
            port = free_port()
            toml = work / "triton.toml"
            toml.write_text(f'[paths]\nstate_dir = "{work / "state"}"\nmodels_dir = "{cfg.paths.models}"\n'
                            f'[triton_server]\nport = {port}\nmodels = ["whisper", "whisper_bls_ct2"]\n')
            t0 = time.perf_counter()
            server = triton_server.start(load_config(toml, environ={}), work / "run", log_file=work / "triton.log")
            triton_server.wait_ready("127.0.0.1", port, server, timeout=300)
            print(f"tritonserver ready in {time.perf_counter() - t0:.1f} s (model repository models/triton/)")
            for name, triton in (("triton", {"url": f"127.0.0.1:{port}"}),
                                 ("triton-30s", {"url": f"127.0.0.1:{port}", "chunk_seconds": 30}),
                                 ("triton-trtllm", {"url": f"127.0.0.1:{port}", "model_name": "whisper_bls_ct2",
                                                    "protocol": "trtllm-whisper"})):
                backend = load_transcriber(AsrConfig(backend="triton", triton=triton), cfg.paths.models)
                runs[name] = lambda a, b=backend: " ".join(s.text for s in b.transcribe(a, options)[1])
        if "riva-standin" in rows:
            behind = load_transcriber(AsrConfig(), cfg.paths.models)
            standin_server, port = serve(RivaStandIn(behind))
            riva = load_transcriber(AsrConfig(backend="riva", riva={"url": f"127.0.0.1:{port}"}), cfg.paths.models)
            runs["riva-standin"] = lambda a, b=riva: " ".join(s.text for s in b.transcribe(a, options)[1])

        times: dict[str, list[float]] = {r: [] for r in rows}
        wers: dict[str, list[float]] = {r: [] for r in rows}
        for r in rows:  # warm-up: one short request each (first-call allocations, connections)
            runs[r](audio[:2 * SAMPLE_RATE])
        for i in range(args.repeats):
            for r in rows:  # interleaved, so drift on a shared machine hits every row alike
                t0 = time.perf_counter()
                text = runs[r](audio)
                times[r].append(time.perf_counter() - t0)
                wers[r].append(_wer(reference, text))
                print(f"  run {i + 1} {r:14s} {times[r][-1]:7.1f} s  WER {wers[r][-1]:.3f}", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if standin_server is not None:
            standin_server.stop(0)

    base_t, base_w = statistics.median(times["in-process"]), statistics.median(wers["in-process"])
    print(f"\n{'backend':16s} {'time s':>8s} {'RTF':>6s} {'time ratio':>10s} {'WER':>6s} {'WER ratio':>9s}")
    for r in rows:
        t, w = statistics.median(times[r]), statistics.median(wers[r])
        print(f"{r:16s} {t:8.1f} {t / seconds:6.3f} {t / base_t:10.3f} {w:6.3f} {w / base_w if base_w else 0:9.3f}")
    if "triton" in rows:
        ratio = statistics.median(times["triton"]) / base_t
        verdict = "met" if ratio <= 1.15 else "NOT met"
        print(f"\ngoal: triton within 1.15x of in-process on CPU: {ratio:.3f}x -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
