"""appliance/live.py on real SQLCipher and the real encrypted blob store: consent, disk space, chunks
(idempotent, out of order, conflicting, missing), pause marks, stop assembling one playable WAV, max length."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from appliance.errors import NotFound
from appliance.platform import audit
from appliance.recordings import live, recordings
from appliance.recordings.audio import decode_audio
from appliance.users import accounts
from tests.web_fixtures import make_ctx

RATE = live.SAMPLE_RATE


def _ctx(tmp_path, **recording):
    return make_ctx(tmp_path, "recording", **recording)


@pytest.fixture
def conn(db):
    return db  # tests/web_fixtures.py: a connection to the `ctx` fixture's fresh state


@pytest.fixture
def anna(conn):
    return accounts.create_user(conn, "anna", ["caseworker"])[0]


def tone(seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2").tobytes()


def _start(ctx, conn, user, **kw):
    args = {"title": "Hembesök", "source": "browser", "consent_confirmed": True, **kw}
    return live.start(ctx, conn, user, **args)


def test_start_needs_consent_and_is_audited(ctx, conn, anna):
    with pytest.raises(live.ConsentMissing, match="samtyckt"):
        _start(ctx, conn, anna, consent_confirmed=False)
    assert conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
    rid = _start(ctx, conn, anna, speakers="2")
    row = conn.execute("SELECT status, speakers_hint, mime FROM recordings WHERE id = ?", (rid,)).fetchone()
    assert (row["status"], row["speakers_hint"], row["mime"]) == ("recording", 2, "audio/wav")
    consent = conn.execute("SELECT user_id, confirmed_at FROM recording_consents WHERE recording_id = ?",
                           (rid,)).fetchone()
    assert consent["user_id"] == anna.id and consent["confirmed_at"] > 0
    entries = audit.entries(conn, action="recording.consent", target=f"recording:{rid}")
    assert len(entries) == 1 and entries[0]["actor"] == anna.actor
    assert live.session(conn, rid).state == "recording"


def test_start_refuses_when_disk_almost_full(tmp_path):
    ctx = _ctx(tmp_path, min_free_mb=10**9)  # more than any disk here has free
    conn = ctx.connect()
    user = accounts.create_user(conn, "anna", ["caseworker"])[0]
    with pytest.raises(live.DiskFull, match="ledigt lagringsutrymme"):
        _start(ctx, conn, user)
    assert conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0


def test_start_refuses_admins_and_bad_input(ctx, conn, anna):
    it = accounts.create_user(conn, "it", ["admin"])[0]
    with pytest.raises(live.LiveError):
        _start(ctx, conn, it)
    with pytest.raises(live.LiveError, match="var ljudet"):
        _start(ctx, conn, anna, source="radio")
    with pytest.raises(live.LiveError, match="bordsmikrofon"):
        _start(ctx, conn, anna, source="desk")
    with pytest.raises(Exception, match="Antal talare"):
        _start(ctx, conn, anna, speakers="99")
    bo = accounts.create_user(conn, "bo", ["caseworker"])[0]
    from appliance.recordings import folders
    with pytest.raises(NotFound):
        _start(ctx, conn, anna, folder_id=folders.ensure_default(conn, bo))
    assert conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0


def test_chunks_idempotent_out_of_order_conflict_and_gaps(ctx, conn, anna):
    rid = _start(ctx, conn, anna)
    a, b, c, d = tone(1, 300), tone(1, 500), tone(0.5, 700), tone(1, 900)
    ack = live.append_chunk(ctx, conn, rid, 1, b)  # out of order: 0 not there yet
    assert ack.missing == (0,) and not ack.duplicate and ack.received == 1
    ack = live.append_chunk(ctx, conn, rid, 0, a)
    assert ack.missing == () and ack.received == 2 and ack.seconds == pytest.approx(2.0)
    again = live.append_chunk(ctx, conn, rid, 0, a)  # a retry of an acknowledged chunk
    assert again.duplicate and again.received == 2
    with pytest.raises(live.ChunkConflict):
        live.append_chunk(ctx, conn, rid, 0, c)
    for bad_seq, bad in ((-1, a), ("x", a), (5, b""), (5, b"\x00\x01\x02"), (5, bytes(31 * RATE * 2))):
        with pytest.raises(live.BadChunk):
            live.append_chunk(ctx, conn, rid, bad_seq, bad)
    live.append_chunk(ctx, conn, rid, 2, c)
    ack = live.append_chunk(ctx, conn, rid, 4, d)  # 3 never arrives
    assert ack.missing == (3,)
    assert live.contiguous_samples(conn, rid) == int(2.5 * RATE)
    assert live.read_pcm(ctx, conn, rid, RATE // 2, 2 * RATE) == (a + b)[RATE:4 * RATE]

    result = live.stop(ctx, conn, anna, rid, chunks=6)  # the client made 6 chunks: 3 and 5 are gaps
    assert result.gaps == (3, 5) and result.chunks == 6
    row = conn.execute("SELECT status, duration, mime FROM recordings WHERE id = ?", (rid,)).fetchone()
    assert row["status"] == "transcribing" and row["mime"] == "audio/wav"
    nominal = RATE  # median of 1, 1, 0.5, 1 s
    assert row["duration"] == pytest.approx((3.5 * RATE + 2 * nominal) / RATE)
    # One playable WAV through the same path the audio route uses; gaps are silence of the nominal length.
    stream = recordings.open_audio(ctx, conn, anna, rid)
    data = b"".join(stream.chunks)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        pcm = w.readframes(w.getnframes())
    assert pcm == a + b + c + bytes(nominal * 2) + d + bytes(nominal * 2)
    assert len(decode_audio(data)) == len(pcm) // 2
    marks = [(m.kind, m.seq, m.at_seconds) for m in live.marks(conn, rid)]
    assert marks == [("gap", 3, 2.5), ("gap", 5, 4.5), ("stop", 6, 5.5)]
    assert not list(ctx.cfg.paths.blobs.glob(f"{rid}.c*"))  # the pieces are gone, the WAV holds them
    with pytest.raises(live.NotRecording, match="stoppad"):
        live.append_chunk(ctx, conn, rid, 6, a)
    assert live.stop(ctx, conn, anna, rid).gaps == (3, 5)  # stopping again is harmless
    assert live.append_chunk(ctx, conn, rid, 0, a).duplicate  # a late retry of an acknowledged chunk: fine


def test_pause_resume_marks(ctx, conn, anna):
    rid = _start(ctx, conn, anna)
    live.append_chunk(ctx, conn, rid, 0, tone(2))
    # The client flushes its half-full buffer as chunk 1 and asks to pause before chunk 2; the flushed
    # chunk may arrive after the request.
    assert live.pause(ctx, conn, anna, rid, at_seq=2) == "paused"
    assert live.pause(ctx, conn, anna, rid, at_seq=2) == "paused"  # a double click adds nothing
    live.append_chunk(ctx, conn, rid, 1, tone(1))
    live.resume(ctx, conn, anna, rid, at_seq=2)
    live.append_chunk(ctx, conn, rid, 2, tone(1))
    assert [(m.kind, m.at_seconds) for m in live.marks(conn, rid)] == [("pause", 3.0), ("resume", 3.0)]
    live.stop(ctx, conn, anna, rid)
    assert [(m.kind, m.at_seconds) for m in live.marks(conn, rid)] == [("pause", 3.0), ("resume", 3.0),
                                                                       ("stop", 4.0)]
    with pytest.raises(live.NotRecording):
        live.pause(ctx, conn, anna, rid)


def test_others_cannot_control_and_deletion_takes_the_chunks(ctx, conn, anna):
    rid = _start(ctx, conn, anna)
    live.append_chunk(ctx, conn, rid, 0, tone(1))
    bo = accounts.create_user(conn, "bo", ["caseworker"])[0]
    for action in (live.pause, live.resume, live.stop):
        with pytest.raises(NotFound):
            action(ctx, conn, bo, rid)
    assert list(ctx.cfg.paths.blobs.glob(f"{rid}.c*"))
    recordings.delete_recording(ctx, conn, anna, rid)
    assert not list(ctx.cfg.paths.blobs.glob(f"{rid}*"))
    for table in ("live_sessions", "live_chunks", "live_marks", "recording_consents"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table  # noqa: S608


def test_max_length_stops_cleanly(tmp_path):
    ctx = _ctx(tmp_path, max_minutes=1)
    conn = ctx.connect()
    user = accounts.create_user(conn, "anna", ["caseworker"])[0]
    rid = _start(ctx, conn, user)
    piece = tone(25)
    assert live.append_chunk(ctx, conn, rid, 0, piece).state == "recording"
    assert live.append_chunk(ctx, conn, rid, 1, piece).state == "recording"
    ack = live.append_chunk(ctx, conn, rid, 2, piece)  # 75 s > 60 s: this one is kept, then it stops
    assert ack.state == "stopped" and ack.stop_reason == "max_length"
    with pytest.raises(live.NotRecording, match="maxlängden"):
        live.append_chunk(ctx, conn, rid, 3, piece)
    assert [m.kind for m in live.marks(conn, rid)] == ["max_length"]
    assert conn.execute("SELECT status, duration FROM recordings WHERE id = ?", (rid,)).fetchone()[:] == \
        ("transcribing", 75.0)


def test_nothing_plain_on_disk(ctx, conn, anna):
    rid = _start(ctx, conn, anna)
    piece = tone(1, 523)
    live.append_chunk(ctx, conn, rid, 0, piece)
    canary = piece[4000:4064]
    for p in ctx.cfg.paths.state_dir.rglob("*"):
        if p.is_file():
            assert canary not in p.read_bytes(), p


def test_wild_numbers_are_refused_and_bounded(tmp_path):
    ctx = _ctx(tmp_path, max_minutes=1)
    conn = ctx.connect()
    user = accounts.create_user(conn, "anna", ["caseworker"])[0]
    rid = _start(ctx, conn, user)
    live.append_chunk(ctx, conn, rid, 0, tone(1))
    with pytest.raises(live.BadChunk):
        live.append_chunk(ctx, conn, rid, 5000, tone(1))  # far beyond anything received
    with pytest.raises(live.BadChunk):
        live.pause(ctx, conn, user, rid, at_seq=10**6)
    # A client claiming millions of chunks at stop gets silence up to the maximum length, no more.
    result = live.stop(ctx, conn, user, rid, chunks=1000)
    assert result.duration <= 60 + 1
    assert conn.execute("SELECT state FROM live_sessions WHERE recording_id = ?", (rid,)).fetchone()[0] == "stopped"
