"""The shred timer (`appliance shred`, appliance-shred.timer every 15 minutes): erasures that do not wait for the
Friday purge.

One run: shred the audio the office's rule has made due (appliance/recordings/audio_life.py), bring the
identifier index of data-subject requests up to date (appliance/compliance/identifiers.py), then, if any
erasure still has key material in the current database generation (`rekey_pending`: audio shredded here or at
a caseworker's "transferred", a data-subject erasure that could not re-key at once), re-key the database
(appliance/platform/retention.py `rekey`) so that material is under a destroyed key; the receipt names it.
A run is idempotent and safe to kill: what it did not finish stays pending for the next run or the purge.
`--every S` repeats it (the dev supervisor, `make run`, uses this instead of a timer).
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from dataclasses import dataclass, field

from appliance.compliance import identifiers
from appliance.errors import KeyError_
from appliance.platform import retention
from appliance.platform.context import Appliance
from appliance.recordings import audio_life

log = logging.getLogger(__name__)

ACTOR = audio_life.ACTOR


@dataclass
class ShredRun:
    audio: list[str] = field(default_factory=list)
    rekey: retention.RekeyReport | None = None
    rekey_waiting: int = 0  # erasures still pending (the database stayed busy)
    indexed: int = 0  # recordings and drafts re-indexed for data-subject requests


def run_once(app: Appliance) -> ShredRun:
    out = ShredRun()
    with closing(app.connect()) as conn:
        out.audio = audio_life.shred_due(app, conn)
        out.indexed = identifiers.refresh(app, conn)  # keeps data-subject searches quick
        pending = len(retention.pending_rekey(conn))
    if pending:
        try:
            out.rekey = retention.rekey(app, actor=ACTOR)
        except (TimeoutError, KeyError_) as exc:  # busy, or a master-key rotation is unfinished
            out.rekey_waiting = pending
            log.warning("re-key postponed (%s); %d erasure(s) wait for the next run", exc, pending)
    return out


def run(app: Appliance, every: float | None = None) -> ShredRun:
    while True:
        result = run_once(app)
        if result.audio or result.rekey:
            log.info("shred run: %d audio shredded, re-key %s", len(result.audio),
                     f"to generation {result.rekey.new_generation}" if result.rekey else "not needed")
        if not every:
            return result
        time.sleep(every)
