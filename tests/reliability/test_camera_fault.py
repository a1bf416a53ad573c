"""Camera faults (issue 6, item 6): the camera raises, or gives no frame, for a
minute; and a camera read that hangs for ever.

The daemon runs in-process as on a kiosk with a live camera (``camera.source``
names a v4l2 device; ``open_source`` hands it the fake camera below), so its
stall detection is in play. In the quick size the daemon's clock runs 10x fast:
``time.monotonic`` and ``time.sleep`` of :mod:`kiosk.daemon` and of the fake
camera are scaled together, so a minute of fault takes six seconds. The full
size (``KIOSK_FULL=1``) runs the real minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

import kiosk.daemon
from kiosk.config import Config
from kiosk.daemon import Daemon, ScanReport
from kiosk.demo import card_image
from kiosk.errors import CameraError
from tests.conftest import card, running, wait_for
from tests.reliability.helpers_security import FULL
from tests.test_daemon import (
    AMBER,
    NotifyListener,
    systemd,  # noqa: F401 (a fixture)
    went_high,
)

SPEED = 1.0 if FULL else 10.0
FAULT_SECONDS = 60.0
SIGNAL_WITHIN = 5.0
RESUME_WITHIN = 5.0
CARD_FRAME = np.asarray(card_image("A999123453", "qrcode"), dtype=np.uint8)
BLANK_FRAME = np.full_like(CARD_FRAME, 255)


class FastTime:
    """``monotonic`` and ``sleep`` with time running ``speed`` times fast."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._start = time.monotonic()

    def monotonic(self) -> float:
        return self._start + (time.monotonic() - self._start) * self.speed

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)


class FaultyCamera:
    """A camera at 30 fps that fails in ``mode`` between ``fault_at`` and
    ``fault_at + fault_for`` (its clock's seconds), then shows a card.

    ``raise``: open and read raise CameraError; ``nothing``: read gives no frame;
    ``hang``: read blocks until :attr:`release` is set.
    """

    def __init__(self, clock: FastTime, mode: str, fault_at: float, fault_for: float) -> None:
        self.clock = clock
        self.mode = mode
        self.fault_from = clock.monotonic() + fault_at
        self.fault_until = self.fault_from + fault_for
        self.release = threading.Event()
        self.hung = threading.Event()

    @property
    def exhausted(self) -> bool:
        return False

    def faulty(self) -> bool:
        return self.fault_from <= self.clock.monotonic() < self.fault_until

    def open(self) -> None:
        if self.mode == "raise" and self.faulty():
            raise CameraError("the camera is gone")

    def read(self) -> np.ndarray | None:
        self.clock.sleep(1 / 30)
        if not self.faulty():
            return CARD_FRAME if self.clock.monotonic() >= self.fault_until else BLANK_FRAME
        if self.mode == "raise":
            raise CameraError("the camera is gone")
        if self.mode == "hang":
            self.hung.set()
            self.release.wait()
        return None

    def close(self) -> None:
        return None


class Timeline:
    """When (on the daemon's clock) the fault signal and each decision were reported,
    and when systemd was told WATCHDOG=1."""

    def __init__(self, clock: FastTime) -> None:
        self.clock = clock
        self.faults: list[float] = []
        self.decisions: list[float] = []
        self.watchdog: list[float] = []

    def report(self, report: ScanReport) -> None:
        stamps = self.faults if report.kind == "fault" else self.decisions
        if report.kind in ("fault", "decision"):
            stamps.append(self.clock.monotonic())

    def listen(self, listener: NotifyListener, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                message = listener.socket.recv(4096).decode()
            except (TimeoutError, OSError):
                continue
            if message == "WATCHDOG=1":
                self.watchdog.append(self.clock.monotonic())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FastTime:
    """The daemon's clock; it uses only ``monotonic`` and ``sleep`` of :mod:`time`."""
    fast = FastTime(SPEED)
    monkeypatch.setattr(kiosk.daemon, "time", fast)
    return fast


@pytest.fixture
def live_camera(kiosk_config: Config, registry: Callable[..., None]) -> Config:
    """The kiosk config naming a live camera, with the card registered."""
    registry(card("A999123453"))
    return kiosk_config.replace("camera", source="v4l2:/dev/video-test")


@pytest.fixture
def timeline(clock: FastTime, systemd: NotifyListener) -> Iterator[Timeline]:  # noqa: F811
    recorded = Timeline(clock)
    stop = threading.Event()
    thread = threading.Thread(target=recorded.listen, args=(systemd, stop), daemon=True)
    thread.start()
    yield recorded
    stop.set()
    thread.join(5)


def start(
    config: Config,
    camera: FaultyCamera,
    factory: MockFactory,
    timeline: Timeline,
    monkeypatch: pytest.MonkeyPatch,
) -> Daemon:
    monkeypatch.setattr(kiosk.daemon, "open_source", lambda *args, **kwargs: camera)
    return Daemon(config, pin_factory=factory, on_report=timeline.report)


@pytest.mark.parametrize("mode", ["raise", "nothing"])
def test_a_minute_without_camera_shows_the_fault_and_scanning_resumes_by_itself(
    live_camera: Config,
    mock_factory: MockFactory,
    clock: FastTime,
    timeline: Timeline,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    caplog.set_level(logging.INFO)
    camera = FaultyCamera(clock, mode, fault_at=2.0, fault_for=FAULT_SECONDS)
    daemon = start(live_camera, camera, mock_factory, timeline, monkeypatch)
    with running(daemon):
        real_seconds = (2.0 + FAULT_SECONDS + RESUME_WITHIN + 5) / SPEED
        assert wait_for(lambda: bool(timeline.decisions), real_seconds), "scanning never resumed"

    [fault_at] = timeline.faults
    [resumed_at] = timeline.decisions
    signal_delay = fault_at - camera.fault_from
    resume_delay = resumed_at - camera.fault_until
    print(f"camera {mode}: fault signal after {signal_delay:.1f} s, resumed {resume_delay:.1f} s")
    assert 0 <= signal_delay <= SIGNAL_WITHIN
    assert 0 <= resume_delay <= RESUME_WITHIN
    assert went_high(mock_factory, AMBER)
    assert "fault cleared camera" in caplog.text
    # The loop stayed alive all through the fault: the watchdog was fed throughout.
    during = [at for at in timeline.watchdog if camera.fault_from <= at <= camera.fault_until]
    gaps = np.diff([camera.fault_from, *during, camera.fault_until])
    assert during and gaps.max() < 1.0, f"watchdog gap of {gaps.max():.1f} s during the fault"


def test_a_hung_camera_read_starves_the_watchdog(
    live_camera: Config,
    mock_factory: MockFactory,
    clock: FastTime,
    timeline: Timeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    camera = FaultyCamera(clock, "hang", fault_at=1.0, fault_for=3600.0)
    daemon = start(live_camera, camera, mock_factory, timeline, monkeypatch)
    with running(daemon):
        assert camera.hung.wait(10)
        hung_at = clock.monotonic()
        time.sleep(2.0)
        fed_while_hung = [at for at in timeline.watchdog if at > hung_at + 0.5]
        camera.release.set()  # the loop runs again, and can be stopped
        fed_before = [at for at in timeline.watchdog if at < hung_at]
    assert fed_before, "the watchdog was fed while the loop ran"
    assert fed_while_hung == [], "the watchdog was fed while the loop hung"
