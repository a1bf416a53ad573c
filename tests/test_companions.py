"""The real daemon through the ``dir:`` source with mock pins: every reason code, and
companions by child code and by the child button, their limits, and a crash."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.config import Config
from kiosk.daemon import Daemon
from kiosk.store import Store
from tests.conftest import TODAY, card, events
from tests.kiosk_process import kiosk_run, save_good_time, write_config
from tests.test_daemon import AMBER, GREEN, RED, RELAY, run_daemon, went_high

CHILD, DONE = "KAIKU:CHILD", "KAIKU:DONE"
CHILD_BUTTON, DONE_BUTTON = 5, 6
# An empty image: a pause between two showings of the same code, longer than
# repeat_suppress_seconds, so the second one counts.
GAP = ("", "qrcode")
PAUSE = (GAP,) * 4
YESTERDAY = TODAY - dt.timedelta(days=1)
LOCAL_TODAY = dt.datetime.now(ZoneInfo("Europe/Helsinki")).date()


@pytest.fixture
def config(kiosk_config: Config) -> Config:
    save_good_time(kiosk_config.storage.path)
    return kiosk_config.replace("rules", repeat_suppress_seconds=0.05)


def summary(config: Config) -> list[tuple[Any, ...]]:
    keys = ("card_id", "result", "reason", "adults", "children", "max_children", "closed")
    return [tuple(record[key] for key in keys) for record in events(config)]


# --- every reason code ------------------------------------------------------------

REASON_CASES: dict[str, tuple[dict[str, dict[str, Any]], tuple[Any, ...], bool]] = {
    # reason: (config changes, codes shown, whether amber "see staff" glows)
    "ok": ({}, ("A999123453",), False),
    "ok_provisional": ({"rules": {"unknown_card": "accept_provisional"}}, ("A777777777",), False),
    "not_a_card": ({}, ("https://example.com/win",), False),
    "unknown_card": ({}, ("A777777777",), True),
    "inactive_card": ({}, ("A100000017",), True),
    "expired": ({}, ("A200000025",), True),
    "not_yet_valid": ({}, ("A300000033",), True),
    "closed": ({"venue": {"closed_dates": (LOCAL_TODAY,)}}, ("A999123453",), False),
    "quota_full": ({"venue": {"daily_cap": 1}}, ("A500000059", "A999123453"), True),
    "already_used": ({}, ("A999123453", *PAUSE, "A999123453"), True),
}
CARDS = [
    card("A999123453"),
    card("A500000059"),
    card("A100000017", status="inactive"),
    card("A200000025", valid_until=YESTERDAY),
    card("A300000033", valid_from=TODAY + dt.timedelta(days=2)),
]


@pytest.mark.parametrize("reason", list(REASON_CASES))
def test_each_reason_code_through_the_real_daemon(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
    reason: str,
) -> None:
    changes, codes, see_staff = REASON_CASES[reason]
    for section, values in changes.items():
        config = config.replace(section, **values)
    if reason != "ok_provisional":
        registry(*CARDS)  # with no registry refresh ever, the registry is stale
    show(*codes)
    run_daemon(config, mock_factory)

    last = events(config)[-1]
    assert last["reason"] == reason
    accepted = reason.startswith("ok")
    assert last["result"] == ("accepted" if accepted else "rejected")
    assert (last["adults"], last["closed"], last["clock_trusted"]) == (int(accepted), 1, 1)
    if reason == "not_a_card":
        assert last["card_id"] is None and len(last["payload_sha256"]) == 64
    else:
        assert last["card_id"] == codes[-1] and last["payload_sha256"] is None
    if len(events(config)) == 1:
        assert went_high(mock_factory, GREEN) is accepted
        assert went_high(mock_factory, RELAY) is accepted
    assert went_high(mock_factory, RED) is not accepted
    assert went_high(mock_factory, AMBER) is see_staff


# --- children by the child code -----------------------------------------------------


def test_children_by_child_code_up_to_the_registered_number_then_refused(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    registry(card("A300000033", children=2))
    show("A300000033", CHILD, *PAUSE, CHILD, *PAUSE, CHILD, DONE)
    daemon = run_daemon(config, mock_factory)

    assert summary(config) == [("A300000033", "accepted", "ok", 1, 2, 2, 1)]
    kinds = [report.kind for report in daemon.reports]
    assert kinds == ["decision", "child", "child", "child_refused", "window_closed"]
    # The child over the limit gets the reject pattern, but no "see staff".
    assert went_high(mock_factory, RED) and not went_high(mock_factory, AMBER)
    assert went_high(mock_factory, GREEN) and went_high(mock_factory, RELAY)


def test_the_done_code_closes_the_window(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    registry(card("A300000033", children=4))
    show("A300000033", CHILD, DONE, *PAUSE, CHILD)
    daemon = run_daemon(config, mock_factory)
    assert summary(config) == [("A300000033", "accepted", "ok", 1, 1, 4, 1)]
    assert [r.kind for r in daemon.reports][-2:] == ["window_closed", "child_refused"]


def test_a_community_card_brings_up_to_the_community_limit(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    config = config.replace("rules", community_max_children=2)
    registry(card("Z400000041", kind="community", children=None))
    show("Z400000041", CHILD, *PAUSE, CHILD, *PAUSE, CHILD, DONE)
    run_daemon(config, mock_factory)
    assert summary(config) == [("Z400000041", "accepted", "ok", 1, 2, 2, 1)]


def test_a_course_place_admits_no_children(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    config = config.replace("venue", mode="course", category="education")
    registry(card("A300000033", children=2))
    show("A300000033", CHILD)
    daemon = run_daemon(config, mock_factory)
    assert summary(config) == [("A300000033", "accepted", "ok", 1, 0, 0, 1)]
    assert events(config)[0]["mode"] == "course"
    assert "child_refused" in [r.kind for r in daemon.reports]


def test_the_daily_cap_counts_children(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    config = config.replace("venue", daily_cap=3)
    registry(card("A300000033", children=4), card("A999123453"))
    # Two places are left after the holder: the third child is refused.
    show("A300000033", CHILD, *PAUSE, CHILD, *PAUSE, CHILD, DONE, "A999123453")
    run_daemon(config, mock_factory)
    assert summary(config) == [
        ("A300000033", "accepted", "ok", 1, 2, 2, 1),
        ("A999123453", "rejected", "quota_full", 0, 0, 0, 1),
    ]


# --- children by the buttons, with the daemon running in a thread ---------------------


@contextlib.contextmanager
def running(config: Config, factory: MockFactory) -> Iterator[tuple[Daemon, Callable[[], None]]]:
    """Run the daemon in a thread; yields it and what hands it the images shown so far.

    The daemon watches its own folder, and shown images are renamed into it: a
    file it sees half-written would be read as a blank frame.
    """
    shown = Path(config.camera.source.removeprefix("dir:"))
    live = shown.parent / "live"
    live.mkdir()
    daemon = Daemon(config.replace("camera", source=f"dir:{live}"), pin_factory=factory)
    thread = threading.Thread(target=daemon.run)
    thread.start()

    def hand_over() -> None:
        for image in sorted(shown.iterdir()):
            image.replace(live / image.name)

    try:
        yield daemon, hand_over
    finally:
        daemon.stop()
        thread.join(10)
    assert not thread.is_alive()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def press(factory: MockFactory, pin: int) -> None:
    # The buttons pull up: pressed is low.
    factory.pin(pin).drive_low()
    time.sleep(0.02)
    factory.pin(pin).drive_high()


def first_record(config: Config) -> dict[str, Any]:
    records = events(config)
    return records[0] if records else {}


def test_children_by_the_child_button_and_the_done_button(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    config = config.replace("companions", window_seconds=5.0)
    registry(card("A300000033", children=2))
    with running(config, mock_factory) as (daemon, hand_over):
        show("A300000033")
        hand_over()
        wait_for(lambda: bool(first_record(config)))
        # Committed at acceptance, still open for children.
        assert (first_record(config)["children"], first_record(config)["closed"]) == (0, 0)
        for expected in (1, 2):
            press(mock_factory, CHILD_BUTTON)
            wait_for(lambda n=expected: first_record(config)["children"] == n)
        press(mock_factory, CHILD_BUTTON)  # over the limit
        wait_for(lambda: "child_refused" in [r.kind for r in daemon.reports])
        press(mock_factory, DONE_BUTTON)
        wait_for(lambda: first_record(config)["closed"] == 1)
    assert summary(config) == [("A300000033", "accepted", "ok", 1, 2, 2, 1)]
    assert went_high(mock_factory, RED) and not went_high(mock_factory, AMBER)


def test_the_window_closes_on_timeout_and_a_later_child_is_refused(
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    config = config.replace("companions", window_seconds=1.0)
    registry(card("A300000033", children=2))
    with running(config, mock_factory) as (daemon, hand_over):
        show("A300000033")
        hand_over()
        wait_for(lambda: bool(first_record(config)))
        press(mock_factory, CHILD_BUTTON)
        wait_for(lambda: first_record(config)["children"] == 1)
        wait_for(lambda: first_record(config)["closed"] == 1, timeout=3.0)
        press(mock_factory, CHILD_BUTTON)
        wait_for(lambda: daemon.reports[-1].kind == "child_refused")
    assert summary(config) == [("A300000033", "accepted", "ok", 1, 1, 2, 1)]


# --- a crash inside the window ------------------------------------------------------


def test_a_crash_inside_the_window_closes_the_record_at_restart_with_its_children(
    tmp_path: Path,
    config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    # Long enough that the window is surely open when the process is killed.
    config = config.replace("companions", window_seconds=60.0)
    registry(card("A300000033", children=3))
    show("A300000033", CHILD, *PAUSE, CHILD)
    process = kiosk_run(write_config(config, tmp_path / "kiosk.toml"))
    try:
        wait_for(lambda: first_record(config).get("children") == 2, timeout=15)
    finally:
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=10)
    assert b"Traceback" not in stderr, stderr.decode()
    assert first_record(config)["closed"] == 0
    with Store(config.storage.path) as store:
        assert store.pending(10) == []  # an open record is not uploaded

    # The restarted kiosk sees nothing new: the family has gone in.
    for image in Path(config.camera.source.removeprefix("dir:")).iterdir():
        image.unlink()
    run_daemon(config, mock_factory)
    assert summary(config) == [("A300000033", "accepted", "ok", 1, 2, 3, 1)]
    with Store(config.storage.path) as store:
        assert [record["card_id"] for record in store.pending(10)] == ["A300000033"]
