"""Shared pieces of the clock, hostile-input, camera, security and privacy tests."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

from kiosk.config import Config
from kiosk.store import CardRow, Store

__all__ = ["FULL", "database_bytes", "load_cards"]

# The long soak and fuzz sizes (pytest marker ``full``), opt-in with KIOSK_FULL=1.
FULL = os.environ.get("KIOSK_FULL") == "1"


def load_cards(config: Config, cards: Iterable[CardRow]) -> None:
    """Put cards into the kiosk's store with a fresh registry time, as a sync would."""
    with Store(config.storage.path) as store, store.transaction() as conn:
        store.upsert_cards(conn, cards)
        store.set_meta(conn, "last_registry_sync", dt.datetime.now(dt.UTC).isoformat())


def database_bytes(path: Path) -> bytes:
    """Every byte SQLite keeps for the store: the main file, its WAL and shared memory."""
    parts = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(part.read_bytes() for part in parts if part.exists())
