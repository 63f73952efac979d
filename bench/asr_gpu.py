"""Real-time factor on an NVIDIA GPU: in-process faster-whisper, its BatchedInferencePipeline, and Whisper on
Triton serving several recordings at once. Prepared for the day a GPU machine is at hand: the developers' box
has no GPU (the script says so and stops).

Rows, all on the same audio (espeak-ng Swedish, `--minutes` long) and model, one GPU:

* in-process — `WhisperModel.transcribe` on cuda (sequential 30-second windows): the baseline;
* in-process batched — `BatchedInferencePipeline` with `--batch-size` (what `[asr] batch_size` turns on for files);
* triton xN — a tritonserver on loopback (`[triton_server] device = "cuda"`, `--instances`, `--workers`)
  transcribing `--recordings` copies of the audio at once through the `triton` backend, each in pieces of
  `--chunk-seconds` with `--in-flight` requests per recording (the dynamic batcher groups them).

Printed: wall seconds and RTFx = seconds of audio transcribed per second of wall time (higher is better; all
recordings together for the Triton row), and the ratio to in-process. Model loading and server start-up are
outside the timings; each row gets one short warm-up request.

Needs on the GPU machine: the NVIDIA driver, CUDA 12 and cuDNN 9 for CTranslate2 (e.g. `pip install
nvidia-cublas-cu12 'nvidia-cudnn-cu12==9.*'` into .venv and .venv-triton, their lib dirs on LD_LIBRARY_PATH),
`make triton-venv`, and a model in the store (`--model`, default the embedded whisper-base; a real comparison
wants a large model, e.g. KB-Whisper large in float16). Run from the repo root:

    .venv/bin/python bench/asr_gpu.py [--minutes 5] [--recordings 8] [--batch-size 16] [--instances 1]
        [--workers 4] [--chunk-seconds 30] [--in-flight 4] [--model whisper-base] [--compute-type float16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the repo root without relying on an install


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--recordings", type=int, default=8, help="recordings transcribed at once through Triton")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--chunk-seconds", type=float, default=30)
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--model", default="whisper-base")
    ap.add_argument("--compute-type", default="float16")
    args = ap.parse_args()

    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        print("No CUDA device visible to CTranslate2: this bench needs an NVIDIA GPU (see the docstring).")
        return 2

    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from appliance.config import AsrConfig, load_config
    from appliance.ports import SAMPLE_RATE, TranscribeOptions
    from models import load_transcriber
    from models.store import verify_model
    from services import triton_server
    from tests.conftest import free_port
    from tests.long_speech import conversation_of

    work = Path(tempfile.mkdtemp(prefix="bench-asr-gpu-"))
    store = ROOT / "var" / "models"
    audio, _reference = conversation_of(work, args.minutes)
    seconds = len(audio) / SAMPLE_RATE
    model_dir = verify_model(store, args.model)
    print(f"audio: {seconds:.0f} s, model {args.model} ({args.compute_type}) on {ctranslate2.get_cuda_device_count()} "
          "GPU(s)")

    model = WhisperModel(str(model_dir), device="cuda", compute_type=args.compute_type, local_files_only=True)
    batched = BatchedInferencePipeline(model)
    settings = {"language": "sv", "beam_size": 5, "vad_filter": True, "word_timestamps": True}

    def sequential(a) -> None:
        list(model.transcribe(a, **settings)[0])

    def in_batches(a) -> None:
        list(batched.transcribe(a, batch_size=args.batch_size, **settings)[0])

    results: list[tuple[str, float, float]] = []
    for name, run in (("in-process", sequential), (f"in-process batched ({args.batch_size})", in_batches)):
        run(audio[:2 * SAMPLE_RATE])
        t0 = time.perf_counter()
        run(audio)
        results.append((name, time.perf_counter() - t0, seconds))
    batched = model = None  # free the GPU for the server

    port = free_port()
    toml = work / "triton.toml"
    toml.write_text(f'[paths]\nstate_dir = "{work / "state"}"\nmodels_dir = "{store}"\n'
                    f'[triton_server]\nport = {port}\nmodel = "{args.model}"\ndevice = "cuda"\n'
                    f'compute_type = "{args.compute_type}"\ninstances = {args.instances}\nworkers = {args.workers}\n'
                    f'max_batch_size = {max(8, args.recordings * args.in_flight)}\n')
    server = triton_server.start(load_config(toml, environ={}), work / "run", log_file=work / "triton.log")
    try:
        triton_server.wait_ready("127.0.0.1", port, server, timeout=600)
        client = load_transcriber(AsrConfig(backend="triton", triton={
            "url": f"127.0.0.1:{port}", "chunk_seconds": args.chunk_seconds, "max_in_flight": args.in_flight}), store)
        options = TranscribeOptions(**settings)

        def one(a) -> None:
            list(client.transcribe(a, options)[1])

        one(audio[:2 * SAMPLE_RATE])
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.recordings) as pool:
            list(pool.map(one, [audio] * args.recordings))
        results.append((f"triton x{args.recordings} (I={args.instances}, W={args.workers})",
                        time.perf_counter() - t0, seconds * args.recordings))
    finally:
        server.terminate()
        server.wait(60)

    base = results[0][2] / results[0][1]
    print(f"\n{'row':40s} {'wall s':>8s} {'RTFx':>8s} {'vs in-process':>14s}")
    for name, wall, audio_s in results:
        rtfx = audio_s / wall
        print(f"{name:40s} {wall:8.1f} {rtfx:8.1f} {rtfx / base:13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
