"""Crash: SIGKILL the real ``kiosk run`` at random moments while it scans and uploads.

Each run is a fresh ``python -m kiosk``-equivalent process on one store, enrolled
at an in-process reference server, reading card images that keep arriving in a
``dir:`` folder. It is killed a random 0.05-0.5 s after it is ready; about one
run in four is instead killed while the server sits on an upload it has already
stored, the moment a lost or doubled record would come from. After all kills a
last run drains the queue. Then:

- every record in the store is at the server exactly once (none lost, none twice);
- each accept signal lit only after its record was committed: the child's mock
  green pin notes, at each rise, how many accepted records a fresh connection sees;
- ``PRAGMA integrity_check`` is ok after every kill.

The child is the real CLI with one test-only change made by :data:`LAUNCHER`:
its mock pins record the green rises. Product code has no test hook.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.config import load_config
from kiosk.demo import card_image
from kiosk.devserver import DevServer, Fault, Reply
from kiosk.store import Store
from kiosk.sync import enroll_device
from tests.kiosk_process import save_good_time
from tests.reliability.conftest import sized
from tests.test_sync_helpers import card

KILLS = sized(quick=100, full=1000)
SEED = int(os.environ.get("KIOSK_SEED", "6"))
VALID = [f"A99912{n:04d}" for n in range(40)]
UNKNOWN = [f"B77700{n:04d}" for n in range(10)]
MID_UPLOAD_SHARE = 0.25
READY_TIMEOUT = 30.0
DRAIN_RUN = 999_999  # the run number of the last, clean run

# Runs the real CLI with mock pins whose green rises are logged with the number of
# accepted records committed at that moment (a fresh connection sees only commits).
LAUNCHER = """
import contextlib, os, sqlite3, sys
from gpiozero.pins.mock import MockFactory, MockPin
import kiosk.daemon
from kiosk.cli import main

log = os.open(os.environ["ACCEPT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

class GreenRises(MockPin):
    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed and value and self.info.name == "GPIO17":
            with contextlib.closing(sqlite3.connect(os.environ["STORE"])) as conn:
                (count,) = conn.execute(
                    "SELECT count(*) FROM events WHERE result = 'accepted'").fetchone()
            # The kernel keeps a write() through SIGKILL; no fsync needed here.
            os.write(log, f"{count}\\n".encode())
        return changed

kiosk.daemon.make_pin_factory = lambda name: MockFactory(pin_class=GreenRises)
"""
# The guard removed, for the test that the check catches it: the record commits
# 0.3 s after its signal, as an asynchronous write would.
LATE_COMMIT = """
import threading
from kiosk.store import Store
_record = Store.record
def late_record(self, event):
    threading.Timer(0.3, lambda: _record(Store(self.path), event)).start()
    return 1
Store.record = late_record
"""


class CrashServer(DevServer):
    """The reference server, counting the resent events it recognised.

    With ``dedupe=False`` its events table loses its key, so a resent event is
    stored again: the guard removed, for the test that the check catches it.
    """

    def __init__(self, *, dedupe: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.duplicates = 0
        if not dedupe:
            self._db.executescript(
                "DROP TABLE events; CREATE TABLE events (event_id TEXT, device_id TEXT,"
                " batch_id TEXT, seq INTEGER, body TEXT, received_at TEXT);"
            )

    def _events(self, device: sqlite3.Row, query: str, headers: Any, body: bytes) -> Reply:
        reply = super()._events(device, query, headers, body)
        results = (reply.body or {}).get("results", [])
        self.duplicates += sum(result["status"] == "duplicate" for result in results)
        return reply


@dataclasses.dataclass
class Tally:
    kills: int = 0
    mid_upload_kills: int = 0
    accept_signals: int = 0
    integrity_failures: int = 0
    signal_before_commit: int = 0


@dataclasses.dataclass
class Kiosk:
    """One kiosk's files: store, config per run, image pool."""

    root: Path
    server: CrashServer
    patch: str = ""  # code run in the child before the CLI

    @property
    def store(self) -> Path:
        return self.root / "state" / "kiosk.db"

    def config(self, run: int) -> Path:
        images = self.root / f"images-{run}"
        images.mkdir()
        path = self.root / f"kiosk-{run}.toml"
        path.write_text(
            f'[venue]\nid = "demo-venue"\nreentry_minutes = 0\n'
            f"[rules]\nrepeat_suppress_seconds = 0.5\n"
            f'[camera]\nsource = "dir:{images}"\nfps = 120\nframes_per_image = 2\n'
            f'blank_frames = 1\n[gpio]\npin_factory = "mock"\n'
            f'[storage]\npath = "{self.store}"\nmin_free_mb = 0\n'
            f"[companions]\nwindow_seconds = 1\n"
            f'[api]\nbase_url = "{self.server.url}"\nbatch_size = 5\n'
            f"upload_interval_seconds = 0.1\ntimeout_seconds = 2\nmax_backoff_seconds = 1\n"
        )
        return path

    def start(self, config: Path, run: int, *options: str) -> subprocess.Popen[bytes]:
        code = LAUNCHER + self.patch + "main()\n"
        with open(self.root / f"run-{run}.err", "wb") as stderr:
            return subprocess.Popen(
                [sys.executable, "-c", code, "run", "--config", str(config), *options],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "ACCEPT_LOG": str(self.root / f"accepts-{run}.log"),
                    "STORE": str(self.store),
                },
            )

    def ready(self, run: int, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        log = self.root / f"run-{run}.err"
        while time.monotonic() < deadline and process.poll() is None:
            if b" ready source=" in log.read_bytes():
                return True
            time.sleep(0.01)
        return False

    def accepted(self) -> int:
        with Store(self.store) as store:
            return sum(event["result"] == "accepted" for event in store.events())

    def accept_log(self, run: int) -> list[int]:
        path = self.root / f"accepts-{run}.log"
        return [int(line) for line in path.read_text().split()] if path.exists() else []


def make_pool(folder: Path) -> list[Path]:
    folder.mkdir()
    texts = [*VALID, *UNKNOWN, "https://example.com/not-a-card"]
    pool = []
    for number, text in enumerate(texts):
        path = folder / f"{number:03d}.png"
        card_image(text, "qrcode").save(path)
        pool.append(path)
    return pool


@pytest.fixture
def kiosk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Kiosk]:
    dedupe = getattr(request, "param", True)
    cards = [card(card_id) for card_id in VALID]
    server = CrashServer(dedupe=dedupe, cards=cards, enroll_codes=["CRASH"])
    server.start()
    try:
        kiosk = Kiosk(tmp_path, server)
        config_file = kiosk.config(0)
        config = load_config(config_file)
        enroll_device(config, "CRASH", server.url)
        save_good_time(kiosk.store)
        yield kiosk
    finally:
        server.stop()


def integrity_ok(path: Path) -> bool:
    # Plain sqlite3, not Store: Store would set a damaged file aside and start afresh.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def crash_runs(
    kiosk: Kiosk,
    kills: int,
    rng: random.Random,
    *,
    mid_upload_share: float = MID_UPLOAD_SHARE,
    run_seconds: tuple[float, float] = (0.05, 0.5),
) -> Tally:
    """Start and SIGKILL the daemon ``kills`` times; returns what was seen."""
    pool = make_pool(kiosk.root / "pool")
    tally = Tally()
    shown = 0
    for run in range(1, kills + 1):
        config = kiosk.config(run)
        folder = Path(load_config(config).camera.source.removeprefix("dir:"))
        before = kiosk.accepted()
        stored_before = len(kiosk.server.stored_events())
        mid_upload = rng.random() < mid_upload_share
        kiosk.server.clear_faults()
        if mid_upload:
            # The server stores the batch, then sits on its answer until the kill.
            kiosk.server.inject(Fault("slow", path="/v1/events", delay=3.0))
        process = kiosk.start(config, run)
        try:
            assert kiosk.ready(run, process), (kiosk.root / f"run-{run}.err").read_text()
            kill_at = time.monotonic() + (5.0 if mid_upload else rng.uniform(*run_seconds))
            while time.monotonic() < kill_at:
                shutil.copyfile(rng.choice(pool), folder / f"{shown:06d}.png")
                shown += 1
                if mid_upload and len(kiosk.server.stored_events()) > stored_before:
                    break
                time.sleep(rng.uniform(0.0, 0.05))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        tally.kills += 1
        tally.mid_upload_kills += mid_upload
        rises = kiosk.accept_log(run)
        tally.accept_signals += len(rises)
        # The nth green rise of a run needs n accepted records committed in that run.
        tally.signal_before_commit += sum(
            count - before < nth for nth, count in enumerate(rises, start=1)
        )
        tally.integrity_failures += not integrity_ok(kiosk.store)
    kiosk.server.clear_faults()
    return tally


def drain(kiosk: Kiosk) -> None:
    """A last, clean run: ``--until-idle`` uploads everything before it exits."""
    process = kiosk.start(kiosk.config(DRAIN_RUN), DRAIN_RUN, "--until-idle")
    assert process.wait(60) == 0, (kiosk.root / f"run-{DRAIN_RUN}.err").read_text()


def delivery(kiosk: Kiosk) -> tuple[int, list[str], list[str]]:
    """Records in the store, those missing at the server, those stored there twice."""
    with Store(kiosk.store) as store:
        local = [event["event_id"] for event in store.events()]
    at_server = collections.Counter(event["event_id"] for event in kiosk.server.stored_events())
    lost = [event_id for event_id in local if at_server[event_id] == 0]
    doubled = [event_id for event_id, times in at_server.items() if times > 1]
    return len(local), lost, doubled


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(kiosk: Kiosk) -> None:
    rng = random.Random(SEED)
    tally = crash_runs(kiosk, KILLS, rng)
    drain(kiosk)
    records, lost, doubled = delivery(kiosk)
    print(
        f"\n{tally.kills} kills ({tally.mid_upload_kills} mid-upload), {records} records,"
        f" {tally.accept_signals} accept signals, {kiosk.server.duplicates} resent and"
        f" deduped: {len(lost)} lost, {len(doubled)} duplicated,"
        f" {tally.integrity_failures} integrity failures,"
        f" {tally.signal_before_commit} signals before commit"
    )
    assert tally.kills == KILLS and records > KILLS and tally.accept_signals > KILLS / 4
    assert (len(lost), len(doubled)) == (0, 0)
    assert tally.integrity_failures == 0 and tally.signal_before_commit == 0
    assert kiosk.server.duplicates > 0, "no kill came between the server's store and its answer"
    with Store(kiosk.store) as store:
        assert store.queue_depth() == 0
    assert not list(kiosk.store.parent.glob("*.corrupt-*"))


@pytest.mark.parametrize("kiosk", [False], indirect=True, ids=["server-dedupe-off"])
def test_the_check_sees_duplicates_when_the_server_does_not_dedupe(kiosk: Kiosk) -> None:
    # The guard removed: resent events are stored twice, and the check must say so.
    crash_runs(kiosk, 4, random.Random(SEED), mid_upload_share=1.0)
    drain(kiosk)
    records, lost, doubled = delivery(kiosk)
    print(f"\nserver dedupe off: {len(doubled)} of {records} records stored twice or more")
    assert lost == [] and len(doubled) > 0


def test_the_check_sees_a_signal_shown_before_its_commit(kiosk: Kiosk) -> None:
    kiosk.patch = LATE_COMMIT
    tally = crash_runs(kiosk, 2, random.Random(SEED), mid_upload_share=0, run_seconds=(2, 2))
    print(f"\nlate commit: {tally.signal_before_commit} of {tally.accept_signals} before commit")
    assert tally.accept_signals > 0 and tally.signal_before_commit > 0
