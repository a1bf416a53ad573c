"""Logging for journald: one line per event, ``key=value`` pairs, no personal data.

Card ids go through :func:`kiosk.payload.mask_card_id` before they reach a log
call, and payload text never does. Levels map to journald priorities through
the ``<N>`` prefix when stderr is the journal.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logging"]

_JOURNAL_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    """``<priority>logger: message`` as journald reads it from stderr."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _JOURNAL_PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{record.name}: {record.getMessage()}"


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr: journald's priority prefixes under systemd, timestamps elsewhere."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
