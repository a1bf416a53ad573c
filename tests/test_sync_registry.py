"""Card registry sync: paged, resumable without gaps, malformed pages refused whole."""

from __future__ import annotations

import pytest

from kiosk.api import RetryableError
from kiosk.config import Config
from kiosk.counters import LAST_REGISTRY_SYNC
from kiosk.devserver import DevServer, Fault
from kiosk.store import Store
from kiosk.sync import REGISTRY_CURSOR_META, MalformedPage, SyncWorker
from tests.test_sync_helpers import (
    card,
    config_fixture,  # noqa: F401 (a fixture)
    server_fixture,  # noqa: F401 (a fixture)
)


def local_cards(config: Config) -> dict[str, tuple[str, int | None]]:
    with Store(config.storage.path) as store:
        rows = store.conn.execute("SELECT card_id, status, children FROM cards").fetchall()
    return {row["card_id"]: (row["status"], row["children"]) for row in rows}


def test_interrupted_sync_resumes_without_gaps(server: DevServer, config: Config) -> None:
    server.upsert_cards(card(f"B12345{n:04d}") for n in range(22))  # 25 cards in all
    server.inject(Fault("drop", path="/v1/cards", after=1))
    worker = SyncWorker(config, registry_page_size=10)
    with pytest.raises(RetryableError):
        worker.sync_registry()
    assert len(local_cards(config)) == 10  # the first page was applied with its cursor
    with Store(config.storage.path) as store:
        assert store.get_meta(REGISTRY_CURSOR_META) == "10"
        assert store.get_meta(LAST_REGISTRY_SYNC) is None
    # Meanwhile a card of the applied page changes and a new one appears.
    server.upsert_cards([card("A999120000", children=None, status="inactive"), card("C999000001")])
    assert worker.sync_registry() == 17
    cards = local_cards(config)
    assert len(cards) == 26
    assert cards["A999120000"] == ("inactive", None)
    sinces = [r.query for r in server.requests("/v1/cards")]
    assert sinces == ["limit=10", "limit=10&since=10", "limit=10&since=10", "limit=10&since=20"]
    # Nothing new: one request, nothing applied, the sync time moves on.
    assert worker.sync_registry() == 0
    with Store(config.storage.path) as store:
        assert store.get_meta(LAST_REGISTRY_SYNC) is not None


def test_a_malformed_page_is_refused_whole(server: DevServer, config: Config) -> None:
    worker = SyncWorker(config)
    worker.sync_registry()
    before = local_cards(config)
    server.upsert_cards([card("D999000001"), card("D999000002")])
    with server._lock:  # the reference server validates; a broken one might not
        server._db.execute("UPDATE cards SET kind = 'bogus' WHERE card_id = 'D999000002'")
    with pytest.raises(MalformedPage):
        worker.sync_registry()
    assert local_cards(config) == before
    with Store(config.storage.path) as store:
        assert store.get_meta(REGISTRY_CURSOR_META) == "3"


def test_registry_failure_does_not_hold_back_uploads(server: DevServer, config: Config) -> None:
    server.inject(Fault("500", path="/v1/cards", count=100))
    worker = SyncWorker(config, backoff_base=0.01)
    worker.run_once()
    with Store(config.storage.path) as store:
        assert store.card_count() == 0
    assert [r.status for r in server.requests("/v1/heartbeat")] == [200]
