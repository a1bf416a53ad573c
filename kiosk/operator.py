"""Operator tools: why a card is turned away (``kiosk explain``) and what was admitted
(``kiosk stats``).

:func:`explain` runs the very decision the daemon runs, with the same registry
row and counters (:func:`kiosk.counters.read_counters`), and adds the facts
behind it in words staff can repeat to a holder. :func:`stats` sums the stored
records per venue-local day and category. Neither writes to the store nor logs
a card id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kiosk.clock import Reading, TrustedClock
from kiosk.config import WEEKDAYS, Config
from kiosk.counters import read_counters, saved_floor
from kiosk.payload import parse_payload
from kiosk.rules import REASONS, Counters, Decision, decide, registry_is_stale
from kiosk.store import CardRow, Store

__all__ = ["ADVICE", "explain", "stats", "trusted_reading"]

# What staff can tell the holder, per reason.
ADVICE: dict[str, str] = {
    "ok": "Welcome.",
    "ok_provisional": "Welcome; the card will be checked when the registry is refreshed.",
    "not_a_card": "Show the Kaikukortti card itself, or the card in the mobile app.",
    "unknown_card": (
        "A new card works once it is registered; ask the service that issued it, "
        "or try again in a day or two."
    ),
    "inactive_card": (
        "The card was reported lost, replaced or withdrawn; the service that issued "
        "it can tell which and give a new card."
    ),
    "expired": "Ask the service that issued the card whether it can be renewed.",
    "not_yet_valid": "The card can be used from its first valid day.",
    "closed": "Free entry is given during the opening hours.",
    "quota_full": "Today's free entries are used up; please come another day.",
    "already_used": "The card was used here a moment ago; it can be used again later.",
}


def trusted_reading(store: Store) -> Reading:
    """Now, from a :class:`TrustedClock` resting on the daemon's saved floor."""
    return TrustedClock(saved_floor(store)).read()


def _card(card: CardRow | None) -> dict[str, Any] | None:
    if card is None:
        return None
    return {
        "kind": card.kind,
        "status": card.status,
        "valid_from": card.valid_from.isoformat(),
        "valid_until": card.valid_until.isoformat(),
        "children": card.children,
        "updated_at": card.updated_at,
    }


def _iso(moment: dt.datetime | None, config: Config) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(config.venue.tz).isoformat(timespec="seconds")


def _hours(config: Config, local: dt.datetime) -> str:
    ranges = config.venue.opening_hours.get(local.weekday(), ())
    shown = ", ".join(
        f"{a:%H:%M}-{'24:00' if b == dt.time.max else f'{b:%H:%M}'}" for a, b in ranges
    )
    return shown or "closed all day"


def _children_rule(config: Config, card: CardRow | None, decision: Decision) -> str:
    if not decision.accepted:
        return "no entry, so no children"
    if config.venue.mode == "course":
        return "none: children do not apply to course places"
    if card is not None and card.kind == "community":
        limit, rule = config.rules.community_max_children, "rules.community_max_children"
    elif card is not None and card.children is not None:
        limit, rule = card.children, "the card's registered children"
    else:
        limit, rule = config.rules.default_max_children, "rules.default_max_children"
    if decision.max_children < limit:
        return f"{rule} = {limit}, but venue.daily_cap leaves room for {decision.max_children}"
    return f"{rule} = {limit}"


def _detail(
    config: Config, decision: Decision, card: CardRow | None, counters: Counters, now: dt.datetime
) -> str:
    """The facts behind the reason, in one sentence."""
    local = now.astimezone(config.venue.tz)
    today = local.date().isoformat()
    venue = config.venue
    refreshed = _iso(counters.registry_refreshed_at, config) or "never"
    reason = decision.reason
    if reason == "not_a_card":
        return "the text is not a card id (6 to 24 letters and digits) nor a card URL"
    if reason == "closed":
        if local.date() in venue.closed_dates:
            return f"{today} is in venue.closed_dates"
        day = WEEKDAYS[local.weekday()]
        return f"it is {local:%H:%M} on {day}; opening hours on {day}: {_hours(config, local)}"
    if reason == "unknown_card":
        if config.rules.unknown_card == "accept_provisional":
            return (
                f"not in the local registry, which is fresh (refreshed {refreshed}), "
                "so it is not accepted provisionally"
            )
        return f"not in the local registry (refreshed {refreshed}); rules.unknown_card = reject"
    if reason == "ok_provisional":
        return (
            f"not in the local registry, which was last refreshed {refreshed}, more than "
            f"rules.registry_stale_hours = {config.rules.registry_stale_hours:g} ago"
        )
    if reason == "inactive_card":
        return "the registry marks the card inactive"
    if reason == "expired" and card is not None:
        return f"valid until {card.valid_until}; the venue's date is {today} ({venue.timezone})"
    if reason == "not_yet_valid" and card is not None:
        return f"valid from {card.valid_from}; the venue's date is {today} ({venue.timezone})"
    if reason == "quota_full":
        return f"{counters.admitted_today} of venue.daily_cap = {venue.daily_cap} admitted today"
    if reason == "already_used" and counters.last_accepted_at is not None:
        again = counters.last_accepted_at + dt.timedelta(minutes=venue.reentry_minutes)
        return (
            f"accepted here at {_iso(counters.last_accepted_at, config)}, within "
            f"venue.reentry_minutes = {venue.reentry_minutes}; usable again from "
            f"{_iso(again, config)}"
        )
    if card is not None:
        return f"active {card.kind} card, valid {card.valid_from} to {card.valid_until}"
    return REASONS[reason]


def explain(
    store: Store, config: Config, text: str, at: dt.datetime | None = None
) -> dict[str, Any]:
    """Decide ``text`` (a card id or card URL) as the kiosk would, and say why.

    ``at`` is when to decide (a naive time is the venue's local time); default
    now from the trusted clock. The counters are the store's current ones.
    """
    if at is None:
        reading = trusted_reading(store)
        now, trusted = reading.now, reading.trusted
    else:
        now = at if at.tzinfo else at.replace(tzinfo=config.venue.tz)
        trusted = None  # the operator chose the time
    card_id = parse_payload(text, config.decoder.card_url_hosts).card_id
    card = store.card(card_id) if card_id else None
    counters = read_counters(store, config, card_id, now)
    decision = decide(card_id, card, now, counters, config)
    return {
        "card_id": card_id,
        "result": decision.result,
        "reason": decision.reason,
        "words": REASONS[decision.reason],
        "detail": _detail(config, decision, card, counters, now),
        "advice": ADVICE[decision.reason],
        "adults": decision.adults,
        "max_children": decision.max_children,
        "children_rule": _children_rule(config, card, decision),
        "at": _iso(now, config),
        "clock_trusted": trusted,
        "card": _card(card),
        "counters": {
            "admitted_today": counters.admitted_today,
            "daily_cap": config.venue.daily_cap,
            "last_accepted_at": _iso(counters.last_accepted_at, config),
            "reentry_minutes": config.venue.reentry_minutes,
            "registry_refreshed_at": _iso(counters.registry_refreshed_at, config),
            "registry_stale": registry_is_stale(config, now, counters.registry_refreshed_at),
        },
        "venue": {
            "category": config.venue.category,
            "mode": config.venue.mode,
            "timezone": config.venue.timezone,
        },
    }


def stats(store: Store, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, Any]:
    """Adults and children admitted per venue-local day and category, and rejects per
    reason, between ``start`` and ``end`` inclusive (default: every stored record)."""
    bounds = (start.isoformat() if start else "", end.isoformat() if end else "9999-12-31")
    days = [
        {
            "date": row[0],
            "category": row[1],
            "accepted_events": row[2],
            "adults": row[3],
            "children": row[4],
        }
        for row in store.conn.execute(
            "SELECT local_date, category, count(*), sum(adults), sum(children) FROM events"
            " WHERE result = 'accepted' AND local_date BETWEEN ? AND ?"
            " GROUP BY local_date, category ORDER BY local_date, category",
            bounds,
        )
    ]
    # Every rejecting reason is listed, with 0 when it did not happen.
    rejects = {reason: 0 for reason in REASONS if not reason.startswith("ok")}
    for reason, count in store.conn.execute(
        "SELECT reason, count(*) FROM events"
        " WHERE result = 'rejected' AND local_date BETWEEN ? AND ?"
        " GROUP BY reason",
        bounds,
    ):
        rejects[reason] = count
    return {
        "from": bounds[0] or None,
        "to": end.isoformat() if end else None,
        "accepted_events": sum(day["accepted_events"] for day in days),
        "rejected_events": sum(rejects.values()),
        "adults": sum(day["adults"] for day in days),
        "children": sum(day["children"] for day in days),
        "rejects": rejects,
        "days": days,
    }
