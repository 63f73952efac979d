"""The lease a worker holds on the job it runs: renewed on its own connection while the job runs, so a
dead worker's job is claimed again after one lease length (appliance/jobs.py). Shared by the asr, assistant
and case-draft workers; it imports nothing of theirs (the assistant process never loads PyAV or Whisper)."""

from __future__ import annotations

import threading
from contextlib import closing

from appliance.platform import jobs
from appliance.platform.context import Appliance


class LeaseKeeper(threading.Thread):
    """Renews a job's lease every third of its length on its own connection."""

    def __init__(self, app: Appliance, job_id: int, worker: str, lease_s: float) -> None:
        super().__init__(daemon=True, name=f"lease-{job_id}")
        self._app, self._job_id, self._worker, self._lease_s = app, job_id, worker, lease_s
        self._done = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self._done.wait(self._lease_s / 3):
            with closing(self._app.connect()) as conn:
                if not jobs.renew(conn, self._job_id, self._worker, self._lease_s):
                    self.lost = True
                    return

    def stop(self) -> None:
        self._done.set()
        self.join()
