"""The central API commands: ``enroll``, ``sync``, ``status`` and ``devserver``.

``kiosk.cli`` registers them. ``devserver`` stands in for the national API, a
separate program, so it reads no kiosk config; the others do (``--config``).
"""

from __future__ import annotations

import json
import secrets
import ssl
import sys
from typing import Any

import click

from kiosk.cli_common import config_option, fail, load_config_or_exit
from kiosk.config import Config
from kiosk.counters import LAST_REGISTRY_SYNC
from kiosk.credentials import is_enrolled, read_device
from kiosk.devserver import HARD_BODY_LIMIT, DevServer, load_cards_csv, parse_fault
from kiosk.errors import KioskError
from kiosk.logs import setup_logging
from kiosk.payload import mask_card_id
from kiosk.store import Store
from kiosk.sync import (
    BACKOFF_META,
    LAST_HEARTBEAT_META,
    LAST_UPLOAD_META,
    MUST_ENROLL_META,
    SyncWorker,
    UploadReport,
    enroll_device,
)

__all__ = ["devserver", "enroll", "status", "status_report", "sync"]


@click.command()
@config_option
@click.argument("code")
@click.option("--api", "api_url", default=None, help="Central API URL [default: api.base_url].")
def enroll(config_file: str | None, code: str, api_url: str | None) -> None:
    """Enroll this kiosk with a one-time CODE; writes the token and device.json."""
    config = load_config_or_exit(config_file)
    url = (api_url or config.api.base_url).rstrip("/")
    if not url.startswith(("https://", "http://")):
        fail(KioskError("enroll needs --api https://... or api.base_url in the config"))
    try:
        enrollment = enroll_device(config, code, url)
    except OSError as error:
        state_dir = config.storage.state_dir
        fail(KioskError(f"cannot write the enrollment into {state_dir}: {error.strerror}"))
    except KioskError as error:
        fail(error)
    click.echo(
        f"enrolled device_id={enrollment.device_id} venue_id={enrollment.venue_id} api={url}"
    )
    if config.venue.id and config.venue.id != enrollment.venue_id:
        click.echo(
            f"warning: venue.id in the config is {config.venue.id!r}, the API says"
            f" {enrollment.venue_id!r}",
            err=True,
        )


@click.command()
@config_option
def sync(config_file: str | None) -> None:
    """Upload the queue and pull the card registry once, in the foreground."""
    config = load_config_or_exit(config_file)
    worker = SyncWorker(config)
    try:
        with Store(config.storage.path) as store:
            waiting = store.queue_depth()
        if sys.stdout.isatty() and waiting:
            with click.progressbar(length=waiting, label="uploading") as bar:
                shown = [0]

                def advance(report: UploadReport) -> None:
                    bar.update(report.done - shown[0])
                    shown[0] = report.done

                report = worker.upload(progress=advance)
        else:
            report = worker.upload()
        click.echo(
            f"uploaded stored={report.stored} duplicate={report.duplicate}"
            f" quarantined={report.quarantined} batches={report.batches}"
        )
        click.echo(f"registry updated={worker.sync_registry()}")
    except KioskError as error:
        fail(error)
    finally:
        worker.close()


def status_report(config: Config) -> dict[str, Any]:
    """What ``kiosk status --json`` prints; card ids only masked."""
    with Store(config.storage.path) as store:
        must_enroll = store.get_meta(MUST_ENROLL_META) == "1"
        oldest = store.oldest_undelivered()
        backoff = store.get_meta(BACKOFF_META)
        clock_trusted = store.get_meta("clock_trusted")
        quarantined = [
            {
                "seq": row["seq"],
                "event_id": row["event_id"],
                "card": mask_card_id(row["card_id"]),
                "result": row["result"],
                "reason": row["reason"],
                "scanned_at": row["scanned_at"],
                "quarantined_at": row["quarantined_at"],
                "error": row["quarantine_error"],
            }
            for row in store.quarantined()
        ]
        device = read_device(config.storage.state_dir)
        return {
            "enrolled": is_enrolled(config.storage.state_dir) and not must_enroll,
            "must_enroll": must_enroll,
            "device_id": device.device_id if device else None,
            "api": device.api if device else None,
            "queue_depth": store.queue_depth(),
            "oldest_undelivered": (
                {"seq": oldest["seq"], "scanned_at": oldest["scanned_at"]} if oldest else None
            ),
            "quarantined": len(quarantined),
            "quarantined_records": quarantined,
            "delivered": store.delivered_count(),
            "last_upload": store.get_meta(LAST_UPLOAD_META),
            "last_registry_sync": store.get_meta(LAST_REGISTRY_SYNC),
            "last_heartbeat": store.get_meta(LAST_HEARTBEAT_META),
            "registry_cards": store.card_count(),
            "backoff": json.loads(backoff) if backoff else None,
            "clock_trusted": None if clock_trusted is None else clock_trusted == "1",
        }


def _format_status(report: dict[str, Any]) -> str:
    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    if report["must_enroll"]:
        enrolled = "NO: the API refused the token; run `kiosk enroll CODE --api URL` again"
    elif report["enrolled"]:
        enrolled = f"yes (device {report['device_id']}, {report['api']})"
    else:
        enrolled = "no: run `kiosk enroll CODE --api URL`"
    oldest = report["oldest_undelivered"]
    backoff = report["backoff"]
    lines = [
        f"enrolled:            {enrolled}",
        f"queue depth:         {report['queue_depth']}",
        "oldest undelivered:  "
        + (f"#{oldest['seq']} scanned {oldest['scanned_at']}" if oldest else "-"),
        f"delivered (kept):    {report['delivered']}",
        f"last upload:         {report['last_upload'] or 'never'}",
        f"last registry sync:  {report['last_registry_sync'] or 'never'}"
        f" ({report['registry_cards']} cards)",
        "backoff:             "
        + (
            f"{backoff['task']} failed {backoff['failures']} times since {backoff['since']},"
            f" retry in {backoff['retry_in_seconds']} s: {backoff['error']}"
            if backoff
            else "none"
        ),
        f"clock trusted:       {yes_no(report['clock_trusted'])}",
        f"quarantined:         {report['quarantined']}",
    ]
    lines += [
        f"  #{row['seq']} {row['scanned_at']} card {row['card']} {row['result']}/{row['reason']}:"
        f" {row['error']}"
        for row in report["quarantined_records"]
    ]
    return "\n".join(lines)


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status(config_file: str | None, as_json: bool) -> None:
    """Show the upload queue, quarantined records, sync state and clock trust."""
    config = load_config_or_exit(config_file)
    try:
        report = status_report(config)
    except KioskError as error:
        fail(error)
    click.echo(json.dumps(report, indent=2) if as_json else _format_status(report))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="0 picks a free port.")
@click.option(
    "--cards",
    "cards_file",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV: card_id,kind,status,valid_from,valid_until,children.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    default=":memory:",
    help="SQLite file for the server's data [default: in memory].",
)
@click.option(
    "--enroll-code",
    "codes",
    multiple=True,
    help="A one-time enrollment code to accept (repeatable) [default: one random].",
)
@click.option(
    "--venue",
    "venue_id",
    default="demo-venue",
    show_default=True,
    help="Venue id new enrollments get.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help="Inject a fault, e.g. '429 count=2 retry_after=5' (repeatable).",
)
@click.option("--max-body-bytes", type=int, default=None, help="Answer 413 above this size.")
@click.option("--clock-offset", type=float, default=0.0, help="Shift the server's clock (s).")
@click.option(
    "--admin-token",
    envvar="KIOSK_DEVSERVER_ADMIN_TOKEN",
    default=None,
    help="Enables /admin/* on loopback [env: KIOSK_DEVSERVER_ADMIN_TOKEN].",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None)
def devserver(
    host: str,
    port: int,
    cards_file: str | None,
    data: str,
    codes: tuple[str, ...],
    venue_id: str,
    faults: tuple[str, ...],
    max_body_bytes: int | None,
    clock_offset: float,
    admin_token: str | None,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run the reference central API server (for the demo, tests and pilots)."""
    setup_logging()
    context = None
    if tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
    try:
        server = DevServer(
            data=data,
            host=host,
            port=port,
            cards=load_cards_csv(cards_file) if cards_file else (),
            venue_id=venue_id,
            clock_offset=clock_offset,
            admin_token=admin_token,
            ssl_context=context,
            faults=[parse_fault(spec) for spec in faults],
            max_body_bytes=max_body_bytes or HARD_BODY_LIMIT,
        )
    except (OSError, ValueError) as error:
        fail(KioskError(f"devserver: {error}"))
    for code in codes:
        server.add_enroll_code(code)
    if not server.unused_enroll_codes():
        server.add_enroll_code(secrets.token_hex(4).upper())
    click.echo(f"kiosk devserver listening on {server.url}")
    for code in server.unused_enroll_codes():
        click.echo(f"enrollment code: {code}  (venue {venue_id})")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
