"""Log review page (/review) for the responsible person: filters, random sample, purge receipts, reads by
someone other than the owner; ids only, 404 for everyone else, and every view audited."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from appliance.platform import audit
from appliance.recordings import recordings
from appliance.users.accounts import create_user, get_user
from tests.web_fixtures import PASSWORD, FakeClock, client_of, sign_in
from web import create_app
from web.review import TZ

TITLE = "Hembesök hos familjen Svensson"
PURGED = "0123456789abcdef01234567"


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    from appliance import clock as core_clock

    c = FakeClock()
    monkeypatch.setattr(core_clock, "now", c.now)
    return c


@pytest.fixture
def users(db) -> dict[str, int]:
    out = {}
    for name, roles in (("anna", ["caseworker"]), ("bo", ["caseworker"]), ("rita", ["responsible"]),
                        ("it", ["admin"])):
        out[name] = create_user(db, name, roles, password=PASSWORD)[0].id
    return out


@pytest.fixture
def history(ctx, db, users, sv_clip, clock) -> dict[str, str]:
    """Anna's recording, read by Anna and (per the log) by Bo; a purged one read by Bo; a purge receipt."""
    rid = recordings.create_from_upload(ctx, db, get_user(db, users["anna"]), title=TITLE, filename="s.wav",
                                        data=sv_clip.read_bytes())
    anna, bo = f"user:{users['anna']}", f"user:{users['bo']}"
    audit.record(db, anna, "recording.read", f"recording:{rid}", role="caseworker")
    audit.record(db, bo, "recording.read", f"recording:{rid}", role="manager")  # e.g. a shared folder
    audit.record(db, bo, "recording.audio", f"recording:{rid}", result="denied")
    audit.record(db, anna, "recording.create", f"recording:{PURGED}")
    audit.record(db, bo, "recording.audio", f"recording:{PURGED}")
    audit.record(db, "service:purge", "purge.receipt", "generation:2",
                 data={"deleted_recordings": 1, "recording_ids": [PURGED], "segments": 7, "words": 60,
                       "old_key_fingerprint": "0123456789abcdef"})
    return {"rec": rid}


@pytest.fixture
def app(ctx, users, clock):
    return create_app(ctx, {"TESTING": True})


@pytest.fixture
def rita(app, clock):
    c = client_of(app)
    sign_in(c, clock, "rita", {})
    return c


def _total(html: str) -> int:
    return int(re.search(r'data-total="(\d+)"', html).group(1))


def _seqs(html: str, table_id: str) -> list[int]:
    m = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', m.group(0))] if m else []


def test_responsible_sees_ids_receipts_and_reads_by_others(rita, history, users, db):
    r = rita.get("/review")
    assert r.status_code == 200
    html = r.text
    assert "Logguppföljning" in html and 'data-integrity="ok"' in html
    assert TITLE not in html and "Svensson" not in html and "s.wav" not in html  # ids only, never content
    assert _total(html) == len(audit.entries(db)) - 1  # everything before this view's own review.read

    receipts = audit.entries(db, action="purge.receipt")
    assert _seqs(html, "receipts") == [receipts[0]["seq"]]
    assert "deleted_recordings" in html and "1 st" in html  # id lists are shown as a count

    others = _seqs(html, "other-reads")
    by_bo = [e["seq"] for e in audit.entries(db, actor=f"user:{users['bo']}", result="ok")
             if e["action"] in ("recording.read", "recording.audio")]
    assert sorted(others) == sorted(by_bo) and len(others) == 2  # not Anna's own read, not the denied one
    reads_table = re.search(r'<table[^>]*id="other-reads".*?</table>', html, re.S).group(0)
    assert history["rec"] in reads_table and PURGED in reads_table and "raderad" in reads_table
    assert reads_table.count(f"user:{users['anna']}") == 2  # the owner, from the DB and (purged) from the log


def test_filters(rita, history, users, db):
    bo = users["bo"]
    html = rita.get(f"/review?user={bo}").text
    expected = [e for e in audit.entries(db) if f"user:{bo}" in (e["actor"], e["target"])]
    assert _total(html) == len(expected) > 0

    rid = history["rec"]
    html = rita.get(f"/review?action=recording.read&recording={rid}").text
    assert _total(html) == len(audit.entries(db, action="recording.read", target=f"recording:{rid}")) == 2

    assert _total(rita.get("/review?since=2000-01-01&until=2000-01-02").text) == 0
    today = datetime.now(TZ).strftime("%Y-%m-%d")  # the page's dates are the office's (Stockholm) days
    assert _total(rita.get(f"/review?since={today}&until={today}&action=purge.receipt").text) == 1

    r = rita.get("/review?since=igår&user=anna")
    assert r.status_code == 400 and "ÅÅÅÅ-MM-DD" in r.text and "Användar-id" in r.text


def test_random_sample(rita, history, db):
    html = rita.get("/review?sample=1&n=3").text
    assert "Slumpvis urval" in html and "3 slumpvis valda av" in html
    rows = re.findall(r'<tr data-seq="(\d+)"', html.split('id="hits-heading"')[1].split("</section>")[0])
    assert len(rows) == 3 and len(set(rows)) == 3
    assert rita.get("/review?sample=1&n=0").status_code == 400


def test_only_responsible_users_may_open_it(app, clock, history, users):
    for name in ("anna", "it"):
        c = client_of(app)
        sign_in(c, clock, name, {})
        assert c.get("/review").status_code == 404
        assert "Logguppföljning" not in c.get("/").text  # no nav link either
    anonymous = client_of(app).get("/review")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_nav_link_for_responsible(rita):
    html = rita.get("/").text
    assert re.search(r'<a href="/review"[^>]*>Logguppföljning</a>', html)


def test_reading_the_review_is_audited(rita, history, users, db):
    rita.get(f"/review?user={users['bo']}&since=2024-01-01")
    rita.get("/review?sample=1&n=5")
    reads = audit.entries(db, action="review.read", actor=f"user:{users['rita']}")
    assert [e["role"] for e in reads] == ["responsible", "responsible"]
    assert reads[0]["data"]["user"] == f"user:{users['bo']}" and reads[0]["data"]["since"] == "2024-01-01"
    assert reads[1]["data"]["sample"] == 5
    assert audit.verify(db).ok


def test_review_is_refused_when_it_cannot_be_audited(rita, history, ctx):
    lg = audit.sink(ctx)
    lg.path.write_bytes(b"".join(lg.path.read_bytes().splitlines(keepends=True)[:-1]))  # truncated
    r = rita.get("/review")
    assert r.status_code != 200 and "Granskningsloggen kan inte skrivas" in r.text
    assert "data-seq" not in r.text


def test_a_tampered_log_is_flagged_on_the_page(rita, history, ctx):
    lg = audit.sink(ctx)
    lines = lg.path.read_bytes().splitlines(keepends=True)
    lg.path.write_bytes(b"".join(lines[:3] + lines[4:]))  # a record deleted in the middle
    r = rita.get("/review")
    assert r.status_code == 200 and 'data-integrity="bad"' in r.text and "Kontakta IT-supporten" in r.text
    assert "rad 4" in r.text
