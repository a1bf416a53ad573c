"""The Kaikukortti validity rules, as pure functions.

:func:`decide` takes the card's registry row, the time, the kiosk's counters and
the config, and returns a :class:`Decision`: accepted or rejected, one stable
reason code, and how many children may come along. :func:`child_admission`
decides each child in the companion window. Nothing here does I/O, so every
rule is tested as a table and with generated cases.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

from kiosk.config import Config, VenueConfig
from kiosk.store import CardRow

__all__ = [
    "ACCEPTED",
    "REASONS",
    "REJECTED",
    "Counters",
    "Decision",
    "child_admission",
    "decide",
    "is_open",
    "registry_is_stale",
]

ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"

# Every reason code, with the words staff see in `kiosk explain`.
REASONS: Final[dict[str, str]] = {
    "ok": "valid card",
    "ok_provisional": "card not in the local registry, accepted while the registry is stale",
    "not_a_card": "the code is not a Kaikukortti card",
    "unknown_card": "card not in the registry (it may not be registered yet)",
    "inactive_card": "card is marked lost, replaced or withdrawn",
    "expired": "card validity has ended",
    "not_yet_valid": "card validity has not started",
    "closed": "outside the venue's opening hours or on a closed day",
    "quota_full": "the venue's daily number of free entries is used up",
    "already_used": "card was already used here a moment ago",
}


@dataclasses.dataclass(frozen=True)
class Counters:
    """What the kiosk has counted so far, as the rules need it."""

    # Adults and children admitted at this kiosk on the venue's current day.
    admitted_today: int = 0
    # When this card was last accepted here, if ever.
    last_accepted_at: dt.datetime | None = None
    # When the card registry was last refreshed (sync or import), if ever.
    registry_refreshed_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    result: str
    reason: str
    adults: int = 0
    max_children: int = 0

    @property
    def accepted(self) -> bool:
        return self.result == ACCEPTED


def _rejected(reason: str) -> Decision:
    return Decision(REJECTED, reason)


def is_open(venue: VenueConfig, local: dt.datetime) -> bool:
    """Whether the venue admits at a venue-local time."""
    if local.date() in venue.closed_dates:
        return False
    if not venue.opening_hours:
        return True
    moment = local.time().replace(tzinfo=None)
    ranges = venue.opening_hours.get(local.weekday(), ())
    return any(opens <= moment < closes for opens, closes in ranges)


def registry_is_stale(config: Config, now: dt.datetime, refreshed_at: dt.datetime | None) -> bool:
    """Whether the registry has not been refreshed for more than ``registry_stale_hours``."""
    if refreshed_at is None:
        return True
    return now - refreshed_at > dt.timedelta(hours=config.rules.registry_stale_hours)


def _children_allowed(config: Config, card: CardRow | None) -> int:
    if config.venue.mode == "course":
        return 0  # children do not apply to course places
    if card is not None and card.kind == "community":
        return config.rules.community_max_children
    if card is not None and card.children is not None:
        return card.children
    return config.rules.default_max_children


def decide(
    card_id: str | None,
    card: CardRow | None,
    now: dt.datetime,
    counters: Counters,
    config: Config,
) -> Decision:
    """Decide one scan.

    ``card_id`` is None when the payload was not a card; ``card`` is its
    registry row, or None when the registry does not know it. ``now`` must be
    timezone-aware; dates are judged in the venue's time zone.
    """
    if card_id is None:
        return _rejected("not_a_card")
    local = now.astimezone(config.venue.tz)
    if not is_open(config.venue, local):
        return _rejected("closed")
    reason = "ok"
    if card is None:
        stale = registry_is_stale(config, now, counters.registry_refreshed_at)
        if config.rules.unknown_card != "accept_provisional" or not stale:
            return _rejected("unknown_card")
        reason = "ok_provisional"
    elif card.status != "active":
        return _rejected("inactive_card")
    elif local.date() < card.valid_from:
        return _rejected("not_yet_valid")
    elif local.date() > card.valid_until:
        return _rejected("expired")
    reentry = dt.timedelta(minutes=config.venue.reentry_minutes)
    last = counters.last_accepted_at
    if reentry and last is not None and dt.timedelta(0) <= now - last < reentry:
        return _rejected("already_used")
    cap = config.venue.daily_cap
    if cap and counters.admitted_today + 1 > cap:
        return _rejected("quota_full")
    max_children = _children_allowed(config, card)
    if cap:
        max_children = min(max_children, cap - counters.admitted_today - 1)
    return Decision(ACCEPTED, reason, adults=1, max_children=max_children)


def child_admission(children_so_far: int, max_children: int) -> bool:
    """Whether one more child may come along on an accepted scan.

    ``max_children`` already includes the venue's daily cap at acceptance time.
    """
    return children_so_far < max_children
