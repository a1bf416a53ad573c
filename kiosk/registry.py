"""Loading the local card registry from a CSV file: ``kiosk registry import``.

A site with no central API gets its registry as a CSV export with the header
``card_id,kind,status,valid_from,valid_until,children``. Every row is checked;
the first bad one raises :class:`RegistryImportError` naming its line, and
nothing of the file is applied: the rows are staged in a temporary table and
copied into ``cards`` in one transaction, which also records the refresh time
(:data:`kiosk.counters.LAST_REGISTRY_SYNC`).

Rows are merged: a card in the file replaces the stored row, a card not in the
file stays as it was. Errors never echo a card id, only its line.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from kiosk.counters import LAST_REGISTRY_SYNC
from kiosk.errors import KioskError
from kiosk.operator import trusted_reading
from kiosk.payload import CARD_ID
from kiosk.store import Store

__all__ = ["HEADER", "RegistryImportError", "import_csv"]

HEADER = ("card_id", "kind", "status", "valid_from", "valid_until", "children")
KINDS = ("personal", "community")
STATUSES = ("active", "inactive")
# Rows per executemany call: big enough to be fast, small enough for a Pi's memory.
CHUNK = 10_000
# More registered children than this is a typing error, not a family.
MAX_CHILDREN = 99

Row = tuple[str, str, str, str, str, int | None, int]


class RegistryImportError(KioskError):
    """A registry file cannot be imported; nothing of it was applied."""


def _bad(line: int, message: str) -> RegistryImportError:
    return RegistryImportError(f"line {line}: {message}; nothing was imported")


def _date(line: int, name: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _bad(line, f"{name} is not a date like 2026-12-31") from None


def _children(line: int, text: str) -> int | None:
    if not text:
        return None  # not registered: the rules use rules.default_max_children
    if not text.isdigit() or int(text) > MAX_CHILDREN:
        raise _bad(line, f"children is not a number from 0 to {MAX_CHILDREN}, or empty")
    return int(text)


def _row(line: int, fields: list[str]) -> Row:
    if len(fields) != len(HEADER):
        raise _bad(line, f"expected {len(HEADER)} fields, found {len(fields)}")
    card_id, kind, status, valid_from, valid_until, children = (f.strip() for f in fields)
    card_id = card_id.upper()
    # The same normalisation as a scanned id, so an imported card matches its scan.
    if not CARD_ID.fullmatch(card_id) or not any(char.isdigit() for char in card_id):
        raise _bad(line, "card_id is not a card id (6 to 24 letters and digits)")
    if kind not in KINDS:
        raise _bad(line, f"kind must be {' or '.join(KINDS)}")
    if status not in STATUSES:
        raise _bad(line, f"status must be {' or '.join(STATUSES)}")
    start = _date(line, "valid_from", valid_from)
    end = _date(line, "valid_until", valid_until)
    if start > end:
        raise _bad(line, "valid_from is after valid_until")
    count = _children(line, children)
    return (card_id, kind, status, start.isoformat(), end.isoformat(), count, line)


def _rows(path: Path) -> Iterator[Row]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None or tuple(name.strip() for name in header) != HEADER:
                raise _bad(1, f"the header must be exactly {','.join(HEADER)}")
            for fields in reader:
                if fields:  # a blank line is not a row
                    yield _row(reader.line_num, fields)
    except FileNotFoundError:
        raise RegistryImportError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise RegistryImportError(f"{path}: not UTF-8 text; nothing was imported") from None
    except csv.Error as error:
        raise RegistryImportError(
            f"{path}: not valid CSV ({error}); nothing was imported"
        ) from None
    except OSError as error:
        raise RegistryImportError(f"{path}: cannot read: {error}") from None


def _chunks(rows: Iterator[Row]) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stage(conn: sqlite3.Connection, path: Path) -> int:
    """Check every row into a temporary table; returns how many there are."""
    conn.execute("DROP TABLE IF EXISTS temp.registry_import")
    conn.execute(
        "CREATE TEMP TABLE registry_import (card_id TEXT PRIMARY KEY, kind TEXT, status TEXT,"
        " valid_from TEXT, valid_until TEXT, children INTEGER, line INTEGER,"
        " duplicate_line INTEGER) WITHOUT ROWID"
    )
    count = 0
    for chunk in _chunks(_rows(path)):
        # A card listed twice keeps its first row and notes the second line.
        conn.executemany(
            "INSERT INTO temp.registry_import VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
            " ON CONFLICT (card_id) DO UPDATE SET"
            " duplicate_line = coalesce(duplicate_line, excluded.line)",
            chunk,
        )
        count += len(chunk)
    twice = conn.execute(
        "SELECT line, duplicate_line FROM temp.registry_import"
        " WHERE duplicate_line IS NOT NULL ORDER BY duplicate_line LIMIT 1"
    ).fetchone()
    if twice:
        raise _bad(twice[1], f"the card is listed already on line {twice[0]}")
    return count


def import_csv(store: Store, path: Path | str) -> int:
    """Import a registry CSV in one transaction; returns the number of cards.

    The trusted time now is stored as the registry's last refresh and as each
    row's ``updated_at``. Raises :class:`RegistryImportError` naming the first
    bad line; then nothing changed.
    """
    # Not the raw wall clock: a Pi booted at 1970 or 2040 would make the
    # registry look stale for ever, or fresh for years.
    stamp = trusted_reading(store).now.isoformat()
    with store.transaction() as conn:
        try:
            count = _stage(conn, Path(path))
            conn.execute(
                "INSERT OR REPLACE INTO cards"
                " (card_id, kind, status, valid_from, valid_until, children, updated_at)"
                " SELECT card_id, kind, status, valid_from, valid_until, children, ?"
                " FROM temp.registry_import",
                (stamp,),
            )
            # A header-only file loads nothing, so it does not make the registry fresh.
            if count:
                store.set_meta(conn, LAST_REGISTRY_SYNC, stamp)
        finally:
            conn.execute("DROP TABLE IF EXISTS temp.registry_import")
    return count
