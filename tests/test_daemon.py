"""The scan-to-signal pipeline end to end: dir: source, real decoder, real store, mock pins."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from kiosk.config import Config
from kiosk.daemon import Daemon
from kiosk.demo import card_image
from kiosk.store import Store
from tests.conftest import TODAY, card, events, running, wait_for

GREEN, RED, AMBER, BUZZER, RELAY = 17, 27, 22, 18, 23


def run_daemon(config: Config, factory: Any, **options: Any) -> Daemon:
    daemon = Daemon(config, pin_factory=factory, until_idle=True, **options)
    assert daemon.run() == 0
    return daemon


def went_high(factory: MockFactory, pin: int) -> bool:
    return any(state.state for state in factory.pin(pin).states)


def test_valid_qr_card_is_accepted_with_green_light_and_relay_pulse(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    registry(card("A999123453"))
    show("A999123453")
    run_daemon(kiosk_config, mock_factory)

    [record] = events(kiosk_config)
    assert (record["card_id"], record["result"], record["reason"]) == (
        "A999123453",
        "accepted",
        "ok",
    )
    assert (record["adults"], record["children"], record["closed"]) == (1, 0, 1)
    assert went_high(mock_factory, GREEN) and went_high(mock_factory, RELAY)
    assert not went_high(mock_factory, RED)


@pytest.mark.parametrize(
    ("card_id", "shown"),
    [
        ("A100000017", ("A100000017", "code39")),
        ("A999123453", ("https://www.kaikukortti.fi/kortti/a999123453", "qrcode")),
    ],
    ids=["code39", "card-url"],
)
def test_every_printed_form_of_a_card_is_read_and_accepted(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
    card_id: str,
    shown: tuple[str, str],
) -> None:
    registry(card(card_id))
    show(shown)
    run_daemon(kiosk_config, mock_factory)
    assert [(e["card_id"], e["reason"]) for e in events(kiosk_config)] == [(card_id, "ok")]


def test_expired_unknown_and_foreign_codes_are_rejected_with_red_light(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    import datetime as dt

    registry(card("A200000025", valid_until=TODAY - dt.timedelta(days=1)))
    show("A200000025", "A777777777", "https://example.com/A999123453")
    run_daemon(kiosk_config, mock_factory)

    records = events(kiosk_config)
    assert [(e["card_id"], e["result"], e["reason"]) for e in records] == [
        ("A200000025", "rejected", "expired"),
        ("A777777777", "rejected", "unknown_card"),
        (None, "rejected", "not_a_card"),
    ]
    assert records[2]["payload_sha256"] and len(records[2]["payload_sha256"]) == 64
    assert went_high(mock_factory, RED)
    assert not went_high(mock_factory, GREEN) and not went_high(mock_factory, RELAY)


def test_the_same_card_seen_again_at_once_is_one_scan(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
) -> None:
    registry(card("A999123453"))
    show("A999123453", "A999123453", "A999123453")
    run_daemon(kiosk_config, mock_factory)
    assert len(events(kiosk_config)) == 1


class RecordingPin(MockPin):
    """A mock pin that reports each change, so a test can look at the store right then."""

    on_change: Callable[[int, bool], None] = staticmethod(lambda number, state: None)

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed and value:
            RecordingPin.on_change(self.info.name, value)
        return bool(changed)


def test_every_signal_is_shown_only_after_its_record_is_committed(
    kiosk_config: Config, registry: Callable[..., None], show: Callable[..., None]
) -> None:
    registry(card("A999123453"), card("A100000017", status="inactive"))
    show("A999123453", "A100000017", "not a card")
    seen: list[tuple[str, int]] = []

    def check(name: str, state: bool) -> None:
        # A fresh connection sees only what was committed.
        with Store(kiosk_config.storage.path) as store:
            seen.append((name, len(store.events())))

    RecordingPin.on_change = staticmethod(check)
    factory = MockFactory(pin_class=RecordingPin)
    try:
        run_daemon(kiosk_config, factory)
    finally:
        factory.close()
    signals = [(name, count) for name, count in seen if name in ("GPIO17", "GPIO27")]
    assert [name for name, _ in signals][:3] == ["GPIO17", "GPIO27", "GPIO27"]
    # When the nth signal lit, at least n records were already committed.
    first_lights = [count for _, count in signals[:3]]
    assert first_lights[0] >= 1 and first_lights[1] >= 2 and first_lights[2] >= 3


def test_a_missing_camera_is_a_fault_signal_and_scanning_resumes_when_it_returns(
    tmp_path: Path, kiosk_config: Config, registry: Callable[..., None], mock_factory: MockFactory
) -> None:
    folder = tmp_path / "camera-later"
    config = kiosk_config.replace("camera", source=f"dir:{folder}")
    registry(card("A999123453"))
    daemon = Daemon(config, pin_factory=mock_factory)
    with running(daemon) as thread:
        assert wait_for(lambda: went_high(mock_factory, AMBER), 5), "no fault signal within 5 s"
        assert thread.is_alive(), "the daemon must not exit on a missing camera"
        folder.mkdir()
        card_image("A999123453", "qrcode").save(folder / "001.png")
        assert wait_for(lambda: bool(events(config)), 10)
        assert [e["reason"] for e in events(config)] == ["ok"]
        assert not mock_factory.pin(AMBER).state, "the fault signal clears when the camera is back"
    assert any(report.kind == "fault" for report in daemon.reports)


class NotifyListener:
    """A stand-in for systemd's notification socket."""

    def __init__(self, path: Path) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.1)

    def messages(self) -> list[str]:
        received = []
        while True:
            try:
                received.append(self.socket.recv(4096).decode())
            except TimeoutError:
                return received


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield listener
    listener.socket.close()


def test_daemon_tells_systemd_ready_and_feeds_the_watchdog(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
    systemd: NotifyListener,
) -> None:
    registry(card("A999123453"))
    show("A999123453", "A999123453", "A999123453", "A999123453")
    run_daemon(kiosk_config, mock_factory)
    messages = systemd.messages()
    assert any(m.startswith("READY=1") for m in messages)
    assert "WATCHDOG=1" in messages
    assert messages[-1] == "STOPPING=1"


def test_without_a_camera_the_daemon_is_not_ready_but_keeps_its_start_alive(
    tmp_path: Path, kiosk_config: Config, mock_factory: MockFactory, systemd: NotifyListener
) -> None:
    config = kiosk_config.replace("camera", source=f"dir:{tmp_path / 'no-camera'}")
    with running(Daemon(config, pin_factory=mock_factory)):
        time.sleep(0.5)
    messages = systemd.messages()
    assert not any(m.startswith("READY=1") for m in messages)
    assert "WATCHDOG=1" not in messages
    assert any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in messages)
    assert any(m.startswith("STATUS=camera fault") for m in messages)


def test_sigterm_stops_the_real_daemon_cleanly(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    config_file = tmp_path / "kiosk.toml"
    config_file.write_text(
        f'[camera]\nsource = "dir:{images}"\n[gpio]\npin_factory = "mock"\n'
        f'[storage]\npath = "{tmp_path / "kiosk.db"}"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "run", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 20
    while not (tmp_path / "kiosk.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    _, stderr = process.communicate()
    assert b"stopping signal=SIGTERM" in stderr
