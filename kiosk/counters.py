"""Reading the rules' counters from the store.

The daemon and ``kiosk explain`` both need the same counters for a scan: people
admitted today, the card's last acceptance, and the registry's age. They come
from here, so the two can never disagree.
"""

from __future__ import annotations

import datetime as dt

from kiosk.config import Config
from kiosk.rules import Counters
from kiosk.store import Store

__all__ = ["LAST_REGISTRY_SYNC", "read_counters"]

# The store's meta key holding when the card registry was last refreshed.
LAST_REGISTRY_SYNC = "last_registry_sync"


def read_counters(store: Store, config: Config, card_id: str | None, now: dt.datetime) -> Counters:
    """The counters :func:`kiosk.rules.decide` needs for ``card_id`` at ``now``."""
    local_date = now.astimezone(config.venue.tz).date().isoformat()
    last = store.last_acceptance(card_id) if card_id else None
    refreshed = store.get_meta(LAST_REGISTRY_SYNC)
    return Counters(
        admitted_today=store.persons_admitted(local_date),
        last_accepted_at=dt.datetime.fromisoformat(last["scanned_at"]) if last else None,
        registry_refreshed_at=dt.datetime.fromisoformat(refreshed) if refreshed else None,
    )
