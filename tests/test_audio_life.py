"""Audio with its own, shorter life ([retention] audio_shred): shredded at each setting while the text stays
readable; the blob and its key gone; the page, the player and the suggestions say so; the re-key completes it
with a receipt (the shred timer's, or the purge's)."""

from __future__ import annotations

import re
import shutil
from contextlib import closing

import pytest

from appliance.clock import Reading
from appliance.errors import KeyError_
from appliance.platform import audit, db, keys, retention
from appliance.platform.db import transaction
from appliance.ports import Segment, Word
from appliance.recordings import audio_life, recordings
from appliance.transcripts import store, suggestions
from appliance.users.accounts import create_user, get_user
from services import shred
from tests.conftest import make_tone
from tests.web_fixtures import PASSWORD, client_of, csrf_from, make_ctx, sign_in, uploaded_id
from web import create_app

LINES = [Segment(0.0, 2.0, "Vi pratar om skolan.", (Word(0.0, 0.5, " Vi", 0.9), Word(0.5, 1.0, " pratar", 0.2),
                                                     Word(1.0, 1.5, " om", 0.9), Word(1.5, 2.0, " skolan.", 0.9))),
         Segment(2.0, 4.0, "Mamma kommer på torsdag.")]


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    return make_tone(tmp_path_factory.mktemp("tone") / "tone.wav", 0.5)


class Box:
    """One appliance with a retention setting, caseworker anna signed in, one finished recording."""

    def __init__(self, tmp_path, clock, tone, **retention_settings) -> None:
        self.ctx = make_ctx(tmp_path, "retention", **retention_settings)
        with closing(self.ctx.connect()) as conn:
            self.user = create_user(conn, "anna", ["caseworker"], password=PASSWORD)[0]
        self.app = create_app(self.ctx, {"TESTING": True})
        self.client, self.clock, self.secrets = client_of(self.app), clock, {}
        sign_in(self.client, clock, "anna", self.secrets)
        self.rid = uploaded_id(self.client, tone)
        with closing(self.ctx.connect()) as conn, transaction(conn):
            store.replace_segments(conn, self.rid, LINES)
            recordings.mark_transcribed(conn, self.rid)

    def advance(self, seconds: float) -> None:
        """Let time pass (the session's idle timeout too: sign in again)."""
        self.clock.advance(seconds)
        self.client = client_of(self.app)
        sign_in(self.client, self.clock, "anna", self.secrets)

    def row(self):
        with closing(self.ctx.connect()) as conn:
            return conn.execute("SELECT * FROM recordings WHERE id = ?", (self.rid,)).fetchone()

    def blob_files(self) -> list:
        return list(self.ctx.cfg.paths.blobs.glob(f"{self.rid}*"))

    def page(self) -> str:
        r = self.client.get(f"/recordings/{self.rid}")
        assert r.status_code == 200
        return r.text

    def mark_transferred(self) -> None:
        page = self.page()
        r = self.client.post(f"/recordings/{self.rid}/transferred", data={"csrf_token": csrf_from(page), "value": "1"})
        assert r.status_code == 303

    def audit(self, action: str) -> list[dict]:
        return audit.entries(self.ctx, action=action)


def assert_text_readable(box: Box) -> None:
    page = box.page()
    assert "Vi pratar om skolan." in page and "Mamma kommer på torsdag." in page
    with closing(box.ctx.connect()) as conn:
        assert [s.text for s in recordings.transcript_segments(conn, box.rid)] == [s.text for s in LINES]


def assert_audio_gone(box: Box, reason: str) -> None:
    row = box.row()
    assert row["dek"] == b"" and row["audio_shredded_at"] is not None and row["audio_shred_reason"] == reason
    assert box.blob_files() == []
    page = box.page()
    assert 'data-audio="gone"' in page and "Ljudet raderades" in page
    assert f'src="/recordings/{box.rid}/audio"' not in page and 'id="player-gone"' in page
    assert re.search(r'<button type="button" class="seg-time" disabled', page)
    assert 'class="doubt"' not in page  # Whisper's doubtful words are no longer marked
    assert box.client.get(f"/recordings/{box.rid}/audio").status_code == 410
    sugg = box.client.get(f"/recordings/{box.rid}/suggestions").text
    assert 'data-audio="gone"' in sugg and f'src="/recordings/{box.rid}/audio"' not in sugg


def test_transferred_shreds_at_once_and_the_rekey_completes_it(tmp_path, clock, tone):
    box = Box(tmp_path, clock, tone, audio_shred="transferred")
    page = box.page()
    assert 'data-audio="transferred"' in page and f'src="/recordings/{box.rid}/audio"' in page
    assert 'class="doubt"' in page  # "pratar" (20 %) is marked while the audio lives
    assert box.client.get(f"/recordings/{box.rid}/audio").status_code == 200
    with closing(box.ctx.connect()) as conn:  # while the audio lives, Whisper's doubt is offered
        assert any(s.low for s in suggestions.for_recording(conn, box.rid))
    dek = bytes(box.row()["dek"])
    assert len(dek) == 32 and box.blob_files()

    box.mark_transferred()
    assert_audio_gone(box, "transferred")
    assert_text_readable(box)
    (rec,) = box.audit("audio.shred")
    assert rec["actor"] == f"user:{box.user.id}" and rec["data"]["recording_ids"] == [box.rid]
    assert rec["data"]["reason"] == "transferred"
    with closing(box.ctx.connect()) as conn:  # confidence suggestions are off, lexicon ones would remain
        user = get_user(conn, box.user.id)
        assert not any(s.low for s in suggestions.list_for_user(conn, user, box.rid))
        assert retention.pending_rekey(conn) == [f"recording:{box.rid}"]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # Remnants of the DEK may survive in pages of this generation: keep a copy of the file to prove they end
    # up under a destroyed key.
    old_key, old_file = box.ctx.current_db(), box.ctx.db_file
    copy = tmp_path / "copy.db"
    shutil.copy(old_file, copy)

    run = shred.run_once(box.ctx)
    assert run.audio == [] and run.rekey is not None and run.rekey.completed == [f"recording:{box.rid}"]
    (receipt,) = box.audit("rekey.receipt")
    assert receipt["data"]["completed"] == [f"recording:{box.rid}"]
    assert receipt["data"]["old_key_fingerprint"] == keys.fingerprint(old_key.key)
    assert not old_file.exists()
    with pytest.raises(KeyError_):
        db.connect(copy, box.ctx.current_db().key)
    with closing(box.ctx.connect()) as conn:
        assert retention.pending_rekey(conn) == []
    assert_text_readable(box)
    assert shred.run_once(box.ctx).rekey is None  # nothing pending: no needless re-key


def test_hours_after_final_is_gone_at_read_time_then_shredded_by_the_timer(tmp_path, clock, tone):
    box = Box(tmp_path, clock, tone, audio_shred="hours_after_final", audio_hours_after_final=2)
    page = box.page()
    assert 'data-audio="hours"' in page and "2 timmar efter att utskriften blev klar" in page
    box.mark_transferred()  # not this setting's trigger
    assert box.client.get(f"/recordings/{box.rid}/audio").status_code == 200 and box.blob_files()
    assert shred.run_once(box.ctx).audio == []

    box.advance(2 * 3600 + 1)
    # The rule has made it due: unplayable at once, before the timer has run.
    page = box.page()
    assert 'data-audio="gone"' in page and f'src="/recordings/{box.rid}/audio"' not in page
    assert box.client.get(f"/recordings/{box.rid}/audio").status_code == 410
    assert box.blob_files()

    run = shred.run_once(box.ctx)
    assert run.audio == [box.rid] and run.rekey.completed == [f"recording:{box.rid}"]
    assert_audio_gone(box, "hours_after_final")
    assert_text_readable(box)
    assert box.audit("audio.shred")[0]["actor"] == audio_life.ACTOR


def test_purge_setting_keeps_audio_until_the_purge(tmp_path, clock, tone):
    box = Box(tmp_path, clock, tone)  # default: audio_shred = purge
    assert box.ctx.cfg.retention.audio_shred == "purge"
    page = box.page()
    assert 'data-audio="purge"' in page and "tillsammans med utskriften vid gallringen" in page
    box.mark_transferred()
    box.advance(40 * 3600)
    assert shred.run_once(box.ctx).audio == []
    assert box.client.get(f"/recordings/{box.rid}/audio").status_code == 200 and box.row()["dek"] != b""


def test_purge_receipt_records_audio_shredded_earlier(tmp_path, clock, tone):
    box = Box(tmp_path, clock, tone, audio_shred="transferred")
    box.mark_transferred()  # shredded; its re-key not yet done
    now = clock.now()
    report = retention.purge(box.ctx, reading=Reading(now, None))
    assert report.expired == [] and report.completed_audio == [f"recording:{box.rid}"]
    (receipt,) = box.audit("purge.receipt")
    assert receipt["data"]["audio_shredded_earlier"] == 1
    assert receipt["data"]["completed"] == [f"recording:{box.rid}"]
    assert_text_readable(box)


def test_a_finished_live_recording_keeps_its_audio_until_diarized(tmp_path, clock, tone):
    box = Box(tmp_path, clock, tone, audio_shred="hours_after_final", audio_hours_after_final=0)
    with closing(box.ctx.connect()) as conn, transaction(conn):
        conn.execute("INSERT INTO live_sessions (recording_id, user_id, source, state, started_at) "
                     "VALUES (?, ?, 'browser', 'stopped', ?)", (box.rid, box.user.id, clock.now()))
    clock.advance(1)
    with closing(box.ctx.connect()) as conn:
        assert audio_life.due_ids(box.ctx.cfg, conn) == []  # the asr unit still labels its speakers
        conn.execute("UPDATE recordings SET diarization = 'done' WHERE id = ?", (box.rid,))
        assert audio_life.due_ids(box.ctx.cfg, conn) == [(box.rid, "hours_after_final")]


def test_a_transcription_job_for_shredded_audio_leaves_the_transcript(tmp_path, clock, tone, model_store):
    from appliance.platform import jobs
    from models import load_transcriber
    from services.asr import AsrWorker

    box = Box(tmp_path, clock, tone, audio_shred="transferred")
    with closing(box.ctx.connect()) as conn:  # the upload's own job: done before the transcript was written
        conn.execute("UPDATE jobs SET state = 'done'")
    box.mark_transferred()
    with closing(box.ctx.connect()) as conn, transaction(conn):  # a retry or a later re-run asks again
        jobs.enqueue(conn, recordings.TRANSCRIBE, box.rid, recording_id=box.rid)
    worker = AsrWorker(box.ctx, load_transcriber(box.ctx.cfg.asr, model_store))
    assert worker.run_once()
    with closing(box.ctx.connect()) as conn:
        assert conn.execute("SELECT state FROM jobs ORDER BY id DESC LIMIT 1").fetchone()[0] == "done"
    assert box.row()["status"] == "ready"
    assert_text_readable(box)
    (refused,) = [r for r in box.audit("recording.transcribe") if r["result"] == "denied"]
    assert refused["detail"] == "audio_shredded"


def test_config_is_strict():
    from appliance.config import load_config
    from appliance.errors import ConfigError

    with pytest.raises(ConfigError, match="audio_shred"):
        load_config(environ={"APPLIANCE_RETENTION__AUDIO_SHRED": "sometimes"})
    with pytest.raises(ConfigError, match="audio_hours_after_final"):
        load_config(environ={"APPLIANCE_RETENTION__AUDIO_HOURS_AFTER_FINAL": "-1"})
