"""The ``kiosk doctor`` command: run :mod:`kiosk.doctor`'s checks and print them.

One line per check (``ok``, ``FAIL`` with its fix, or ``skip``), or with
``--json`` one object ``{"ok": ..., "checks": [...]}``. Exit status 1 when any
check failed, else 0; an invalid config is a failed check, not exit 2. Tests
pass their own :class:`~kiosk.doctor.Probes` as click's context object.
"""

from __future__ import annotations

import json
import sys

import click

from kiosk.cli_common import config_option
from kiosk.doctor import Probes, run_checks

__all__ = ["doctor"]


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
@click.pass_context
def doctor(context: click.Context, config_file: str | None, as_json: bool) -> None:
    """Check camera, zbar, pins, store, config, token, API, clock and disk."""
    results = run_checks(config_file, context.find_object(Probes))
    healthy = all(result.status != "fail" for result in results)
    if as_json:
        report = {"ok": healthy, "checks": [result.as_dict() for result in results]}
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for result in results:
            click.echo(result.line())
    sys.exit(0 if healthy else 1)
