"""Outage: days offline at one scan every 3 s, with time compressed; then the network returns.

The real :class:`~kiosk.sync.SyncWorker` and a reference server on a real port.
Offline, the port is closed (connection refused) and the worker's monotonic
clock jumps to each next due time, while the records of the skipped seconds are
committed with ``Store.record``. When the server is back it first answers 429
and 503 with ``Retry-After``, measured on the server's own clock in real time;
the worker's jitter is then pinned to its low end, so nothing but ``Retry-After``
holds the next request back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
import re
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import kiosk.sync
from kiosk.config import Config
from kiosk.counters import read_counters
from kiosk.credentials import Device, write_enrollment
from kiosk.devserver import DevServer, Fault
from kiosk.rules import decide
from kiosk.store import Store
from kiosk.sync import SyncWorker
from tests.reliability.conftest import sized
from tests.test_sync_helpers import CARD, card, enroll, record

HOURS = sized(quick=6, full=72)
SCAN_EVERY = 3.0
RETRY_AFTER = (2, 1)  # seconds, for the 429 and then the 503 when the network returns
RETRY_LINE = re.compile(r"sync failed task=(\w+) failures=\d+ retry_in=([\d.]+)")


class CompressedTime:
    """A monotonic clock that runs with real time and can jump ahead."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped


@dataclasses.dataclass
class Jitter:
    """The worker's ``uniform``: random, or pinned to its low end."""

    low: bool = False
    rng: random.Random = dataclasses.field(default_factory=lambda: random.Random(6))

    def __call__(self, a: float, b: float) -> float:
        return a if self.low else self.rng.uniform(a, b)


def outage_config(tmp_path: Path, url: str) -> Config:
    # The product's own intervals and backoff cap (300 s): only time is compressed.
    return (
        Config()
        .replace("storage", path=tmp_path / "state" / "kiosk.db", min_free_mb=0)
        .replace("api", base_url=url, timeout_seconds=2.0)
    )


@pytest.fixture
def server_data(tmp_path: Path) -> Path:
    return tmp_path / "server.db"


def start_server(data: Path, port: int = 0) -> DevServer:
    return DevServer(data=data, port=port, cards=[card(CARD)], enroll_codes=["CODE-1"]).start()


def offline(worker: SyncWorker, clock: CompressedTime, store: Store, seconds: float) -> list[str]:
    """Run the worker for ``seconds`` of compressed time, one record per scan interval."""
    ids: list[str] = []
    end = clock() + seconds
    next_scan = clock()
    while clock() < end:
        due = min(clock() + worker.run_once(), end)
        while next_scan < due:
            event = record()
            store.record(event)
            ids.append(event.event_id)
            next_scan += SCAN_EVERY
        clock.skipped += max(0.0, due - clock())
    return ids


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    found = (RETRY_LINE.search(r.getMessage()) for r in caplog.records)
    return [float(match[2]) for match in found if match]


def back_online(worker: SyncWorker, clock: CompressedTime, store: Store, deadline: float) -> None:
    """Real time from here: honour each delay until the queue is empty."""
    end = time.monotonic() + deadline
    while store.queue_depth() and time.monotonic() < end:
        time.sleep(min(worker.run_once(), 3.0))


def test_days_offline_then_the_network_returns(
    tmp_path: Path, server_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(server_data)
    port = int(server.url.rsplit(":", 1)[1])
    config = outage_config(tmp_path, server.url)
    enroll(server, config.storage.state_dir)
    server.stop()  # the network goes: connection refused from here on
    clock, jitter = CompressedTime(), Jitter()
    worker = SyncWorker(config, monotonic=clock, uniform=jitter)
    cap = config.api.max_backoff_seconds
    with Store(config.storage.path) as store, caplog.at_level("INFO", "kiosk.sync"):
        started = time.monotonic()
        ids = offline(worker, clock, store, HOURS * 3600)
        offline_real = time.monotonic() - started
        delays = retry_delays(caplog)
        assert store.queue_depth() == len(ids) == HOURS * 3600 / SCAN_EVERY
        # Backoff grows to its cap and never past it.
        assert max(delays) <= cap and max(delays) > cap / 2
        attempts = sum("task=upload" in r.getMessage() for r in caplog.records)
        assert attempts < HOURS * 3600 / (cap / 4), "the outage is not hammered"
        server = start_server(server_data, port)
        try:
            for seconds, status in zip(RETRY_AFTER, ("429", "503"), strict=True):
                server.inject(Fault(status, path="/v1/events", retry_after=seconds))
            jitter.low = True
            clock.skipped += worker.run_once()  # to the next due time, still compressed
            back_online(worker, clock, store, deadline=120)
            assert store.queue_depth() == 0, "the queue drains fully"
            stored = [event["event_id"] for event in server.stored_events()]
            uploads = server.requests("/v1/events")
        finally:
            server.stop()
    assert sorted(stored) == sorted(ids), "0 records dropped, none twice"
    statuses = [request.status for request in uploads]
    assert statuses[:3] == [429, 503, 200]
    waits = [later.arrived - earlier.arrived for earlier, later in itertools.pairwise(uploads)]
    assert waits[0] >= RETRY_AFTER[0] and waits[1] >= RETRY_AFTER[1], waits[:2]
    print(
        f"\n{HOURS} h offline ({len(ids)} records) in {offline_real:.1f} s:"
        f" {attempts} upload attempts, longest backoff {max(delays):.0f} s (cap {cap:.0f});"
        f" back online: waits after Retry-After {waits[0]:.2f} s, {waits[1]:.2f} s;"
        f" {len(stored)} delivered, 0 dropped"
    )


def test_the_check_sees_retry_after_ignored(
    tmp_path: Path, server_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard removed: the worker no longer recognises a Retry-After.
    monkeypatch.setattr(kiosk.sync, "RetryableError", type("Never", (Exception,), {}))
    server = start_server(server_data)
    config = outage_config(tmp_path, server.url)
    enroll(server, config.storage.state_dir)
    worker = SyncWorker(config, uniform=Jitter(low=True))
    try:
        with Store(config.storage.path) as store:
            store.record(record())
            server.inject(Fault("429", path="/v1/events", retry_after=RETRY_AFTER[0]))
            back_online(worker, CompressedTime(), store, deadline=10)
        first, second = server.requests("/v1/events")[:2]
    finally:
        server.stop()
    wait = second.arrived - first.arrived
    print(f"\nRetry-After ignored: next request {wait:.3f} s after a {RETRY_AFTER[0]} s 429")
    assert first.status == 429 and wait < RETRY_AFTER[0]


# --- a scan never waits on the network ---------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An address that accepts connections and never answers: the worst network."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def scan_times(config: Config, store: Store, count: int) -> list[float]:
    """The daemon's decision path (registry, counters, rules, commit), timed per scan."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        card_row = store.card(CARD)
        decision = decide(CARD, card_row, now, read_counters(store, config, CARD, now), config)
        store.record(dataclasses.replace(record(), result=decision.result))
        times.append(time.perf_counter() - started)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def test_a_scan_does_not_wait_for_a_dead_network(
    tmp_path: Path, black_hole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = outage_config(tmp_path, black_hole).replace("api", upload_interval_seconds=0.1)
    write_enrollment(config.storage.state_dir, Device("dev-1", "demo-venue", black_hole), "t0k")
    callers: list[str] = []
    connect: Callable[..., socket.socket] = socket.create_connection

    def noted(*args: Any, **kwargs: Any) -> socket.socket:
        callers.append(threading.current_thread().name)
        return connect(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", noted)
    with Store(config.storage.path) as store:
        with store.transaction() as conn:
            store.upsert_cards(conn, [kiosk.sync.card_row(card(CARD), "2026-01-01")])
        normal = scan_times(config, store, 200)
        stop = threading.Event()
        worker = threading.Thread(
            target=SyncWorker(config).run, args=(stop,), name="sync", daemon=True
        )
        worker.start()
        try:
            assert wait_until(lambda: bool(callers)), "the worker never tried the network"
            during = scan_times(config, store, 200)
        finally:
            stop.set()
            worker.join(config.api.timeout_seconds + 5)
    assert set(callers) == {"sync"}, "only the sync thread touches the network"
    print(f"\nscan p95: {p95(normal) * 1000:.2f} ms online, {p95(during) * 1000:.2f} ms offline")
    # Generous: a scan that waited on the network would take the 2 s timeout.
    assert p95(during) < max(3 * p95(normal), 0.05) and max(during) < 0.5


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()
