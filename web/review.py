"""Log review (logguppföljning) for the responsible person: ids, actions and results, never content.

Only users with the `responsible` role may open it (everyone else gets 404, as for any page they may not
see). Every view of the page is itself audited as `review.read`, with the filters used. It offers a targeted
review (a user, a recording id, a period), a random sample of all matches or of content accesses only, the
receipts of erasures (purge, re-key, audio shredded early, data-subject erasures), and the form that records a
finished review (appliance/compliance/log_reviews.py: what was checked, any finding) with the latest records.
"""

from __future__ import annotations

import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from appliance.compliance import log_reviews
from appliance.errors import ApplianceError
from appliance.platform import audit
from appliance.platform.db import Connection
from web import appliance, db
from web.auth import login_required
from web.i18n import _
from web.views import TZ

bp = Blueprint("review", __name__)

ROLE = "responsible"
SHOWN = 200          # newest matching records listed
SECTION_ROWS = 100   # newest purge receipts / reads by others listed
MAX_SAMPLE = 500
DEFAULT_SAMPLE = 20
READ_ACTIONS = ("recording.read", "recording.audio")
RECEIPT_ACTIONS = ("purge.receipt", "rekey.receipt", "audio.shred", "dsr.erase")

_ACTION = re.compile(r"^[a-z][a-z0-9_.]{1,63}$")
_REC_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")


@dataclass
class Filters:
    user: int | None = None
    action: str = ""
    recording: str = ""
    since: date | None = None
    until: date | None = None
    sample: int | None = None
    sample_size: int = DEFAULT_SAMPLE
    content_sample: bool = False  # the sample is drawn from content accesses only (log_reviews.is_content_access)
    errors: list[str] = field(default_factory=list)

    @property
    def targeted(self) -> bool:
        return self.user is not None or bool(self.recording) or self.since is not None or self.until is not None

    @property
    def kind(self) -> str:
        """What kind of review these filters make (the default of the record form)."""
        return "sample" if self.sample else "targeted" if self.targeted else "general"

    def scope(self, records: int | None) -> dict[str, Any]:
        return {"user": self.user, "recording": self.recording, "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None, "sample": self.sample, "records": records}

    @property
    def since_ts(self) -> float | None:
        return datetime(self.since.year, self.since.month, self.since.day, tzinfo=TZ).timestamp() \
            if self.since else None

    @property
    def until_ts(self) -> float | None:  # the whole "until" day is included
        if not self.until:
            return None
        return (datetime(self.until.year, self.until.month, self.until.day, tzinfo=TZ) + timedelta(days=1)).timestamp()

    def in_range(self, rec: dict) -> bool:
        lo, hi = self.since_ts, self.until_ts
        return (lo is None or rec["ts"] >= lo) and (hi is None or rec["ts"] < hi)

    def matches(self, rec: dict) -> bool:
        if self.user is not None and rec["actor"] != f"user:{self.user}" and rec["target"] != f"user:{self.user}":
            return False
        if self.action and rec["action"] != self.action:
            return False
        if self.recording and rec["target"] != f"recording:{self.recording}":
            return False
        return self.in_range(rec)

    def audit_data(self) -> dict[str, Any]:
        return {"user": f"user:{self.user}" if self.user is not None else None, "action": self.action or None,
                "recording": self.recording or None, "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None, "sample": self.sample,
                "content_sample": self.content_sample}


def _parse_date(value: str, label: str, errors: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(_("%(field)s: ange ett datum som ÅÅÅÅ-MM-DD.", field=label))
        return None


def _filters() -> Filters:
    args = request.args
    f = Filters()
    user = args.get("user", "").strip().removeprefix("user:")
    if user:
        if user.isdigit() and len(user) <= 12:
            f.user = int(user)
        else:
            f.errors.append(_("Användar-id: ange ett nummer."))
    action = args.get("action", "").strip()
    if action and not _ACTION.match(action):
        f.errors.append(_("Händelse: välj en händelse i listan."))
    else:
        f.action = action
    recording = args.get("recording", "").strip().removeprefix("recording:")
    if recording and not _REC_ID.match(recording):
        f.errors.append(_("Inspelnings-id: ange id:t med bokstäver och siffror."))
    else:
        f.recording = recording
    f.since = _parse_date(args.get("since", "").strip(), _("Från"), f.errors)
    f.until = _parse_date(args.get("until", "").strip(), _("Till"), f.errors)
    if f.since and f.until and f.since > f.until:
        f.errors.append(_("Från-datumet ligger efter till-datumet."))
    size = args.get("n", "").strip()
    if size:
        if size.isdigit() and 1 <= int(size) <= MAX_SAMPLE:
            f.sample_size = int(size)
        else:
            f.errors.append(_("Antal: ange ett tal från 1 till %(max)s.", max=MAX_SAMPLE))
    if "sample" in args and not f.errors:
        f.sample = f.sample_size
        f.content_sample = args.get("sample") == "content"
    return f


@dataclass
class Review:
    total: int = 0
    pool: int = 0  # the records the sample was drawn from
    shown: deque = field(default_factory=lambda: deque(maxlen=SHOWN))
    sample: list[dict] = field(default_factory=list)
    receipts: deque = field(default_factory=lambda: deque(maxlen=SECTION_ROWS))
    reads: list[dict] = field(default_factory=list)
    actions: set[str] = field(default_factory=set)


def _owners(conn: Connection, rec_ids: list[str]) -> dict[str, int]:
    owners: dict[str, int] = {}
    for i in range(0, len(rec_ids), 500):
        chunk = rec_ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT id, owner_id FROM recordings WHERE id IN ({marks})", chunk):  # noqa: S608
            owners[row["id"]] = row["owner_id"]
    return owners


def _collect(conn: Connection, f: Filters) -> Review:
    out = Review()
    rng = secrets.SystemRandom()
    creators: dict[str, str] = {}  # recording id → the actor that created it (owner, also after a purge)
    reads: deque = deque(maxlen=SECTION_ROWS * 10)
    for rec in audit.iter_entries(appliance()):
        out.actions.add(rec["action"])
        target = rec["target"]
        if rec["action"] == "recording.create" and target.startswith("recording:"):
            creators[target.removeprefix("recording:")] = rec["actor"]
        if f.matches(rec):
            out.total += 1
            out.shown.append(rec)
            if f.sample and (not f.content_sample or log_reviews.is_content_access(rec)):
                # reservoir sampling: every candidate equally likely, one pass
                out.pool += 1
                if len(out.sample) < f.sample:
                    out.sample.append(rec)
                else:
                    j = rng.randrange(out.pool)
                    if j < f.sample:
                        out.sample[j] = rec
        if not f.in_range(rec):
            continue
        if rec["action"] in RECEIPT_ACTIONS:
            out.receipts.append(rec)
        elif rec["action"] in READ_ACTIONS and rec["result"] == "ok" and target.startswith("recording:"):
            reads.append(rec)
    ids = sorted({r["target"].removeprefix("recording:") for r in reads})
    in_db = _owners(conn, ids)
    for rec in reads:
        rid = rec["target"].removeprefix("recording:")
        owner = f"user:{in_db[rid]}" if rid in in_db else creators.get(rid)
        if owner != rec["actor"]:
            out.reads.append({**rec, "recording": rid, "owner": owner, "exists": rid in in_db})
    out.reads = out.reads[-SECTION_ROWS:]
    out.sample.sort(key=lambda r: r["seq"])
    return out


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, TZ).strftime("%Y-%m-%d %H:%M:%S")


def data_summary(data: dict | None) -> list[tuple[str, str]]:
    """A receipt's data for display: numbers and ids as they are, id lists as a count."""
    if not data:
        return []
    items = []
    for key, value in data.items():
        if isinstance(value, list):
            shown = _("%(n)s st", n=len(value))
        elif value is None:
            shown = "–"
        elif isinstance(value, float):
            shown = f"{value:.1f}"
        else:
            shown = str(value)
        items.append((key, shown))
    return items


def _page(form: dict | None = None, error: str | None = None):
    f = _filters()
    conn = db()
    integrity = audit.verify(appliance())
    result = None if f.errors or not integrity.ok else _collect(conn, f)  # a broken log: the banner says so
    # Audited before anything is shown; if the record cannot be written the page is refused.
    audit.record(conn, g.user.actor, "review.read", "audit:log", role=ROLE,
                 result="failed" if f.errors else "ok", data=f.audit_data() if not f.errors else None)
    cfg = appliance().cfg
    records = result.total if result else None
    return render_template("review.html", f=f, r=result, integrity=integrity, data_summary=data_summary, when=when,
                           max_sample=MAX_SAMPLE, shown_max=SHOWN, kinds=log_reviews.KINDS,
                           scope=f.scope(records), reviews=log_reviews.recent(conn),
                           review_overdue=log_reviews.overdue(cfg, conn), warn_days=cfg.log_review.warn_after_days,
                           form=form or {}, record_error=error), 400 if (f.errors or error) else 200


@bp.get("/review")
@login_required
def index():
    if ROLE not in g.user.roles:
        abort(404)
    return _page()


@bp.post("/review/records")
@login_required
def record():
    """Record a finished review; a refused form comes back with what was typed and the reason."""
    if ROLE not in g.user.roles:
        abort(404)
    form = request.form
    found = form.get("outcome") == "finding"
    try:
        saved = log_reviews.record(db(), g.user, kind=form.get("kind", ""),
                                   scope={k: form.get(k) for k in ("user", "recording", "since", "until", "sample",
                                                                   "records")},
                                   checked=form.get("checked"), finding=form.get("finding") if found else None)
    except ApplianceError as exc:
        return _page(form=dict(form), error=str(exc))
    flash(_("Granskningen är registrerad (nr %(id)s).", id=saved.id), "info")
    return redirect(url_for("review.index", _anchor="records"), code=303)
