"""Full disk: the store on a real, small file system (a 4 MB tmpfs mounted for the test).

The daemon runs with mock pins and the reference server while a filler file
takes the space away in two steps, then gives it back:

- low (free < ``storage.min_free_mb``): the fault signal shows, the heartbeat
  carries the small ``disk_free_bytes``, and scans are still recorded and admitted;
- full: a scan cannot be committed, so nobody is admitted (no green, no relay):
  the fault signal asks the holder to see staff, and the store stays intact;
- space back: scanning admits again by itself, the faults clear, and every
  record made before the disk filled is delivered.

Mounting needs root; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

import kiosk.sync
from kiosk.config import Config
from kiosk.daemon import Daemon
from kiosk.demo import card_image
from kiosk.devserver import DevServer
from kiosk.store import Store
from kiosk.sync import enroll_device
from tests.conftest import card, events, running, wait_for
from tests.test_sync_helpers import card as server_card

DISK_MB = 4
MIN_FREE_MB = 1
CARDS = ("A999123453", "A100000017", "A200000025", "A300000033")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(path: Path, leave: int = 0) -> None:
    """Grow ``path`` until only ``leave`` bytes are free on its file system."""
    chunk = b"\0" * 65536
    with open(path, "ab") as handle:
        while (free := shutil.disk_usage(path.parent).free) > leave:
            try:
                handle.write(chunk[: min(len(chunk), free - leave)])
                handle.flush()
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break


def rises(factory: MockFactory, pin: int | None) -> int:
    assert pin is not None
    return sum(1 for state in factory.pin(pin).states if state.state)


def last_heartbeat(server: DevServer) -> dict[str, int]:
    beat = server.devices()[0]["last_heartbeat"]
    return json.loads(beat) if beat else {}


@pytest.fixture
def disk_config(
    kiosk_config: Config, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Config, DevServer]]:
    # Heartbeats every 0.2 s instead of every minute, so the alarm shows at once.
    monkeypatch.setattr(kiosk.sync, "HEARTBEAT_INTERVAL_SECONDS", 0.2)
    with DevServer(cards=[server_card(c) for c in CARDS], enroll_codes=["DISK"]) as server:
        config = (
            kiosk_config.replace("storage", path=small_disk / "kiosk.db", min_free_mb=MIN_FREE_MB)
            .replace("venue", id="demo-venue", reentry_minutes=0)
            .replace("api", base_url=server.url, upload_interval_seconds=0.1, max_backoff_seconds=1)
        )
        enroll_device(config, "DISK", server.url)
        with Store(config.storage.path) as store, store.transaction() as conn:
            store.upsert_cards(conn, [card(c) for c in CARDS])
        yield config, server


def test_a_full_disk_refuses_with_the_fault_signal_and_recovers(
    disk_config: tuple[Config, DevServer], mock_factory: MockFactory
) -> None:
    config, server = disk_config
    gpio = config.gpio
    folder = Path(config.camera.source.removeprefix("dir:"))
    filler = config.storage.state_dir / "filler"

    def show(number: int, card_id: str) -> None:
        card_image(card_id, "qrcode").save(folder / f"{number:03d}.png")

    daemon = Daemon(config, pin_factory=mock_factory)
    with running(daemon):
        show(1, CARDS[0])
        assert wait_for(lambda: len(events(config)) == 1)

        fill(filler, leave=MIN_FREE_MB * 1024 * 1024 // 2)  # low, not yet full
        assert wait_for(
            lambda: any(r.reason == "sync" for r in daemon.reports if r.kind == "fault")
        )
        assert wait_for(lambda: rises(mock_factory, gpio.led_amber) > 0), "the fault signal shows"
        assert wait_for(
            lambda: 0 < last_heartbeat(server).get("disk_free_bytes", 1 << 40) < 1 << 20
        ), "the heartbeat carries the alarm"
        show(2, CARDS[1])
        # Both admitted so far, lights and relay included (they rise in pin threads).
        assert wait_for(
            lambda: (
                len(events(config)) == 2
                and rises(mock_factory, gpio.led_green) == rises(mock_factory, gpio.relay) == 2
            )
        ), "a low disk still records and admits"

        fill(filler)  # full
        green, relay = rises(mock_factory, gpio.led_green), rises(mock_factory, gpio.relay)
        show(3, CARDS[2])
        assert wait_for(lambda: any(r.reason == "store" for r in daemon.reports))
        assert len(events(config)) == 2, "nothing half-written"
        assert rises(mock_factory, gpio.led_green) == green, "nobody admitted without a record"
        assert rises(mock_factory, gpio.relay) == relay

        filler.unlink()  # space returns
        show(4, CARDS[3])
        assert wait_for(lambda: len(events(config)) == 3)
        assert wait_for(lambda: not mock_factory.pin(gpio.led_amber or 0).state), "faults clear"
        assert wait_for(lambda: rises(mock_factory, gpio.led_green) > green), "admits again"
        assert wait_for(lambda: len(server.stored_events()) == 3), "every record is delivered"
    assert [e["card_id"] for e in events(config)] == [CARDS[0], CARDS[1], CARDS[3]]
    with contextlib.closing(sqlite3.connect(config.storage.path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert not list(config.storage.state_dir.glob("*.corrupt-*"))
    assert os.path.exists(config.storage.path)
