"""Time the kiosk can trust, on a Raspberry Pi that may boot with a wrong clock.

A Pi has no battery-backed clock unless one is fitted, so it can boot hours or
years off. :class:`TrustedClock` keeps a *floor*: the highest of the software's
release date, the last time seen while the system clock was synchronised, and
any time the central API told us. The floor advances with the monotonic clock,
which a wall-clock jump does not move. When the wall clock disagrees with the
floor, decisions use the floor's estimate and records say ``clock_trusted =
false``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MAX_RELEASE_LEAD",
    "MAX_UNSYNCED_LEAD",
    "RELEASE_FLOOR",
    "SYNC_FLAG",
    "TOLERANCE",
    "Reading",
    "TrustedClock",
    "boot_id",
]

# The software cannot run before it was released; bump with each release.
RELEASE_FLOOR = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
# systemd-timesyncd creates this file once the clock is synchronised.
SYNC_FLAG = Path("/run/systemd/timesync/synchronized")
# How far the wall clock may differ from a floor observed during this boot.
TOLERANCE = dt.timedelta(minutes=5)
# How far ahead of a floor from an earlier boot an unsynchronised wall clock may
# be and still be believed: the kiosk may have been switched off for a while.
MAX_UNSYNCED_LEAD = dt.timedelta(days=30)
# With no saved floor at all, only the release date bounds the time: a kiosk may
# run one release for years, so an unsynchronised clock up to this far past the
# release is believed (a clock at 2040 still is not).
MAX_RELEASE_LEAD = dt.timedelta(days=3 * 365)


@dataclasses.dataclass(frozen=True)
class Reading:
    """The time to decide with, and whether it came from a clock we trust."""

    now: dt.datetime
    trusted: bool
    monotonic_ns: int


def _sync_flag_present() -> bool:
    return SYNC_FLAG.exists()


class TrustedClock:
    """The wall clock, checked against a floor that only moves forward.

    ``wall``, ``monotonic`` and ``synchronised`` are injectable so tests can set
    the wall clock to 1970 or 2040 without touching the machine's.
    """

    def __init__(
        self,
        floor: dt.datetime | None = None,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        synchronised: Callable[[], bool] = _sync_flag_present,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._synchronised = synchronised
        self._lock = threading.Lock()
        start = max(RELEASE_FLOOR, floor) if floor else RELEASE_FLOOR
        self._unsynced_lead = MAX_UNSYNCED_LEAD if start > RELEASE_FLOOR else MAX_RELEASE_LEAD
        self._anchor = start.timestamp()
        self._anchor_mono = monotonic()
        # True once a synchronised clock or the server confirmed the time this boot.
        self._confirmed = False
        # The first unsynchronised wall time believed this boot, as (wall, monotonic).
        self._believed: tuple[float, float] | None = None

    def _estimate(self, mono: float) -> float:
        return self._anchor + (mono - self._anchor_mono)

    def _anchor_at(self, epoch: float, mono: float) -> None:
        # The floor never moves back: a late or stale observation is ignored.
        if epoch >= self._estimate(mono):
            self._anchor, self._anchor_mono = epoch, mono
        self._confirmed = True

    def read(self) -> Reading:
        """The time to decide with now."""
        wall, mono = self._wall(), self._monotonic()
        with self._lock:
            synchronised = self._synchronised()
            expected = self._estimate(mono)
            lead = wall - expected
            if self._confirmed:
                # The sync flag stays set after someone changes the clock by
                # hand, so even a synchronised clock must agree with this boot's
                # confirmed time.
                allowed = TOLERANCE.total_seconds()
            else:
                allowed = math.inf if synchronised else self._unsynced_lead.total_seconds()
            # A wall clock earlier than the floor is never believed.
            trusted = -TOLERANCE.total_seconds() <= lead <= allowed
            if not (synchronised or self._confirmed) and self._believed is not None:
                # Monotonic time says how far an unsynchronised wall clock believed
                # earlier this boot may have moved: a jump since is a clock change.
                expected = self._believed[0] + (mono - self._believed[1])
                trusted = trusted and abs(wall - expected) <= TOLERANCE.total_seconds()
            if trusted and synchronised:
                self._anchor_at(wall, mono)
            elif trusted and self._believed is None:
                self._believed = (wall, mono)
            chosen = wall if trusted else expected
        return Reading(
            now=dt.datetime.fromtimestamp(chosen, dt.UTC),
            trusted=trusted,
            monotonic_ns=int(mono * 1e9),
        )

    def observe_server_time(self, server_time: dt.datetime, round_trip: float = 0.0) -> None:
        """Feed a time the central API reported; it raises the floor."""
        mono = self._monotonic()
        with self._lock:
            self._anchor_at(server_time.timestamp() + round_trip / 2, mono)

    def floor(self) -> dt.datetime:
        """The current floor estimate, to persist across reboots."""
        with self._lock:
            return dt.datetime.fromtimestamp(self._estimate(self._monotonic()), dt.UTC)

    @property
    def synchronised(self) -> bool:
        return self._synchronised()


def boot_id() -> str:
    """The kernel's id of this boot, which tells monotonic times of two boots apart."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"pid-{os.getpid()}-{int(time.time())}"
