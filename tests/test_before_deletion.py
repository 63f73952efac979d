"""Documentation before deletion: the page lists, for a manager, the recordings in their teams that are purged
within 24 h without a transferred draft (and nothing outside their teams), for the responsible person those of
the whole box; counts per caseworker, the reminder history, no content."""

from __future__ import annotations

import datetime as dt
import re
import time
from contextlib import closing
from zoneinfo import ZoneInfo

import pytest

from appliance.platform import audit, retention
from appliance.platform.db import transaction
from appliance.recordings import folders, recordings
from appliance.users.accounts import create_user, get_user
from tests.conftest import make_tone
from tests.web_fixtures import PASSWORD, client_of, make_ctx, sign_in
from web import create_app

TITLE = "Hembesök hos familjen Svensson"


def _next_friday_18() -> float:
    zone = ZoneInfo("Europe/Stockholm")
    day = dt.datetime.now(zone).date() + dt.timedelta(days=7)
    while day.weekday() != 4:
        day += dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, 18, 0, tzinfo=zone).timestamp()


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    return make_tone(tmp_path_factory.mktemp("tone") / "tone.wav", 0.3).read_bytes()


@pytest.fixture
def office(tmp_path, clock, tone):
    friday = _next_friday_18()
    clock.offset = (friday - 23 * 3600) - time.time()  # Thursday 19:00: inside the reminder window
    ctx = make_ctx(tmp_path, "retention", rtc_path=tmp_path / "no-rtc")
    ids: dict[str, int] = {}
    recs: dict[str, str] = {}
    with closing(ctx.connect()) as conn:
        for name, roles in (("anna", ["caseworker"]), ("bo", ["caseworker"]), ("chef", ["manager"]),
                            ("maja", ["manager"]), ("rita", ["responsible"])):
            ids[name] = create_user(conn, name, roles, password=PASSWORD)[0].id
        anna, bo = get_user(conn, ids["anna"]), get_user(conn, ids["bo"])
        folders.share(conn, anna, folders.ensure_default(conn, anna), ids["chef"], "editor")
        wednesday = friday - 56 * 3600  # purged at this Friday's purge
        for key, owner, created in (("open", anna, wednesday), ("transferred", anna, wednesday),
                                    ("later", anna, friday - 23.5 * 3600), ("summary_transferred", anna, wednesday),
                                    ("summary_reviewed", anna, wednesday), ("bo", bo, wednesday)):
            rid = recordings.create_from_upload(ctx, conn, owner, title=TITLE, filename="s.wav", data=tone)
            with transaction(conn):
                conn.execute("UPDATE recordings SET created_at = ?, created_at_rtc = NULL, status = 'ready' "
                             "WHERE id = ?", (created, rid))
            recs[key] = rid
        with transaction(conn):
            conn.execute("UPDATE recordings SET transferred_at = ? WHERE id = ?", (clock.now(), recs["transferred"]))
            for key, state in (("summary_transferred", "overford"), ("summary_reviewed", "granskad")):
                conn.execute("INSERT INTO summaries (recording_id, template_key, template_name, status, content, "
                             "review_state, created_at) VALUES (?, 'bbic', 'BBIC', 'done', '{}', ?, ?)",
                             (recs[key], state, clock.now()))
            conn.execute("INSERT INTO reminders_sent (user_id, purge_at, reminder_at) VALUES (?, ?, ?)",
                         (ids["anna"], friday, friday - 30 * 3600))
    app = create_app(ctx, {"TESTING": True})
    return {"ctx": ctx, "app": app, "ids": ids, "recs": recs, "friday": friday, "clock": clock}


def _client(office, name):
    c = client_of(office["app"])
    sign_in(c, office["clock"], name, {})
    return c


def _listed(html: str) -> set[str]:
    return set(re.findall(r'<tr data-recording="([0-9a-f]+)"', html))


def _counts(html: str) -> dict[str, int]:
    return {u: int(n) for u, n in re.findall(r'<tr data-user="(\d+)" data-count="(\d+)"', html)}


def test_manager_sees_their_team_only_and_the_reminder_history(office):
    recs, ids = office["recs"], office["ids"]
    anna = _client(office, "anna")
    assert 'id="purge-reminder"' in anna.get("/").text  # the in-product reminder, shown now

    chef = _client(office, "chef")
    r = chef.get("/before-deletion")
    assert r.status_code == 200
    assert _listed(r.text) == {recs["open"], recs["summary_reviewed"]}  # not transferred, not later, not Bo's
    assert _counts(r.text) == {str(ids["anna"]): 2}
    assert TITLE not in r.text and "Svensson" not in r.text
    row = re.search(rf'<tr data-user="{ids["anna"]}".*?</tr>', r.text, re.S).group(0)
    assert "visad" in row and "inte visad" not in row
    assert dt.datetime.fromtimestamp(office["friday"] - 30 * 3600, ZoneInfo("Europe/Stockholm")).strftime(
        "%Y-%m-%d %H:%M") in row  # the e-mailed reminder
    assert "1, varav 1 granskade" in r.text
    assert f'href="/recordings/{recs["open"]}"' in r.text  # the manager may open her team's recordings
    (read,) = audit.entries(office["ctx"], action="before_deletion.read")
    assert read["data"] == {"recordings": 2, "caseworkers": 1, "scope": "team"}

    maja = _client(office, "maja")  # a manager nobody shared anything with
    html = maja.get("/before-deletion").text
    assert _listed(html) == set() and 'id="nothing-at-risk"' in html


def test_responsible_person_sees_every_team_without_links(office):
    recs, ids = office["recs"], office["ids"]
    html = _client(office, "rita").get("/before-deletion").text
    assert _listed(html) == {recs["open"], recs["summary_reviewed"], recs["bo"]}
    assert _counts(html) == {str(ids["anna"]): 2, str(ids["bo"]): 1}
    assert "href=\"/recordings/" not in html and TITLE not in html
    bo_row = re.search(rf'<tr data-user="{ids["bo"]}".*?</tr>', html, re.S).group(0)
    assert "inte visad" in bo_row


def test_caseworkers_may_not_open_it(office):
    anna = _client(office, "anna")
    assert anna.get("/before-deletion").status_code == 404
    assert "Innan gallring" not in anna.get("/").text


def test_the_window_is_the_next_24_hours(office):
    """Thirteen hours earlier the purge is 36 hours away: nothing is listed yet."""
    office["clock"].advance(-13 * 3600)  # Thursday 06:00: the purge is 36 h away
    chef = _client(office, "chef")
    html = chef.get("/before-deletion").text
    assert _listed(html) == set() and 'id="nothing-at-risk"' in html
    assert retention.next_purge(office["ctx"].cfg.retention, office["clock"].now()) == office["friday"]
