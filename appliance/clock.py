"""Time you can trust: the system clock cross-checked with the hardware clock (RTC).

Retention decisions take a `Reading` of both clocks. When they disagree, retention errs toward
deletion: material counts as old if *either* clock says so (see appliance.platform.retention).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

RTC_SINCE_EPOCH = Path("/sys/class/rtc/rtc0/since_epoch")


def now() -> float:
    return time.time()


def rtc_now(path: Path = RTC_SINCE_EPOCH) -> float | None:
    """Seconds since the epoch from the hardware clock, or None on a box without a readable RTC."""
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Reading:
    system: float
    rtc: float | None

    @property
    def skew(self) -> float | None:
        """Hardware minus system clock in seconds (None without an RTC)."""
        return None if self.rtc is None else self.rtc - self.system

    def disagrees(self, tolerance_s: float) -> bool:
        return self.skew is not None and abs(self.skew) > tolerance_s

    @property
    def latest(self) -> float:
        """The later of the two clocks: the one that makes material older."""
        return self.system if self.rtc is None else max(self.system, self.rtc)


def read(rtc_path: Path = RTC_SINCE_EPOCH) -> Reading:
    return Reading(now(), rtc_now(rtc_path))
