"""Corrupt or missing state: a damaged store is moved aside with an ERROR line,
never silently emptied; a missing one is created; a migration is all or nothing."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.config import Config
from kiosk.daemon import Daemon
from kiosk.errors import StoreError
from kiosk.store import MIGRATIONS, Store
from tests.conftest import card, events
from tests.test_sync_helpers import add_records


def aside(path: Path, why: str = "corrupt") -> list[Path]:
    found = path.parent.glob(f"{path.name}.{why}-*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm", "-journal")))


def store_with_records(path: Path, count: int = 5) -> list[str]:
    ids = add_records(path, count)
    with Store(path) as store:
        store.checkpoint()
    return ids


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 200)


def zero_header(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"\0" * 100)


def break_schema(path: Path) -> None:
    # Page 1 after the 100-byte header holds sqlite_master's b-tree.
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff" * 400)


DAMAGE = {"garbage": garbage, "zeroed_header": zero_header, "broken_schema": break_schema}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_corrupt_store_is_moved_aside_loudly_and_a_fresh_one_started(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "kiosk.db"
    store_with_records(path)
    DAMAGE[damage](path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.ERROR, "kiosk.store"), Store(path) as store:
        assert store.events() == [] and store.integrity_ok()
    [moved] = aside(path)
    assert moved.read_bytes() == damaged, "the damaged file is kept byte for byte"
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "store corrupt" in line.getMessage() and str(moved) in line.getMessage()
    assert moved.name.startswith("kiosk.db.corrupt-") and moved.name.endswith("Z")


def test_the_write_ahead_log_goes_aside_with_its_store(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    store_with_records(path)
    garbage(path)
    # A log that does not rescue the file (a WAL holding page 1 would).
    Path(f"{path}-wal").write_bytes(b"frames nobody can read")
    with Store(path) as store:
        assert store.events() == []
    [moved] = aside(path)
    assert Path(f"{moved}-wal").read_bytes() == b"frames nobody can read"


def test_a_missing_store_is_created_and_an_orphan_log_kept_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "new" / "kiosk.db"
    with Store(path) as store:
        assert store.integrity_ok() and store.events() == []
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert aside(path) == [] and aside(path, "orphan") == []
    path.unlink()
    Path(f"{path}-wal").write_bytes(b"frames of a store that is gone")
    with caplog.at_level(logging.ERROR, "kiosk.store"), Store(path) as store:
        assert store.events() == []
    [orphan] = path.parent.glob("kiosk.db.orphan-*-wal")
    assert orphan.read_bytes() == b"frames of a store that is gone"
    assert "its -wal moved aside" in caplog.text


def test_a_store_that_cannot_be_opened_is_not_moved(tmp_path: Path) -> None:
    # Unreadable is not corrupt: nothing is renamed, the error says why.
    path = tmp_path / "kiosk.db"
    path.mkdir()
    with pytest.raises(StoreError, match="unable to open"):
        Store(path)
    assert path.is_dir() and aside(path) == []


def test_the_daemon_starts_on_a_corrupt_store_and_records_again(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry(card("A999123453"))
    garbage(kiosk_config.storage.path)
    show("A999123453")
    with caplog.at_level(logging.INFO):
        assert Daemon(kiosk_config, pin_factory=mock_factory, until_idle=True).run() == 0
    # The registry went aside with the file, so the card is unknown until the next sync.
    assert [(e["card_id"], e["reason"]) for e in events(kiosk_config)] == [
        ("A999123453", "unknown_card")
    ]
    assert len(aside(kiosk_config.storage.path)) == 1
    assert "store corrupt, moved aside" in caplog.text


SLOW_V2 = (
    "CREATE TABLE half (x INTEGER);"
    " INSERT INTO half WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n"
    " LIMIT 100000000) SELECT x FROM n"
)
MIGRATE_AND_WAIT = f"""
import sys, kiosk.store as s
s.MIGRATIONS = (*s.MIGRATIONS, {SLOW_V2!r})
print("migrating", flush=True)
s.Store(sys.argv[1])
"""


def assert_schema_v1(path: Path, ids: list[str]) -> None:
    with Store(path) as store:
        tables = {row[0] for row in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "half" not in tables
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert [e["event_id"] for e in store.events()] == ids and store.integrity_ok()


def test_a_failing_migration_leaves_the_previous_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kiosk.db"
    ids = store_with_records(path, 3)
    monkeypatch.setattr(
        "kiosk.store.MIGRATIONS", (*MIGRATIONS, "CREATE TABLE half (x); SELECT no_such_function()")
    )
    with pytest.raises(StoreError):
        Store(path)
    monkeypatch.undo()
    assert_schema_v1(path, ids)


def test_sigkill_in_mid_migration_leaves_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    ids = store_with_records(path, 3)
    child = subprocess.Popen(
        [sys.executable, "-c", MIGRATE_AND_WAIT, str(path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert child.stdout is not None and child.stdout.readline() == b"migrating\n"
    wal = Path(f"{path}-wal")
    deadline = time.monotonic() + 20
    # Kill once the migration has written rows, i.e. it is half done.
    while not (wal.exists() and wal.stat().st_size > 1_000_000) and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert wal.stat().st_size > 1_000_000, "the kill came before the migration wrote"
    assert_schema_v1(path, ids)


def damage_inner_pages(path: Path, first_damaged_page: int = 12) -> None:
    """Overwrite every page from ``first_damaged_page`` on, keeping the header and
    schema: the store opens, and the damage shows only when such a page is read."""
    with Store(path) as store:
        store.checkpoint()
        page_size = store.conn.execute("PRAGMA page_size").fetchone()[0]
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    with open(path, "r+b") as handle:
        handle.seek(first_damaged_page * page_size)
        handle.write(b"\xff" * page_size * (pages - first_damaged_page))


def run_showing_the_store_fault(
    config: Config, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Run the daemon over its images: it must end normally with the store fault shown."""
    caplog.set_level(logging.ERROR)
    assert Daemon(config, pin_factory=factory, until_idle=True).run() == 0
    assert "fault store=" in caplog.text
    assert any(state.state for state in factory.pin(22).states), "amber: see staff"


def test_damage_deep_in_the_registry_is_a_fault_signal_not_a_crash(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The registry's inner pages are damaged, which shows only when a scan looks a card up.
    registry(*(card(f"A{number:09d}") for number in range(3000)))
    damage_inner_pages(kiosk_config.storage.path)
    show("A000002999")
    run_showing_the_store_fault(kiosk_config, mock_factory, caplog)
    assert not any(state.state for state in mock_factory.pin(17).states), "nobody admitted"


def test_damage_deep_in_the_records_at_start_is_a_fault_signal_not_a_restart_loop(
    kiosk_config: Config,
    show: Callable[..., None],
    mock_factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Restarting cannot mend the file: the kiosk stays up and asks for staff.
    store_with_records(kiosk_config.storage.path, 2000)
    damage_inner_pages(kiosk_config.storage.path)
    show("A999123453")
    run_showing_the_store_fault(kiosk_config, mock_factory, caplog)
