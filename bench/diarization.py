"""Diarization quality and speed on real meetings: our path against the raw library, measured in the same run.

Corpora (each: audio files, reference RTTM, UEM = the scored region):
- `ami`: ten 30-second AMI meeting excerpts with 1-4 speakers (`../shared/data/ami_debug_train/` when it is
  there, else the same excerpts as FLAC in `tests/data/ami_debug_train/`);
- `sample`: the shared two-speaker recording (`tests/data/pyannote_sample/`), scored over the reference's extent.

For each diarization backend (`--backend`, default: every registered one) it prints, per file and pooled over the
corpus (pyannote.metrics, collar 0.25 s), DER split into missed speech, false alarm and confusion, with the
speaker count estimated and with the true count given as the hint; the speaker-count error (estimated - true)
and how many files are within +-1; the real-time factor (diarization time / audio time).

`--vad` also scores the speech detectors alone on the same references (speech/non-speech error: missed speech
and false alarm as shares of the reference speech, collar 0.25 s): WebRTC VAD as Resemblyzer's path uses it,
Silero as Whisper's `vad_filter` and the live transcript use it, and the segmentation model's speech.

`--raw` compares the time of our whole path with the raw model call it builds on (the embedding model alone on
the same audio) on the sample, as a ratio. Run from the repo root:
    .venv/bin/python bench/diarization.py [--backend NAME] [--corpus ami|sample|all] [--vad] [--raw] [--verbose]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The model store `make bench` filled (the diarization weights are an embedded model, models/manifest.toml).
MODEL_STORE = Path(os.environ.get("TEST_MODEL_STORE", ROOT / "var" / "models"))
sys.path.insert(0, str(ROOT))  # run as a script from the repo root without relying on an install

import numpy as np  # noqa: E402

from appliance.config import DiarizationConfig  # noqa: E402
from appliance.ports import SAMPLE_RATE, DiarizeOptions  # noqa: E402
from appliance.recordings.audio import decode_audio  # noqa: E402

# ../shared beside a checkout (CI), ../../shared beside a worktree (/work/wt/<name>), else the FLAC copies.
SHARED_AMI = [base / "shared" / "data" / "ami_debug_train" for base in (ROOT.parent, ROOT.parent.parent)]
COLLAR = 0.25


@dataclass
class Item:
    uri: str
    audio: np.ndarray
    reference: object  # pyannote.core.Annotation
    uem: object  # pyannote.core.Timeline

    @property
    def speakers(self) -> int:
        return len(self.reference.crop(self.uem).labels())

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def ami_dir() -> Path:
    for candidate in (*SHARED_AMI, ROOT / "tests" / "data" / "ami_debug_train"):
        if (candidate / "train.rttm").is_file():
            return candidate
    raise SystemExit("no AMI excerpts found (tests/data/ami_debug_train is part of the checkout)")


def load_corpus(name: str) -> list[Item]:
    from pyannote.core import Segment, Timeline
    from pyannote.database.util import load_rttm, load_uem

    if name == "sample":
        folder = ROOT / "tests" / "data" / "pyannote_sample"
        reference = next(iter(load_rttm(folder / "sample.rttm").values()))
        audio = decode_audio((folder / "sample.wav").read_bytes())
        extent = reference.get_timeline().extent()
        return [Item("sample", audio, reference, Timeline([Segment(extent.start, extent.end)]))]
    folder = ami_dir()
    refs = load_rttm(folder / "train.rttm")
    uems = load_uem(folder / "train.uem")
    items = []
    for uri in sorted(refs):
        path = next(p for p in (folder / f"{uri}.wav", folder / f"{uri}.flac") if p.is_file())
        items.append(Item(uri, decode_audio(path.read_bytes()), refs[uri], uems[uri]))
    return items


def annotation(turns) -> object:
    from pyannote.core import Annotation, Segment

    hyp = Annotation()
    for i, (start, end, speaker) in enumerate(turns):
        if end > start:
            hyp[Segment(start, end), i] = speaker
    return hyp


class Pooled:
    """DER components summed over files (pooled, as pyannote.metrics reports a corpus)."""

    KEYS = ("missed detection", "false alarm", "confusion", "total")

    def __init__(self) -> None:
        from pyannote.metrics.diarization import DiarizationErrorRate

        self.metric = DiarizationErrorRate(collar=COLLAR)
        self.sums = dict.fromkeys(self.KEYS, 0.0)

    def add(self, item: Item, turns) -> dict:
        d = self.metric(item.reference, annotation(turns), uem=item.uem, detailed=True)
        for k in self.KEYS:
            self.sums[k] += d[k]
        return d

    @staticmethod
    def split(d: dict) -> tuple[float, float, float, float]:
        total = max(d["total"], 1e-9)
        miss, fa, conf = d["missed detection"] / total, d["false alarm"] / total, d["confusion"] / total
        return miss + fa + conf, miss, fa, conf


def bench_backend(backend: str, corpora: dict[str, list[Item]], verbose: bool) -> None:
    from models import load_diarizer

    t0 = time.perf_counter()
    diarizer = load_diarizer(DiarizationConfig(backend=backend), MODEL_STORE)
    print(f"\n== {backend}: load (incl. warm-up) {time.perf_counter() - t0:.2f} s")
    for corpus, items in corpora.items():
        pooled = {"estimated": Pooled(), "true count": Pooled()}
        seconds = {"estimated": 0.0, "true count": 0.0}
        cpu = {"estimated": 0.0, "true count": 0.0}
        count_errors = []
        audio_s = sum(i.seconds for i in items)
        if verbose:
            print(f"{'file':<8} {'spk':>3} {'est':>3} | {'DER est':>7} {'miss':>5} {'FA':>5} {'conf':>5} | "
                  f"{'DER true':>8} {'miss':>5} {'FA':>5} {'conf':>5}")
        for item in items:
            row = []
            for mode, options in (("estimated", DiarizeOptions()),
                                  ("true count", DiarizeOptions(num_speakers=item.speakers))):
                t, c = time.perf_counter(), time.process_time()
                result = diarizer.diarize(item.audio, options)
                seconds[mode] += time.perf_counter() - t
                cpu[mode] += time.process_time() - c
                d = pooled[mode].add(item, [(x.start, x.end, x.speaker) for x in result.turns])
                row.append(Pooled.split(d))
                if mode == "estimated":
                    estimated = result.num_speakers
            count_errors.append(estimated - item.speakers)
            if verbose:
                (de, me, fe, ce), (dt, mt, ft, ct) = row
                print(f"{item.uri:<8} {item.speakers:>3} {estimated:>3} | {de:7.3f} {me:5.3f} {fe:5.3f} {ce:5.3f} | "
                      f"{dt:8.3f} {mt:5.3f} {ft:5.3f} {ct:5.3f}")
        print(f"[{corpus}] {len(items)} files, {audio_s:.0f} s of audio; DER pooled (collar {COLLAR} s) "
              "= missed + false alarm + confusion, shares of reference speech:")
        for mode in pooled:
            der, miss, fa, conf = Pooled.split(pooled[mode].sums)
            print(f"[{corpus}]   {mode:<11} DER {der:.3f} = {miss:.3f} + {fa:.3f} + {conf:.3f}   "
                  f"RTF {seconds[mode] / audio_s:.4f} (CPU time / audio time {cpu[mode] / audio_s:.4f})")
        errs = np.array(count_errors)
        print(f"[{corpus}]   speaker count (estimated - true): {' '.join(f'{e:+d}' for e in errs)}; "
              f"mean |error| {np.abs(errs).mean():.2f}; within +-1: {int((np.abs(errs) <= 1).sum())}/{len(errs)}")


def _regions(mask: np.ndarray, hop: int, span: int) -> list[tuple[float, float]]:
    """Runs of True frames (each `hop` samples apart, seeing `span`) as (start, end) seconds."""
    x = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(x))
    return [((a * hop + (span - hop) / 2) / SAMPLE_RATE, (b * hop + (span + hop) / 2) / SAMPLE_RATE)
            for a, b in zip(edges[::2], edges[1::2], strict=True)]


def detectors() -> dict:
    """name -> function(audio) -> speech regions: the speech detectors of our paths."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from models import diarize_resemblyzer, load_diarizer

    def silero(threshold: float, pad_ms: int, min_silence_ms: int):
        options = VadOptions(threshold=threshold, min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms)
        return lambda a: [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE)
                          for r in get_speech_timestamps(a, options, SAMPLE_RATE)]

    segmenter = load_diarizer(DiarizationConfig(backend="campplus"), MODEL_STORE)

    def segmentation(a: np.ndarray) -> list[tuple[float, float]]:
        from models.diarize_campplus import FRAME_HOP, FRAME_SPAN, speech_of

        return _regions(speech_of(segmenter.segment(a), len(a)), FRAME_HOP, FRAME_SPAN)

    out = {"webrtc (resemblyzer path, mode 2)": lambda a: _regions(
        diarize_resemblyzer.speech_frames(a), diarize_resemblyzer.VAD_FRAME, diarize_resemblyzer.VAD_FRAME)}
    for threshold in (0.35, 0.5, 0.65):
        out[f"silero {threshold} (whisper: pad 400, 2 s)"] = silero(threshold, 400, 2000)
    for threshold in (0.35, 0.5, 0.65):
        out[f"silero {threshold} (no pad, 0.3 s)"] = silero(threshold, 0, 300)
    out["segmentation-3.0 (campplus path)"] = segmentation
    return out


def bench_vad(corpora: dict[str, list[Item]]) -> None:
    """Speech/non-speech error of each speech detector on the references (speaker labels ignored)."""
    from pyannote.metrics.detection import DetectionErrorRate

    print(f"\n== speech detection (collar {COLLAR} s): missed speech and false alarm, shares of reference speech")
    for name, detect in detectors().items():
        for corpus, items in corpora.items():
            metric = DetectionErrorRate(collar=COLLAR)
            miss = fa = total = 0.0
            t = time.perf_counter()
            for item in items:
                d = metric(item.reference, annotation([(s, e, "speech") for s, e in detect(item.audio)]),
                           uem=item.uem, detailed=True)
                miss, fa, total = miss + d["miss"], fa + d["false alarm"], total + d["total"]
            rtf = (time.perf_counter() - t) / sum(i.seconds for i in items)
            print(f"[{corpus}] {name:<36} error {(miss + fa) / total:.3f} = missed {miss / total:.3f} "
                  f"+ false alarm {fa / total:.3f}   RTF {rtf:.4f}")


def bench_raw(backend: str, sample: Item, repeats: int = 3) -> None:
    """Our whole path against the raw embedding model on the same audio (median wall time of `repeats`)."""
    from models import load_diarizer

    diarizer = load_diarizer(DiarizationConfig(backend=backend), MODEL_STORE)
    raw = diarizer.raw_embedding_call(sample.audio)

    def ours():
        return diarizer.diarize(sample.audio, DiarizeOptions())

    times: dict[str, list[float]] = {"ours": [], "raw": []}
    ours(), raw()
    for _ in range(repeats):
        for k, fn in (("ours", ours), ("raw", raw)):
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    o, r = (float(np.median(times[k])) for k in ("ours", "raw"))
    print(f"\n== {backend} on the sample ({sample.seconds:.0f} s): whole path {o:.3f} s "
          f"(RTF {o / sample.seconds:.4f}), raw embedding model alone {r:.3f} s; ratio {o / r:.2f}x")


def main() -> int:
    from models import diarizer_backends

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", action="append", help="diarization backend(s); default: all registered")
    ap.add_argument("--corpus", choices=("ami", "sample", "all"), default="all")
    ap.add_argument("--vad", action="store_true", help="also score the speech detectors alone")
    ap.add_argument("--raw", action="store_true", help="also time the raw embedding model on the sample")
    ap.add_argument("--verbose", action="store_true", help="per-file figures")
    ap.add_argument("--no-diarization", action="store_true", help="only the speech detectors (with --vad)")
    args = ap.parse_args()

    names = ("ami", "sample") if args.corpus == "all" else (args.corpus,)
    corpora = {name: load_corpus(name) for name in names}
    if args.corpus != "sample" and "ami" in corpora:
        print(f"AMI excerpts from {ami_dir()}")
    for backend in [] if args.no_diarization else (args.backend or diarizer_backends()):
        bench_backend(backend, corpora, args.verbose)
        if args.raw:
            bench_raw(backend, load_corpus("sample")[0])
    if args.vad:
        bench_vad(corpora)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
