"""Shared pieces of the central API tests: a running reference server, an enrolled
kiosk state directory, records in a real SQLite store, and a worker loop."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.api import ApiClient
from kiosk.config import Config
from kiosk.credentials import Device, write_enrollment
from kiosk.devserver import DevServer
from kiosk.store import EventRecord, Store, new_event_id
from kiosk.sync import SyncWorker

CARD = "A999123453"
DEVICE_INFO = {"hostname": "kiosk-test", "model": "test", "software_version": "0"}


def card(card_id: str, children: int | None = 2, status: str = "active") -> dict[str, Any]:
    return {
        "card_id": card_id,
        "kind": "personal",
        "status": status,
        "valid_from": "2024-01-01",
        "valid_until": "2030-12-31",
        "children": children,
    }


def record(card_id: str | None = CARD, reason: str = "ok", days_ago: float = 0) -> EventRecord:
    scanned = dt.datetime.now(dt.UTC).astimezone() - dt.timedelta(days=days_ago)
    return EventRecord(
        event_id=new_event_id(),
        card_id=card_id,
        payload_sha256=None,
        result="accepted" if reason.startswith("ok") else "rejected",
        reason=reason,
        adults=1,
        children=0,
        max_children=4,
        category="culture",
        mode="ticket",
        venue_id="demo-venue",
        scanned_at=scanned.isoformat(timespec="seconds"),
        local_date=scanned.date().isoformat(),
        mono_ns=time.monotonic_ns(),
        boot_id="test-boot",
        clock_trusted=True,
        closed=True,
    )


def add_records(path: Path, count: int, **kwargs: Any) -> list[str]:
    """Commit ``count`` closed records; returns their event ids."""
    with Store(path) as store:
        records = [record(**kwargs) for _ in range(count)]
        for item in records:
            store.record(item)
    return [item.event_id for item in records]


@pytest.fixture(name="server")
def server_fixture() -> Iterator[DevServer]:
    cards = [card(f"A99912{n:04d}") for n in range(3)]
    with DevServer(cards=cards, enroll_codes=["CODE-1", "CODE-2"]) as running:
        yield running


def enroll(server: DevServer, state_dir: Path, code: str = "CODE-1") -> str:
    """Enroll against ``server`` and store the result; returns the token."""
    with ApiClient(server.url) as client:
        enrollment = client.enroll(code, DEVICE_INFO)
    device = Device(enrollment.device_id, enrollment.venue_id, server.url)
    write_enrollment(state_dir, device, enrollment.token)
    return enrollment.token


def make_config(tmp_path: Path, server: DevServer, **api: Any) -> Config:
    settings = {"upload_interval_seconds": 0.1, "timeout_seconds": 2.0, "max_backoff_seconds": 1.0}
    settings.update(api)
    return (
        Config()
        .replace("storage", path=tmp_path / "state" / "kiosk.db", min_free_mb=0)
        .replace("api", base_url=server.url, **settings)
    )


@pytest.fixture(name="config")
def config_fixture(tmp_path: Path, server: DevServer) -> Config:
    """An enrolled kiosk's config with fast intervals."""
    config = make_config(tmp_path, server)
    enroll(server, config.storage.state_dir)
    return config


def fast_worker(config: Config, **kwargs: Any) -> SyncWorker:
    return SyncWorker(config, backoff_base=0.01, **kwargs)


def drain(worker: SyncWorker, path: Path, deadline: float = 15.0) -> None:
    """Run the worker's rounds, honouring its delays, until the queue is empty."""
    end = time.monotonic() + deadline
    with Store(path) as store:
        while time.monotonic() < end:
            delay = worker.run_once()
            if store.queue_depth() == 0:
                return
            time.sleep(min(delay, 3.0))
    raise AssertionError("the queue did not drain")


def assert_exactly_once(server: DevServer, event_ids: list[str], path: Path) -> None:
    stored = [event["event_id"] for event in server.stored_events()]
    assert sorted(stored) == sorted(event_ids)
    with Store(path) as store:
        assert store.queue_depth() == 0
        assert store.delivered_count() == len(event_ids)
