"""Retention as the caseworker and IT see it: delete with confirmation, transferred marking, reminders
in the UI and by e-mail (real SMTP server on loopback), the admin banner for an overdue purge."""

from __future__ import annotations

import datetime as dt
import re
import time
from contextlib import closing
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from appliance.clock import Reading
from appliance.config import WEEKDAYS, load_config
from appliance.platform import retention
from appliance.platform.context import init_state
from appliance.recordings import reminders
from appliance.users import accounts
from tests.conftest import free_port, make_tone
from tests.web_fixtures import PASSWORD, client_of, csrf_from, sign_in, uploaded_id
from web import create_app


def test_delete_needs_confirmation_and_removes_everything(anna, app, clock, ctx, db, sv_clip, totp_secrets):
    rid = uploaded_id(anna, sv_clip)
    page = anna.get(f"/recordings/{rid}/delete")
    assert page.status_code == 200 and "Ja, radera" in page.text
    assert anna.post(f"/recordings/{rid}/delete").status_code == 400  # no CSRF token: nothing happens
    assert db.execute("SELECT count(*) FROM recordings").fetchone()[0] == 1

    bo = client_of(app)
    sign_in(bo, clock, "bo", totp_secrets)
    assert bo.get(f"/recordings/{rid}/delete").status_code == 404
    r = bo.post(f"/recordings/{rid}/delete", data={"csrf_token": csrf_from(bo.get("/upload").text)})
    assert r.status_code == 404

    r = anna.post(f"/recordings/{rid}/delete", data={"csrf_token": csrf_from(page.text)})
    assert r.status_code == 303 and r.headers["Location"].endswith("/")
    assert "Inspelningen är raderad" in anna.get("/").text
    assert anna.get(f"/recordings/{rid}").status_code == 404
    assert db.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
    assert list(ctx.cfg.paths.blobs.iterdir()) == []


def test_mark_transferred(anna, db, sv_clip):
    rid = uploaded_id(anna, sv_clip)
    page = anna.get(f"/recordings/{rid}").text
    assert "Markera som överförd" in page
    r = anna.post(f"/recordings/{rid}/transferred", data={"csrf_token": csrf_from(page), "value": "1"})
    assert r.status_code == 303
    assert db.execute("SELECT transferred_at FROM recordings").fetchone()[0] is not None
    assert "Ångra markering som överförd" in anna.get(f"/recordings/{rid}").text


def _spec(ts: float) -> str:
    local = dt.datetime.fromtimestamp(ts, ZoneInfo("Europe/Stockholm"))
    return f"{WEEKDAYS[local.weekday()]} {local:%H:%M}"


def test_reminder_window_from_the_clock(tmp_path, tone_bytes):
    app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "s")}))
    cfg = app.cfg
    with closing(app.connect()) as conn:
        user, _ = accounts.create_user(conn, "anna", ["caseworker"])
        from appliance.recordings import recordings

        rid = recordings.create_from_upload(app, conn, user, title="t", filename="t.wav", data=tone_bytes)
        purge_at = retention.next_purge(cfg.retention, time.time() + 7 * 86400)
        conn.execute("UPDATE recordings SET created_at = ?, created_at_rtc = NULL WHERE id = ?",
                     (purge_at - 49 * 3600, rid))
        start = reminders.window_start(cfg, purge_at)
        assert dt.datetime.fromtimestamp(start, ZoneInfo("Europe/Stockholm")).strftime("%a %H:%M") == "Thu 12:00"
        assert reminders.due(cfg, conn, user, Reading(start - 60, None)) is None
        due = reminders.due(cfg, conn, user, Reading(start + 60, None))
        assert due is not None and due.recording_ids == (rid,) and due.not_transferred == 1
        assert reminders.due(cfg, conn, user, Reading(purge_at + 60, None)) is None  # past: hidden, not reminded


def test_reminder_banner_on_the_list(tmp_path, sv_clip, clock, totp_secrets):
    now = time.time()
    toml = tmp_path / "appliance.toml"
    toml.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[retention]\npurge_at = "{_spec(now + 2 * 3600)}"\nreminders = ["{_spec(now - 3600)}"]\n')
    ctx_ = init_state(load_config(toml, environ={}))
    with closing(ctx_.connect()) as conn:
        accounts.create_user(conn, "anna", ["caseworker"], password=PASSWORD)
    web_app = create_app(ctx_, {"TESTING": True})
    client = client_of(web_app)
    sign_in(client, clock, "anna", totp_secrets)
    rid = uploaded_id(client, sv_clip)
    assert 'id="purge-reminder"' not in client.get("/").text  # made now: goes at a later purge
    purge_at = retention.next_purge(ctx_.cfg.retention, now)
    with closing(ctx_.connect()) as conn:
        conn.execute("UPDATE recordings SET created_at = ?, created_at_rtc = NULL WHERE id = ?",
                     (purge_at - 49 * 3600, rid))
    text = re.sub(r"\s+", " ", client.get("/").text)
    assert 'id="purge-reminder"' in text
    assert "1 inspelning raderas" in text and "1 av dem är inte markerad som överförd" in text


@pytest.fixture
def smtp():
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def test_reminder_mail_has_counts_and_a_link_only(tmp_path, smtp, tone_bytes):
    port, received = smtp
    cfg = load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "s"), "APPLIANCE_MAIL__ENABLED": "1",
                               "APPLIANCE_MAIL__SMTP_HOST": "127.0.0.1", "APPLIANCE_MAIL__SMTP_PORT": str(port),
                               "APPLIANCE_MAIL__BASE_URL": "https://samtal.kommun.local"})
    app = init_state(cfg)
    from appliance.recordings import recordings

    with closing(app.connect()) as conn:
        user, _ = accounts.create_user(conn, "anna", ["caseworker"])
        conn.execute("UPDATE users SET email = 'anna@kommun.local' WHERE id = ?", (user.id,))
        rid = recordings.create_from_upload(app, conn, user, title="Hembesök Svensson", filename="x.wav",
                                            data=tone_bytes)
        purge_at = retention.next_purge(cfg.retention, time.time() + 7 * 86400)
        conn.execute("UPDATE recordings SET created_at = ?, created_at_rtc = NULL WHERE id = ?",
                     (purge_at - 49 * 3600, rid))
        inside = reminders.window_start(cfg, purge_at) + 60
        assert reminders.send_due(cfg, conn, Reading(inside, None)) == 1
        assert reminders.send_due(cfg, conn, Reading(inside + 60, None)) == 0  # once per reminder slot
    assert len(received) == 1
    mail = received[0]
    body = mail.content.decode()
    assert mail.rcpt_tos == ["anna@kommun.local"]
    assert "1 av dina inspelningar" in body and "https://samtal.kommun.local/" in body
    assert "Svensson" not in body and "Hembesök" not in body and rid not in body


def test_admin_sees_overdue_purge_banner(app, clock, db, totp_secrets):
    it = client_of(app)
    sign_in(it, clock, "it", totp_secrets)
    assert 'id="purge-overdue"' not in it.get("/").text
    db.execute("UPDATE users SET created_at = created_at - 8 * 86400")  # installed 8 days ago, never purged
    assert 'id="purge-overdue"' in it.get("/").text
    anna_client = client_of(app)
    sign_in(anna_client, clock, "anna", totp_secrets)
    assert 'id="purge-overdue"' not in anna_client.get("/").text  # caseworkers are not bothered with it


@pytest.fixture(scope="module")
def tone_bytes(tmp_path_factory) -> bytes:

    path = tmp_path_factory.mktemp("t") / "tone.wav"
    make_tone(path, 0.5)
    return path.read_bytes()
