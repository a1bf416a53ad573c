"""The ``kiosk registry``, ``kiosk explain`` and ``kiosk stats`` commands.

They read the store the daemon writes, so they are safe to run beside it. A card
id is printed only where the operator typed it (``registry show``, ``explain``),
and never logged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kiosk.cli_common import config_option, fail, load_config_or_exit
from kiosk.config import Config
from kiosk.errors import KioskError
from kiosk.operator import explain, stats
from kiosk.registry import import_csv
from kiosk.store import Store

__all__ = ["explain_command", "registry", "stats_command"]

T = TypeVar("T")


def _parsed(parse: Callable[[str], T], example: str) -> Callable[..., T | None]:
    """A click callback turning an ISO text into a value, or a usage error."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not like {example}") from None

    return convert


def _store(config_file: str | None) -> tuple[Config, Store]:
    config = load_config_or_exit(config_file)
    try:
        return config, Store(config.storage.path)
    except KioskError as error:
        fail(error)


@click.group()
def registry() -> None:
    """The local card registry."""


@registry.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def import_command(config_file: str | None, file: str) -> None:
    """Load cards from a CSV file (card_id,kind,status,valid_from,valid_until,children).

    Cards in the file replace their stored rows; other cards stay. A bad row stops
    the import with its line number, and nothing of the file is applied.
    """
    _, store = _store(config_file)
    with store:
        try:
            count = import_csv(store, file)
        except KioskError as error:
            fail(error)
        click.echo(f"imported {count} cards; the registry now holds {store.card_count()}")


@registry.command("show")
@config_option
@click.argument("card")
def show_command(config_file: str | None, card: str) -> None:
    """Show the stored registry row of CARD."""
    _, store = _store(config_file)
    with store:
        row = store.card(card.strip().upper())
    if row is None:
        click.echo(f"{card.strip().upper()}: not in the local registry", err=True)
        raise SystemExit(1)
    children = "not registered" if row.children is None else str(row.children)
    click.echo(
        f"card         {row.card_id}\n"
        f"kind         {row.kind}\n"
        f"status       {row.status}\n"
        f"valid        {row.valid_from} to {row.valid_until} (inclusive)\n"
        f"children     {children}\n"
        f"updated_at   {row.updated_at}"
    )


def _explain_text(report: dict[str, Any]) -> str:
    card, counters = report["card"], report["counters"]
    clock = {True: "trusted clock", False: "clock NOT trusted", None: "time given"}
    if card is None:
        row = "not in the local registry"
    else:
        children = "not registered" if card["children"] is None else card["children"]
        row = (
            f"{card['kind']}, {card['status']}, valid {card['valid_from']} to "
            f"{card['valid_until']}, children {children}"
        )
    cap = counters["daily_cap"] or "no cap"
    lines = [
        f"card       {report['card_id'] or '(not a card id)'}",
        f"decision   {report['result'].upper()} {report['reason']}: {report['words']}",
        f"why        {report['detail']}",
        f"tell       {report['advice']}",
        f"children   {report['max_children']} may come along ({report['children_rule']})",
        f"time       {report['at']} ({clock[report['clock_trusted']]})",
        f"registry   {row}",
        f"today      {counters['admitted_today']} admitted (daily cap: {cap}); "
        f"card last accepted here: {counters['last_accepted_at'] or 'never'}",
        f"refreshed  {counters['registry_refreshed_at'] or 'never'}"
        f"{' (stale)' if counters['registry_stale'] else ''}",
    ]
    return "\n".join(lines)


@click.command("explain")
@config_option
@click.option(
    "--at",
    "at",
    callback=_parsed(dt.datetime.fromisoformat, "2026-12-24T10:00"),
    default=None,
    help="Decide at this time (venue-local unless it has an offset) [default: now].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.argument("card")
def explain_command(
    config_file: str | None, at: dt.datetime | None, as_json: bool, card: str
) -> None:
    """Which rule decides for CARD, and why (for staff answering a holder)."""
    config, store = _store(config_file)
    with store:
        report = explain(store, config, card, at)
    click.echo(json.dumps(report, ensure_ascii=False) if as_json else _explain_text(report))


def _stats_text(report: dict[str, Any]) -> str:
    span = f"{report['from'] or 'first record'} to {report['to'] or 'last record'}"
    lines = [f"Free entries, {span}", f"{'date':10}  {'category':10} {'adults':>6} {'children':>8}"]
    for day in report["days"]:
        lines.append(
            f"{day['date']:10}  {day['category']:10} {day['adults']:6d} {day['children']:8d}"
        )
    lines.append(f"{'total':10}  {'':10} {report['adults']:6d} {report['children']:8d}")
    lines.append(
        f"{report['accepted_events']} accepted scans, {report['rejected_events']} rejected:"
    )
    lines.extend(
        f"  {reason:16} {count:5d}" for reason, count in report["rejects"].items() if count
    )
    return "\n".join(lines)


@click.command("stats")
@config_option
@click.option(
    "--from",
    "start",
    callback=_parsed(dt.date.fromisoformat, "2026-12-24"),
    default=None,
    help="First venue-local day [default: the first record].",
)
@click.option(
    "--to",
    "end",
    callback=_parsed(dt.date.fromisoformat, "2026-12-24"),
    default=None,
    help="Last venue-local day [default: the last record].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats_command(
    config_file: str | None, start: dt.date | None, end: dt.date | None, as_json: bool
) -> None:
    """Adults and children admitted per day and category, and rejects per reason."""
    _, store = _store(config_file)
    with store:
        report = stats(store, start, end)
    click.echo(json.dumps(report) if as_json else _stats_text(report))
