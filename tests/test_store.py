"""The SQLite store: durable settings, migrations, and the upload queue."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kiosk.errors import StoreError
from kiosk.store import MIGRATIONS, EventRecord, Store, new_event_id


def record(**changes: object) -> EventRecord:
    fields: dict[str, object] = {
        "event_id": new_event_id(),
        "card_id": "A999123453",
        "payload_sha256": None,
        "result": "accepted",
        "reason": "ok",
        "adults": 1,
        "children": 0,
        "max_children": 2,
        "category": "culture",
        "mode": "ticket",
        "venue_id": "museum-1",
        "scanned_at": "2026-11-21T10:00:00.000+02:00",
        "local_date": "2026-11-21",
        "mono_ns": 1,
        "boot_id": "boot",
        "clock_trusted": True,
        "closed": False,
    }
    fields.update(changes)
    return EventRecord(**fields)  # type: ignore[arg-type]


def test_the_store_uses_wal_and_full_sync_so_commits_survive_power_cuts(tmp_path: Path) -> None:
    with Store(tmp_path / "kiosk.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_migrations_bring_a_file_to_the_current_schema_once(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    Store(path).close()
    with Store(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.integrity_ok()


def test_a_store_from_newer_software_is_refused_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this software"):
        Store(path)


def test_records_get_increasing_sequence_numbers_never_reused(tmp_path: Path) -> None:
    with Store(tmp_path / "kiosk.db") as store:
        first = store.record(record(closed=True))
        store.mark_delivered([store.event(first)["event_id"]], "2026-11-21T10:00:00+02:00")  # type: ignore[index]
        assert store.delete_delivered_before("2026-11-22") == 1
        second = store.record(record())
        assert second > first


def test_an_open_record_is_uploadable_only_after_its_window_closes(tmp_path: Path) -> None:
    with Store(tmp_path / "kiosk.db") as store:
        seq = store.record(record(closed=False))
        store.add_child(seq)
        assert store.pending(10) == []
        store.close_event(seq)
        [pending] = store.pending(10)
        assert pending["children"] == 1


def test_a_crash_inside_the_window_closes_the_record_at_restart(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    with Store(path) as store:
        store.add_child(store.record(record(closed=False)))
    with Store(path) as store:
        assert store.close_open_events() == 1
        assert [e["children"] for e in store.pending(10)] == [1]


def test_quarantined_records_are_kept_and_never_sent_again(tmp_path: Path) -> None:
    with Store(tmp_path / "kiosk.db") as store:
        event_id = store.event(store.record(record(closed=True)))["event_id"]  # type: ignore[index]
        store.quarantine({event_id: "venue_id unknown"}, "2026-11-21T10:00:00+02:00")
        assert store.pending(10) == [] and store.queue_depth() == 0
        [kept] = store.quarantined()
        assert kept["quarantine_error"] == "venue_id unknown"
