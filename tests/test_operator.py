"""``kiosk explain`` and ``kiosk stats``, text and ``--json``, through click."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from gpiozero.pins.mock import MockFactory

from kiosk.cli_rules import explain_command, stats_command
from kiosk.config import Config
from kiosk.store import EventRecord, Store, new_event_id
from tests.conftest import card
from tests.kiosk_process import save_good_time, write_config
from tests.test_daemon import run_daemon

VALID = {"valid_from": dt.date(2026, 1, 1), "valid_until": dt.date(2026, 12, 31)}


def invoke(command: Any, config: Config, tmp_path: Path, *args: str) -> Any:
    config_file = write_config(config, tmp_path / "kiosk.toml")
    return CliRunner().invoke(command, ["--config", str(config_file), *args])


def explain_json(config: Config, tmp_path: Path, *args: str) -> dict[str, Any]:
    result = invoke(explain_command, config, tmp_path, "--json", *args)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


def test_explain_json_of_a_valid_card(
    kiosk_config: Config, registry: Callable[..., None], tmp_path: Path
) -> None:
    registry(card("A999123453", children=2, **VALID))
    report = explain_json(kiosk_config, tmp_path, "a999123453", "--at", "2026-06-10T12:00")
    assert {key: report[key] for key in ("card_id", "result", "reason", "max_children")} == {
        "card_id": "A999123453",
        "result": "accepted",
        "reason": "ok",
        "max_children": 2,
    }
    assert report["card"]["valid_until"] == "2026-12-31"
    assert report["card"]["children"] == 2
    assert report["at"] == "2026-06-10T12:00:00+03:00"  # a naive --at is venue-local
    assert report["counters"]["admitted_today"] == 0


def test_explain_text_of_an_expired_card_says_why_and_what_to_tell(
    kiosk_config: Config, registry: Callable[..., None], tmp_path: Path
) -> None:
    registry(card("A999123453", **VALID))
    result = invoke(
        explain_command, kiosk_config, tmp_path, "A999123453", "--at", "2027-01-01T00:00"
    )
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "card       A999123453"
    assert lines[1] == "decision   REJECTED expired: card validity has ended"
    assert lines[2] == (
        "why        valid until 2026-12-31; the venue's date is 2027-01-01 (Europe/Helsinki)"
    )
    assert lines[3].startswith("tell       Ask the service that issued the card")


@pytest.mark.parametrize(
    ("at", "reason"),
    [("2026-12-31T23:59", "ok"), ("2026-12-31T22:30+00:00", "expired")],
    ids=["venue-local", "utc-offset"],
)
def test_explain_at_judges_the_date_in_the_venue_zone(
    kiosk_config: Config, registry: Callable[..., None], tmp_path: Path, at: str, reason: str
) -> None:
    registry(card("A999123453", **VALID))
    assert explain_json(kiosk_config, tmp_path, "A999123453", "--at", at)["reason"] == reason


def test_explain_of_a_closed_day_and_a_full_quota(
    kiosk_config: Config, registry: Callable[..., None], tmp_path: Path
) -> None:
    registry(card("A999123453", **VALID))
    config = kiosk_config.replace("venue", closed_dates=(dt.date(2026, 12, 24),), daily_cap=3)
    closed = explain_json(config, tmp_path, "A999123453", "--at", "2026-12-24T12:00")
    assert (closed["reason"], closed["detail"]) == ("closed", "2026-12-24 is in venue.closed_dates")
    with Store(config.storage.path) as store:
        add_record(store, "A100000017", "accepted", "ok", children=2, day="2026-12-23")
    full = explain_json(config, tmp_path, "A999123453", "--at", "2026-12-23T12:00")
    assert (full["reason"], full["detail"]) == (
        "quota_full",
        "3 of venue.daily_cap = 3 admitted today",
    )


def test_explain_of_an_unknown_card_and_of_text_that_is_no_card(
    kiosk_config: Config, registry: Callable[..., None], tmp_path: Path
) -> None:
    save_good_time(kiosk_config.storage.path)
    registry(card("A999123453"))
    unknown = explain_json(kiosk_config, tmp_path, "A777777777")
    assert (unknown["result"], unknown["reason"], unknown["card"]) == (
        "rejected",
        "unknown_card",
        None,
    )
    assert unknown["detail"].endswith("rules.unknown_card = reject")
    assert unknown["clock_trusted"] is True  # no --at: the kiosk's own clock
    provisional = kiosk_config.replace("rules", unknown_card="accept_provisional")
    # The registry fixture has just refreshed the registry, so it is not stale.
    assert explain_json(provisional, tmp_path, "A777777777")["reason"] == "unknown_card"
    junk = explain_json(kiosk_config, tmp_path, "hello")
    assert (junk["card_id"], junk["reason"], junk["max_children"]) == (None, "not_a_card", 0)


def test_explain_uses_the_counters_the_daemon_wrote(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
    tmp_path: Path,
) -> None:
    save_good_time(kiosk_config.storage.path)
    registry(card("A999123453", children=3))
    show("A999123453")
    run_daemon(kiosk_config, mock_factory)
    report = explain_json(kiosk_config, tmp_path, "A999123453")
    assert (report["result"], report["reason"]) == ("rejected", "already_used")
    assert report["counters"]["admitted_today"] == 1
    assert report["detail"].startswith("accepted here at ")
    result = invoke(explain_command, kiosk_config, tmp_path, "A999123453")
    assert "REJECTED already_used: card was already used here a moment ago" in result.output


def test_explain_with_a_bad_time_is_a_usage_error(kiosk_config: Config, tmp_path: Path) -> None:
    result = invoke(explain_command, kiosk_config, tmp_path, "A999123453", "--at", "noon")
    assert result.exit_code == 2
    assert "'noon' is not like 2026-12-24T10:00" in result.output


# --- stats --------------------------------------------------------------------


def add_record(
    store: Store,
    card_id: str | None,
    result: str,
    reason: str,
    *,
    children: int = 0,
    day: str = "2026-12-01",
    category: str = "culture",
) -> None:
    accepted = result == "accepted"
    store.record(
        EventRecord(
            event_id=new_event_id(),
            card_id=card_id,
            payload_sha256=None,
            result=result,
            reason=reason,
            adults=1 if accepted else 0,
            children=children,
            max_children=children,
            category=category,
            mode="ticket",
            venue_id="",
            scanned_at=f"{day}T12:00:00.000+02:00",
            local_date=day,
            mono_ns=0,
            boot_id="test",
            clock_trusted=True,
            closed=True,
        )
    )


@pytest.fixture
def history(kiosk_config: Config) -> None:
    with Store(kiosk_config.storage.path) as store:
        add_record(store, "A999123453", "accepted", "ok", children=2, day="2026-12-01")
        add_record(store, "A100000017", "accepted", "ok_provisional", day="2026-12-01")
        add_record(
            store, "Z400000041", "accepted", "ok", children=5, day="2026-12-01", category="sports"
        )
        add_record(store, "A999123453", "rejected", "already_used", day="2026-12-01")
        add_record(store, None, "rejected", "not_a_card", day="2026-12-02")
        add_record(store, "A300000033", "accepted", "ok", children=1, day="2026-12-02")
        add_record(store, "A200000025", "rejected", "expired", day="2026-12-03")
        add_record(store, "A200000025", "rejected", "expired", day="2026-12-03")


@pytest.mark.usefixtures("history")
def test_stats_json_sums_people_per_day_and_category_and_rejects_per_reason(
    kiosk_config: Config, tmp_path: Path
) -> None:
    result = invoke(stats_command, kiosk_config, tmp_path, "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert {k: report[k] for k in ("accepted_events", "rejected_events", "adults", "children")} == {
        "accepted_events": 4,
        "rejected_events": 4,
        "adults": 4,
        "children": 8,
    }
    assert {reason: n for reason, n in report["rejects"].items() if n} == {
        "already_used": 1,
        "not_a_card": 1,
        "expired": 2,
    }
    assert report["rejects"]["quota_full"] == 0  # every reason is listed
    assert [(d["date"], d["category"], d["adults"], d["children"]) for d in report["days"]] == [
        ("2026-12-01", "culture", 2, 2),
        ("2026-12-01", "sports", 1, 5),
        ("2026-12-02", "culture", 1, 1),
    ]


@pytest.mark.usefixtures("history")
def test_stats_from_and_to_are_inclusive_venue_days(kiosk_config: Config, tmp_path: Path) -> None:
    result = invoke(
        stats_command,
        kiosk_config,
        tmp_path,
        "--json",
        "--from",
        "2026-12-02",
        "--to",
        "2026-12-03",
    )
    report = json.loads(result.output)
    assert (report["from"], report["to"]) == ("2026-12-02", "2026-12-03")
    assert (report["adults"], report["children"], report["rejected_events"]) == (1, 1, 3)
    assert [d["date"] for d in report["days"]] == ["2026-12-02"]


@pytest.mark.usefixtures("history")
def test_stats_text_is_a_table_with_totals(kiosk_config: Config, tmp_path: Path) -> None:
    result = invoke(stats_command, kiosk_config, tmp_path, "--to", "2026-12-01")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "Free entries, first record to 2026-12-01",
        "date        category   adults children",
        "2026-12-01  culture         2        2",
        "2026-12-01  sports          1        5",
        "total                       3        7",
        "3 accepted scans, 1 rejected:",
        "  already_used         1",
    ]


def test_stats_never_prints_a_card_id(kiosk_config: Config, tmp_path: Path, history: None) -> None:
    for args in ((), ("--json",)):
        output = invoke(stats_command, kiosk_config, tmp_path, *args).output
        assert "A999123453" not in output and "Z400000041" not in output


def test_stats_with_a_bad_date_is_a_usage_error(kiosk_config: Config, tmp_path: Path) -> None:
    result = invoke(stats_command, kiosk_config, tmp_path, "--from", "1.12.2026")
    assert result.exit_code == 2


def test_a_record_of_today_counts_in_stats(
    kiosk_config: Config,
    registry: Callable[..., None],
    show: Callable[..., None],
    mock_factory: MockFactory,
    tmp_path: Path,
) -> None:
    save_good_time(kiosk_config.storage.path)
    registry(card("A999123453"))
    show("A999123453", "A777777777")
    run_daemon(kiosk_config, mock_factory)
    report = json.loads(invoke(stats_command, kiosk_config, tmp_path, "--json").output)
    assert report["days"] == [
        {
            "date": dt.datetime.now(kiosk_config.venue.tz).date().isoformat(),
            "category": "culture",
            "accepted_events": 1,
            "adults": 1,
            "children": 0,
        }
    ]
    assert report["rejects"]["unknown_card"] == 1
