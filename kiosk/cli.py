"""The ``kiosk`` command line: a thin click layer over the library.

Each command loads the config (``--config``), calls library functions and
prints. Commands of one topic live beside their library module and are
registered here.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from kiosk import __version__
from kiosk.cli_api import devserver, enroll, status, sync
from kiosk.cli_common import config_option, fail, load_config_or_exit
from kiosk.cli_doctor import doctor
from kiosk.cli_rules import explain_command, registry, stats_command
from kiosk.daemon import Daemon, ScanReport
from kiosk.decoder import load_grey, make_decoder
from kiosk.errors import KioskError
from kiosk.logs import setup_logging

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="kiosk")
def main() -> None:
    """Kaikukortti scanner kiosk."""


def format_report(report: ScanReport) -> str:
    """One console line for something that happened at the kiosk."""
    when = report.at.astimezone().strftime("%H:%M:%S")
    if report.kind == "decision":
        label, detail = report.result.upper(), report.reason
    elif report.kind == "child":
        label, detail = "CHILD", f"+1 ({report.children} so far)"
    elif report.kind == "child_refused":
        label, detail = "CHILD", "refused"
    elif report.kind == "window_closed":
        label, detail = "ENTERED", f"1 adult, {report.children} children"
    else:
        label, detail = "FAULT", report.reason
    return f"{when}  {label:9} {detail:21} card {report.card:10} {report.panel}"


@main.command()
@config_option
@click.option("--until-idle", is_flag=True, help="Exit once a dir: source is exhausted.")
def run(config_file: str | None, until_idle: bool) -> None:
    """Run the kiosk daemon."""
    config = load_config_or_exit(config_file)
    setup_logging()
    # Off the Pi the pins are mock pins, so the console shows the signal panel.
    console = config.gpio.pin_factory == "mock" or not _on_pi()
    daemon = Daemon(
        config,
        until_idle=until_idle,
        on_report=(lambda report: click.echo(format_report(report))) if console else None,
    )
    try:
        sys.exit(daemon.run())
    except KioskError as error:
        fail(error)


def _on_pi() -> bool:
    from kiosk.signals import on_raspberry_pi

    return on_raspberry_pi()


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def decode(config_file: str | None, as_json: bool, files: tuple[str, ...]) -> None:
    """Decode barcodes in image files."""
    config = load_config_or_exit(config_file) if config_file else None
    from kiosk.config import DecoderConfig

    decoder = make_decoder(config.decoder if config else DecoderConfig())
    for name in files:
        frame = load_grey(Path(name))
        started = time.perf_counter()
        symbols = decoder.decode(frame)
        elapsed = (time.perf_counter() - started) * 1000
        if as_json:
            result = {
                "file": name,
                "symbols": [
                    {"type": s.type, "text": s.text, "polygon": [list(p) for p in s.polygon]}
                    for s in symbols
                ],
                "ms": round(elapsed, 2),
            }
            click.echo(json.dumps(result, ensure_ascii=False))
        else:
            texts = ", ".join(f"{s.type} {s.text!r}" for s in symbols) or "no code"
            click.echo(f"{name}: {texts} ({elapsed:.1f} ms)")


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's images and store here [default: a temporary folder].",
)
def demo(workdir: Path | None) -> None:
    """Run the real daemon on generated card images, with mock pins."""
    import tempfile

    from kiosk.demo import run_demo

    setup_logging("WARNING")
    click.echo("Kaikukortti kiosk demo: the real daemon, a dir: source and mock pins.")
    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as temporary:
        run_demo(workdir or Path(temporary), click.echo, format_report)
    click.echo("\nDemo finished.")


# Commands of one topic live beside their library modules.
for _command in (
    enroll,
    sync,
    status,
    devserver,
    registry,
    explain_command,
    stats_command,
    doctor,
):
    main.add_command(_command)
