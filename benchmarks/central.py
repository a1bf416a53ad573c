"""Central API figures: a full registry sync and an upload drain, on loopback.

The reference server (:class:`~kiosk.devserver.DevServer`) runs in this process
on 127.0.0.1 with an in-memory database, so it shares the interpreter (and its
lock) with the client: the figures include the server's own work. The kiosk
side is the real :class:`~kiosk.sync.SyncWorker`, enrolled as a device is,
with its store on this machine's disk (``synchronous=FULL``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.report import Figure
from kiosk.config import Config
from kiosk.devserver import DevServer
from kiosk.store import EventRecord, Store, new_event_id
from kiosk.sync import SyncWorker, enroll_device

COUNT = 100_000
T = TypeVar("T")
EVENT_COLUMNS = [field.name for field in dataclasses.fields(EventRecord)]


def registry_cards(count: int) -> Iterator[dict[str, Any]]:
    for number in range(count):
        yield {
            "card_id": f"C{number:09d}",
            "kind": "community" if number % 10 == 0 else "personal",
            "status": "inactive" if number % 50 == 0 else "active",
            "valid_from": "2026-01-01",
            "valid_until": "2027-12-31",
            "children": number % 5,
        }


@contextlib.contextmanager
def enrolled(cards: Iterable[Mapping[str, Any]] = ()) -> Iterator[tuple[DevServer, Config]]:
    """A running reference server and the config of a kiosk enrolled with it."""
    with tempfile.TemporaryDirectory() as folder, DevServer(cards=cards) as server:
        config = Config().replace("storage", path=Path(folder) / "state" / "kiosk.db")
        server.add_enroll_code("BENCH")
        enroll_device(config, "BENCH", server.url)
        yield server, config


def queue_records(config: Config, count: int) -> None:
    """Put ``count`` closed records in the upload queue, in one transaction."""
    venue = config.venue
    local = dt.datetime.now(venue.tz)
    records = (
        EventRecord(
            event_id=new_event_id(),
            card_id=f"C{number:09d}",
            payload_sha256=None,
            result="accepted",
            reason="ok",
            adults=1,
            children=number % 3,
            max_children=4,
            category=venue.category,
            mode=venue.mode,
            venue_id="bench-venue",
            scanned_at=local.isoformat(timespec="milliseconds"),
            local_date=local.date().isoformat(),
            mono_ns=number,
            boot_id="bench",
            clock_trusted=True,
            closed=True,
        )
        for number in range(count)
    )
    insert = (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    )
    with Store(config.storage.path) as store, store.transaction() as conn:
        conn.executemany(insert, (dataclasses.astuple(record) for record in records))


def timed(config: Config, task: Callable[[SyncWorker], T]) -> tuple[T, float]:
    """What one task of a fresh sync worker returned, and the seconds it took."""
    worker = SyncWorker(config)
    try:
        start = time.perf_counter()
        result = task(worker)
        return result, time.perf_counter() - start
    finally:
        worker.close()


def sync_seconds(count: int) -> float:
    with enrolled(registry_cards(count)) as (_, config):
        applied, elapsed = timed(config, SyncWorker.sync_registry)
        with Store(config.storage.path) as store:
            if applied != count or store.card_count() != count:
                raise RuntimeError(f"the sync applied {applied} of {count} cards")
    return elapsed


def upload_seconds(count: int) -> float:
    with enrolled() as (server, config):
        queue_records(config, count)
        report, elapsed = timed(config, SyncWorker.upload)
        if report.stored != count or len(server.stored_events()) != count:
            raise RuntimeError(f"the upload stored {report.stored} of {count} records")
    return elapsed


def run(full: bool) -> list[Figure]:
    batch = Config().api.batch_size
    return [
        Figure(
            f"full registry sync of {COUNT:,} cards from the reference server",
            15,
            sync_seconds(COUNT),
            "s",
            True,
        ),
        Figure(
            f"upload of {COUNT:,} queued records to the reference server ({batch} a batch)",
            30,
            upload_seconds(COUNT),
            "s",
            True,
        ),
    ]
