"""The upload worker against the reference server over real HTTP, with faults."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.devserver import DevServer, Fault
from kiosk.store import Store
from kiosk.sync import BACKOFF_META, MUST_ENROLL_META, SyncWorker, backoff_delay
from tests.test_sync_helpers import (
    add_records,
    assert_exactly_once,
    config_fixture,  # noqa: F401 (a fixture)
    drain,
    enroll,
    fast_worker,
    make_config,
    record,
    server_fixture,  # noqa: F401 (a fixture)
)


def test_plain_upload_in_batches_oldest_first(server: DevServer, config: Config) -> None:
    config = config.replace("api", batch_size=4)
    ids = add_records(config.storage.path, 10)
    drain(fast_worker(config), config.storage.path)
    assert_exactly_once(server, ids, config.storage.path)
    assert [event["event_id"] for event in server.stored_events()] == ids
    assert len(server.requests("/v1/events")) == 3


def test_every_record_arrives_exactly_once_through_faults(
    server: DevServer, config: Config
) -> None:
    config = config.replace("api", batch_size=7, timeout_seconds=0.3)
    ids = add_records(config.storage.path, 60)
    for spec in (
        "500 count=2",
        "503 retry_after=0",
        "429 retry_after=0",
        "drop",  # connection closed before the server did anything
        "drop_after",  # stored, then the answer is lost
        "slow delay=0.6",  # stored, the client times out and resends
        "500 after=3",
        "drop_after after=1",
    ):
        server.inject(f"{spec} path=/v1/events")
    drain(fast_worker(config), config.storage.path)
    assert_exactly_once(server, ids, config.storage.path)
    faults = [r.fault for r in server.requests("/v1/events") if r.fault]
    assert {"500", "503", "429", "drop", "drop_after", "slow"} <= set(faults)


def _gap_after_fault(server: DevServer) -> float:
    arrivals = server.requests("/v1/events")
    assert arrivals[0].status in (429, 503) and arrivals[1].status == 200
    return arrivals[1].arrived - arrivals[0].arrived


def test_retry_after_seconds_is_respected_at_the_server(server: DevServer, config: Config) -> None:
    server.inject(Fault("429", path="/v1/events", retry_after=1))
    ids = add_records(config.storage.path, 3)
    drain(fast_worker(config), config.storage.path)
    assert_exactly_once(server, ids, config.storage.path)
    assert _gap_after_fault(server) >= 1.0


def test_retry_after_date_is_judged_against_the_server_date(tmp_path: Path) -> None:
    # The server's clock is an hour behind: judged against the local clock the
    # date would lie in the past and the client would retry at once.
    with DevServer(enroll_codes=["CODE-1"], clock_offset=-3600) as server:
        config = make_config(tmp_path, server)
        enroll(server, config.storage.state_dir)
        server.inject(Fault("503", path="/v1/events", retry_after=2, as_date=True))
        ids = add_records(config.storage.path, 3)
        drain(fast_worker(config), config.storage.path)
        assert_exactly_once(server, ids, config.storage.path)
        assert _gap_after_fault(server) >= 1.9


def test_backoff_is_full_jitter_capped() -> None:
    assert backoff_delay(1, 1.0, 300, lambda low, high: high) == 1.0
    assert backoff_delay(5, 1.0, 300, lambda low, high: high) == 16.0
    assert backoff_delay(40, 1.0, 300, lambda low, high: high) == 300.0
    assert backoff_delay(3, 1.0, 300, lambda low, high: low) == 0.0


def test_failure_backs_off_and_status_shows_it(server: DevServer, config: Config) -> None:
    server.inject(Fault("500", path="/v1/events", count=50))
    add_records(config.storage.path, 2)
    worker = SyncWorker(config, backoff_base=0.5, uniform=lambda low, high: high)
    # The next try is due within the capped backoff (0.5 s here).
    assert worker.run_once() <= 0.5
    with Store(config.storage.path) as store:
        state = json.loads(store.get_meta(BACKOFF_META) or "{}")
        assert state["task"] == "upload" and state["failures"] == 1
        assert state["retry_in_seconds"] == 0.5
        assert store.queue_depth() == 2
    server.clear_faults()
    drain(worker, config.storage.path)
    with Store(config.storage.path) as store:
        assert store.get_meta(BACKOFF_META) is None


def test_413_splits_the_batch(server: DevServer, config: Config) -> None:
    ids = add_records(config.storage.path, 12)
    one_event = len(json.dumps(record().__dict__))
    server.max_body_bytes = int(one_event * 3.5)
    drain(fast_worker(config), config.storage.path)
    assert_exactly_once(server, ids, config.storage.path)
    statuses = [r.status for r in server.requests("/v1/events")]
    assert statuses[0] == 413 and statuses.count(200) >= 4


def test_413_for_a_single_event_quarantines_it(server: DevServer, config: Config) -> None:
    ids = add_records(config.storage.path, 2)
    server.max_body_bytes = 100
    drain(fast_worker(config), config.storage.path)
    with Store(config.storage.path) as store:
        assert [row["event_id"] for row in store.quarantined()] == ids
        assert "413" in store.quarantined()[0]["quarantine_error"]


def test_400_quarantines_the_whole_batch_and_the_rest_flows(
    server: DevServer, config: Config
) -> None:
    config = config.replace("api", batch_size=3)
    refused = add_records(config.storage.path, 3)
    later = add_records(config.storage.path, 4)
    server.inject(Fault("400", path="/v1/events"))
    drain(fast_worker(config), config.storage.path)
    with Store(config.storage.path) as store:
        quarantined = store.quarantined()
        assert [row["event_id"] for row in quarantined] == refused
        assert all(row["quarantine_error"] == "injected fault 400" for row in quarantined)
    assert sorted(e["event_id"] for e in server.stored_events()) == sorted(later)


def test_invalid_events_are_quarantined_one_by_one(server: DevServer, config: Config) -> None:
    good = add_records(config.storage.path, 2)
    bad = add_records(config.storage.path, 1, card_id=None, reason="ok")  # ok needs a card
    good += add_records(config.storage.path, 2)
    drain(fast_worker(config), config.storage.path)
    with Store(config.storage.path) as store:
        (row,) = store.quarantined()
        assert row["event_id"] == bad[0] and "card_id" in row["quarantine_error"]
        assert store.delivered_count() == 4
    assert sorted(e["event_id"] for e in server.stored_events()) == sorted(good)


def test_401_stops_calls_while_records_keep_queueing(server: DevServer, config: Config) -> None:
    add_records(config.storage.path, 3)
    server.inject(Fault("401", path="/v1/events"))
    worker = fast_worker(config)
    worker.run_once()
    assert worker.fault == "must_enroll"
    calls = len(server.requests())
    for _ in range(3):
        add_records(config.storage.path, 1)  # scanning goes on
        worker.run_once()
    assert len(server.requests()) == calls
    with Store(config.storage.path) as store:
        assert store.get_meta(MUST_ENROLL_META) == "1"
        assert store.queue_depth() == 6
    # Enrolling again (what `kiosk enroll` does) lets the queue flow.
    enroll(server, config.storage.state_dir, "CODE-2")
    with Store(config.storage.path) as store:
        store.delete_meta(MUST_ENROLL_META)
    drain(worker, config.storage.path)
    assert worker.fault is None
    assert len(server.stored_events()) == 6


def test_a_scan_never_waits_for_the_network(server: DevServer, config: Config) -> None:
    add_records(config.storage.path, 5)
    server.inject(Fault("slow", path="/v1/events", delay=1.5))
    stop = threading.Event()
    worker = fast_worker(config)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        while not server.requests("/v1/events"):
            time.sleep(0.01)
        with Store(config.storage.path) as store:
            started = time.monotonic()
            store.record(record())
            assert time.monotonic() - started < 0.5
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_retention_deletes_only_old_delivered_records(server: DevServer, config: Config) -> None:
    old = add_records(config.storage.path, 2, days_ago=40)
    recent = add_records(config.storage.path, 2, days_ago=1)
    worker = fast_worker(config)
    assert worker.apply_retention() == 0  # undelivered records are never deleted
    drain(worker, config.storage.path)
    assert worker.apply_retention() == 2
    with Store(config.storage.path) as store:
        kept = {row["event_id"] for row in store.events()}
    assert kept == set(recent) and not kept & set(old)
    with open(config.storage.path, "rb") as handle:
        assert old[0].encode() not in handle.read()


@pytest.mark.parametrize("clock_synced", [True, False])
def test_heartbeat_reports_health_and_feeds_server_time(
    server: DevServer, config: Config, clock_synced: bool
) -> None:
    seen = []
    worker = fast_worker(
        config,
        health=lambda: {"camera_ok": True, "clock_synced": clock_synced},
        on_server_time=seen.append,
    )
    worker.run_once()
    (device,) = server.devices()
    beat = json.loads(device["last_heartbeat"])
    assert beat["camera_ok"] is True and beat["clock_synced"] is clock_synced
    assert beat["registry_cards"] == 3
    assert len(seen) == 2 and all(when.tzinfo is not None for when in seen)
