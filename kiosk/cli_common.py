"""Pieces every CLI command shares: the ``--config`` option and error exits.

A configuration problem is one line on stderr naming the key, and exit 2; any
other :class:`KioskError` is one line and exit 1. No traceback reaches an
operator for a problem the kiosk understands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from kiosk.config import Config, load_config
from kiosk.errors import ConfigError, KioskError

__all__ = ["EXIT_CONFIG", "config_option", "fail", "load_config_or_exit"]

EXIT_CONFIG = 2
F = TypeVar("F", bound=Callable[..., Any])


def config_option(function: F) -> F:
    """The ``--config PATH`` option (default ``$KIOSK_CONFIG`` or /etc/kiosk/kiosk.toml)."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="Config file [default: $KIOSK_CONFIG or /etc/kiosk/kiosk.toml].",
    )(function)


def fail(error: KioskError) -> NoReturn:
    """Print one clear line for ``error`` and exit with its status."""
    click.echo(str(error), err=True)
    sys.exit(EXIT_CONFIG if isinstance(error, ConfigError) else 1)


def load_config_or_exit(config_file: str | None) -> Config:
    try:
        return load_config(config_file)
    except ConfigError as error:
        fail(error)
