"""The sync worker: uploads the queue, pulls the card registry, sends heartbeats.

:class:`SyncWorker` runs in a thread of its own with its own :class:`Store`
connection; the scan loop never waits on it. Three tasks share one loop, each
with its own schedule and backoff (exponential, full jitter, capped at
``api.max_backoff_seconds``, never sooner than a ``Retry-After``):

- upload: closed records oldest first, in batches of ``api.batch_size``. A
  record is marked delivered only after a 200 lists it as stored or duplicate,
  so a crash at any moment at worst resends it and the server dedupes by
  ``event_id``. ``invalid`` events, a whole-batch 400 and a single event the
  server finds too large (413) are quarantined: kept and shown, never resent.
- registry: each page of the card delta and its ``next`` cursor commit in one
  transaction, so an interrupted sync resumes where it stopped. A page with a
  malformed row is refused whole.
- heartbeat: reports health; its ``server_time`` feeds the trusted-time floor.

A 401 stops all calls and sets ``must_enroll`` in the store until ``kiosk
enroll`` clears it. Retention (deleting delivered records after
``privacy.retention_days``) runs here too, hourly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import platform
import random
import re
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kiosk.api import (
    SOFTWARE_VERSION,
    ApiClient,
    BatchRejected,
    BatchTooLarge,
    Enrollment,
    EventResult,
    RetryableError,
)
from kiosk.config import Config
from kiosk.counters import LAST_REGISTRY_SYNC
from kiosk.credentials import Credentials, Device, load_credentials, write_enrollment
from kiosk.errors import ApiError, AuthError, KioskError
from kiosk.payload import CARD_ID, mask_card_id
from kiosk.store import CardRow, Store

__all__ = [
    "BACKOFF_META",
    "LAST_HEARTBEAT_META",
    "LAST_UPLOAD_META",
    "MUST_ENROLL_META",
    "REGISTRY_CURSOR_META",
    "MalformedPage",
    "NotEnrolled",
    "SyncWorker",
    "UploadReport",
    "backoff_delay",
    "card_row",
    "enroll_device",
    "event_body",
]

log = logging.getLogger(__name__)

# Keys of the store's meta table this module maintains (read by `kiosk status`).
MUST_ENROLL_META = "must_enroll"
REGISTRY_CURSOR_META = "registry_cursor"
LAST_UPLOAD_META = "last_upload"
LAST_HEARTBEAT_META = "last_heartbeat"
BACKOFF_META = "sync_backoff"

BACKOFF_BASE_SECONDS = 1.0
HEARTBEAT_INTERVAL_SECONDS = 60.0
RETENTION_INTERVAL_SECONDS = 3600.0
REGISTRY_PAGE_SIZE = 500
# The API event body: these columns of the events table, clock_trusted as a bool.
EVENT_FIELDS = (
    "event_id",
    "seq",
    "card_id",
    "result",
    "reason",
    "adults",
    "children",
    "category",
    "mode",
    "venue_id",
    "scanned_at",
)
CARD_KINDS = ("personal", "community")
CARD_STATUSES = ("active", "inactive")
BATCH_NAMESPACE = uuid.UUID("6f1c1d2e-7a57-4c53-9a55-6b61696b7500")


class NotEnrolled(ApiError):
    """The device has no token yet: it scans offline until `kiosk enroll`."""


class MalformedPage(ApiError):
    """A registry page with a row the kiosk cannot trust; the page is refused whole."""


@dataclasses.dataclass
class UploadReport:
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    batches: int = 0

    @property
    def done(self) -> int:
        return self.stored + self.duplicate + self.quarantined


@dataclasses.dataclass
class _Task:
    name: str
    interval: float
    action: Callable[[], object]
    due: float = 0.0  # monotonic time; 0 means at start
    failures: int = 0


def backoff_delay(
    failures: int,
    base: float,
    cap: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Full jitter: a uniform wait between 0 and ``min(cap, base * 2**(failures-1))``."""
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 62))
    return uniform(0.0, ceiling)


def event_body(row: Mapping[str, Any]) -> dict[str, Any]:
    """One record of the events table as the API's event object."""
    body = {field: row[field] for field in EVENT_FIELDS}
    body["clock_trusted"] = bool(row["clock_trusted"])
    return body


def card_row(card: Mapping[str, Any], updated_at: str) -> CardRow:
    """Validate one registry row from the server; :class:`MalformedPage` if it is wrong."""
    try:
        card_id, children = card["card_id"], card["children"]
        row = CardRow(
            card_id=card_id,
            kind=card["kind"],
            status=card["status"],
            valid_from=dt.date.fromisoformat(card["valid_from"]),
            valid_until=dt.date.fromisoformat(card["valid_until"]),
            children=children,
            updated_at=updated_at,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise MalformedPage(f"malformed card row: {type(error).__name__}") from None
    if not isinstance(card_id, str) or not CARD_ID.fullmatch(card_id):
        raise MalformedPage("malformed card row: bad card_id")
    if row.kind not in CARD_KINDS or row.status not in CARD_STATUSES:
        raise MalformedPage(f"malformed card row {mask_card_id(card_id)}: bad kind or status")
    if children is not None and (
        isinstance(children, bool) or not isinstance(children, int) or children < 0
    ):
        raise MalformedPage(f"malformed card row {mask_card_id(card_id)}: bad children")
    return row


def _batch_id(batch: list[dict[str, Any]]) -> str:
    # The same events always make the same batch id, so a resent batch is
    # recognisable as a retry (Idempotency-Key), even after a restart.
    return str(uuid.uuid5(BATCH_NAMESPACE, ",".join(row["event_id"] for row in batch)))


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _no_health() -> dict[str, Any]:
    return {}


def _ignore_time(_: dt.datetime) -> None:
    return None


class SyncWorker:
    """Everything the kiosk does with the central API, for the daemon's sync thread.

    ``clock`` gives the wall time to stamp state with; ``health`` what the daemon
    knows (``camera_ok``, ``clock_synced``, optionally ``uptime_s``);
    ``on_server_time`` receives every server time the API reports. ``monotonic``,
    ``uniform`` and ``backoff_base`` let tests compress time.
    """

    def __init__(
        self,
        config: Config,
        store_path: Path | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        health: Callable[[], Mapping[str, Any]] = _no_health,
        on_server_time: Callable[[dt.datetime], None] = _ignore_time,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        uniform: Callable[[float, float], float] = random.uniform,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        registry_page_size: int = REGISTRY_PAGE_SIZE,
    ) -> None:
        self.config = config
        self.store_path = store_path or config.storage.path
        self._clock = clock
        self._health = health
        self._on_server_time = on_server_time
        self._monotonic = monotonic
        self._uniform = uniform
        self._backoff_base = backoff_base
        self._page_size = registry_page_size
        self._started = monotonic()
        self._store: Store | None = None
        self._client: ApiClient | None = None
        self._credentials: Credentials | None = None
        # Shrinks after a 413 so later rounds do not hit the same wall.
        self._batch_size = config.api.batch_size
        self._retention_due = 0.0
        self._must_enroll = False
        self._disk_low = False
        self._tasks = (
            _Task("upload", config.api.upload_interval_seconds, self.upload),
            _Task("registry", config.api.registry_sync_interval_seconds, self.sync_registry),
            _Task("heartbeat", HEARTBEAT_INTERVAL_SECONDS, self.heartbeat),
        )

    # --- the daemon's interface ---------------------------------------------

    @property
    def fault(self) -> str | None:
        """What the fault signal should show: ``must_enroll``, ``disk_low`` or None."""
        if self._must_enroll:
            return "must_enroll"
        return "disk_low" if self._disk_low else None

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; meant as a thread's target."""
        try:
            while not stop.is_set():
                stop.wait(self.run_once())
        finally:
            self.close()

    def run_once(self) -> float:
        """Run every task that is due; returns the seconds until one is due again."""
        try:
            self._housekeeping()
        except (KioskError, sqlite3.Error) as error:
            log.error("housekeeping failed error=%s", error)
        for task in self._tasks:
            if self._monotonic() < task.due:
                continue
            try:
                task.action()
            except NotEnrolled:
                # An offline site never enrolls; that is a choice, not a fault.
                return self.config.api.upload_interval_seconds
            except AuthError as error:
                self._must_enroll = True
                log.warning("sync stopped task=%s reason=%s", task.name, error)
                return self.config.api.upload_interval_seconds
            except (KioskError, sqlite3.Error) as error:
                # A busy or failing store is retried like the network: never fatal.
                self._failed(task, error)
            else:
                self._succeeded(task)
        return max(0.0, min(task.due for task in self._tasks) - self._monotonic())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- tasks (also called directly by `kiosk sync`) -------------------------

    def upload(self, progress: Callable[[UploadReport], None] | None = None) -> UploadReport:
        """Send every closed, undelivered record, oldest first, until the queue is empty."""
        store, client, device_id = self._connect()
        report = UploadReport()
        with self._auth_guard(store):
            while batch := store.pending(self._batch_size):
                done_before = report.done
                try:
                    results = client.post_events(
                        device_id, _batch_id(batch), [event_body(row) for row in batch]
                    )
                except BatchTooLarge:
                    self._split(store, batch, report)
                    continue
                except BatchRejected as error:
                    self._quarantine(store, batch, error.error, report)
                    continue
                self._apply_results(store, batch, results, report)
                if progress is not None:
                    progress(report)
                if report.done == done_before:
                    raise RetryableError("the central API listed none of the batch's events")
        return report

    def sync_registry(self) -> int:
        """Pull the card delta page by page; returns how many card rows were applied."""
        store, client, _ = self._connect()
        applied = 0
        with self._auth_guard(store):
            cursor = store.get_meta(REGISTRY_CURSOR_META)
            while True:
                page = client.cards(cursor, self._page_size)
                now = self._timestamp()
                rows = [card_row(card, now) for card in page.cards]
                with store.transaction() as conn:
                    store.upsert_cards(conn, rows)
                    store.set_meta(conn, REGISTRY_CURSOR_META, page.next)
                    if not page.more:
                        store.set_meta(conn, LAST_REGISTRY_SYNC, now)
                self._on_server_time(page.server_time)
                applied += len(rows)
                log.info("registry page cards=%d more=%s", len(rows), page.more)
                cursor = page.next
                if not page.more:
                    return applied

    def heartbeat(self) -> dt.datetime:
        """Report the device's health; feeds and returns the server's time."""
        store, client, device_id = self._connect()
        health = dict(self._health())
        report = {
            "device_id": device_id,
            "software_version": SOFTWARE_VERSION,
            "queue_depth": store.queue_depth(),
            "quarantined": len(store.quarantined()),
            "last_registry_sync": store.get_meta(LAST_REGISTRY_SYNC),
            "registry_cards": store.card_count(),
            "camera_ok": bool(health.get("camera_ok", False)),
            "clock_synced": bool(health.get("clock_synced", False)),
            "disk_free_bytes": self._disk_free(),
            "uptime_s": int(health.get("uptime_s", self._monotonic() - self._started)),
        }
        with self._auth_guard(store):
            server_time = client.heartbeat(report)
        store.put_meta(LAST_HEARTBEAT_META, self._timestamp())
        self._on_server_time(server_time)
        return server_time

    def apply_retention(self) -> int:
        """Delete delivered records older than ``privacy.retention_days``."""
        store = self._open_store()
        cutoff = self._clock() - dt.timedelta(days=self.config.privacy.retention_days)
        # scanned_at is stored in the venue's offset; compare in the same one.
        text = cutoff.astimezone(self.config.venue.tz).isoformat(timespec="seconds")
        deleted = store.delete_delivered_before(text)
        if deleted:
            # Deleted rows also leave the write-ahead log, not just the main file.
            store.checkpoint()
            log.info("retention deleted=%d cutoff=%s", deleted, text)
        return deleted

    # --- internals -----------------------------------------------------------

    def _open_store(self) -> Store:
        # Opened lazily, so the connection belongs to the thread that runs us.
        if self._store is None:
            self._store = Store(self.store_path)
        return self._store

    def _connect(self) -> tuple[Store, ApiClient, str]:
        """The store, a client for the current credentials and the device id."""
        store = self._open_store()
        if store.get_meta(MUST_ENROLL_META) == "1":
            raise AuthError("the central API refused the token: enroll the device again")
        credentials = load_credentials(self.config.storage.state_dir)
        if credentials is None:
            raise NotEnrolled("the device is not enrolled: run `kiosk enroll CODE --api URL`")
        if self._client is None or credentials != self._credentials:
            if self._client is not None:
                self._client.close()
            self._client = ApiClient(
                credentials.device.api,
                credentials.token,
                timeout=self.config.api.timeout_seconds,
                ca_file=self.config.api.ca_file,
            )
            self._credentials = credentials
        return store, self._client, credentials.device.device_id

    @contextlib.contextmanager
    def _auth_guard(self, store: Store) -> Iterator[None]:
        """On a 401, remember in the store that the device must be enrolled again."""
        try:
            yield
        except AuthError:
            # The fault shows at once, whether run_once or `kiosk sync` met the 401.
            self._must_enroll = True
            store.put_meta(MUST_ENROLL_META, "1")
            log.error("api token refused action=stop_calling must_enroll=1")
            raise

    def _timestamp(self) -> str:
        return self._clock().isoformat(timespec="seconds")

    def _apply_results(
        self,
        store: Store,
        batch: list[dict[str, Any]],
        results: list[EventResult],
        report: UploadReport,
    ) -> None:
        sent = {row["event_id"] for row in batch}
        delivered = {r.event_id: r.status for r in results if r.event_id in sent}
        invalid = {
            r.event_id: r.error or "invalid"
            for r in results
            if r.event_id in sent and r.status == "invalid"
        }
        now = self._timestamp()
        store.mark_delivered(
            [event_id for event_id, status in delivered.items() if status != "invalid"], now
        )
        store.quarantine(invalid, now)
        store.put_meta(LAST_UPLOAD_META, now)
        stored = sum(status == "stored" for status in delivered.values())
        duplicate = sum(status == "duplicate" for status in delivered.values())
        report.stored += stored
        report.duplicate += duplicate
        report.quarantined += len(invalid)
        report.batches += 1
        log.info(
            "upload batch=%s events=%d stored=%d duplicate=%d invalid=%d",
            _batch_id(batch),
            len(batch),
            stored,
            duplicate,
            len(invalid),
        )
        for event_id, error in invalid.items():
            log.warning("upload quarantined event=%s error=%s", event_id, _one_line(error))

    def _split(self, store: Store, batch: list[dict[str, Any]], report: UploadReport) -> None:
        if len(batch) == 1:
            self._quarantine(store, batch, "too large for the central API (413)", report)
            return
        self._batch_size = len(batch) // 2
        log.warning("upload too_large=%d batch_size=%d", len(batch), self._batch_size)

    def _quarantine(
        self, store: Store, batch: list[dict[str, Any]], error: str, report: UploadReport
    ) -> None:
        store.quarantine({row["event_id"]: error for row in batch}, self._timestamp())
        report.quarantined += len(batch)
        log.warning(
            "upload quarantined batch=%s events=%d error=%s",
            _batch_id(batch),
            len(batch),
            _one_line(error),
        )

    def _succeeded(self, task: _Task) -> None:
        self._must_enroll = False
        task.due = self._monotonic() + task.interval
        if task.failures:
            task.failures = 0
            self._open_store().delete_meta(BACKOFF_META)
            log.info("sync recovered task=%s", task.name)

    def _failed(self, task: _Task, error: Exception) -> None:
        task.failures += 1
        delay = backoff_delay(
            task.failures, self._backoff_base, self.config.api.max_backoff_seconds, self._uniform
        )
        retry_after = error.retry_after if isinstance(error, RetryableError) else None
        if retry_after is not None:
            delay = max(delay, retry_after)
        task.due = self._monotonic() + delay
        log.warning(
            "sync failed task=%s failures=%d retry_in=%.1f error=%s",
            task.name,
            task.failures,
            delay,
            _one_line(str(error)),
        )
        state = {
            "task": task.name,
            "failures": task.failures,
            "retry_in_seconds": round(delay, 1),
            "since": self._timestamp(),
            "error": _one_line(str(error))[:200],
        }
        with contextlib.suppress(KioskError):
            self._open_store().put_meta(BACKOFF_META, json.dumps(state))

    def _housekeeping(self) -> None:
        """Retention (hourly) and the free-disk check (every round); no network."""
        self._open_store()  # creates the state directory the disk check looks at
        self._disk_low = self._disk_free() < self.config.storage.min_free_mb * 1024 * 1024
        if self._monotonic() >= self._retention_due:
            self._retention_due = self._monotonic() + RETENTION_INTERVAL_SECONDS
            self.apply_retention()

    def _disk_free(self) -> int:
        try:
            return shutil.disk_usage(self.config.storage.state_dir).free
        except OSError:
            return 0


DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def _model() -> str:
    try:
        return DEVICE_TREE_MODEL.read_text(encoding="utf-8").rstrip("\x00\n")
    except OSError:
        return platform.machine() or "unknown"


def enroll_device(config: Config, code: str, url: str) -> Enrollment:
    """Trade a one-time code at the API ``url`` for this device's token, and store it.

    Writes ``<state dir>/token`` and ``device.json`` (mode 0600) and clears a
    "must enroll again" left by an earlier 401.
    """
    device = {
        "hostname": socket.gethostname(),
        "model": _model(),
        "software_version": SOFTWARE_VERSION,
    }
    with ApiClient(url, timeout=config.api.timeout_seconds, ca_file=config.api.ca_file) as api:
        enrollment = api.enroll(code, device)
    write_enrollment(
        config.storage.state_dir,
        Device(enrollment.device_id, enrollment.venue_id, url),
        enrollment.token,
    )
    with Store(config.storage.path) as store:
        store.delete_meta(MUST_ENROLL_META)
    return enrollment


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
