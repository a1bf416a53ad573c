"""The validity rules as a decision table, with their boundaries, and as properties.

Dates are judged in Europe/Helsinki: 2027-03-28 (last Sunday of March) has no
03:00-04:00, and 2026-10-25 (last Sunday of October) has 03:00-04:00 twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config import Config
from kiosk.rules import ACCEPTED, REASONS, REJECTED, Counters, child_admission, decide
from kiosk.store import CardRow

HELSINKI = ZoneInfo("Europe/Helsinki")
CARD = CardRow("A999123453", "personal", "active", dt.date(2026, 1, 1), dt.date(2026, 12, 31), 2)
# A Wednesday in the middle of the card's validity.
NOON = "2026-06-10T12:00"


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def local(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=HELSINKI)


def config(**sections: dict[str, Any]) -> Config:
    result = Config()
    for section, changes in sections.items():
        result = result.replace(section, **changes)
    return result


WEEKDAY_HOURS = {
    "opening_hours": {0: ((dt.time(9), dt.time(17)),), 2: ((dt.time(9), dt.time(17)),)}
}
LATE_HOURS = {"opening_hours": {6: ((dt.time(20), dt.time.max),)}}
PROVISIONAL = {"unknown_card": "accept_provisional", "registry_stale_hours": 48}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    now: dt.datetime
    expected: tuple[str, str, int]  # result, reason, max_children
    card: CardRow | None = CARD
    card_id: str | None = CARD.card_id
    counters: Counters = dataclasses.field(default_factory=Counters)
    config: Config = dataclasses.field(default_factory=Config)


def row(**changes: Any) -> CardRow:
    return dataclasses.replace(CARD, **changes)


OK = (ACCEPTED, "ok", 2)


def rejected(reason: str) -> tuple[str, str, int]:
    return (REJECTED, reason, 0)


TABLE = [
    Case("valid card", local(NOON), OK),
    Case("not a card", local(NOON), rejected("not_a_card"), card=None, card_id=None),
    # Validity dates, in Helsinki time.
    Case("first valid day at local midnight", local("2026-01-01T00:00"), OK),
    Case("first valid day, still Dec 31 in UTC", utc("2025-12-31T22:00"), OK),
    Case("last second before the first day", utc("2025-12-31T21:59:59"), rejected("not_yet_valid")),
    Case("last valid day, last second", local("2026-12-31T23:59:59"), OK),
    Case("first invalid day at local midnight", local("2027-01-01T00:00"), rejected("expired")),
    Case("first invalid day, still Dec 31 in UTC", utc("2026-12-31T22:00"), rejected("expired")),
    # DST: on 2027-03-28 Helsinki is UTC+3 from 01:00 UTC, so midnight is 21:00 UTC.
    Case(
        "last valid day is the spring DST day, last second",
        utc("2027-03-28T20:59:59"),
        OK,
        card=row(valid_until=dt.date(2027, 3, 28)),
    ),
    Case(
        "day after the spring DST day at local midnight",
        utc("2027-03-28T21:00"),
        rejected("expired"),
        card=row(valid_until=dt.date(2027, 3, 28)),
    ),
    Case(
        "within the skipped hour of spring DST",
        utc("2027-03-28T01:30"),
        OK,
        card=row(valid_from=dt.date(2027, 3, 28), valid_until=dt.date(2027, 3, 28)),
    ),
    # On 2026-10-25 Helsinki is back at UTC+2 from 01:00 UTC, so midnight is 22:00 UTC.
    Case(
        "last valid day is the autumn DST day, last second",
        utc("2026-10-25T21:59:59"),
        OK,
        card=row(valid_until=dt.date(2026, 10, 25)),
    ),
    Case(
        "day after the autumn DST day at local midnight",
        utc("2026-10-25T22:00"),
        rejected("expired"),
        card=row(valid_until=dt.date(2026, 10, 25)),
    ),
    Case(
        "the repeated hour of autumn DST, second time round",
        utc("2026-10-25T01:30"),
        rejected("not_yet_valid"),
        card=row(valid_from=dt.date(2026, 10, 26)),
    ),
    Case(
        "the day before the autumn DST day ends at 21:00 UTC",
        utc("2026-10-24T21:00"),
        rejected("expired"),
        card=row(valid_until=dt.date(2026, 10, 24)),
    ),
    # Status.
    Case("inactive card", local(NOON), rejected("inactive_card"), card=row(status="inactive")),
    Case(
        "inactive and expired: inactive tells staff more",
        local("2027-06-01T12:00"),
        rejected("inactive_card"),
        card=row(status="inactive"),
    ),
    # Opening hours (Mon and Wed 09-17) and closed dates.
    Case("opening minute", local("2026-06-10T09:00"), OK, config=config(venue=WEEKDAY_HOURS)),
    Case(
        "a second before opening",
        local("2026-06-10T08:59:59"),
        rejected("closed"),
        config=config(venue=WEEKDAY_HOURS),
    ),
    Case("last open second", local("2026-06-10T16:59:59"), OK, config=config(venue=WEEKDAY_HOURS)),
    Case(
        "closing minute",
        local("2026-06-10T17:00"),
        rejected("closed"),
        config=config(venue=WEEKDAY_HOURS),
    ),
    Case(
        "a weekday not listed",
        local("2026-06-09T12:00"),
        rejected("closed"),
        config=config(venue=WEEKDAY_HOURS),
    ),
    Case(
        "opening hours are venue-local on the spring DST day: 09:00 is 06:00 UTC",
        utc("2027-03-29T06:00"),
        OK,
        card=row(valid_until=dt.date(2027, 12, 31)),
        config=config(venue=WEEKDAY_HOURS),
    ),
    Case(
        "spring DST day: 08:59 local is 05:59 UTC, closed",
        utc("2027-03-29T05:59"),
        rejected("closed"),
        card=row(valid_until=dt.date(2027, 12, 31)),
        config=config(venue=WEEKDAY_HOURS),
    ),
    Case(
        "open until 24:00: the last second of Sunday",
        local("2026-06-14T23:59:59"),
        OK,
        config=config(venue=LATE_HOURS),
    ),
    Case(
        "open until 24:00: Monday midnight is closed",
        local("2026-06-15T00:00"),
        rejected("closed"),
        config=config(venue=LATE_HOURS),
    ),
    Case(
        "a closed date, last second",
        local("2026-12-24T23:59:59"),
        rejected("closed"),
        config=config(venue={"closed_dates": (dt.date(2026, 12, 24),)}),
    ),
    Case(
        "the day after a closed date",
        local("2026-12-25T00:00"),
        OK,
        config=config(venue={"closed_dates": (dt.date(2026, 12, 24),)}),
    ),
    Case(
        "closed beats an expired card",
        local("2027-12-24T12:00"),
        rejected("closed"),
        config=config(venue={"closed_dates": (dt.date(2027, 12, 24),)}),
    ),
    # Re-entry (30 minutes by default).
    Case(
        "used 29:59 ago",
        local(NOON),
        rejected("already_used"),
        counters=Counters(last_accepted_at=local(NOON) - dt.timedelta(minutes=29, seconds=59)),
    ),
    Case(
        "used exactly 30 minutes ago",
        local(NOON),
        OK,
        counters=Counters(last_accepted_at=local(NOON) - dt.timedelta(minutes=30)),
    ),
    Case(
        "re-entry check off",
        local(NOON),
        OK,
        counters=Counters(last_accepted_at=local(NOON) - dt.timedelta(minutes=1)),
        config=config(venue={"reentry_minutes": 0}),
    ),
    Case(
        "a last use recorded in the future (clock trouble) does not block",
        local(NOON),
        OK,
        counters=Counters(last_accepted_at=local(NOON) + dt.timedelta(minutes=5)),
    ),
    # Daily cap (adults and children together).
    Case(
        "cap reached",
        local(NOON),
        rejected("quota_full"),
        counters=Counters(admitted_today=10),
        config=config(venue={"daily_cap": 10}),
    ),
    Case(
        "the last free place: the holder comes in, no children",
        local(NOON),
        (ACCEPTED, "ok", 0),
        counters=Counters(admitted_today=9),
        config=config(venue={"daily_cap": 10}),
    ),
    Case(
        "two places left: one child",
        local(NOON),
        (ACCEPTED, "ok", 1),
        counters=Counters(admitted_today=8),
        config=config(venue={"daily_cap": 10}),
    ),
    Case(
        "plenty left: the card's two children",
        local(NOON),
        OK,
        counters=Counters(admitted_today=2),
        config=config(venue={"daily_cap": 10}),
    ),
    # Children limits.
    Case(
        "children not registered: the default",
        local(NOON),
        (ACCEPTED, "ok", 4),
        card=row(children=None),
    ),
    Case("no registered children", local(NOON), (ACCEPTED, "ok", 0), card=row(children=0)),
    Case(
        "community card: the community limit",
        local(NOON),
        (ACCEPTED, "ok", 10),
        card=row(kind="community", children=None),
    ),
    Case(
        "community card with a configured limit",
        local(NOON),
        (ACCEPTED, "ok", 6),
        card=row(kind="community", children=3),
        config=config(rules={"community_max_children": 6}),
    ),
    Case(
        "course: no children",
        local(NOON),
        (ACCEPTED, "ok", 0),
        config=config(venue={"mode": "course"}),
    ),
    Case(
        "course: no children with a community card either",
        local(NOON),
        (ACCEPTED, "ok", 0),
        card=row(kind="community"),
        config=config(venue={"mode": "course"}),
    ),
    # Unknown cards.
    Case("unknown card, default reject", local(NOON), rejected("unknown_card"), card=None),
    Case(
        "unknown card, provisional, registry refreshed 49 h ago",
        local(NOON),
        (ACCEPTED, "ok_provisional", 4),
        card=None,
        counters=Counters(registry_refreshed_at=local(NOON) - dt.timedelta(hours=49)),
        config=config(rules=PROVISIONAL),
    ),
    Case(
        "unknown card, provisional, registry refreshed exactly 48 h ago",
        local(NOON),
        rejected("unknown_card"),
        card=None,
        counters=Counters(registry_refreshed_at=local(NOON) - dt.timedelta(hours=48)),
        config=config(rules=PROVISIONAL),
    ),
    Case(
        "unknown card, provisional, registry never refreshed",
        local(NOON),
        (ACCEPTED, "ok_provisional", 4),
        card=None,
        config=config(rules=PROVISIONAL),
    ),
    Case(
        "unknown card, reject, even with a stale registry",
        local(NOON),
        rejected("unknown_card"),
        card=None,
        counters=Counters(registry_refreshed_at=local(NOON) - dt.timedelta(days=30)),
    ),
    Case(
        "provisional entry still respects re-entry",
        local(NOON),
        rejected("already_used"),
        card=None,
        counters=Counters(last_accepted_at=local(NOON) - dt.timedelta(minutes=5)),
        config=config(rules=PROVISIONAL),
    ),
    Case(
        "provisional entry on a course: no children",
        local(NOON),
        (ACCEPTED, "ok_provisional", 0),
        card=None,
        config=config(rules=PROVISIONAL, venue={"mode": "course"}),
    ),
]


@pytest.mark.parametrize("case", TABLE, ids=[case.name for case in TABLE])
def test_decision_table(case: Case) -> None:
    decision = decide(case.card_id, case.card, case.now, case.counters, case.config)
    assert (decision.result, decision.reason, decision.max_children) == case.expected
    assert decision.adults == (1 if decision.accepted else 0)


@pytest.mark.parametrize(
    ("so_far", "limit", "admitted"), [(0, 0, False), (0, 1, True), (1, 1, False), (3, 4, True)]
)
def test_child_admission(so_far: int, limit: int, admitted: bool) -> None:
    assert child_admission(so_far, limit) is admitted


# --- properties ----------------------------------------------------------------

cards = st.builds(
    lambda kind, status, start, days, children: CardRow(
        "A999123453", kind, status, start, start + dt.timedelta(days=days), children
    ),
    st.sampled_from(["personal", "community"]),
    st.sampled_from(["active", "inactive"]),
    st.dates(dt.date(2025, 1, 1), dt.date(2028, 12, 31)),
    st.integers(0, 800),
    st.none() | st.integers(0, 12),
)
moments = st.datetimes(dt.datetime(2025, 1, 1), dt.datetime(2029, 1, 1), timezones=st.just(dt.UTC))
counters = st.builds(
    Counters,
    admitted_today=st.integers(0, 40),
    last_accepted_at=st.none() | moments,
    registry_refreshed_at=st.none() | moments,
)
configs = st.builds(
    lambda cap, mode, unknown, reentry, stale, default, community, closed: config(
        venue={"daily_cap": cap, "mode": mode, "reentry_minutes": reentry, "closed_dates": closed},
        rules={
            "unknown_card": unknown,
            "registry_stale_hours": stale,
            "default_max_children": default,
            "community_max_children": community,
        },
    ),
    st.integers(0, 30),
    st.sampled_from(["ticket", "course"]),
    st.sampled_from(["reject", "accept_provisional"]),
    st.integers(0, 240),
    st.floats(0, 500),
    st.integers(0, 10),
    st.integers(0, 20),
    st.lists(st.dates(dt.date(2025, 1, 1), dt.date(2028, 12, 31)), max_size=5).map(tuple),
)
scans = st.tuples(st.none() | cards, moments, counters, configs)


def limit_for(card: CardRow | None, cfg: Config) -> int:
    """The children limit the issue states, written out independently of rules.py."""
    if cfg.venue.mode == "course":
        return 0
    if card is not None and card.kind == "community":
        return cfg.rules.community_max_children
    if card is not None and card.children is not None:
        return card.children
    return cfg.rules.default_max_children


@given(scans)
def test_results_and_reasons_are_always_from_the_stable_set(scan: Any) -> None:
    card, now, count, cfg = scan
    decision = decide("A999123453", card, now, count, cfg)
    assert decision.result in (ACCEPTED, REJECTED)
    assert decision.reason in REASONS
    assert decision.accepted == decision.reason.startswith("ok")


@given(scans)
def test_an_accepted_scan_is_one_adult_and_a_rejected_one_nobody(scan: Any) -> None:
    card, now, count, cfg = scan
    decision = decide("A999123453", card, now, count, cfg)
    if decision.accepted:
        assert decision.adults == 1
    else:
        assert (decision.adults, decision.max_children) == (0, 0)


@given(scans)
def test_max_children_never_exceeds_the_limit_nor_the_remaining_cap(scan: Any) -> None:
    card, now, count, cfg = scan
    decision = decide("A999123453", card, now, count, cfg)
    assert 0 <= decision.max_children <= limit_for(card, cfg)
    if cfg.venue.daily_cap and decision.accepted:
        assert count.admitted_today + 1 + decision.max_children <= cfg.venue.daily_cap


@given(scans)
def test_an_inactive_or_out_of_date_card_is_never_accepted(scan: Any) -> None:
    card, now, count, cfg = scan
    decision = decide("A999123453", card, now, count, cfg)
    if card is None:
        return
    today = now.astimezone(HELSINKI).date()
    if card.status == "inactive" or not card.valid_from <= today <= card.valid_until:
        assert not decision.accepted


@given(scans)
def test_an_unknown_card_is_accepted_only_provisionally_with_a_stale_registry(scan: Any) -> None:
    _, now, count, cfg = scan
    decision = decide("A999123453", None, now, count, cfg)
    if decision.accepted:
        assert decision.reason == "ok_provisional"
        assert cfg.rules.unknown_card == "accept_provisional"
        refreshed = count.registry_refreshed_at
        assert refreshed is None or now - refreshed > dt.timedelta(
            hours=cfg.rules.registry_stale_hours
        )


@given(scans, st.sampled_from(["UTC", "Europe/Helsinki", "America/New_York", "Asia/Tokyo"]))
def test_the_decision_does_not_depend_on_the_zone_the_time_is_given_in(
    scan: Any, zone: str
) -> None:
    card, now, count, cfg = scan
    here = decide("A999123453", card, now, count, cfg)
    there = decide("A999123453", card, now.astimezone(ZoneInfo(zone)), count, cfg)
    assert here == there
