"""Clock faults through the real daemon: the wall clock at 2040, at 1970, and jumping
a day back and forth while it runs (issue 6, item 4).

``tests/test_clock.py`` proves the rules of :class:`TrustedClock` with an injected
clock and runs the real daemon at a fixed 1970. Here the real ``kiosk run``
process runs under libfaketime with ``FAKETIME_TIMESTAMP_FILE`` and
``FAKETIME_NO_CACHE=1``, so the test moves the process's wall clock mid-run by
rewriting one file. Monotonic time is left alone, as a real clock change
leaves it. Every card is sensitive to a day's error: one is valid until today,
one from today, one expired yesterday. The decisions are compared with an
in-process run of the same cards at the correct time.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.config import Config
from kiosk.daemon import Daemon
from kiosk.store import CardRow
from tests.conftest import card, events, wait_for
from tests.kiosk_process import save_good_time, write_config
from tests.reliability.helpers_security import FULL, load_cards
from tests.test_clock import LIBFAKETIME

AT_1970 = "@1970-01-01 00:00:00"
AT_2040 = "@2040-01-01 00:00:00"
JUMPS = ["+0", "-1d", "+1d", "+0"]
# The full size also drops to 1970 and 2040 mid-run, and jumps again and again.
SCHEDULE = JUMPS + [AT_1970, "+0", AT_2040, "+0"] + JUMPS * 3 if FULL else JUMPS
# What a kiosk without a synchronised clock or server contact may believe
# (the CI container has no systemd time sync flag): only the correct time.
TRUSTED = {"+0": True}

# libfaketime 0.9.10 shifts the absolute monotonic deadline of clock_nanosleep by
# the fake offset even with FAKETIME_DONT_FAKE_MONOTONIC, so time.sleep fails
# with EINVAL; in the child it becomes a monotonic wait. The rest is `kiosk run`.
SLEEP_SHIM = (
    "import runpy, sys, threading, time; "
    "time.sleep = lambda seconds: threading.Event().wait(seconds) and None; "
    "sys.argv[0] = 'kiosk'; "
    "runpy.run_module('kiosk', run_name='__main__')"
)

pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime not installed")


def day_sensitive_cards(phase: int, today: dt.date) -> list[CardRow]:
    """Three cards whose decision changes if the kiosk is a day off either way."""
    day = dt.timedelta(days=1)
    return [
        card(f"B{phase:03d}00001", valid_from=today - 10 * day, valid_until=today),
        card(f"C{phase:03d}00001", valid_from=today, valid_until=today + 10 * day),
        card(f"D{phase:03d}00001", valid_from=today - 10 * day, valid_until=today - day),
    ]


def recorded(config: Config, count: int) -> bool:
    return len(events(config)) >= count


def decisions(config: Config) -> list[tuple[str, str, str]]:
    return [(e["card_id"], e["result"], e["reason"]) for e in events(config)]


def run_under_faketime(
    tmp_path: Path,
    config: Config,
    show: Callable[..., None],
    schedule: Sequence[list[str]],
    specs: Sequence[str],
) -> None:
    """Run ``kiosk run`` with the wall clock at ``specs[i]`` while ``schedule[i]`` is shown;
    fails if a phase's scans are not all recorded."""
    clock_file = tmp_path / "faketime"
    clock_file.write_text(specs[0])
    # libfaketime stops gpiozero's button threads from stopping; lights still run.
    no_buttons = config.replace("gpio", child_button=None, done_button=None)
    config_file = write_config(no_buttons, tmp_path / "kiosk.toml")
    process = subprocess.Popen(
        [sys.executable, "-c", SLEEP_SHIM, "run", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(clock_file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        },
    )
    try:
        expected = 0
        for spec, codes in zip(specs, schedule, strict=True):
            clock_file.write_text(spec)
            show(*codes)
            expected += len(codes)
            assert wait_for(functools.partial(recorded, config, expected), 30), (
                f"phase {spec!r}: the scans were not recorded"
            )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()


def reference_run(
    tmp_path: Path, config: Config, cards: list[CardRow]
) -> list[tuple[str, str, str]]:
    """The same cards decided in-process at the correct time, in a fresh store."""
    reference = config.replace("storage", path=tmp_path / "reference" / "kiosk.db")
    folder = tmp_path / "reference-images"
    folder.mkdir()
    source = Path(config.camera.source.removeprefix("dir:"))
    for image in sorted(source.iterdir()):
        (folder / image.name).write_bytes(image.read_bytes())
    reference = reference.replace("camera", source=f"dir:{folder}")
    load_cards(reference, cards)
    factory = MockFactory()
    try:
        Daemon(reference, pin_factory=factory, until_idle=True).run()
    finally:
        factory.close()
    return decisions(reference)


@pytest.mark.parametrize(
    "specs",
    [[AT_2040], [AT_1970], SCHEDULE],
    ids=["2040", "1970", "jumps-full" if FULL else "jumps"],
)
def test_the_real_daemon_decides_as_at_the_true_time_whatever_the_wall_clock_says(
    tmp_path: Path,
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    specs: list[str],
) -> None:
    today = dt.datetime.now(kiosk_config.venue.tz).date()
    schedule = [day_sensitive_cards(phase, today) for phase in range(len(specs))]
    cards = [row for rows in schedule for row in rows]
    registry(*cards)
    save_good_time(kiosk_config.storage.path)

    run_under_faketime(
        tmp_path, kiosk_config, show, [[row.card_id for row in rows] for rows in schedule], specs
    )

    records = events(kiosk_config)
    assert decisions(kiosk_config) == reference_run(tmp_path, kiosk_config, cards)
    assert [r["reason"] for r in records[:3]] == ["ok", "ok", "expired"]
    trusted = [bool(r["clock_trusted"]) for r in records]
    assert trusted == [TRUSTED.get(spec, False) for spec in specs for _ in range(3)]
    # Every record carries a time within the real day, never the faked one.
    for record in records:
        assert dt.date.fromisoformat(record["local_date"]) == today
