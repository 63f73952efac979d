"""Desk-microphone capture cost: the recorder's path (arecord → services.alsa.Capture → live.append_chunk, i.e.
encrypt, fsync, SQLCipher row per chunk) against raw `arecord` alone, on the same ALSA device in the same run.

The device is the test setup's ALSA `file` plugin over `null`, reading a FIFO that `dd` fills in whole 0.1 s
periods as fast as they are taken (so the figures are CPU per hour of audio, not real time). CPU is this
process (the capture thread) plus its children (arecord, dd — dd costs the same in both runs).
Run: `.venv/bin/python bench/recorder_overhead.py [--minutes 10] [--chunk-seconds 2]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import live  # noqa: E402
from appliance.config import load_config  # noqa: E402
from appliance.platform.context import init_state  # noqa: E402
from appliance.users import accounts
from services import alsa  # noqa: E402
from services.recorder import DeskSink  # noqa: E402

DEVICE = "benchmic"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _feed(fifo: Path, audio: Path) -> subprocess.Popen:
    # bs = one period: each write is atomic (< PIPE_BUF), so every read of the file plugin gets a whole period.
    return subprocess.Popen(["dd", f"if={audio}", f"of={fifo}", f"bs={alsa.BLOCK_BYTES}", "status=none"])


def raw(fifo: Path, audio: Path, seconds: int) -> tuple[float, float]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    feeder = _feed(fifo, audio)
    rec = subprocess.run([*alsa.arecord_command(DEVICE), "-d", str(seconds)], stdout=subprocess.DEVNULL, check=True)
    assert rec.returncode == 0
    feeder.wait()
    return time.perf_counter() - t0, _children_cpu() - cpu0


class TimedSink(DeskSink):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.times: list[float] = []

    def chunk(self, seq: int, pcm: bytes) -> None:
        t = time.perf_counter()
        super().chunk(seq, pcm)
        self.times.append(time.perf_counter() - t)


def recorder(fifo: Path, audio: Path, seconds: int, chunk_seconds: float, state: Path) -> tuple[float, float, list]:
    app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(state),
                                          "APPLIANCE_RECORDING__MIN_FREE_MB": "0",
                                          "APPLIANCE_RECORDING__MAX_MINUTES": str(seconds // 60 + 5)}))
    with closing(app.connect()) as conn:
        user = accounts.create_user(conn, "bench", ["caseworker"])[0]
        rid = live.start(app, conn, user, title="bench", source="desk", device=DEVICE, consent_confirmed=True)
    sink = TimedSink(app, rid, user.id)
    cpu0, own0, t0 = _children_cpu(), time.process_time(), time.perf_counter()
    feeder = _feed(fifo, audio)
    capture = alsa.Capture(DEVICE, sink, chunk_seconds=chunk_seconds)
    capture.start()
    total = seconds * alsa.RATE * alsa.SAMPLE_BYTES
    while capture.heard_bytes < total and capture.is_alive():
        time.sleep(0.01)
    capture.want(alsa.STOPPED)
    feeder.wait()  # dd ends: arecord then reads zeros (the null device) and sees the stop after one period
    capture.stop()
    assert capture.error is None and capture.sink_error is None, (capture.error, capture.sink_error)
    wall = time.perf_counter() - t0
    cpu = (_children_cpu() - cpu0) + (time.process_time() - own0)
    with closing(app.connect()) as conn:
        stored = live.received_seconds(conn, rid)
    assert stored >= seconds, stored
    return wall, cpu, sink.times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--chunk-seconds", type=float, default=2.0)
    args = ap.parse_args()
    seconds = int(args.minutes * 60)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        fifo = tmp / "mic.fifo"
        os.mkfifo(fifo)
        conf = tmp / "asound.conf"
        conf.write_text(f'</usr/share/alsa/alsa.conf>\npcm.{DEVICE} {{\n type file\n slave.pcm "null"\n'
                        f' file "/dev/null"\n infile "{fifo}"\n format "raw"\n}}\n')
        os.environ["ALSA_CONFIG_PATH"] = str(conf)
        rng = np.random.default_rng(1)
        audio = tmp / "audio.raw"  # noise-like speech stand-in (encryption cost does not depend on content)
        audio.write_bytes((rng.normal(0, 3000, (seconds + 2) * alsa.RATE)).astype("<i2").tobytes())
        raw_wall, raw_cpu = raw(fifo, audio, seconds)
        rec_wall, rec_cpu, times = recorder(fifo, audio, seconds, args.chunk_seconds, tmp / "state")
    hours = seconds / 3600
    ms = np.array(times) * 1000
    print(f"audio: {seconds} s in {args.chunk_seconds:g} s chunks ({len(times)} chunks), device fed as fast as read")
    print(f"raw arecord        : wall {raw_wall:6.2f} s, CPU {raw_cpu:6.2f} s  = {raw_cpu / hours:7.1f} CPU-s per hour")
    print(f"recorder (stored)  : wall {rec_wall:6.2f} s, CPU {rec_cpu:6.2f} s  = {rec_cpu / hours:7.1f} CPU-s per hour")
    print(f"CPU ratio recorder/raw: {rec_cpu / raw_cpu:.1f}x; recorder CPU share of one core in real time: "
          f"{100 * rec_cpu / seconds:.2f} %")
    print(f"append_chunk (encrypt + fsync + row): median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
          f"max {ms.max():.1f} ms per chunk")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
