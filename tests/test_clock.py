"""Trusted time: decisions stay right with the wall clock at 1970, at 2040, or jumping.

The injected-clock tests drive :class:`TrustedClock` with a fake wall, monotonic
clock and sync flag; the last test runs the real daemon under libfaketime.
"""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk.clock import RELEASE_FLOOR, TrustedClock
from kiosk.config import Config
from kiosk.rules import Counters, decide
from kiosk.store import CardRow
from tests.conftest import TODAY, card, events
from tests.kiosk_process import kiosk_run, save_good_time, write_config

# A card valid until two months after the software's release date (so these
# times are never before the release floor), venue-local: it expires at
# Helsinki's midnight.
LAST_DAY = (RELEASE_FLOOR + dt.timedelta(days=60)).date()
HELSINKI_MIDNIGHT = dt.datetime.combine(
    LAST_DAY + dt.timedelta(days=1), dt.time(0), ZoneInfo("Europe/Helsinki")
)
EXPIRING = CardRow(
    "A999123453", "personal", "active", LAST_DAY - dt.timedelta(days=365), LAST_DAY, 2
)
# Scans 10 minutes apart around that midnight.
STEP = 600.0
SCANS = 4
START = HELSINKI_MIDNIGHT - dt.timedelta(seconds=2 * STEP - 60)
CORRECT = ["ok", "ok", "expired", "expired"]
AT_1970 = dt.datetime(1970, 1, 1, tzinfo=dt.UTC).timestamp()
AT_2040 = dt.datetime(2040, 1, 1, tzinfo=dt.UTC).timestamp()
DAY = 86_400.0
LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


class FakeTime:
    """The true time, a wall clock that is off by ``offset``, monotonic time, a sync flag."""

    def __init__(self, true_start: dt.datetime) -> None:
        self.true = true_start.timestamp()
        self.mono = 5_000.0
        self.offset = 0.0
        self.synced = False

    def set_wall(self, epoch: float) -> None:
        self.offset = epoch - self.true

    def advance(self, seconds: float) -> None:
        self.true += seconds
        self.mono += seconds

    def clock(self, floor: dt.datetime | None) -> TrustedClock:
        return TrustedClock(
            floor,
            wall=lambda: self.true + self.offset,
            monotonic=lambda: self.mono,
            synchronised=lambda: self.synced,
        )


def run_scans(
    time: FakeTime, clock: TrustedClock, before_scan: Callable[[int], None] = lambda n: None
) -> tuple[list[str], list[bool]]:
    """Decide the expiring card at each scan; returns the reasons and clock_trusted."""
    reasons, trusted = [], []
    for number in range(SCANS):
        before_scan(number)
        reading = clock.read()
        reasons.append(decide(EXPIRING.card_id, EXPIRING, reading.now, Counters(), Config()).reason)
        trusted.append(reading.trusted)
        time.advance(STEP)
    return reasons, trusted


def test_with_a_correct_synchronised_clock_the_card_expires_at_helsinki_midnight() -> None:
    time = FakeTime(START)
    time.synced = True
    assert run_scans(time, time.clock(None)) == (CORRECT, [True] * SCANS)


@pytest.mark.parametrize("wall", [AT_1970, AT_2040], ids=["1970", "2040"])
def test_a_wall_clock_at_1970_or_2040_after_a_saved_good_time_decides_as_the_true_time(
    wall: float,
) -> None:
    time = FakeTime(START)
    time.set_wall(wall)
    # The floor the daemon saved at its last stop, just before this boot.
    clock = time.clock(START)
    assert run_scans(time, clock) == (CORRECT, [False] * SCANS)


@pytest.mark.parametrize("synced_after_start", [True, False], ids=["flag-stays", "flag-gone"])
def test_a_wall_clock_jumping_a_day_back_and_forth_mid_run_keeps_the_decisions(
    synced_after_start: bool,
) -> None:
    time = FakeTime(START)
    time.synced = True  # a good time is seen at the first scan
    clock = time.clock(None)
    walls = {1: -DAY, 2: +DAY, 3: 0.0}

    def jump(number: int) -> None:
        if number in walls:
            # The flag file outlives a manual clock change: it may still be there.
            time.synced = synced_after_start
            time.offset = walls[number]

    reasons, trusted = run_scans(time, clock, jump)
    assert reasons == CORRECT
    # Back within tolerance, the wall clock is believed again.
    assert trusted == [True, False, False, True]


def test_a_server_time_rescues_a_kiosk_that_booted_at_1970_with_no_saved_time() -> None:
    time = FakeTime(START)
    time.set_wall(AT_1970)
    clock = time.clock(None)
    # With nothing seen yet the kiosk can only assume the software's release date.
    assert clock.read().now == RELEASE_FLOOR
    clock.observe_server_time(dt.datetime.fromtimestamp(time.true, dt.UTC))
    assert run_scans(time, clock) == (CORRECT, [False] * SCANS)


def test_an_unsynchronised_clock_somewhat_ahead_of_an_old_floor_is_believed() -> None:
    # The kiosk was switched off for a week: its saved floor is a week old.
    time = FakeTime(START)
    assert run_scans(time, time.clock(START - dt.timedelta(days=7))) == (CORRECT, [True] * SCANS)


def test_the_floor_never_moves_back() -> None:
    time = FakeTime(START)
    time.synced = True
    clock = time.clock(None)
    clock.read()
    clock.observe_server_time(START - dt.timedelta(days=1))
    time.advance(60)
    assert clock.floor() == START + dt.timedelta(seconds=60)


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime (Debian faketime) not installed")
def test_the_real_daemon_under_libfaketime_at_1970_decides_with_the_saved_floor(
    tmp_path: Path,
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
) -> None:
    now = dt.datetime.now(dt.UTC)
    registry(
        card("A999123453"),
        card("A200000025", valid_until=TODAY - dt.timedelta(days=1)),
    )
    save_good_time(kiosk_config.storage.path, now)
    show("A999123453", "A200000025")
    # libfaketime breaks the timed waits of gpiozero's button threads (they never
    # stop), so this kiosk has no buttons; the lights still run.
    no_buttons = kiosk_config.replace("gpio", child_button=None, done_button=None)
    config_file = write_config(no_buttons, tmp_path / "kiosk.toml")

    # The library itself rather than the faketime wrapper, so SIGTERM reaches Python.
    process = kiosk_run(config_file, LD_PRELOAD=str(LIBFAKETIME), FAKETIME="@1970-01-01 00:00:00")
    try:
        deadline = time.monotonic() + 30
        while len(events(kiosk_config)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        # Not --until-idle: its final upload waits on the sync thread, and
        # libfaketime makes timed waits return at once.
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()

    records = events(kiosk_config)
    assert [(e["card_id"], e["reason"], e["clock_trusted"]) for e in records] == [
        ("A999123453", "ok", 0),
        ("A200000025", "expired", 0),
    ]
    # Recorded with the floor's time, not 1970.
    for record in records:
        scanned = dt.datetime.fromisoformat(record["scanned_at"])
        assert dt.timedelta(0) <= scanned - now < dt.timedelta(minutes=5)


def test_with_no_saved_time_a_clock_within_the_release_life_is_believed() -> None:
    # A kiosk that has never synchronised and saved nothing: its clock a year after
    # the release is plausible, a clock at 2040 is not.
    a_year_later = (RELEASE_FLOOR + dt.timedelta(days=365)).timestamp()
    believed = TrustedClock(wall=lambda: a_year_later, synchronised=lambda: False).read()
    assert believed.trusted and believed.now.timestamp() == a_year_later
    at_2040 = dt.datetime(2040, 1, 1, tzinfo=dt.UTC).timestamp()
    doubted = TrustedClock(wall=lambda: at_2040, synchronised=lambda: False).read()
    assert not doubted.trusted and doubted.now < dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
