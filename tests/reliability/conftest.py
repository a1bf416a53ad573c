"""Shared by the reliability tests. Kept small on purpose: ask before adding.

- :func:`sized` picks a test's quick size (``make test``) or its full size, which
  ``KIOSK_FULL=1`` selects (the ``full`` marker's opt-in, as in the rest of the suite).
"""

from __future__ import annotations

import os

__all__ = ["FULL", "sized"]

FULL = os.environ.get("KIOSK_FULL") == "1"


def sized(quick: int, full: int) -> int:
    """``full`` under ``KIOSK_FULL=1``, else ``quick``."""
    return full if FULL else quick
