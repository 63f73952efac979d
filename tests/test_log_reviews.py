"""Log follow-up that leaves a record: a targeted review and a random sample of content accesses on the review
page; the responsible person records the review (what was checked, any finding); the records reach the
compliance report's data, and the doctor warns when none was recorded for [log_review] warn_after_days."""

from __future__ import annotations

import re

import pytest

from appliance.compliance import log_reviews
from appliance.platform import audit
from appliance.users.accounts import create_user, get_user
from provisioning.doctor import check_log_review
from tests.web_fixtures import PASSWORD, client_of, csrf_from, make_ctx, sign_in
from web import create_app

REC = "0123456789abcdef01234567"


@pytest.fixture
def users(db) -> dict[str, int]:
    return {name: create_user(db, name, roles, password=PASSWORD)[0].id for name, roles in
            (("anna", ["caseworker"]), ("bo", ["manager"]), ("rita", ["responsible"]))}


@pytest.fixture
def history(db, users) -> None:
    anna, bo = f"user:{users['anna']}", f"user:{users['bo']}"
    for i in range(6):
        audit.record(db, anna, "recording.read", f"recording:{REC}", role="caseworker")
        audit.record(db, anna, "recording.list", anna, detail=f"count:{i}", role="caseworker")
    audit.record(db, bo, "recording.audio", f"recording:{REC}", role="manager")
    audit.record(db, bo, "recording.summaries", f"recording:{REC}", role="manager")
    audit.record(db, bo, "recording.read", "recording:ffffffffffffffffffffffff", result="denied", role="manager")
    audit.record(db, bo, "folder.create", "folder:9", role="manager")


@pytest.fixture
def rita(ctx, users, clock):
    c = client_of(create_app(ctx, {"TESTING": True}))
    sign_in(c, clock, "rita", {})
    return c


def _rows(html: str) -> list[tuple[str, str]]:
    """(actor, action) of the records listed in the hits section."""
    section = html.split('id="hits-heading"')[1].split("</section>")[0]
    return re.findall(r"<td data-label=\"Aktör\">(user:\d+)[^<]*(?:<span[^>]*>[^<]*</span>)?</td>\s*"
                      r"<td data-label=\"Händelse\">([a-z_.]+)</td>", section)


def test_random_sample_of_content_accesses(rita, history, db, users):
    html = rita.get("/review?sample=content&n=50").text
    assert "Stickprov av innehållsåtkomster" in html
    rows = _rows(html)
    content = [e for e in audit.entries(db) if log_reviews.is_content_access(e)]
    assert int(re.search(r'data-pool="(\d+)"', html).group(1)) == len(content) == 8
    assert len(rows) == 8 and all(action in log_reviews.CONTENT_READS for _, action in rows)
    assert (f"user:{users['bo']}", "recording.summaries") in rows
    small = _rows(rita.get("/review?sample=content&n=3").text)
    assert len(small) == 3 and all(action in log_reviews.CONTENT_READS for _, action in small)
    (read,) = [e for e in audit.entries(db, action="review.read") if e["data"]["sample"] == 3]
    assert read["data"]["content_sample"] is True


def test_a_targeted_review_is_recorded_and_reaches_the_report(rita, history, db, users, ctx):
    bo = users["bo"]
    page = rita.get(f"/review?user={bo}&sample=content&n=5")
    assert page.status_code == 200 and 'name="kind"' in page.text
    assert re.search(r'<option value="sample" selected>', page.text)  # the form proposes what the filters make
    r = rita.post(f"/review/records?user={bo}&sample=content&n=5",
                  data={"csrf_token": csrf_from(page.text), "kind": "targeted", "user": str(bo), "sample": "5",
                        "records": "3", "checked": f"Alla läsningar av user:{bo} i mars.", "outcome": "finding",
                        "finding": "En läsning utan delad mapp; frågat chefen, rättat delningen."})
    assert r.status_code == 303 and r.headers["Location"].endswith("/review#records")
    html = rita.get("/review").text
    assert 'data-review="1"' in html and "Alla läsningar av user:" in html and "En läsning utan delad mapp" in html

    (rec,) = audit.entries(db, action="review.recorded")
    assert rec["target"] == "log_review:1" and rec["data"] == {"kind": "targeted", "has_finding": True,
                                                                 "user": f"user:{bo}", "sample": 5, "records": 3}
    data = log_reviews.report_data(ctx.cfg, db)
    assert data["count"] == 1 and data["with_findings"] == 1 and data["overdue"] is False
    (review,) = data["reviews"]
    assert review["kind"] == "targeted" and review["scope"] == {"user": f"user:{bo}", "sample": 5, "records": 3}
    assert review["reviewer"] == f"user:{users['rita']}" and review["has_finding"] is True
    assert [r.id for r in log_reviews.for_report(db, since=review["reviewed_at"] + 1)] == []


def test_a_refused_record_keeps_what_was_typed(rita, history, db):
    page = rita.get("/review").text
    r = rita.post("/review/records", data={"csrf_token": csrf_from(page), "kind": "general",
                                           "checked": "Genomgång av läsningen för 850312-1231", "outcome": "none"})
    assert r.status_code == 400 and 'id="record-error"' in r.text and "personnummer" in r.text
    assert "Genomgång av läsningen för" in r.text  # not lost
    r = rita.post("/review/records", data={"csrf_token": csrf_from(page), "kind": "general", "checked": "",
                                           "outcome": "none"})
    assert r.status_code == 400 and "Beskriv vad som granskades" in r.text
    r = rita.post("/review/records", data={"csrf_token": csrf_from(page), "kind": "general", "checked": "Allt",
                                           "outcome": "finding", "finding": ""})
    assert r.status_code == 400 and "Beskriv avvikelsen" in r.text
    assert log_reviews.recent(db) == [] and audit.entries(db, action="review.recorded") == []


def test_only_the_responsible_person_records_reviews(ctx, users, clock, db):
    c = client_of(create_app(ctx, {"TESTING": True}))
    sign_in(c, clock, "bo", {})
    page = c.get("/").text
    assert c.post("/review/records", data={"csrf_token": csrf_from(page), "kind": "general",
                                           "checked": "x"}).status_code == 404
    from appliance.errors import NotFound

    with pytest.raises(NotFound):
        log_reviews.record(db, get_user(db, users["bo"]), kind="general", scope={}, checked="x")


def test_doctor_warns_when_no_review_was_recorded_for_the_period(tmp_path, clock):
    ctx = make_ctx(tmp_path, "log_review", warn_after_days=10)
    conn = ctx.connect()
    try:
        rita = create_user(conn, "rita", ["responsible"], password=PASSWORD)[0]
        check = check_log_review(ctx.cfg)
        assert check.ok and not check.warning and "never" in check.message  # installed today: not yet due
        clock.advance(11 * 86400)
        check = check_log_review(ctx.cfg)
        assert check.ok and check.warning and "10 days" in check.message and "Logguppföljning" in check.hint
        log_reviews.record(conn, rita, kind="general", scope={}, checked="Hela loggen för perioden.")
        check = check_log_review(ctx.cfg)
        assert check.ok and not check.warning and "last recorded log review" in check.message
        clock.advance(11 * 86400)
        assert check_log_review(ctx.cfg).warning
        assert log_reviews.report_data(ctx.cfg, conn)["overdue"] is True
    finally:
        conn.close()


def test_default_period_is_30_days(tmp_path):
    ctx = make_ctx(tmp_path)
    assert ctx.cfg.log_review.warn_after_days == 30


def test_recorded_reviews_appear_in_the_compliance_report(tmp_path, clock):
    """provisioning/report.py: the state's facts carry the records; the rendered report lists them by id."""
    from provisioning import report

    ctx = make_ctx(tmp_path)
    conn = ctx.connect()
    try:
        rita = create_user(conn, "ansvarig.person", ["responsible"], password=PASSWORD)[0]
        log_reviews.record(conn, rita, kind="sample", scope={"sample": 20, "records": 140},
                           checked="20 slumpvisa innehållsåtkomster i mars.", finding="user:7 läste utan delning.")
    finally:
        conn.close()
    facts = report.state_facts(ctx.cfg)
    assert facts["log_reviews"]["count"] == 1 and facts["log_reviews"]["with_findings"] == 1
    html = report.render_html({"generated": clock.now(), "box": [], "state": facts, "exposure": {},
                               "software": {"package": "test", "wheels": {}},
                               "retention": {"max_age_hours": 48, "purge_at": "Fri 18:00",
                                             "timezone": "Europe/Stockholm", "gallringsbeslut": "SN 2025/1 § 4",
                                             "audit_retention_days": 730}})
    assert 'id="granskningar"' in html and "20 slumpvisa innehållsåtkomster i mars." in html
    assert "Avvikelse: user:7 läste utan delning." in html and f"user:{rita.id}" in html
    assert "ansvarig.person" not in html  # reviewers by id only
    assert 'id="radering"' in html
