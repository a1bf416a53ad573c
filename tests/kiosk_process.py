"""Running the real ``kiosk run`` as a child process, for tests that need a whole
process (a faked system clock with libfaketime, or a crash), and the kiosk state
such a run starts from."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from kiosk.config import Config
from kiosk.counters import TIME_FLOOR
from kiosk.store import Store

__all__ = ["kiosk_run", "save_good_time", "write_config"]


def save_good_time(store_path: Path, when: dt.datetime | None = None) -> None:
    """Save a trusted-time floor in the store, as a kiosk that once synchronised has.

    Without it, a machine with no systemd time sync flag (a CI container) trusts
    its wall clock only within 30 days of the software's release date.
    """
    moment = when or dt.datetime.now(dt.UTC)
    with Store(store_path) as store, store.transaction() as conn:
        store.set_meta(conn, TIME_FLOOR, moment.isoformat())


def write_config(config: Config, path: Path) -> Path:
    """The parts of ``config`` the tests change, as a kiosk.toml file."""
    camera, venue, gpio = config.camera, config.venue, config.gpio
    # A file allows 1 to 120 fps and windows of at least 1 s; fixtures go faster.
    fps = min(camera.fps, 120)
    window = max(config.companions.window_seconds, 1.0)
    pins = "".join(
        f"{key} = {getattr(gpio, key) or 'false'}\n"
        for key in ("relay", "child_button", "done_button")
    )
    closed = json.dumps([day.isoformat() for day in venue.closed_dates])
    path.write_text(
        f'[venue]\ncategory = "{venue.category}"\nmode = "{venue.mode}"\n'
        f"daily_cap = {venue.daily_cap}\nreentry_minutes = {venue.reentry_minutes}\n"
        f"closed_dates = {closed}\n"
        f'[rules]\nunknown_card = "{config.rules.unknown_card}"\n'
        f"repeat_suppress_seconds = {config.rules.repeat_suppress_seconds}\n"
        f'[camera]\nsource = "{camera.source}"\nfps = {fps}\n'
        f"frames_per_image = {camera.frames_per_image}\nblank_frames = {camera.blank_frames}\n"
        f'[gpio]\npin_factory = "mock"\n{pins}'
        f'[storage]\npath = "{config.storage.path}"\n'
        f"[companions]\nwindow_seconds = {window}\n"
    )
    return path


def kiosk_run(config_file: Path, *options: str, **env: str) -> subprocess.Popen[bytes]:
    """Start ``python -m kiosk run --config FILE [options]`` with ``env`` added."""
    return subprocess.Popen(
        [sys.executable, "-m", "kiosk", "run", "--config", str(config_file), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )
