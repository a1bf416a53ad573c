"""The durable local store: scan records, the card registry and small state.

One SQLite file (``storage.path``) in WAL mode with ``synchronous=FULL``, so a
commit that returned survives a power cut. Each thread opens its own
:class:`Store`; SQLite serialises the writers. ``PRAGMA user_version`` numbers
the schema, and :data:`MIGRATIONS` brings an older file up to date at open.

Records are never dropped: an event leaves the ``events`` table only when it
was delivered to the central API and is older than the retention period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from kiosk.errors import StoreError

__all__ = [
    "MIGRATIONS",
    "PRAGMAS",
    "CardRow",
    "EventRecord",
    "Store",
    "new_event_id",
]

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: scan records, card registry, key-value state.
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- per-device, never reused
        event_id TEXT NOT NULL UNIQUE,          -- the id the central API dedupes on
        card_id TEXT,                           -- NULL for not_a_card
        payload_sha256 TEXT,                    -- only for payloads that are not card ids
        result TEXT NOT NULL CHECK (result IN ('accepted', 'rejected')),
        reason TEXT NOT NULL,
        adults INTEGER NOT NULL,
        children INTEGER NOT NULL,
        max_children INTEGER NOT NULL,
        category TEXT NOT NULL,
        mode TEXT NOT NULL,
        venue_id TEXT NOT NULL,
        scanned_at TEXT NOT NULL,               -- RFC 3339 with offset
        local_date TEXT NOT NULL,               -- the venue's date of the scan
        mono_ns INTEGER NOT NULL,
        boot_id TEXT NOT NULL,
        clock_trusted INTEGER NOT NULL,
        closed INTEGER NOT NULL,                -- 0 while the companion window is open
        delivered_at TEXT,
        quarantined_at TEXT,
        quarantine_error TEXT
    );
    CREATE INDEX events_to_upload ON events (seq)
        WHERE delivered_at IS NULL AND quarantined_at IS NULL;
    CREATE INDEX events_by_card ON events (card_id, seq);
    CREATE INDEX events_by_date ON events (local_date);
    CREATE TABLE cards (
        card_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('personal', 'community')),
        status TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
        valid_from TEXT NOT NULL,
        valid_until TEXT NOT NULL,
        children INTEGER,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
)


# Run on every connection. WAL lets the upload thread read while the scan loop
# writes; FULL makes every commit reach the disk before it returns (commit before
# signal); secure_delete overwrites deleted card ids instead of leaving them in
# free pages (retention). The power-loss test runs these same statements.
PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA secure_delete=ON",
    "PRAGMA foreign_keys=ON",
)
# SQLite's primary result codes for a file that is not, or no longer, a database.
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# A store file's companions, moved aside with it.
_SIDE_FILES = ("-wal", "-shm", "-journal")


def new_event_id() -> str:
    """A fresh, globally unique event id (a UUID)."""
    return str(uuid.uuid4())


@dataclasses.dataclass(frozen=True)
class CardRow:
    """One card of the local registry, as the national database describes it."""

    card_id: str
    kind: str
    status: str
    valid_from: dt.date
    valid_until: dt.date
    children: int | None
    updated_at: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CardRow:
        return cls(
            card_id=row["card_id"],
            kind=row["kind"],
            status=row["status"],
            valid_from=dt.date.fromisoformat(row["valid_from"]),
            valid_until=dt.date.fromisoformat(row["valid_until"]),
            children=row["children"],
            updated_at=row["updated_at"],
        )

    def as_row(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy of each field was most of the
        # time a 100,000-card registry sync took.
        return {
            **vars(self),
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
        }


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """One decision, as it is written to the ``events`` table."""

    event_id: str
    card_id: str | None
    payload_sha256: str | None
    result: str
    reason: str
    adults: int
    children: int
    max_children: int
    category: str
    mode: str
    venue_id: str
    scanned_at: str
    local_date: str
    mono_ns: int
    boot_id: str
    clock_trusted: bool
    closed: bool


class Store:
    """A connection to the kiosk's SQLite file, for one thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._set_orphans_aside()
            try:
                self._open()
            except sqlite3.DatabaseError as error:
                if not _is_corrupt(error) or str(self.path) == ":memory:":
                    raise
                # Renamed before closing: closing may delete a -wal it cannot read.
                moved = _move_aside(self.path, "corrupt")
                self.conn.close()
                # Loud, never silent: the old records are kept for a person to rescue.
                log.error(
                    "store corrupt, moved aside and started empty path=%s moved_to=%s error=%s",
                    self.path,
                    moved,
                    error,
                )
                self._open()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot open the store {self.path}: {error}") from error

    def _open(self) -> None:
        self.conn = sqlite3.connect(self.path, timeout=10.0)
        self.conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            self.conn.execute(pragma)
        # Reads the schema, so a damaged schema page shows here and not mid-scan.
        self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        self.db = sqlite_utils.Database(self.conn)
        self._migrate()

    def _set_orphans_aside(self) -> None:
        """A -wal without its store holds committed records that do not belong in
        a new, empty file; keep it aside for a person to rescue."""
        wal = Path(f"{self.path}-wal")
        if wal.exists() and not self.path.exists():
            moved = _move_aside(self.path, "orphan")
            log.error("store missing, its -wal moved aside path=%s moved_to=%s", self.path, moved)

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the store {self.path} has schema {version}, newer than this software "
                f"({len(MIGRATIONS)}); install the newer software or restore a backup"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # One transaction per migration, user_version included: a crash in the
            # middle leaves the previous schema, never half of the new one.
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={number}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the store {self.path}: {error}") from error

    def integrity_ok(self) -> bool:
        rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        return [tuple(row) for row in rows] == [("ok",)]

    # --- scan records -------------------------------------------------------

    def record(self, event: EventRecord) -> int:
        """Commit one decision durably and return its sequence number."""
        table = self.db.table("events")
        try:
            # sqlite-utils runs the insert in its own transaction and commits it.
            table.insert(dataclasses.asdict(event))
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the store {self.path}: {error}") from error
        return int(table.last_pk or 0)

    def add_child(self, seq: int) -> None:
        """Count one more child on an open (companion window) record."""
        with self.transaction() as conn:
            conn.execute("UPDATE events SET children = children + 1 WHERE seq = ?", (seq,))

    def close_event(self, seq: int) -> None:
        """Close a record's companion window, which makes it uploadable."""
        with self.transaction() as conn:
            conn.execute("UPDATE events SET closed = 1 WHERE seq = ?", (seq,))

    def close_open_events(self) -> int:
        """Close every record left open by a crash; returns how many."""
        with self.transaction() as conn:
            return conn.execute("UPDATE events SET closed = 1 WHERE closed = 0").rowcount

    def event(self, seq: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM events WHERE seq = ?", (seq,)).fetchone()
        return dict(row) if row else None

    def events(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM events ORDER BY seq")]

    def persons_admitted(self, local_date: str) -> int:
        """Adults and children admitted at this kiosk on a venue-local date."""
        row = self.conn.execute(
            "SELECT coalesce(sum(adults + children), 0) FROM events"
            " WHERE local_date = ? AND result = 'accepted'",
            (local_date,),
        ).fetchone()
        return int(row[0])

    def last_acceptance(self, card_id: str) -> dict[str, Any] | None:
        """The newest accepted record of a card, if any."""
        row = self.conn.execute(
            "SELECT * FROM events WHERE card_id = ? AND result = 'accepted'"
            " ORDER BY seq DESC LIMIT 1",
            (card_id,),
        ).fetchone()
        return dict(row) if row else None

    # --- upload queue -------------------------------------------------------

    def pending(self, limit: int) -> list[dict[str, Any]]:
        """The oldest closed records not yet delivered nor quarantined."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE delivered_at IS NULL AND quarantined_at IS NULL"
            " AND closed = 1 ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [dict(row) for row in rows]

    def mark_delivered(self, event_ids: Iterable[str], when: str) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE events SET delivered_at = ? WHERE event_id = ? AND delivered_at IS NULL",
                [(when, event_id) for event_id in event_ids],
            )

    def quarantine(self, errors: Mapping[str, str], when: str) -> None:
        """Set records aside that the API refused; they are kept and shown, never sent again."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE events SET quarantined_at = ?, quarantine_error = ? WHERE event_id = ?",
                [(when, error[:500], event_id) for event_id, error in errors.items()],
            )

    def queue_depth(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM events WHERE delivered_at IS NULL AND quarantined_at IS NULL"
        ).fetchone()
        return int(row[0])

    def quarantined(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM events WHERE quarantined_at IS NOT NULL ORDER BY seq"
        )
        return [dict(row) for row in rows]

    def delete_delivered_before(self, cutoff: str) -> int:
        """Delete delivered records scanned before ``cutoff`` (retention); returns how many."""
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND scanned_at < ?",
                (cutoff,),
            ).rowcount

    # --- card registry ------------------------------------------------------

    def card(self, card_id: str) -> CardRow | None:
        row = self.conn.execute("SELECT * FROM cards WHERE card_id = ?", (card_id,)).fetchone()
        return CardRow.from_row(row) if row else None

    def card_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM cards").fetchone()[0])

    def upsert_cards(self, conn: sqlite3.Connection, cards: Iterable[CardRow]) -> None:
        """Insert or replace cards inside the caller's :meth:`transaction`."""
        conn.executemany(
            "INSERT OR REPLACE INTO cards"
            " (card_id, kind, status, valid_from, valid_until, children, updated_at)"
            " VALUES (:card_id, :kind, :status, :valid_from, :valid_until, :children,"
            " :updated_at)",
            [card.as_row() for card in cards],
        )

    # --- small state --------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        """Set a state value inside the caller's :meth:`transaction`."""
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # --- sync state ---------------------------------------------------------
    # Added for kiosk.sync and `kiosk status` (issue 4).

    def put_meta(self, key: str, value: str) -> None:
        """Set one state value in a transaction of its own."""
        with self.transaction() as conn:
            self.set_meta(conn, key, value)

    def delete_meta(self, key: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def delivered_count(self) -> int:
        """Delivered records still kept (within the retention period)."""
        row = self.conn.execute(
            "SELECT count(*) FROM events WHERE delivered_at IS NOT NULL"
        ).fetchone()
        return int(row[0])

    def oldest_undelivered(self) -> dict[str, Any] | None:
        """The oldest record neither delivered nor quarantined, open or closed."""
        row = self.conn.execute(
            "SELECT * FROM events WHERE delivered_at IS NULL AND quarantined_at IS NULL"
            " ORDER BY seq LIMIT 1"
        ).fetchone()
        return dict(row) if row else None

    def checkpoint(self) -> None:
        """Copy the WAL into the main file and truncate it, so deleted rows leave both."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            raise StoreError(f"cannot checkpoint the store {self.path}: {error}") from error


def _is_corrupt(error: sqlite3.DatabaseError) -> bool:
    """Whether ``error`` says the file is damaged (not busy, locked or unreadable)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CORRUPT_CODES


def _move_aside(path: Path, why: str) -> Path:
    """Rename ``path`` and its -wal/-shm/-journal to ``<path>.<why>-<UTC time>``; returns it."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    for number in range(2, 100):
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.{why}-{stamp}-{number}")
    for suffix in ("", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{target}{suffix}")
    return target
