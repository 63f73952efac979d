"""Audio decoding in memory with PyAV (FFmpeg): any common upload or recording format to Whisper input.

Decoded audio never touches disk: input is bytes or a file-like object (decrypted blob, upload), output
is one numpy array. Memory stays bounded: frames are resampled one at a time and written into a single
preallocated float32 buffer (sized from the container's duration when known, grown geometrically with
an in-place realloc otherwise), never collected as a list of small arrays.

Samples are converted exactly as faster-whisper's own decoder does (resample to signed 16-bit mono at
16 kHz, then divide by 32768), so our pipeline and the raw library see identical input and give
identical transcripts.

User-facing error messages are Swedish (the UI shows them as they are).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import av
import av.error
import numpy as np

from appliance.errors import BadAudio
from appliance.ports import SAMPLE_RATE

log = logging.getLogger(__name__)

MIN_DURATION_S = 0.1  # less than this is no usable speech (e.g. a header-only file)
MAX_DURATION_S = 8 * 3600  # bounds memory: 8 h of float32 at 16 kHz is ~1.8 GB
_MAX_BAD_PACKET_FRACTION = 0.05  # decode_audio tolerates isolated damaged packets, like faster-whisper
_GROW = 1.5
_MAX_RESERVE_S = 3 * 3600  # longer recordings grow the buffer (in-place realloc) as they decode
_BATCH_SAMPLES = 240_000  # source samples per resampler call (5 s at 48 kHz)
# Containers whose header states the exact duration (FLAC STREAMINFO, Matroska Duration, MP4 mvhd).
# MP3 and Ogg durations are estimates (bitrate, last page), so a shortfall there proves nothing.
_EXACT_DURATION_CONTAINERS = {"flac", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"}
_TRUNCATED_FRACTION = 0.9
_CODEC_NAMES = {"mp3float": "mp3", "aac_fixed": "aac", "mp3adufloat": "mp3adu"}

AudioInput = bytes | bytearray | memoryview | BinaryIO

MSG_EMPTY = "Filen är tom. Välj en ljudfil med innehåll."
MSG_NOT_AUDIO = ("Filen kunde inte läsas som ljud: formatet känns inte igen eller filen är inte en ljudfil. "
                 "Använd till exempel WAV, MP3, M4A, OGG, WebM eller FLAC.")
MSG_NO_STREAM = "Filen innehåller inget ljudspår."
MSG_CORRUPT = ("Ljudfilen är skadad eller ofullständig ({detail}). "
               "Spara eller exportera inspelningen på nytt och ladda upp den igen.")
MSG_SILENT = "Filen innehåller inget ljud att skriva ut (längd {seconds:.1f} sekunder)."
MSG_TOO_LONG = "Inspelningen är för lång (högst {hours} timmar)."


@dataclass(frozen=True)
class AudioInfo:
    duration: float  # seconds of decoded audio
    codec: str  # e.g. "opus", "mp3", "aac", "pcm_s16le"
    container: str  # FFmpeg demuxer name, e.g. "ogg", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"


def _as_file(data: AudioInput) -> BinaryIO:
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) == 0:
            raise BadAudio(MSG_EMPTY)
        return io.BytesIO(data)
    return data


def _open(data: AudioInput) -> av.container.InputContainer:
    fh = _as_file(data)
    try:
        return av.open(fh, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        # An empty file-like object looks like any other unreadable input to FFmpeg: say which it is.
        if _is_empty_stream(fh):
            raise BadAudio(MSG_EMPTY) from exc
        log.info("audio rejected at open: %s", type(exc).__name__)
        raise BadAudio(MSG_NOT_AUDIO) from exc


def _is_empty_stream(fh: BinaryIO) -> bool:
    try:
        if fh.seekable():
            return fh.seek(0, io.SEEK_END) == 0
    except (OSError, ValueError):
        pass
    return False


@dataclass
class _Stats:
    packets: int = 0
    bad_packets: int = 0
    demux_error: str | None = None


def _frames(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
            stats: _Stats) -> Iterator[av.AudioFrame]:
    """Decoded frames of `stream`: damaged packets are counted, not raised; a broken demux ends the stream."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, OSError) as exc:
            stats.demux_error = type(exc).__name__
            return
        stats.packets += 1
        try:
            frames = packet.decode()  # the final (empty) flush packet drains the decoder
        except av.error.FFmpegError:
            stats.bad_packets += 1
            continue
        yield from frames


def _decode(data: AudioInput, sink: Callable[[av.AudioFrame], None], strict: bool,
            capacity_hint: Callable[[float | None], None] | None = None) -> tuple[AudioInfo, _Stats]:
    with _open(data) as container:
        if not container.streams.audio:
            raise BadAudio(MSG_NO_STREAM)
        stream = container.streams.audio[0]
        if capacity_hint is not None:
            capacity_hint(container.duration / av.time_base if container.duration else None)
        stats = _Stats()
        seconds = 0.0
        for frame in _frames(container, stream, stats):
            seconds += frame.samples / (frame.sample_rate or stream.rate or SAMPLE_RATE)
            if seconds > MAX_DURATION_S:
                raise BadAudio(MSG_TOO_LONG.format(hours=MAX_DURATION_S // 3600))
            sink(frame)
        codec = stream.codec_context.name
        info = AudioInfo(duration=seconds, codec=_CODEC_NAMES.get(codec, codec),
                         container=container.format.name)
        declared = container.duration / av.time_base if container.duration else None
    _check(stats, info, strict, declared)
    return info, stats


def _check(stats: _Stats, info: AudioInfo, strict: bool, declared: float | None) -> None:
    if strict and (stats.bad_packets or stats.demux_error):
        detail = (f"{stats.bad_packets} av {stats.packets} ljudpaket kunde inte avkodas" if stats.bad_packets
                  else "filen tar slut eller är trasig mitt i")
        raise BadAudio(MSG_CORRUPT.format(detail=detail))
    if (strict and declared and info.container in _EXACT_DURATION_CONTAINERS
            and info.duration < declared * _TRUNCATED_FRACTION - 0.5):
        # A cut-off upload decodes cleanly up to the cut; only the header's duration gives it away.
        raise BadAudio(MSG_CORRUPT.format(
            detail=f"bara {info.duration:.0f} av {declared:.0f} sekunder gick att läsa"))
    if stats.packets and stats.bad_packets > max(1, _MAX_BAD_PACKET_FRACTION * stats.packets):
        raise BadAudio(MSG_CORRUPT.format(detail=f"{stats.bad_packets} av {stats.packets} ljudpaket "
                                                 "kunde inte avkodas"))
    if info.duration < MIN_DURATION_S:
        if stats.demux_error or stats.bad_packets:
            raise BadAudio(MSG_CORRUPT.format(detail="inga läsbara ljuddata"))
        raise BadAudio(MSG_SILENT.format(seconds=info.duration))


def probe_audio(data: AudioInput) -> AudioInfo:
    """Validate an upload by decoding all of it (no resampling, nothing kept); raise BadAudio if unusable.

    Strict: any damaged packet or a container that breaks off is an error, so a truncated or corrupt
    upload is refused up front with a message, instead of being half transcribed later.
    """
    info, _ = _decode(data, sink=lambda _frame: None, strict=True)
    return info


class _Buffer:
    """A growable float32 buffer; growth is an in-place realloc, so there is never a list of chunks."""

    def __init__(self) -> None:
        self.array = np.empty(0, dtype=np.float32)
        self.size = 0

    def reserve(self, seconds: float | None) -> None:
        # +1 s covers resampler delay and duration rounding; an unknown duration starts at one minute.
        # Capped: a header may lie about the duration, and resize() zero-fills what it reserves.
        seconds = min(seconds or 60.0, _MAX_RESERVE_S)
        wanted = int((seconds + 1.0) * SAMPLE_RATE)
        if wanted > self.array.shape[0]:
            self.array.resize(wanted, refcheck=False)

    def append(self, samples: np.ndarray) -> None:
        end = self.size + samples.shape[0]
        if end > self.array.shape[0]:
            self.array.resize(max(end, int(self.array.shape[0] * _GROW)), refcheck=False)
        # int16 / 32768 exactly as faster-whisper's decode_audio does (a power of two: no rounding).
        np.multiply(samples, np.float32(1.0 / 32768.0), out=self.array[self.size:end], casting="unsafe")
        self.size = end

    def finish(self) -> np.ndarray:
        self.array.resize(self.size, refcheck=False)  # shrink in place: no second copy
        return self.array


def decode_audio(data: AudioInput) -> np.ndarray:
    """Decode any supported audio to mono float32 at SAMPLE_RATE, in memory. Raises BadAudio.

    Isolated damaged packets are skipped (as faster-whisper does); many, or no audio at all, is an error.
    """
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    buf = _Buffer()
    # Frames are batched (a few seconds) before resampling: one resampler call per 20 ms Opus frame
    # costs more Python time than the decoding itself. Batching does not change the output.
    fifo = av.AudioFifo()
    fifo_format: tuple | None = None

    def resample(frame: av.AudioFrame | None) -> None:
        for out in resampler.resample(frame):
            buf.append(out.to_ndarray().reshape(-1))

    def drain() -> None:
        if fifo.samples:
            resample(fifo.read())

    def sink(frame: av.AudioFrame) -> None:
        nonlocal fifo, fifo_format
        fmt = (frame.format.name, frame.layout.name, frame.sample_rate)
        if fmt != fifo_format:  # a stream that changes format mid-way: start a new batch
            drain()
            fifo, fifo_format = av.AudioFifo(), fmt
        frame.pts = None  # timestamp gaps in damaged streams must not stop the fifo or resampler
        fifo.write(frame)
        if fifo.samples >= _BATCH_SAMPLES:
            resample(fifo.read())

    info, stats = _decode(data, sink=sink, strict=False, capacity_hint=buf.reserve)
    drain()
    resample(None)  # flush the resampler's delay line
    audio = buf.finish()
    if stats.bad_packets or stats.demux_error:
        log.warning("decoded audio with %s damaged packet(s) of %s%s", stats.bad_packets, stats.packets,
                    ", container broke off early" if stats.demux_error else "")
    log.debug("decoded %.1f s of %s/%s audio", audio.shape[0] / SAMPLE_RATE, info.codec, info.container)
    return audio
