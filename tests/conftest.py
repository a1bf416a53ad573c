"""Shared fixtures: configs on temporary stores, generated card images, mock pins."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.config import Config
from kiosk.daemon import Daemon
from kiosk.demo import card_image
from kiosk.store import CardRow, Store

REPO = Path(__file__).resolve().parent.parent


def datasets_root() -> Path:
    return Path(os.environ.get("KIOSK_DATASETS") or REPO.parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The shared real-photo datasets; absent outside the project's workspace."""
    root = datasets_root()
    if not root.is_dir():
        message = f"shared datasets not found at {root} (set KIOSK_DATASETS)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run these tests")
        pytest.skip(message)
    return root


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.close()
    Device.pin_factory = None


TODAY = dt.datetime.now(dt.UTC).date()


def card(
    card_id: str,
    *,
    kind: str = "personal",
    status: str = "active",
    valid_from: dt.date | None = None,
    valid_until: dt.date | None = None,
    children: int | None = 0,
) -> CardRow:
    return CardRow(
        card_id=card_id,
        kind=kind,
        status=status,
        valid_from=valid_from or TODAY - dt.timedelta(days=100),
        valid_until=valid_until or TODAY + dt.timedelta(days=100),
        children=children,
        updated_at="2026-11-01T00:00:00+00:00",
    )


@pytest.fixture
def kiosk_config(tmp_path: Path) -> Config:
    """A config with mock pins, a dir: source and a store in tmp_path."""
    images = tmp_path / "images"
    images.mkdir()
    config = Config()
    config = config.replace(
        "camera", source=f"dir:{images}", fps=200, frames_per_image=2, blank_frames=2
    )
    config = config.replace("gpio", pin_factory="mock", relay=23)
    config = config.replace("storage", path=tmp_path / "state" / "kiosk.db")
    return config.replace("companions", window_seconds=0.5)


@pytest.fixture
def registry(kiosk_config: Config) -> Callable[..., None]:
    """Load cards into the kiosk's store, with a fresh registry timestamp."""

    def load(*cards: CardRow) -> None:
        with Store(kiosk_config.storage.path) as store, store.transaction() as conn:
            store.upsert_cards(conn, cards)
            store.set_meta(conn, "last_registry_sync", dt.datetime.now(dt.UTC).isoformat())

    return load


@pytest.fixture
def show(kiosk_config: Config) -> Callable[..., None]:
    """Put card images into the dir: source's folder, in the order given."""
    folder = Path(kiosk_config.camera.source.removeprefix("dir:"))

    def put(*codes: str | tuple[str, str]) -> None:
        start = len(list(folder.iterdir()))
        for number, code in enumerate(codes, start=start + 1):
            text, symbology = code if isinstance(code, tuple) else (code, "qrcode")
            card_image(text, symbology).save(folder / f"{number:03d}.png")

    return put


def events(config: Config) -> list[dict[str, Any]]:
    with Store(config.storage.path) as store:
        return store.events()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def running(daemon: Daemon) -> Iterator[threading.Thread]:
    """Run a daemon in a thread for the duration of a ``with`` block, then stop it."""
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        daemon.stop()
        thread.join(10)
        assert not thread.is_alive(), "the daemon did not stop"
