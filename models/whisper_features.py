"""Whisper log-mel features computed in bounded blocks of frames (same output as faster-whisper's).

faster-whisper's FeatureExtractor computes the STFT of the whole recording at once: a float32 frame
matrix (n_frames x 400), its complex64 rfft (n_frames x 201), a complex64 copy of that, the power
spectrum and the mel product, each a full-length temporary. For a 10-minute file that is ~500 MB at
peak, 13x the decoded audio (38 MB), and it grows linearly with the file.

ChunkedFeatureExtractor runs exactly the same operations, with the same dtypes, array shapes and
memory layouts, on blocks of `block_frames` frames (3000 = 30 s). Every block's frames are cut from
the same virtual signal as upstream's (the waveform cast to float32, `padding` zeros appended,
reflect-padded by n_fft // 2 at the true ends; the waveform itself is never copied whole), and one
frame more than kept is computed and dropped, like upstream's `stft[..., :-1]`. All blocks have the
same width: the last one overlaps its predecessor rather than being short. Only after all blocks is
the global clamp `max(log_spec, max - 8)` and the scaling `(x + 4) / 4` applied, in place.

The mel product: OpenBLAS's sgemm result for a column depends on the matrix width, the column's
position in its tiles and the thread split, so a mel product per block differs from upstream's
full-width product in the last bit of some values (max abs diff ~1.2e-7 in the output).
- `exact=True` (the default): each block's power spectrum is written into one whole-file array
  (n_frames x 201 float32, 48 MB per 10 minutes, read as upstream's column-major 201 x n_frames) and
  multiplied in the one BLAS call upstream makes: the output is bit-identical to upstream's
  (tests/test_whisper_features.py checks it). Peak: power + output + ~30 MB of block temporaries,
  ~1.9x the decoded audio.
- `exact=False`: each block's mel/log10 goes straight into the preallocated output (80 x n_frames
  float32, 19 MB per 10 minutes). Peak: output + ~30 MB, ~0.5x the decoded audio; last-bit
  differences as above, and those are enough to change transcripts: Whisper base on Swedish falls
  back to seeded temperature sampling, and in `bench/asr_overhead.py --rss --blocked` block mode's
  text differed from raw faster-whisper's on all four files while exact mode's was identical.
Upstream's peak is ~13x the decoded audio (~500 MB for 10 minutes).

models/ is scanned for transcriber backends by importing every module, and backends import
faster_whisper only when a model is loaded: the class is therefore built on first access
(`from models.whisper_features import ChunkedFeatureExtractor`), not at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from faster_whisper.feature_extractor import FeatureExtractor

DEFAULT_BLOCK_FRAMES = 3000  # 30 s of 10 ms frames per block: ~30 MB of temporaries


def __getattr__(name: str) -> Any:
    if name == "ChunkedFeatureExtractor":
        cls = _build()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build() -> type:
    from faster_whisper.feature_extractor import FeatureExtractor

    class ChunkedFeatureExtractor(FeatureExtractor):
        """Drop-in replacement for faster_whisper's FeatureExtractor with bounded peak memory."""

        def __init__(self, feature_size: int = 80, sampling_rate: int = 16000, hop_length: int = 160,
                     chunk_length: int = 30, n_fft: int = 400,
                     block_frames: int = DEFAULT_BLOCK_FRAMES, exact: bool = True) -> None:
            super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, hop_length=hop_length,
                             chunk_length=chunk_length, n_fft=n_fft)
            if block_frames < 2:  # a block's segment must be longer than the reflect padding (see below)
                raise ValueError(f"block_frames must be at least 2, got {block_frames}")
            self.block_frames = int(block_frames)
            self.exact = exact

        @classmethod
        def like(cls, original: FeatureExtractor,
                 block_frames: int = DEFAULT_BLOCK_FRAMES, exact: bool = True) -> ChunkedFeatureExtractor:
            """A chunked extractor with the parameters of an existing (upstream) one."""
            new = cls(feature_size=original.mel_filters.shape[0], sampling_rate=original.sampling_rate,
                      hop_length=original.hop_length, chunk_length=original.chunk_length,
                      n_fft=original.n_fft, block_frames=block_frames, exact=exact)
            # n_samples / nb_max_frames may have been changed by a call with chunk_length: carry them over.
            new.n_samples, new.nb_max_frames = original.n_samples, original.nb_max_frames
            return new

        def __call__(self, waveform: np.ndarray, padding=160, chunk_length=None):
            """Compute the log-Mel spectrogram of the provided audio (as FeatureExtractor.__call__)."""
            waveform = np.asarray(waveform)
            padding = int(padding or 0)
            n_samples = waveform.shape[-1] + padding
            if waveform.ndim != 1 or n_samples <= self.n_fft:
                # Batched input, or so short that upstream's reflect padding wraps around more than once
                # (and its own memory is negligible): upstream as is.
                return super().__call__(waveform, padding=padding, chunk_length=chunk_length)

            if chunk_length is not None:  # upstream's side effect, kept: transcribe() relies on it
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length

            pad = self.n_fft // 2  # stft(center=True) reflect padding on both sides
            hop = self.hop_length
            n_frames = 1 + (n_samples + 2 * pad - self.n_fft) // hop  # upstream's stft frame count
            n_out = n_frames - 1  # upstream drops the last frame: stft[..., :-1]
            window = np.hanning(self.n_fft + 1)[:-1].astype("float32")

            block = min(self.block_frames, n_out)
            starts = list(range(0, n_out - block + 1, block))
            if starts[-1] + block < n_out:
                starts.append(n_out - block)  # the last block overlaps: all blocks have the same width
            if self.exact:
                # Power spectrum of the whole file, laid out as upstream's (201 x n_out, column-major), so
                # the mel product below is the very same BLAS call as upstream's.
                power_t = np.empty((n_out, self.n_fft // 2 + 1), dtype=np.float32)
            else:
                out = np.empty((self.mel_filters.shape[0], n_out), dtype=np.float32)
            for f0 in starts:
                # Frames f0 .. f0 + block inclusive (one more than kept, dropped like upstream's last frame)
                # span padded-signal samples [f0 * hop, (f0 + block) * hop + n_fft).
                segment = self._padded_segment(waveform, n_samples, pad, f0 * hop,
                                               (f0 + block) * hop + self.n_fft)
                stft = self.stft(segment, self.n_fft, hop, window=window, center=False,
                                 return_complex=True).astype("complex64", copy=False)
                del segment
                magnitudes = np.abs(stft[..., :-1]) ** 2
                del stft
                if self.exact:
                    power_t[f0:f0 + block] = magnitudes.T
                    continue
                mel_spec = self.mel_filters @ magnitudes
                del magnitudes
                out[:, f0:f0 + block] = np.log10(np.clip(mel_spec, a_min=1e-10, a_max=None))
                del mel_spec
            if self.exact:
                out = self.mel_filters @ power_t.T
                del power_t
                np.clip(out, a_min=1e-10, a_max=None, out=out)
                np.log10(out, out=out)

            # Upstream: log_spec = np.maximum(log_spec, log_spec.max() - 8.0); (log_spec + 4.0) / 4.0
            np.maximum(out, out.max() - 8.0, out=out)
            out += 4.0
            out /= 4.0
            return out

        @staticmethod
        def _padded_segment(waveform: np.ndarray, n_samples: int, pad: int, start: int, stop: int) -> np.ndarray:
            """Samples [start, stop) of upstream's padded signal, as float32, built without a full copy.

            Upstream's signal is reflect_pad(concat(float32(waveform), zeros(padding)), pad) with
            n_samples = len(waveform) + padding; here index i of the unpadded signal is index i + pad.
            """
            lo, hi = max(start - pad, 0), min(stop - pad, n_samples)  # part inside the unpadded signal
            seg = np.zeros(hi - lo, dtype=np.float32)
            n_wave = min(hi, waveform.shape[0]) - lo
            if n_wave > 0:
                seg[:n_wave] = waveform[lo:lo + n_wave]  # the same float32 cast as upstream's astype
            left, right = lo - (start - pad), (stop - pad) - hi
            if left or right:
                # At a true end of the signal. A block spans at least n_fft + hop samples, so the part
                # inside the signal is longer than `pad` (or is the whole signal) and np.pad's single
                # reflection here reads the same samples as upstream's reflection of the whole signal.
                seg = np.pad(seg, (left, right), mode="reflect")
            return seg

    ChunkedFeatureExtractor.__qualname__ = "ChunkedFeatureExtractor"  # importable by name (pickle)
    return ChunkedFeatureExtractor
