"""Hostile codes held up to the camera: rejected, and nothing of them kept or logged."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.config import Config
from kiosk.daemon import Daemon
from tests.conftest import events

HOSTILE = [
    "'; DROP TABLE events; --",
    "A999123453\x1b[2J\x1b]0;pwned\x07",
    "$(rm -rf /)",
    "https://evil.example/kaikukortti.fi/A999123453",
    "A" * 1000,
]


def test_hostile_codes_are_not_a_card_and_leave_no_trace(
    kiosk_config: Config,
    show: Callable[..., None],
    mock_factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    show(*HOSTILE)
    caplog.set_level(logging.DEBUG)
    Daemon(kiosk_config, pin_factory=mock_factory, until_idle=True).run()

    records = events(kiosk_config)
    assert [(e["card_id"], e["reason"]) for e in records] == [(None, "not_a_card")] * len(HOSTILE)
    database = kiosk_config.storage.path.read_bytes()
    wal = kiosk_config.storage.path.with_name("kiosk.db-wal")
    database += wal.read_bytes() if wal.exists() else b""
    for payload in HOSTILE:
        fragment = payload[:12]
        assert fragment.encode() not in database
        assert fragment not in caplog.text
    tables = {row["name"] for row in _schema(kiosk_config)}
    assert {"events", "cards", "meta"} <= tables


def _schema(config: Config) -> list[dict[str, str]]:
    from kiosk.store import Store

    with Store(config.storage.path) as store:
        return [dict(row) for row in store.conn.execute("SELECT name FROM sqlite_master")]
