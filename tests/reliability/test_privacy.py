"""Privacy (issue 6, item 8): after the retention period plus a day, no delivered
card id is left anywhere in the store's files, and logs only ever show masked ids.

The real daemon scans cards the registry does not know (so the ids live only in
scan records, not in the card registry), uploads them to the reference server
and stops; the sync worker's retention then runs with its clock a retention
period plus one day later. The store's files are read byte by byte (main file,
-wal, -shm).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.config import Config
from kiosk.daemon import Daemon
from kiosk.devserver import DevServer
from kiosk.payload import mask_card_id
from kiosk.store import Store
from kiosk.sync import SyncWorker
from tests.conftest import events
from tests.reliability.helpers_security import FULL, database_bytes
from tests.test_sync_helpers import add_records, enroll

SCANNED = 200 if FULL else 20


@pytest.fixture
def uploading_kiosk(kiosk_config: Config) -> Iterator[tuple[Config, DevServer]]:
    with DevServer(enroll_codes=["CODE-1"]) as server:
        enroll(server, kiosk_config.storage.state_dir)
        venue = kiosk_config.replace("venue", id="demo-venue")
        yield venue.replace("api", timeout_seconds=2.0), server


def card_ids(count: int) -> list[str]:
    return [f"P{number:05d}7{number * 7919 % 10_000:04d}" for number in range(count)]


def test_after_retention_and_a_day_no_delivered_card_id_is_left_and_logs_are_masked(
    uploading_kiosk: tuple[Config, DevServer],
    show: Callable[..., None],
    mock_factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, server = uploading_kiosk
    scanned = card_ids(SCANNED)
    show(*scanned)
    caplog.set_level(logging.DEBUG)
    Daemon(config, pin_factory=mock_factory, until_idle=True).run()
    assert [e["card_id"] for e in events(config)] == scanned
    assert len(server.stored_events()) == SCANNED
    # A record still waiting for upload is never deleted, however old.
    [waiting] = add_records(config.storage.path, 1, card_id="Q000000042", days_ago=400)
    stored = database_bytes(config.storage.path)
    assert all(card_id.encode() in stored for card_id in scanned)  # the check can see them

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=config.privacy.retention_days + 1)
    worker = SyncWorker(config, clock=lambda: later)
    try:
        deleted = worker.apply_retention()
        # Read while the worker's connection is open, as in a running kiosk:
        # closing the last connection would checkpoint the WAL by itself.
        stored = database_bytes(config.storage.path)
    finally:
        worker.close()

    assert deleted == SCANNED
    left = [card_id for card_id in scanned if card_id.encode() in stored]
    assert left == [], f"{len(left)} of {SCANNED} delivered card ids are still in the file"
    with Store(config.storage.path) as store:
        assert [e["event_id"] for e in store.events()] == [waiting]
        assert store.integrity_ok()
    # Logs named each scan by its masked id only.
    for card_id in scanned:
        assert card_id not in caplog.text
        assert mask_card_id(card_id) in caplog.text
