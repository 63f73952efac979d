"""Desk microphones for real: the recorder unit captures with `arecord` from an ALSA device.

The device is ALSA's `file` PCM plugin over the `null` plugin, reading its samples from a FIFO (`infile`):
`arecord` goes through the real ALSA capture path and gets exactly what the test's microphone writes into
the FIFO. Two things learnt about the plugin (alsa-lib 1.2.8): `null` does not pace capture, so a regular
file as `infile` is read as fast as arecord asks and then yields zeros forever; and the plugin does one
read() from `infile` per period, so a short read pads that period with the null device's zeros. Hence a FIFO,
fed in whole periods (the recorder asks for 0.1 s periods): the feeder paces the "microphone" and every
byte arrives unchanged.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from appliance.config import load_config
from appliance.platform import audit
from appliance.platform.context import init_state
from appliance.recordings import desk, live
from appliance.users import accounts
from services import alsa
from services.alsa import Capture
from tests.conftest import recognised, speak_swedish
from tests.web_fixtures import PASSWORD, FakeClock, client_of, csrf_from, sign_in
from web import create_app

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "deskmic"
BLOCK = alsa.BLOCK_BYTES  # one 0.1 s period

ALSA_CONF = """</usr/share/alsa/alsa.conf>
pcm.%(name)s {
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "%(fifo)s"
    format "raw"
    hint { show on description "Testmikrofon (fil)" }
}
"""


class Microphone:
    """The test's desk microphone: writes 0.1 s periods into the FIFO the ALSA device reads.

    `say()` queues audio (padded to whole periods), written `speed` times faster than real time. With
    `idle_silence` it sends real-time silence while nothing is queued, like a real microphone in a quiet
    room; without, the device blocks until something is said (exact byte accounting). A reader that goes
    away (arecord killed) is waited for again, as a microphone does not care who listens.
    """

    def __init__(self, tmp: Path, *, idle_silence: bool, speed: float = 4.0) -> None:
        self.fifo = tmp / "mic.fifo"
        os.mkfifo(self.fifo)
        self.conf = tmp / "asound.conf"
        self.conf.write_text(ALSA_CONF % {"name": DEVICE, "fifo": self.fifo})
        self.env = {"ALSA_CONFIG_PATH": str(self.conf)}
        self.idle_silence, self.delay = idle_silence, alsa.PERIOD_FRAMES / alsa.RATE / speed
        self.blocks: queue.Queue[bytes] = queue.Queue()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def say(self, pcm: bytes) -> None:
        pcm += bytes(-len(pcm) % BLOCK)
        for i in range(0, len(pcm), BLOCK):
            self.blocks.put(pcm[i:i + BLOCK])

    def drained(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.blocks.empty():
            assert time.monotonic() < deadline, "the microphone's audio was not read"
            time.sleep(0.05)

    def _run(self) -> None:
        pending = None
        while not self.closed.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.02)
                continue
            os.set_blocking(fd, True)
            try:
                while not self.closed.is_set():
                    if pending is None:
                        try:
                            pending, delay = self.blocks.get(timeout=0.1), self.delay
                        except queue.Empty:
                            if not self.idle_silence:
                                continue
                            pending, delay = bytes(BLOCK), 0.1
                    os.write(fd, pending)  # one period, atomically (< PIPE_BUF)
                    pending = None
                    time.sleep(delay)
            except BrokenPipeError:
                pass  # the reader died: wait for the next one, and re-send what it did not take
            finally:
                os.close(fd)

    def close(self) -> None:
        self.closed.set()
        self.thread.join(5)


def pcm_of(wav: Path) -> bytes:
    """Raw s16le 16 kHz mono, as a desk microphone delivers it through ALSA's plughw."""
    return subprocess.run(["sox", str(wav), "-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer",
                           "-"], check=True, capture_output=True).stdout


def tone(seconds: float, freq: float) -> bytes:
    t = np.arange(int(seconds * alsa.RATE)) / alsa.RATE
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2").tobytes()


def wait_for(what, timeout: float = 30, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {getattr(what, '__name__', 'a condition')}"
        time.sleep(step)


@pytest.fixture
def mic(tmp_path, monkeypatch):
    m = Microphone(tmp_path, idle_silence=False)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(m.conf))  # for arecord children of this process
    yield m
    m.close()


class ListSink:
    def __init__(self) -> None:
        self.chunks: dict[int, bytes] = {}
        self.events: list[tuple[str, int]] = []

    def chunk(self, seq: int, pcm: bytes) -> None:
        assert seq not in self.chunks
        self.chunks[seq] = pcm
        self.events.append(("chunk", seq))

    def paused(self, next_seq: int) -> None:
        self.events.append(("paused", next_seq))

    def resumed(self, next_seq: int) -> None:
        self.events.append(("resumed", next_seq))

    def audio(self) -> bytes:
        assert sorted(self.chunks) == list(range(len(self.chunks))), "chunk numbers must have no holes"
        return b"".join(self.chunks[s] for s in sorted(self.chunks))


# --- devices ------------------------------------------------------------------------------------------

def test_arecord_lists_the_file_backed_device_and_the_pattern_filters(mic):
    devices = alsa.list_devices()
    names = [d.name for d in devices]
    assert DEVICE in names and "null" in names
    assert alsa.offered(devices, "^deskmic$") == [alsa.Device(DEVICE, "Testmikrofon (fil)")]
    assert alsa.offered(devices, r"^plughw:") == []  # no sound card in this container: nothing offered


def test_parse_device_list():
    text = ("null\n    Discard all samples (playback) or generate zero samples (capture)\n"
            "plughw:CARD=Device,DEV=0\n    USB Audio Device, USB Audio\n    Hardware device with all software "
            "conversions\nbare\n")
    assert alsa.parse_device_list(text) == [
        alsa.Device("null", "Discard all samples (playback) or generate zero samples (capture)"),
        alsa.Device("plughw:CARD=Device,DEV=0", "USB Audio Device, USB Audio"), alsa.Device("bare", "")]


# --- the capture on its own ---------------------------------------------------------------------------

def test_capture_gets_the_devices_audio_exactly_with_pause_and_stop(mic):
    a, b, c = tone(1.0, 440), tone(0.6, 1000), tone(0.9, 660)
    sink = ListSink()
    cap = Capture(DEVICE, sink, chunk_seconds=0.5)
    cap.start()
    mic.say(a)
    wait_for(lambda: cap.heard_bytes == len(a))
    cap.want(alsa.PAUSED)                     # takes effect after the next period (stored: it was before)
    mic.say(bytes(BLOCK))
    wait_for(lambda: cap.state == alsa.PAUSED)
    mic.say(b)                                # heard while paused: dropped, never stored
    wait_for(lambda: cap.heard_bytes == len(a) + BLOCK + len(b))
    cap.want(alsa.RECORDING)
    mic.say(bytes(BLOCK))                     # the period during which resume happens: still paused
    wait_for(lambda: cap.state == alsa.RECORDING)
    mic.say(c)
    wait_for(lambda: cap.heard_bytes == len(a) + 2 * BLOCK + len(b) + len(c))
    cap.want(alsa.STOPPED)
    mic.say(bytes(BLOCK))
    cap.stop()
    assert not cap.is_alive() and cap.error is None and cap.sink_error is None
    assert sink.audio() == a + bytes(BLOCK) + c + bytes(BLOCK)
    assert b[:BLOCK] not in sink.audio()
    # Chunks of 0.5 s, cut short at the pause; the pause and resume marks sit between the right chunks.
    first_after_pause = next(s for e, s in sink.events if e == "paused")
    assert sum(len(sink.chunks[s]) for s in range(first_after_pause)) == len(a) + BLOCK
    assert ("resumed", first_after_pause) in sink.events
    assert all(len(p) <= 16000 for p in sink.chunks.values())


def test_capture_reports_a_device_that_cannot_be_opened(mic):
    sink = ListSink()
    cap = Capture("no-such-device", sink, chunk_seconds=1)
    cap.start()
    cap.join(10)
    assert not cap.is_alive() and sink.chunks == {}
    assert cap.error and "Mikrofonen" in cap.error


def test_capture_keeps_what_it_had_when_the_device_dies(mic):
    sink = ListSink()
    cap = Capture(DEVICE, sink, chunk_seconds=5)
    cap.start()
    speech = tone(0.8, 300)
    mic.say(speech)
    wait_for(lambda: cap.heard_bytes == len(speech))
    cap.proc.kill()  # the device vanished under arecord (unplugged): its process ends
    cap.join(10)
    assert cap.error and "Mikrofonen" in cap.error
    assert sink.audio() == speech  # the unfinished chunk was stored before giving up


def test_desk_sink_stores_through_live_and_ends_at_the_maximum_length(tmp_path):
    from services.recorder import CaptureEnded, DeskSink

    ctx = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"),
                                          "APPLIANCE_RECORDING__MAX_MINUTES": "1",
                                          "APPLIANCE_RECORDING__MIN_FREE_MB": "0"}))
    with closing(ctx.connect()) as conn:
        user = accounts.create_user(conn, "anna", ["caseworker"])[0]
        rid = live.start(ctx, conn, user, title="t", source="desk", device=DEVICE, consent_confirmed=True)
    sink = DeskSink(ctx, rid, user.id)
    half_minute = tone(30, 440)
    sink.chunk(0, half_minute)
    sink.paused(1)
    sink.resumed(1)
    with pytest.raises(CaptureEnded):  # the recorder's capture ends there, cleanly
        sink.chunk(1, half_minute)
    with closing(ctx.connect()) as conn:
        session = live.session(conn, rid)
        assert session.state == "stopped" and session.stop_reason == "max_length"
        assert [(m.kind, m.seq) for m in live.marks(conn, rid)] == [("pause", 1), ("resume", 1), ("max_length", 2)]
        assert audit.entries(conn, action="recording.pause", actor=f"user:{user.id}")  # on the user's behalf


def test_two_starts_racing_for_one_device_leave_one_recording(tmp_path, monkeypatch):
    ctx = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"),
                                          "APPLIANCE_RECORDING__MIN_FREE_MB": "0"}))
    with closing(ctx.connect()) as conn:
        user = accounts.create_user(conn, "anna", ["caseworker"])[0]
        desk.publish(conn, "recorder:test", [desk.DeviceInfo(DEVICE, "")])
        first = desk.start(ctx, conn, user, device=DEVICE, title="a", consent_confirmed=True)
        # The second request passed the "is it free" check just before the first one took the device.
        monkeypatch.setattr(desk, "free_devices", lambda _conn, _cfg: [desk.DeviceInfo(DEVICE, "")])
        with pytest.raises(desk.DeskError, match="används redan"):
            desk.start(ctx, conn, user, device=DEVICE, title="b", consent_confirmed=True)
        assert [r[0] for r in conn.execute("SELECT id FROM recordings")] == [first]
        undone = audit.entries(conn, action="recording.delete")
        assert len(undone) == 1 and undone[0]["detail"] == "reason:device_busy"


# --- the recorder unit, a real process, steered from the web ------------------------------------------

PART1 = "Hej, jag heter Anna och jag arbetar som socialsekreterare."
PART2 = "Vi ska prata om barnets skola och familjens ekonomi."


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[bytes, bytes]:
    tmp = tmp_path_factory.mktemp("speech")
    return pcm_of(speak_swedish(PART1, tmp / "p1")), pcm_of(speak_swedish(PART2, tmp / "p2"))


@pytest.fixture(scope="module")
def transcriber(model_store):
    from models import load_transcriber

    return load_transcriber(load_config(environ={}).asr, model_store)


class Box:
    """A state dir, the web app (Flask's client, signed in as a caseworker) and the recorder process."""

    def __init__(self, tmp: Path, mic: Microphone) -> None:
        self.env = {"APPLIANCE_PATHS__STATE_DIR": str(tmp / "state"), "APPLIANCE_RECORDER__DEVICE_PATTERN": "^deskmic$",
                    "APPLIANCE_RECORDER__POLL_SECONDS": "0.1", "APPLIANCE_RECORDER__HEARTBEAT_SECONDS": "0.3",
                    "APPLIANCE_RECORDER__STALE_SECONDS": "3", "APPLIANCE_RECORDER__CHUNK_SECONDS": "1",
                    "APPLIANCE_RECORDING__MIN_FREE_MB": "0"}
        self.mic = mic
        self.ctx = init_state(load_config(environ=self.env))
        with closing(self.ctx.connect()) as conn:
            self.user = accounts.create_user(conn, "anna", ["caseworker"], password=PASSWORD)[0]
        self.app = create_app(self.ctx, {"TESTING": True})
        self.client = client_of(self.app)
        sign_in(self.client, FakeClock(), "anna", {})
        self.log = tmp / "recorder.log"
        self.proc: subprocess.Popen | None = None

    def start_recorder(self) -> None:
        env = dict(os.environ, **self.env, **self.mic.env, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "appliance"), "recorder"], cwd=ROOT, env=env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.info().alive and self.info().devices, timeout=30)

    def kill_recorder(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def info(self) -> desk.RecorderInfo:
        with closing(self.ctx.connect()) as conn:
            return desk.recorder_info(conn, self.ctx.cfg)

    def control(self, rid: str) -> desk.DeskControl:
        with closing(self.ctx.connect()) as conn:
            return desk.control_of(conn, self.ctx.cfg, rid)

    def post(self, path: str, data: dict | None = None, page: str | None = None):
        token = csrf_from(self.client.get(page or path).text)
        return self.client.post(path, data={"csrf_token": token, **(data or {})})

    def chunks(self, rid: str) -> dict[int, bytes]:
        """Every acknowledged chunk, decrypted (before stop assembles them)."""
        with closing(self.ctx.connect()) as conn:
            dek = bytes(conn.execute("SELECT dek FROM recordings WHERE id = ?", (rid,)).fetchone()[0])
            seqs = [r[0] for r in conn.execute("SELECT seq FROM live_chunks WHERE recording_id = ?", (rid,))]
        out = {}
        for seq in seqs:
            with self.ctx.blobs.open_chunk(rid, seq, dek) as reader:
                out[seq] = reader.read_all()
        return out

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def box(tmp_path):
    mic = Microphone(tmp_path, idle_silence=True)
    b = Box(tmp_path, mic)
    yield b
    b.close()
    mic.close()


def _start_from_web(box: Box, title: str = "Samtal på kontoret") -> str:
    page = box.client.get("/recordings/new")
    assert page.status_code == 200 and "Testmikrofon (fil) (deskmic)" in page.text
    r = box.post("/recordings/new", {"title": title, "source": "desk", "device": DEVICE, "speakers": "2",
                                      "consent": "yes"})
    assert r.status_code == 303, r.text
    m = re.fullmatch(r".*/recordings/([0-9a-f]+)", r.headers["Location"])
    assert m, r.headers["Location"]
    return m.group(1)


def _transcribe(box: Box, transcriber, rid: str) -> str:
    from services.asr import AsrWorker

    worker = AsrWorker(box.ctx, transcriber, worker_id="test-asr")

    def ready():
        worker.run_live_once()
        with closing(box.ctx.connect()) as conn:
            return conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "ready"

    wait_for(ready, timeout=240, step=0)
    with closing(box.ctx.connect()) as conn:
        return " ".join(r[0] for r in conn.execute("SELECT text FROM segments WHERE recording_id = ? ORDER BY idx",
                                                   (rid,)))


def test_desk_recording_end_to_end(box, speech, transcriber):
    box.start_recorder()
    # No consent: refused with the reason, nothing created.
    r = box.post("/recordings/new", {"title": "x", "source": "desk", "device": DEVICE}, page="/recordings/new")
    assert r.status_code == 400 and "samtyckt" in r.text
    rid = _start_from_web(box)
    wait_for(lambda: box.control(rid).state == "recording")
    page = box.client.get(f"/recordings/{rid}").text
    assert 'id="desk-mic"' in page and "Spelar in" in page and f"/recordings/{rid}/desk/pause" in page
    part1, part2 = speech
    box.mic.say(part1)
    box.mic.drained()
    wait_for(lambda: box.control(rid).captured_seconds >= len(part1) / 32000)
    assert box.post(f"/recordings/{rid}/desk/pause", page=f"/recordings/{rid}").status_code == 303
    wait_for(lambda: box.control(rid).state == "paused")
    page = box.client.get(f"/recordings/{rid}").text
    assert "Pausad" in page and f"/recordings/{rid}/desk/resume" in page
    secret = tone(1.5, 1000)  # said during the pause: must never be stored
    box.mic.say(secret)
    box.mic.drained()
    time.sleep(0.3)
    assert box.post(f"/recordings/{rid}/desk/resume", page=f"/recordings/{rid}").status_code == 303
    wait_for(lambda: box.control(rid).state == "recording")
    box.mic.say(part2)
    box.mic.drained()
    wait_for(lambda: box.control(rid).captured_seconds >= (len(part1) + len(part2)) / 32000)
    status = box.client.get(f"/recordings/{rid}/desk").get_json()["desk"]
    assert status["state"] == "recording" and status["active"] and status["error"] is None
    r = box.post(f"/recordings/{rid}/desk/stop", page=f"/recordings/{rid}")
    assert r.status_code == 303
    wait_for(lambda: box.control(rid).state == "stopped")

    with closing(box.ctx.connect()) as conn:
        session = live.session(conn, rid)
        kinds = [m.kind for m in live.marks(conn, rid)]
        assert session.source == "desk" and session.device == DEVICE and session.state == "stopped"
        assert kinds[:2] == ["pause", "resume"] and kinds[-1] == "stop" and "gap" not in kinds
        consent = audit.entries(conn, action="recording.consent", target=f"recording:{rid}")
        assert consent and consent[0]["actor"] == f"user:{box.user.id}"
        assert audit.entries(conn, action="recording.desk_pause", target=f"recording:{rid}")
    audio = box.client.get(f"/recordings/{rid}/audio").data
    assert audio[:4] == b"RIFF"
    pcm = audio[44:]
    assert part1[:len(part1) - len(part1) % BLOCK] in pcm and part2[:len(part2) - len(part2) % BLOCK] in pcm
    assert pcm.index(part1[:BLOCK]) < pcm.index(part2[:BLOCK])
    assert secret[BLOCK:2 * BLOCK] not in pcm  # the paused stretch was dropped
    text = _transcribe(box, transcriber, rid)
    recognised(text)
    page = box.client.get(f"/recordings/{rid}").text
    assert "desk-notice" not in page  # ended normally: nothing to explain


def test_kill_9_of_the_recorder_loses_no_acknowledged_chunk_and_a_restart_takes_over(box, speech):
    box.start_recorder()
    rid = _start_from_web(box)
    part1, part2 = speech
    box.mic.say(part1)
    wait_for(lambda: box.control(rid).acked_chunks >= 3)
    box.kill_recorder()
    acked = box.chunks(rid)  # everything acknowledged before the kill
    assert len(acked) >= 3
    box.mic.say(part2)
    box.start_recorder()  # systemd's Restart=always
    wait_for(lambda: box.control(rid).error is not None)
    control = box.control(rid)
    assert control.state == "recording" and "startades om" in control.error
    box.mic.drained()
    wait_for(lambda: len(box.chunks(rid)) >= len(acked) + 3)
    assert box.post(f"/recordings/{rid}/desk/stop", page=f"/recordings/{rid}").status_code == 303
    wait_for(lambda: box.control(rid).state == "stopped")
    with closing(box.ctx.connect()) as conn:
        marks = live.marks(conn, rid)
        row = conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()
    assert row["status"] in ("transcribing", "ready")
    # The takeover is marked where audio is missing: a pause/resume pair at the first chunk after the kill.
    first_new = max(acked) + 1
    assert [(m.kind, m.seq) for m in marks if m.kind in ("pause", "resume")] == [("pause", first_new),
                                                                                ("resume", first_new)]
    assert not [m for m in marks if m.kind == "gap"]
    pcm = box.client.get(f"/recordings/{rid}/audio").data[44:]
    offset = 0
    for seq in sorted(acked):  # every acknowledged chunk, byte for byte, where it belongs
        assert pcm[offset:offset + len(acked[seq])] == acked[seq], f"chunk {seq} changed or missing"
        offset += len(acked[seq])


def test_a_device_failure_ends_the_recording_cleanly_and_the_page_says_why(box, speech, transcriber):
    box.start_recorder()
    rid = _start_from_web(box)
    box.mic.say(speech[0])
    wait_for(lambda: box.control(rid).acked_chunks >= 2)
    children = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(box.proc.pid)], capture_output=True,
                              text=True).stdout.split()
    arecord = int(children[children.index("arecord") - 1])
    os.kill(arecord, signal.SIGKILL)  # the microphone is gone under arecord (unplugged)
    wait_for(lambda: box.control(rid).state == "failed")
    control = box.control(rid)
    assert "Mikrofonen slutade leverera ljud" in control.error
    page = box.client.get(f"/recordings/{rid}").text
    assert "Mikrofonen slutade leverera ljud" in page  # while the transcript is finished
    pcm = box.client.get(f"/recordings/{rid}/audio").data[44:]
    # Everything captured up to the failure, the unfinished last chunk included, is the recording.
    assert len(pcm) == round(control.captured_seconds * 32000) > 0 and pcm[:BLOCK] == speech[0][:BLOCK]
    _transcribe(box, transcriber, rid)
    page = box.client.get(f"/recordings/{rid}").text
    assert 'id="desk-notice"' in page and "Mikrofonen slutade leverera ljud" in page  # and after it is ready
    assert box.info().alive  # the recorder itself carries on


def test_stop_from_the_web_when_the_recorder_is_gone_keeps_what_was_stored(box, speech):
    box.start_recorder()
    rid = _start_from_web(box)
    box.mic.say(speech[0])
    wait_for(lambda: box.control(rid).acked_chunks >= 2)
    box.kill_recorder()
    stored = box.chunks(rid)
    wait_for(lambda: not box.info().alive, timeout=10)
    page = box.client.get(f"/recordings/{rid}").text
    r = box.post(f"/recordings/{rid}/desk/pause", page=f"/recordings/{rid}")
    assert r.status_code == 303
    assert "inte igång" in box.client.get(r.headers["Location"]).text  # pause needs the recorder: said so
    r = box.post(f"/recordings/{rid}/desk/stop", page=f"/recordings/{rid}")
    assert r.status_code == 303
    control = box.control(rid)
    assert control.state == "stopped" and "avslutades härifrån" in control.error
    pcm = box.client.get(f"/recordings/{rid}/audio").data[44:]
    assert pcm == b"".join(stored[s] for s in sorted(stored))
    assert page  # the recording page rendered while the recorder was gone


def test_pause_through_the_live_routes_also_pauses_the_desk_microphone(box, speech):
    box.start_recorder()
    rid = _start_from_web(box)
    wait_for(lambda: box.control(rid).state == "recording")
    r = box.post(f"/recordings/{rid}/pause", page=f"/recordings/{rid}")  # live's route, not desk's
    assert r.status_code == 303
    wait_for(lambda: box.control(rid).state == "paused")
    assert box.control(rid).desired == "paused"
    before = box.control(rid).acked_chunks
    box.mic.say(tone(1.0, 1000))
    box.mic.drained()
    time.sleep(0.5)
    assert box.control(rid).acked_chunks == before  # nothing stored while paused
    box.post(f"/recordings/{rid}/resume", page=f"/recordings/{rid}")
    wait_for(lambda: box.control(rid).state == "recording")
    box.post(f"/recordings/{rid}/desk/stop", page=f"/recordings/{rid}")
    wait_for(lambda: box.control(rid).state == "stopped")


def test_the_web_offers_only_what_the_recorder_publishes_and_refuses_a_busy_device(box):
    page = box.client.get("/recordings/new").text
    assert "inte igång" in page  # no recorder yet: said so, nothing to choose
    r = box.post("/recordings/new", {"title": "x", "source": "desk", "device": DEVICE, "consent": "yes"})
    assert r.status_code == 400 and "inte igång" in r.text
    box.start_recorder()
    r = box.post("/recordings/new", {"title": "x", "source": "desk", "device": "plughw:CARD=Other,DEV=0",
                                           "consent": "yes"})
    assert r.status_code == 400 and "finns inte" in r.text
    rid = _start_from_web(box)
    r = box.post("/recordings/new", {"title": "y", "source": "desk", "device": DEVICE, "consent": "yes"})
    assert r.status_code == 400 and "används redan" in r.text
    with closing(box.ctx.connect()) as conn:
        assert conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 1
    assert "Testmikrofon" not in box.client.get("/recordings/new").text  # busy: not offered
    box.post(f"/recordings/{rid}/desk/stop", page=f"/recordings/{rid}")
    wait_for(lambda: box.control(rid).state == "stopped")
    wait_for(lambda: "Testmikrofon" in box.client.get("/recordings/new").text)


# --- configuration, command line, unit ------------------------------------------------------------------

def test_recorder_config_is_strict():
    from appliance.errors import ConfigError

    cfg = load_config(environ={"APPLIANCE_RECORDER__DEVICE_PATTERN": "^hw:", "APPLIANCE_RECORDER__CHUNK_SECONDS": "3"})
    assert cfg.recorder.device_pattern == "^hw:" and cfg.recorder.chunk_seconds == 3
    with pytest.raises(ConfigError, match="device_pattern"):
        load_config(environ={"APPLIANCE_RECORDER__DEVICE_PATTERN": "(unclosed"})
    with pytest.raises(ConfigError, match="unknown key 'recorder.port'"):
        load_config(environ={"APPLIANCE_RECORDER__PORT": "9000"})


def test_cli_lists_devices_and_doctor_reports_them(mic, tmp_path):
    env = dict(os.environ, APPLIANCE_RECORDER__DEVICE_PATTERN="^deskmic$",
               APPLIANCE_PATHS__STATE_DIR=str(tmp_path / "state"))
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "appliance"), "recorder", "devices"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^offered\s+deskmic\s+Testmikrofon \(fil\)$", out.stdout, re.M), out.stdout
    assert re.search(r"^\s+null\s", out.stdout, re.M)
    doctor = subprocess.run([str(ROOT / ".venv" / "bin" / "appliance"), "doctor"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert "[OK  ] desk microphones: deskmic" in doctor.stdout, doctor.stdout
    env["APPLIANCE_RECORDER__DEVICE_PATTERN"] = "^plughw:"
    doctor = subprocess.run([str(ROOT / ".venv" / "bin" / "appliance"), "doctor"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert "[WARN] desk microphones: no capture device" in doctor.stdout, doctor.stdout


def test_recorder_unit_has_no_network_and_only_sound_devices(tmp_path):
    from provisioning.units import write

    written = write(load_config(environ={}), tmp_path, prefix=ROOT)
    unit = (tmp_path / "appliance-recorder.service").read_text()
    for line in ("PrivateNetwork=yes", "SupplementaryGroups=audio", "DeviceAllow=char-alsa rw", "DevicePolicy=closed",
                 "KillMode=mixed", f"ExecStart={ROOT}/.venv/bin/appliance recorder"):
        assert line in unit.splitlines(), line
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "appliance-recorder.service")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(written) >= 7

