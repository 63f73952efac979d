"""Overhead of our transcription pipeline against raw faster-whisper, measured in the same run.

Default mode: the same audio goes through our pipeline (load_transcriber + transcribe_audio, the code
path `appliance transcribe` and the asr unit use) and through raw faster-whisper
(WhisperModel(model_dir).transcribe(path) with the same settings, consuming all segments), interleaved,
N times. Prints the times, the ratio ours/raw (goal <= 1.05) and whether the texts are identical.

`--rss`: peak resident memory of our pipeline (and of raw faster-whisper, for reference) on a 1-minute
and a 10-minute recording (Ogg/Opus and WAV), one fresh process per measurement, above the peak of a
process that only loaded the model, against the size of the decoded audio (10 min of float32 at
16 kHz is ~38 MB). The goal: from 1 to 10 minutes our peak grows by no more than the decoded audio
does. Our pipeline swaps faster-whisper's feature extractor (whole-file STFT, ~13x the audio at peak)
for models.whisper_features (bit-identical, bounded blocks); `--blocked` adds a column for its
non-exact block mode (exact=False). The texts of ours and raw are compared file by file.

Whisper base on espeak Swedish falls back to temperature sampling, so transcripts are random unless
seeded: both models are seeded identically (CTranslate2 seeds each model's worker thread on first use)
and compared run i against run i.

Run from the repo root:  .venv/bin/python bench/asr_overhead.py [AUDIO] [--repeats 3] [--rss [--blocked]]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the repo root without relying on an install

import numpy as np  # noqa: E402

SEED = 1234
TEXT = (
    "Hej, jag heter Anna och jag arbetar som socialsekreterare här på socialtjänsten. "
    "Vi ska prata om barnets skola, familjens ekonomi och hur ni har det hemma. "
    "Du berättade förra gången att pojken har svårt att komma i tid till skolan på morgonen. "
    "Hur har det gått de senaste veckorna, och har ni haft kontakt med skolkuratorn? "
    "Jag vill också fråga om boendet, eftersom hyresvärden har skickat ett brev till oss. "
    "Ni behöver inte svara på allt i dag, men det är viktigt att vi får en bild av situationen. "
    "Vi kommer att skriva en journalanteckning efter samtalet och du får läsa den om du vill. "
    "Har du några frågor till mig innan vi går vidare med nästa del av utredningen? "
)


# ------------------------------------------------------------------------------------------- audio prep

def _espeak(text: str, out: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is missing: apt-get install espeak-ng (or pass an audio file)")
    subprocess.run(["espeak-ng", "-v", "sv", "-s", "150", "-w", str(out), text], check=True)
    return out


def _speech(seconds: float, workdir: Path) -> np.ndarray:
    """About `seconds` of Swedish speech, mono int16 at 16 kHz (espeak repeated, with short pauses)."""
    import av

    wav = _espeak(TEXT, workdir / "speech.wav")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
    chunks = []
    with av.open(str(wav)) as c:
        for frame in c.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    one = np.concatenate([np.concatenate(chunks), np.zeros(8_000, dtype=np.int16)])
    reps = int(np.ceil(seconds * 16_000 / one.shape[0]))
    return np.tile(one, reps)[: int(seconds * 16_000)]


def _write(samples: np.ndarray, out: Path, fmt: str) -> Path:
    """Encode int16 mono 16 kHz samples as wav, ogg (Opus) or mp3 with PyAV."""
    import av

    codec, container_fmt, rate = {"wav": ("pcm_s16le", "wav", 16_000), "ogg": ("libopus", "ogg", 48_000),
                                  "mp3": ("libmp3lame", "mp3", 16_000)}[fmt]
    with av.open(str(out), "w", format=container_fmt) as c:
        stream = c.add_stream(codec, rate=rate, layout="mono")
        if fmt == "ogg":
            stream.bit_rate = 32_000
        step = 16_000
        for i in range(0, samples.shape[0], step):
            frame = av.AudioFrame.from_ndarray(samples[None, i:i + step], format="s16", layout="mono")
            frame.sample_rate = 16_000
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return out


# ----------------------------------------------------------------------------------------------- models

def _asr_config(args: argparse.Namespace):
    from appliance.config import AsrConfig

    return AsrConfig(device=args.device, compute_type=args.compute_type, cpu_threads=args.cpu_threads,
                     beam_size=args.beam_size)


def _options(args: argparse.Namespace):
    from appliance.ports import TranscribeOptions

    return TranscribeOptions(language="sv", beam_size=args.beam_size, vad_filter=True, word_timestamps=True)


def _load_ours(args: argparse.Namespace):
    from models import load_transcriber

    return load_transcriber(_asr_config(args), Path(args.store))


def _load_raw(args: argparse.Namespace):
    from faster_whisper import WhisperModel

    return WhisperModel(str(Path(args.store) / "whisper-base"), device=args.device,
                        compute_type=args.compute_type, cpu_threads=args.cpu_threads, local_files_only=True)


def _run_ours(transcriber, path: Path, args: argparse.Namespace) -> str:
    from services.transcription import transcribe_audio

    with path.open("rb") as fh:
        transcript = transcribe_audio(transcriber, fh, _options(args))
    return " ".join(s.text for s in transcript.segments)


def _run_raw(model, path: Path, args: argparse.Namespace) -> str:
    o = _options(args)
    segments, _ = model.transcribe(str(path), language=o.language, beam_size=o.beam_size,
                                   vad_filter=o.vad_filter, word_timestamps=o.word_timestamps)
    return " ".join(s.text.strip() for s in segments)


# ------------------------------------------------------------------------------------------ overhead

def overhead(args: argparse.Namespace, workdir: Path) -> int:
    import ctranslate2

    from appliance.recordings.audio import probe_audio

    path = Path(args.audio) if args.audio else _write(_speech(60.0, workdir), workdir / "speech60.wav", "wav")
    info = probe_audio(path.read_bytes())
    print(f"audio: {path} ({info.duration:.1f} s, {info.codec}/{info.container}); device {args.device}, "
          f"{args.compute_type}, beam {args.beam_size}, cpu_threads {args.cpu_threads or 'default'}")
    ctranslate2.set_random_seed(SEED)  # seeds each model's worker thread at its first transcription
    ours_model, raw_model = _load_ours(args), _load_raw(args)
    for _ in range(args.warmup):
        _run_ours(ours_model, path, args)
        _run_raw(raw_model, path, args)
    ours_t, raw_t, same = [], [], []
    for i in range(args.repeats):
        order = ["ours", "raw"] if i % 2 == 0 else ["raw", "ours"]  # alternate to cancel order effects
        texts = {}
        for which in order:
            t0 = time.perf_counter()
            texts[which] = (_run_ours(ours_model, path, args) if which == "ours"
                            else _run_raw(raw_model, path, args))
            (ours_t if which == "ours" else raw_t).append(time.perf_counter() - t0)
        same.append(texts["ours"] == texts["raw"])
        print(f"run {i + 1}: ours {ours_t[-1]:7.2f} s   raw {raw_t[-1]:7.2f} s   "
              f"ratio {ours_t[-1] / raw_t[-1]:.3f}   identical text: {same[-1]}")
    # The median of the per-run (paired) ratios is the headline: pairs share the machine's state.
    ratio_paired = statistics.median(o / r for o, r in zip(ours_t, raw_t, strict=True))
    ratio_total = sum(ours_t) / sum(raw_t)
    print(f"median: ours {statistics.median(ours_t):.2f} s, raw {statistics.median(raw_t):.2f} s; "
          f"ratio ours/raw = {ratio_paired:.3f} (median of paired runs), {ratio_total:.3f} (total); "
          f"goal <= 1.05: {'PASS' if ratio_paired <= 1.05 else 'FAIL'}")
    print(f"texts identical in all runs: {all(same)}")
    return 0 if all(same) else 1


# ----------------------------------------------------------------------------------------------- rss

def _child(args: argparse.Namespace) -> int:
    """One measurement in a fresh process: load the model, optionally transcribe, report."""
    import ctranslate2

    ctranslate2.set_random_seed(SEED)
    mode, path = args.child, Path(args.audio) if args.audio else None
    t0 = time.perf_counter()
    text = ""
    if mode in ("load-ours", "ours", "ours-blocked"):
        model = _load_ours(args)
        if mode == "ours-blocked":
            from models.whisper_features import ChunkedFeatureExtractor

            fe = model._model.feature_extractor
            model._model.feature_extractor = ChunkedFeatureExtractor.like(fe, exact=False)
        if mode != "load-ours":
            text = _run_ours(model, path, args)
    else:
        model = _load_raw(args)
        if mode == "raw":
            text = _run_raw(model, path, args)
    # A digest, not the text: equal digests mean identical transcripts.
    print(json.dumps({"seconds": time.perf_counter() - t0,
                      "text": hashlib.sha256(text.encode()).hexdigest()[:16]}))
    return 0


def _measure(args: argparse.Namespace, mode: str, path: Path | None) -> tuple[float, float, str]:
    """Peak RSS (MB), wall time and text digest of one fresh child process (os.wait4: its rusage)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--store", str(args.store),
           "--device", args.device, "--compute-type", args.compute_type,
           "--cpu-threads", str(args.cpu_threads), "--beam-size", str(args.beam_size)]
    if path is not None:
        cmd.append(str(path))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"child {mode} failed ({proc.returncode}): {err.decode()[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return usage.ru_maxrss / 1024, result["seconds"], result["text"]


def rss(args: argparse.Namespace, workdir: Path) -> int:
    from appliance.recordings.audio import decode_audio

    ten = _speech(600.0, workdir)
    files = {}
    for minutes in (1, 10):
        for fmt in ("ogg", "wav"):
            out = workdir / f"speech{minutes}.{fmt}"
            files[(minutes, fmt)] = _write(ten[: minutes * 60 * 16_000], out, fmt)
    del ten
    load_ours, _, _ = _measure(args, "load-ours", None)
    load_raw, _, _ = _measure(args, "load-raw", None)
    print(f"baseline peak RSS after loading the model: ours {load_ours:.0f} MB, raw {load_raw:.0f} MB "
          "(+MB columns are above these)")
    blocked_hdr = f"{'blocked +MB':>12}" if args.blocked else ""
    print(f"{'input':<14}{'file MB':>9}{'decoded MB':>12}{'ours MB':>10}{'ours +MB':>10}"
          f"{'raw MB':>9}{'raw +MB':>9}{blocked_hdr}{'ours s':>9}{'raw s':>8}  same text")
    results = {}
    all_same = True
    for (minutes, fmt), path in files.items():
        decoded_mb = decode_audio(path.read_bytes()).nbytes / 1e6
        ours, ours_s, ours_text = _measure(args, "ours", path)
        raw, raw_s, raw_text = _measure(args, "raw", path)
        blocked, blocked_col = None, ""
        if args.blocked:
            blocked, _, blocked_text = _measure(args, "ours-blocked", path)
            blocked -= load_ours
            blocked_col = f"{blocked:>12.0f}"
        same = ours_text == raw_text
        all_same &= same
        results[(minutes, fmt)] = (ours - load_ours, raw - load_raw, decoded_mb, blocked)
        print(f"{f'{minutes} min {fmt}':<14}{path.stat().st_size / 1e6:>9.1f}{decoded_mb:>12.1f}{ours:>10.0f}"
              f"{ours - load_ours:>10.0f}{raw:>9.0f}{raw - load_raw:>9.0f}{blocked_col}{ours_s:>9.1f}"
              f"{raw_s:>8.1f}  {same}" + (f" (blocked: {blocked_text == raw_text})" if args.blocked else ""))
    goal_met = True
    for fmt in ("ogg", "wav"):
        o1, r1, d1, b1 = results[(1, fmt)]
        o10, r10, d10, b10 = results[(10, fmt)]
        goal_met &= o10 - o1 <= d10 - d1
        blocked_txt = (f", {b10 - b1:.0f} MB blocked ({(b10 - b1) / (d10 - d1):.2f}x)"
                       if b1 is not None else "")
        print(f"{fmt}: 1 -> 10 min adds {d10 - d1:.0f} MB of decoded audio; peak RSS above baseline grows "
              f"{o10 - o1:.0f} MB ours ({(o10 - o1) / (d10 - d1):.2f}x the audio), "
              f"{r10 - r1:.0f} MB raw ({(r10 - r1) / (d10 - d1):.2f}x){blocked_txt}")
    print(f"goal: ours grows no more than the decoded audio from 1 to 10 min: {'PASS' if goal_met else 'FAIL'}")
    print(f"texts of ours and raw identical for every file: {all_same}")
    return 0 if all_same else 1


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("audio", nargs="?", help="audio file (default: ~60 s of espeak-ng Swedish)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of each before measuring")
    p.add_argument("--rss", action="store_true", help="peak RSS for 1- and 10-minute inputs instead")
    p.add_argument("--blocked", action="store_true",
                   help="with --rss: also measure the chunked extractor's non-exact block mode")
    p.add_argument("--store", default=os.environ.get("TEST_MODEL_STORE", str(ROOT / "var" / "models")))
    p.add_argument("--device", default="cpu")
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--cpu-threads", type=int, default=0)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory(prefix="asr-bench-") as tmp:
        return rss(args, Path(tmp)) if args.rss else overhead(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
