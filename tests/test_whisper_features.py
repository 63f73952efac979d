"""The chunked Whisper feature extractor gives faster-whisper's features with bounded memory.

Exact mode (the default, what the transcriber uses) must be bit-identical to upstream's
FeatureExtractor for any length, block size, padding and chunk_length; block mode may differ only in
the last bit (its mel product is a BLAS call per block, see models/whisper_features.py).
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from appliance.recordings.audio import decode_audio
from models.whisper_features import ChunkedFeatureExtractor

ROOT = Path(__file__).resolve().parent.parent
HOP, N_FFT, BLOCK = 160, 400, 3000

# Sample counts: empty, shorter than n_fft, around n_fft and the padding, a second, exactly one block of
# output frames (the output has (n + 160) // 160 frames), one frame more and less, and long files that
# are not a multiple of the block.
LENGTHS = [0, 1, 100, 239, 240, 241, 399, 400, 401, 561, 16_000, 16_000 * 7 + 37,
           HOP * BLOCK - HOP, HOP * BLOCK - HOP - 1, HOP * BLOCK, HOP * BLOCK + 5,
           HOP * 2 * BLOCK - HOP, 16_000 * 95 + 123]


def _same(expected: np.ndarray, got: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected), f"max abs diff {np.abs(got - expected).max()}"


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def speech(sv_clip: Path) -> np.ndarray:
    return decode_audio(sv_clip.read_bytes())


@pytest.mark.parametrize("n", LENGTHS)
def test_noise_is_bit_identical(n: int) -> None:
    x = _noise(n, seed=n)
    _same(FeatureExtractor()(x), ChunkedFeatureExtractor()(x))


@pytest.mark.parametrize("block_frames", [2, 3, 7, 100, 2999])
@pytest.mark.parametrize("n", [401, 561, 16_000 + 1, 16_000 * 3 + 80, HOP * BLOCK - HOP])
def test_small_blocks_are_bit_identical(block_frames: int, n: int) -> None:
    x = _noise(n, seed=block_frames)
    _same(FeatureExtractor()(x), ChunkedFeatureExtractor(block_frames=block_frames)(x))


@pytest.mark.parametrize("seconds", [0.01, 0.5, 3.3, 9.0, 30.0, 30.01, 47.3, 75.0])
def test_speech_is_bit_identical(speech: np.ndarray, seconds: float) -> None:
    n = int(seconds * 16_000)
    x = np.tile(speech, n // speech.shape[0] + 1)[:n]
    _same(FeatureExtractor()(x), ChunkedFeatureExtractor()(x))
    _same(FeatureExtractor()(x), ChunkedFeatureExtractor(block_frames=333)(x))


def test_whole_speech_clip_and_loud_and_silent_audio(speech: np.ndarray) -> None:
    _same(FeatureExtractor()(speech), ChunkedFeatureExtractor()(speech))
    loud = np.clip(_noise(16_000 * 40) * 50, -1, 1)
    silence = np.zeros(16_000 * 40, dtype=np.float32)  # every value clamped: max - 8 with log10(1e-10)
    for x in (loud, silence):
        _same(FeatureExtractor()(x), ChunkedFeatureExtractor()(x))


@pytest.mark.parametrize("chunk_length", [10, 30, 45])
def test_chunk_length_and_its_side_effect(speech: np.ndarray, chunk_length: int) -> None:
    x = np.tile(speech, 8)
    upstream, ours = FeatureExtractor(), ChunkedFeatureExtractor()
    _same(upstream(x, chunk_length=chunk_length), ours(x, chunk_length=chunk_length))
    # Upstream sets n_samples / nb_max_frames from chunk_length; transcribe() relies on that.
    assert (ours.n_samples, ours.nb_max_frames) == (upstream.n_samples, upstream.nb_max_frames)
    assert ours.nb_max_frames == chunk_length * 100


@pytest.mark.parametrize("padding", [0, 1, 160, 480, None])
def test_padding(padding: int | None) -> None:
    x = _noise(16_000 * 35 + 11)
    _same(FeatureExtractor()(x, padding=padding), ChunkedFeatureExtractor()(x, padding=padding))


def test_other_dtypes_are_cast_like_upstream() -> None:
    x64 = np.random.default_rng(3).standard_normal(16_000 * 31) * 0.1  # float64, not exactly float32
    _same(FeatureExtractor()(x64), ChunkedFeatureExtractor()(x64))
    x16 = (x64 * 3000).astype(np.int16)
    _same(FeatureExtractor()(x16), ChunkedFeatureExtractor()(x16))


def test_other_parameters() -> None:
    x = _noise(16_000 * 32 + 7)
    kwargs = dict(feature_size=128, sampling_rate=16_000, hop_length=200, chunk_length=20, n_fft=512)
    _same(FeatureExtractor(**kwargs)(x), ChunkedFeatureExtractor(**kwargs, block_frames=500)(x))
    like = ChunkedFeatureExtractor.like(FeatureExtractor(**kwargs))
    assert (like.mel_filters.shape, like.hop_length, like.n_fft, like.chunk_length, like.sampling_rate) == (
        (128, 257), 200, 512, 20, 16_000)
    _same(FeatureExtractor(**kwargs)(x), like(x))


@pytest.mark.parametrize("n", [561, 16_000 * 7 + 37, HOP * BLOCK + 5, 16_000 * 95 + 123])
def test_block_mode_differs_at_most_in_the_last_bit(n: int) -> None:
    x = _noise(n)
    expected, got = FeatureExtractor()(x), ChunkedFeatureExtractor(exact=False)(x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("exact", [True, False])
def test_memory_is_bounded(exact: bool) -> None:
    """numpy reports its buffers to tracemalloc: peak of one extraction on 5 minutes of audio."""
    x = _noise(16_000 * 300)
    extractor = ChunkedFeatureExtractor(exact=exact)
    extractor(x[:16_000])  # first-call allocations (window, caches) out of the way
    tracemalloc.start()
    try:
        features = extractor(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    power = features.shape[1] * 201 * 4 if exact else 0
    block_temporaries = 40e6  # ~6 arrays of 3001 x 400 float32 / 3001 x 201 complex64 at most
    assert peak < features.nbytes + power + block_temporaries, peak / 1e6
    # Upstream holds several full-length frame / spectrum arrays: ~8x the audio for 5 minutes.
    assert peak < 3 * x.nbytes


def test_discovering_backends_does_not_import_faster_whisper() -> None:
    code = ("import sys, models; models.transcriber_backends(); "
            "assert 'faster_whisper' not in sys.modules, 'faster_whisper imported by discovery'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_loaded_transcriber_uses_the_chunked_extractor(model_store: Path) -> None:
    from appliance.config import load_config
    from models import load_transcriber

    transcriber = load_transcriber(load_config(environ={}).asr, model_store)
    model = transcriber._model
    extractor = model.feature_extractor
    assert isinstance(extractor, ChunkedFeatureExtractor) and extractor.exact
    original = FeatureExtractor(**model.feat_kwargs)  # what WhisperModel built from the model's config
    assert np.array_equal(extractor.mel_filters, original.mel_filters)
    for attr in ("n_fft", "hop_length", "chunk_length", "n_samples", "nb_max_frames", "time_per_frame",
                 "sampling_rate"):
        assert getattr(extractor, attr) == getattr(original, attr), attr
    x = np.tile(_noise(16_000 * 7), 6)
    _same(original(x), extractor(x))
