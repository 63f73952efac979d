"""Does Whisper's initial prompt built from the lexicon help? Term recall and WER with and without it.

Makes Swedish clips with espeak-ng (`-v sv`) whose sentences contain lexicon terms (plus one without any,
to catch a prompt that makes Whisper invent terms), transcribes each with the real embedded model through
our pipeline (models.load_transcriber + services.transcription.transcribe_audio, seeded, beam 5, VAD as
configured) once with `initial_prompt=None` and once with `appliance.transcripts.lexicon.initial_prompt()`, and prints
per clip and in total:

* term recall: of the lexicon terms in the reference sentences, how many appear in the transcript
  (case-insensitive, spaces and hyphens ignored, inflected forms count: the term's letters as a substring);
* terms invented: lexicon terms in the transcript that the reference does not contain;
* WER (jiwer) on lower-cased text without punctuation.

The default of `asr.initial_prompt` (appliance/config.py) follows these figures: on whisper-base/int8/CPU,
seed 1234, the lexicon prompt gave term recall 2/19 against 1/19 without, the same WER (0.897), 7 invented
terms against 0 (lists of terms where speech was), and 5-20x the decoding time (temperature fallback),
so the default is "none". espeak is not a person and base Whisper is weak: the figures say
whether the prompt moves the needle on this model, not what a real box with KB-Whisper gets.

Run from the repo root:  .venv/bin/python bench/initial_prompt.py [--store var/models] [--device cpu]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the repo root without relying on an install

import jiwer  # noqa: E402

from appliance import lexicon  # noqa: E402
from appliance.config import load_config  # noqa: E402
from appliance.ports import TranscribeOptions  # noqa: E402
from models import load_transcriber  # noqa: E402
from services.transcription import transcribe_audio  # noqa: E402

SENTENCES = [
    "Vi gör en orosanmälan enligt LVU och BBIC.",
    "Socialsekreteraren inledde en barnavårdsutredning efter förhandsbedömningen.",
    "Barnet placerades i ett familjehem och vårdnadshavaren informerades om beslutet.",
    "Vi bokar ett SIP-möte med BUP och elevhälsan nästa vecka.",
    "Han får ekonomiskt bistånd och försörjningsstöd enligt riksnormen.",
    "Skyddsbedömningen gjordes samma dag och ärendet togs upp i individutskottet.",
    "Mamman har en kontaktperson och familjen får stöd av en familjebehandlare.",
    "Hej, jag heter Anna och vi ska prata om barnets skola och familjens ekonomi.",  # no lexicon term
]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w§\s-]", " ", text.lower()).replace("-", " ").split())


def _terms_in(text: str, terms: list[lexicon.Term]) -> set[str]:
    folded = lexicon.fold(text)
    words = {lexicon.fold(t) for t in re.findall(r"[\w§-]+", text)}
    found = set()
    for t in terms:
        if t.abbreviation or len(t.folded) < 5:  # short ones as whole words only ("MI", "FL" hide in words)
            if t.folded in words:
                found.add(t.text)
        elif t.folded in folded:
            found.add(t.text)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(ROOT / "var" / "models"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compute-type", default=None)
    args = ap.parse_args()
    env = {"APPLIANCE_ASR__DEVICE": args.device}
    if args.compute_type:
        env["APPLIANCE_ASR__COMPUTE_TYPE"] = args.compute_type
    cfg = load_config(environ=env)
    terms = list(lexicon.load().terms)
    prompt = lexicon.initial_prompt()
    print(f"model {cfg.asr.model} on {cfg.asr.device}/{cfg.asr.compute_type}, seed {cfg.asr.seed}, "
          f"beam {cfg.asr.beam_size}; prompt ({len(prompt)} chars): {prompt}\n")
    totals = {"none": [0, 0, 0, [], []], "lexicon": [0, 0, 0, [], []]}  # hits, refs, invented, refs, hyps
    with tempfile.TemporaryDirectory() as tmp:
        for i, sentence in enumerate(SENTENCES):
            wav = Path(tmp) / f"clip{i}.wav"
            subprocess.run(["espeak-ng", "-v", "sv", "-s", "150", "-w", str(wav), sentence], check=True)
            data = wav.read_bytes()
            ref_terms = _terms_in(sentence, terms)
            print(f"[{i}] ref: {sentence}  terms: {sorted(ref_terms)}")
            for mode, p in (("none", None), ("lexicon", prompt)):
                # A fresh model per run: the seeded sampler starts from the same state for both modes.
                transcriber = load_transcriber(cfg.asr, Path(args.store))
                options = TranscribeOptions(language="sv", beam_size=cfg.asr.beam_size,
                                            vad_filter=cfg.asr.vad_filter, initial_prompt=p)
                t0 = time.perf_counter()
                hyp = " ".join(s.text.strip() for s in transcribe_audio(transcriber, data, options).segments)
                took = time.perf_counter() - t0
                got = _terms_in(hyp, terms)
                hits, invented = len(ref_terms & got), len(got - ref_terms)
                wer = jiwer.wer(_norm(sentence), _norm(hyp) or "-")
                tot = totals[mode]
                tot[0] += hits
                tot[1] += len(ref_terms)
                tot[2] += invented
                tot[3].append(_norm(sentence))
                tot[4].append(_norm(hyp) or "-")
                print(f"    {mode:8s} {took:5.1f}s  terms {hits}/{len(ref_terms)}  invented {invented}  "
                      f"WER {wer:.2f}  | {hyp}")
    print("\nTotal")
    for mode, (hits, refs, invented, r, h) in totals.items():
        print(f"  {mode:8s} term recall {hits}/{refs} = {hits / max(refs, 1):.2f}   invented terms {invented}   "
              f"WER {jiwer.wer(r, h):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
