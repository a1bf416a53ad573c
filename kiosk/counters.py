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

__all__ = ["LAST_REGISTRY_SYNC", "TIME_FLOOR", "read_counters", "saved_floor"]

# The store's meta key holding when the card registry was last refreshed.
LAST_REGISTRY_SYNC = "last_registry_sync"
# The store's meta key holding the trusted-time floor saved by the daemon.
TIME_FLOOR = "time_floor"


def saved_floor(store: Store) -> dt.datetime | None:
    """The trusted-time floor the daemon last saved, if any."""
    floor = store.get_meta(TIME_FLOOR)
    return dt.datetime.fromisoformat(floor) if floor else None


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
