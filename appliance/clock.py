"""Time. The retention issue adds the hardware-clock cross-check; everything asks this module."""

from __future__ import annotations

import time
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
