"""In-memory decoding of real recordings in every accepted format, and clear refusals of bad input."""

from __future__ import annotations

import io
import random
import subprocess
import tracemalloc
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from appliance.errors import BadAudio
from appliance.ports import SAMPLE_RATE
from appliance.recordings.audio import AudioInfo, decode_audio, probe_audio

CLIP_SECONDS = 9.2  # sv_clip, per soxi


def _encode(src: Path, out: Path, fmt: str, codec: str, rate: int | None = None) -> Path:
    """Re-encode with PyAV (sox here has no mp3/opus/aac encoders)."""
    with av.open(str(src)) as inp, av.open(str(out), "w", format=fmt) as outc:
        in_stream = inp.streams.audio[0]
        stream = outc.add_stream(codec, rate=rate or in_stream.rate, layout="mono")
        for frame in inp.decode(in_stream):
            frame.pts = None
            for packet in stream.encode(frame):
                outc.mux(packet)
        for packet in stream.encode(None):
            outc.mux(packet)
    return out


@pytest.fixture(scope="module")
def clips(sv_clip: Path, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("formats")
    subprocess.run(["sox", str(sv_clip), str(d / "sv.flac")], check=True)
    subprocess.run(["sox", str(sv_clip), str(d / "sv-vorbis.ogg")], check=True)
    return {
        "wav": sv_clip,
        "flac": d / "sv.flac",
        "ogg-vorbis": d / "sv-vorbis.ogg",
        "mp3": _encode(sv_clip, d / "sv.mp3", "mp3", "libmp3lame"),
        "ogg-opus": _encode(sv_clip, d / "sv.ogg", "ogg", "libopus", 48000),
        "webm-opus": _encode(sv_clip, d / "sv.webm", "webm", "libopus", 48000),
        "m4a-aac": _encode(sv_clip, d / "sv.m4a", "mp4", "aac"),
    }


EXPECTED = {  # format -> (codec, container) as probe_audio reports them
    "wav": ("pcm_s16le", "wav"),
    "flac": ("flac", "flac"),
    "ogg-vorbis": ("vorbis", "ogg"),
    "mp3": ("mp3", "mp3"),
    "ogg-opus": ("opus", "ogg"),
    "webm-opus": ("opus", "matroska,webm"),
    "m4a-aac": ("aac", "mov,mp4,m4a,3gp,3g2,mj2"),
}


@pytest.mark.parametrize("fmt", list(EXPECTED))
def test_decodes_every_format_in_memory(clips: dict[str, Path], fmt: str) -> None:
    data = clips[fmt].read_bytes()
    audio = decode_audio(data)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] / SAMPLE_RATE - CLIP_SECONDS) < 0.2
    assert np.abs(audio).max() <= 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01  # speech, not silence
    # The same bytes as faster-whisper's own decoder sees: identical input gives identical transcripts.
    from faster_whisper.audio import decode_audio as fw_decode

    assert np.array_equal(audio, fw_decode(str(clips[fmt])))

    info = probe_audio(data)
    assert (info.codec, info.container) == EXPECTED[fmt]
    assert abs(info.duration - CLIP_SECONDS) < 0.2


def test_accepts_a_file_object(clips: dict[str, Path]) -> None:
    with clips["ogg-opus"].open("rb") as fh:
        audio = decode_audio(fh)
    with clips["ogg-opus"].open("rb") as fh:
        assert isinstance(probe_audio(fh), AudioInfo)
    assert np.array_equal(audio, decode_audio(clips["ogg-opus"].read_bytes()))


def test_decoding_memory_is_one_buffer(clips: dict[str, Path]) -> None:
    """Peak allocation stays close to the result: no list of chunks, no second full copy."""
    data = clips["ogg-opus"].read_bytes()
    decode_audio(data)  # warm up codec state
    tracemalloc.start()
    try:
        audio = decode_audio(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.base is None and audio.flags.owndata  # trimmed in place, not a view of a larger array
    assert peak < audio.nbytes * 1.3 + 256 * 1024, (peak, audio.nbytes)


def _corrupt_middle(data: bytes) -> bytes:
    rng = random.Random(1)
    b = bytearray(data)
    for i in range(len(b) // 4, len(b) * 3 // 4):
        b[i] = rng.randrange(256)
    return bytes(b)


def _video_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 10)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, dtype=np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _zero_length_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:  # a valid header announcing 0 frames
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")
    return path


BAD = {
    "empty": (lambda c, t: b"", "tom"),
    "random bytes": (lambda c, t: random.Random(0).randbytes(50_000), "känns inte igen"),
    "text file": (lambda c, t: ("Anteckning från mötet.\n" * 200).encode(), "känns inte igen"),
    "truncated header": (lambda c, t: c["mp3"].read_bytes()[:100], "känns inte igen"),
    "truncated flac": (lambda c, t: c["flac"].read_bytes()[: c["flac"].stat().st_size // 2], "ofullständig"),
    "truncated webm": (lambda c, t: c["webm-opus"].read_bytes()[: c["webm-opus"].stat().st_size // 2],
                       "ofullständig"),
    "corrupt ogg-opus": (lambda c, t: _corrupt_middle(c["ogg-opus"].read_bytes()), "skadad"),
    "corrupt mp3": (lambda c, t: _corrupt_middle(c["mp3"].read_bytes()), "skadad"),
    "corrupt m4a": (lambda c, t: _corrupt_middle(c["m4a-aac"].read_bytes()), "skadad"),
    "video only": (lambda c, t: _video_only(t / "v.mp4").read_bytes(), "inget ljudspår"),
    "zero-length wav": (lambda c, t: _zero_length_wav(t / "z.wav").read_bytes(), "inget ljud"),
    "header-only wav": (lambda c, t: c["wav"].read_bytes()[:44], "inget ljud"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_probe_refuses_bad_input_with_a_clear_message(clips, tmp_path: Path, case: str) -> None:
    make, fragment = BAD[case]
    data = make(clips, tmp_path)
    with pytest.raises(BadAudio, match=fragment) as exc:
        probe_audio(data)
    assert "Traceback" not in str(exc.value) and len(str(exc.value)) < 300


@pytest.mark.parametrize("case", ["empty", "random bytes", "text file", "video only", "zero-length wav",
                                  "corrupt m4a"])
def test_decode_refuses_unusable_input(clips, tmp_path: Path, case: str) -> None:
    make, fragment = BAD[case]
    with pytest.raises(BadAudio, match=fragment):
        decode_audio(make(clips, tmp_path))


def test_empty_file_object_is_called_empty() -> None:
    with pytest.raises(BadAudio, match="tom"):
        decode_audio(io.BytesIO(b""))
