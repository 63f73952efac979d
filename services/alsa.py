"""ALSA capture for the recorder unit: list capture devices, and capture one device with `arecord`.

`arecord` (alsa-utils) does the capture: one child process per recording, so a device that hangs or
errors never takes the recorder's loop with it, and stopping is killing a process. ALSA converts to the
format live recordings use (signed 16-bit little-endian, mono, 16 kHz) through the `plughw` plugin.

`Capture` reads 0.1 s blocks, so pause and stop act within about that, and hands whole chunks of
`chunk_seconds` to a `Sink` in order (seq 0, 1, 2 …). A chunk is cut short at a pause and at the stop,
so what was said before either is stored. While paused the device stays open (nobody else takes the
microphone) and what it hears is read and dropped, never stored.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

RATE = 16000
SAMPLE_BYTES = 2  # S16_LE mono
PERIOD_FRAMES = RATE // 10  # 0.1 s: how quickly pause and stop take effect
BLOCK_BYTES = PERIOD_FRAMES * SAMPLE_BYTES
ARECORD = "arecord"

RECORDING, PAUSED, STOPPED = "recording", "paused", "stopped"


@dataclass(frozen=True)
class Device:
    name: str          # the ALSA PCM name, what `arecord -D` takes
    description: str   # the first line of ALSA's description (the card's name), may be empty


class DeviceError(Exception):
    """The device could not be opened or stopped delivering audio. The message is safe to show."""


def parse_device_list(text: str) -> list[Device]:
    """`arecord -L` output: a PCM name at the start of a line, its description indented below it."""
    devices: list[Device] = []
    name, desc = None, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            if name is not None:
                devices.append(Device(name, desc[0] if desc else ""))
            name, desc = line.strip(), []
        elif name is not None:
            desc.append(line.strip())
    if name is not None:
        devices.append(Device(name, desc[0] if desc else ""))
    return devices


def list_devices(env: dict[str, str] | None = None) -> list[Device]:
    """Every capture PCM ALSA knows (`arecord -L`). Raises DeviceError when arecord is missing."""
    try:
        out = subprocess.run([ARECORD, "-L"], capture_output=True, text=True, timeout=10, env=env, check=False)
    except FileNotFoundError as exc:
        raise DeviceError("arecord saknas (Debian-paketet alsa-utils)") from exc
    except subprocess.TimeoutExpired as exc:
        raise DeviceError("arecord -L svarade inte") from exc
    return parse_device_list(out.stdout)


def offered(devices: list[Device], pattern: str) -> list[Device]:
    """The devices the office offers caseworkers ([recorder] device_pattern over the ALSA names)."""
    rx = re.compile(pattern)
    return [d for d in devices if rx.search(d.name)]


def arecord_command(device: str) -> list[str]:
    # -t raw: no WAV header, the bytes are the samples; plughw/default convert from what the card has.
    # A 0.1 s period (ALSA takes the nearest the card allows) keeps pause and stop prompt, and a 1 s buffer
    # rides out a busy moment of the machine without an overrun.
    return [ARECORD, "-q", "-D", device, "-t", "raw", "-f", "S16_LE", "-r", str(RATE), "-c", "1",
            f"--period-size={PERIOD_FRAMES}", f"--buffer-size={RATE}"]


class Sink(Protocol):
    """Where a capture goes. A method that raises ends the capture (what was stored stays stored)."""

    def chunk(self, seq: int, pcm: bytes) -> None: ...   # returns once the chunk is durably stored
    def paused(self, next_seq: int) -> None: ...
    def resumed(self, next_seq: int) -> None: ...


class Capture(threading.Thread):
    """Captures one device into a Sink until asked to stop or the device fails.

    `want(state)` steers it (recording, paused, stopped); `error` holds a DeviceError message (Swedish,
    safe to show) when the device failed, `sink_error` the exception a sink method raised.
    """

    def __init__(self, device: str, sink: Sink, *, chunk_seconds: float, first_seq: int = 0,
                 state: str = RECORDING, env: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True, name=f"capture-{device}")
        self.device, self.sink, self.env = device, sink, env
        self.chunk_bytes = max(BLOCK_BYTES, int(chunk_seconds * RATE) * SAMPLE_BYTES)
        self.seq = first_seq
        self.state = state            # what the capture is doing now
        self._wanted = state          # what it was asked to do
        self._lock = threading.Lock()
        # Held while the sink records a pause or resume and `state` follows: whoever holds it sees the
        # sink's side (live's state) and `state` agree.
        self.transition = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.error: str | None = None
        self.sink_error: BaseException | None = None
        self.captured_bytes = 0       # stored audio (not what was dropped while paused)
        self.heard_bytes = 0          # everything read from the device

    def want(self, state: str) -> None:
        with self._lock:
            if self._wanted != STOPPED:  # stopping is final
                self._wanted = state

    @property
    def wanted(self) -> str:
        with self._lock:
            return self._wanted

    def stop(self, timeout: float = 3.0) -> None:
        """Ask to stop and wait. arecord blocked on a silent device is terminated, then killed."""
        self.want(STOPPED)
        self.join(1.0)
        proc = self.proc
        if self.is_alive() and proc is not None and proc.poll() is None:
            proc.terminate()
            self.join(timeout)
            if self.is_alive() and proc.poll() is None:
                proc.kill()
        self.join(timeout)

    def run(self) -> None:
        try:
            # Its own session: a Ctrl-C in the terminal (make run) reaches the recorder, which then stores the
            # last partial chunk, instead of killing arecord first (which would look like a device error).
            # Its messages go to a file: a pipe nobody reads while all is well could fill up (overrun notices)
            # and stall arecord.
            self._messages = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(arecord_command(self.device), stdout=subprocess.PIPE,
                                         stderr=self._messages, stdin=subprocess.DEVNULL, env=self.env,
                                         start_new_session=True)
        except OSError as exc:  # arecord missing (alsa-utils not installed)
            self._messages.close()
            log.error("cannot start arecord: %s", exc)
            self.error = "Mikrofonen kunde inte öppnas. Kontakta IT."
            self.state = STOPPED
            return
        try:
            self._loop(self.proc)
        except BaseException as exc:  # a sink failure ends the capture; the caller decides what it means
            self.sink_error = exc
        finally:
            self._end(self.proc)
            self.state = STOPPED

    def _loop(self, proc: subprocess.Popen) -> None:
        buf = bytearray()
        assert proc.stdout is not None
        while True:
            wanted = self.wanted
            if wanted == STOPPED:
                self._flush(buf)
                return
            if wanted == PAUSED and self.state == RECORDING:
                self._flush(buf)  # what was said before the pause is stored
                with self.transition:
                    self.sink.paused(self.seq)
                    self.state = PAUSED
            elif wanted == RECORDING and self.state == PAUSED:
                with self.transition:
                    self.sink.resumed(self.seq)
                    self.state = RECORDING
            block = proc.stdout.read(BLOCK_BYTES)
            self.heard_bytes += len(block)
            if len(block) < BLOCK_BYTES:  # arecord ended: stopped by us, or the device failed
                if self.state == RECORDING:
                    buf += block[: len(block) - len(block) % SAMPLE_BYTES]
                self._flush(buf)
                if self.wanted != STOPPED:
                    self.error = self._device_error(proc)
                return
            if self.state == RECORDING:
                buf += block
                if len(buf) >= self.chunk_bytes:
                    self._flush(buf)
            # paused: the block is dropped here, never stored

    def _flush(self, buf: bytearray) -> None:
        if not buf:
            return
        self.sink.chunk(self.seq, bytes(buf))
        self.captured_bytes += len(buf)
        self.seq += 1
        buf.clear()

    def _device_error(self, proc: subprocess.Popen) -> str:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
        self._messages.seek(0)
        detail = self._messages.read(2000).decode("utf-8", "replace").strip()
        # arecord's own words name the device and the ALSA error (no personal data): for IT, in the log.
        log.warning("capture device %s ended (arecord exit %s): %s", self.device, proc.returncode, detail[:300])
        return "Mikrofonen slutade leverera ljud eller kunde inte öppnas. Kontrollera att den är ansluten."

    def _end(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._messages.close()
