"""Stretches without speech for the hallucination test and bench (tests/test_hallucination.py,
bench/hallucination.py): `sox -n` synth effects (16 kHz mono) for silence, room tone, a mains hum with rumble, and
plucked-string music, each `seconds` long."""

from __future__ import annotations


def insert_effects(seconds: float) -> dict[str, list[str]]:
    s = str(seconds)
    return {
        "silence": ["trim", "0", s],
        "room noise": ["synth", s, "pinknoise", "vol", "0.05"],
        "hum": ["synth", s, "brownnoise", "vol", "0.1", "synth", s, "sine", "mix", "50", "vol", "0.5"],
        "music": ["synth", s, "pluck", "C4", "pluck", "E4", "pluck", "G4", "tremolo", "2", "60", "vol", "0.3"],
    }
