"""Registry figure: card lookup time in a store of 1,000,000 cards.

The store is filled in batches inside transactions, as a sync does, in a
temporary directory; lookups mix known ids and unknown ones in random order.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from benchmarks.report import Figure
from kiosk.store import CardRow, Store

BATCH = 50_000


def card_id(number: int) -> str:
    return f"A{number:09d}"


def _fill(store: Store, count: int) -> None:
    today = dt.date.today()
    for start in range(0, count, BATCH):
        rows = (
            CardRow(card_id(n), "personal", "active", today, today, 0, "2026-01-01T00:00:00+00:00")
            for n in range(start, min(start + BATCH, count))
        )
        with store.transaction() as conn:
            store.upsert_cards(conn, rows)


def run(full: bool) -> list[Figure]:
    count = 1_000_000
    lookups = 50_000 if full else 10_000
    rng = random.Random(7)
    # Two known ids for each unknown one: a kiosk mostly sees real cards.
    ids = [card_id(rng.randrange(count + count // 2)) for _ in range(lookups)]
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "bench.db") as store:
        _fill(store, count)
        times = []
        for wanted in ids:
            start = time.perf_counter()
            store.card(wanted)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p99 = times[int(len(times) * 0.99)]
    return [Figure("registry of 1,000,000 cards: lookup p99", 0.5, p99, "ms", True)]
