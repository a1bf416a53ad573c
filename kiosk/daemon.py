"""The kiosk daemon: the one place that wires the adapters together.

The scan loop runs on the main thread: frame → decoder → payload → rules →
durable record → signal. It never waits on the network; uploads and registry
sync run in a worker thread with their own store connection. A record is
committed (``synchronous=FULL``) before its signal is shown, so no holder is
admitted without a record.

After an accepted scan a *companion window* stays open for
``companions.window_seconds``: each child button press or child-code scan adds
one child up to the card's limit, and the record becomes uploadable when the
window closes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import queue
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from kiosk.clock import Reading, TrustedClock, boot_id
from kiosk.config import Config
from kiosk.counters import TIME_FLOOR, read_counters, saved_floor
from kiosk.decoder import Decoder, make_decoder
from kiosk.errors import CameraError, KioskError, StoreError
from kiosk.notify import notify, watchdog_interval
from kiosk.payload import Payload, mask_card_id, parse_payload
from kiosk.rules import Decision, child_admission, decide
from kiosk.signals import Signals, make_pin_factory
from kiosk.sources import Source, open_source
from kiosk.store import EventRecord, Store, new_event_id
from kiosk.sync import NotEnrolled, SyncWorker

__all__ = ["Daemon", "ScanReport"]

log = logging.getLogger(__name__)

# Camera retry backoff: first retry after 1 s, doubling up to 3 s, so scanning
# resumes within a few seconds of the camera coming back however long it was gone.
CAMERA_RETRY_FIRST = 1.0
CAMERA_RETRY_MAX = 3.0
# A live camera that delivers no frame for this long is treated as failed.
CAMERA_STALL_SECONDS = 3.0
# While waiting for the camera, each ping extends systemd's start timeout by this.
START_EXTENSION = "EXTEND_TIMEOUT_USEC=30000000"
START_EXTENSION_PING = 5.0
# How often the trusted-time floor is saved, so a reboot starts from it.
FLOOR_SAVE_SECONDS = 600.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Reasons where a staff member can help the holder; these show amber "see staff".
SEE_STAFF_REASONS = frozenset(
    {"unknown_card", "inactive_card", "expired", "not_yet_valid", "quota_full", "already_used"}
)


@dataclasses.dataclass(frozen=True)
class ScanReport:
    """What happened at the kiosk, for the console, the demo and tests."""

    kind: str  # "decision", "child", "child_refused", "window_closed", "fault"
    seq: int | None
    card: str  # masked card id
    result: str
    reason: str
    adults: int
    children: int
    panel: str
    at: dt.datetime


@dataclasses.dataclass
class _Window:
    """An open companion window after an accepted scan."""

    seq: int
    card: str
    max_children: int
    children: int
    closes_at: float


class Daemon:
    """Runs the scan loop until stopped (SIGTERM) or, with ``until_idle``, until a
    replay source is exhausted and all work is done."""

    def __init__(
        self,
        config: Config,
        *,
        source: Source | None = None,
        decoder: Decoder | None = None,
        pin_factory: Any = None,
        clock: TrustedClock | None = None,
        until_idle: bool = False,
        paced: bool = True,
        on_report: Callable[[ScanReport], None] | None = None,
    ) -> None:
        self.config = config
        self.until_idle = until_idle
        self._on_report = on_report
        self._stop = threading.Event()
        self._inputs: queue.Queue[str] = queue.Queue()
        self._source = source or open_source(config.camera, paced=paced)
        self._source_open = False
        self._retry_at = 0.0
        self._retry_delay = CAMERA_RETRY_FIRST
        self._last_frame_at = time.monotonic()
        self._live_camera = source is None and not config.camera.source.startswith(("dir:", "hid:"))
        self._decoder = decoder
        self._pin_factory = pin_factory
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._in_view: set[str] = set()
        self._window: _Window | None = None
        self._unclosed: set[int] = set()  # records whose window could not be closed
        self._boot_id = boot_id()
        self._ready = False
        self._faults: set[str] = set()
        self._started = time.monotonic()
        self.reports: list[ScanReport] = []

    # --- lifecycle ----------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Run until stopped; returns the process exit status."""
        config = self.config
        store = Store(config.storage.path)
        try:
            floor, store_fault = self._recover(store)
            clock = self._clock or TrustedClock(floor)
            factory = self._pin_factory
            if factory is None:
                factory = make_pin_factory(config.gpio.pin_factory)
            signals = Signals(config.gpio, factory)
            self._set_fault(signals, "store", store_fault)
            signals.on_child_button(lambda: self._inputs.put("child"))
            signals.on_done_button(lambda: self._inputs.put("done"))
            decoder = self._decoder or make_decoder(config.decoder)
            worker = SyncWorker(
                config,
                clock=lambda: clock.read().now,
                health=lambda: self._health(clock),
                on_server_time=clock.observe_server_time,
            )
            sync_stop = threading.Event()
            sync_thread = threading.Thread(
                target=worker.run, args=(sync_stop,), name="sync", daemon=True
            )
            sync_thread.start()
            restore = self._install_signal_handlers()
            try:
                self._loop(store, clock, signals, decoder, worker)
            finally:
                restore()
                self._close_window(store, signals)
                self._save_floor(store, clock)
                self._source.close()
                sync_stop.set()
                sync_thread.join(config.api.timeout_seconds + 5)
                # The worker's store connection belongs to its thread: reuse the
                # worker here only once that thread has ended.
                if self.until_idle and not self._stop.is_set() and not sync_thread.is_alive():
                    self._final_upload(worker)
                signals.close()
                notify("STOPPING=1")
        finally:
            store.close()
        return 0

    def _recover(self, store: Store) -> tuple[dt.datetime | None, str | None]:
        """Close records a crash left open; returns the saved time floor and any
        store fault. A store damaged deep inside stays up as a fault to see, not
        a restart loop with dark lights."""
        try:
            reopened = store.close_open_events()
            if reopened:
                log.warning("restart closed_open_records=%d", reopened)
            return saved_floor(store), None
        except (StoreError, sqlite3.DatabaseError) as error:
            return None, str(error)

    def _health(self, clock: TrustedClock) -> dict[str, Any]:
        """What the heartbeat reports about the scanning side."""
        return {
            "camera_ok": "camera" not in self._faults,
            "clock_synced": clock.synchronised,
            "uptime_s": int(time.monotonic() - self._started),
        }

    def _final_upload(self, worker: SyncWorker) -> None:
        """With ``--until-idle``, deliver what was recorded before exiting, if the API answers."""
        try:
            report = worker.upload()
            log.info("final upload delivered=%d", report.done)
        except NotEnrolled:
            pass
        except KioskError as error:
            log.warning("final upload failed, records stay queued error=%s", error)
        finally:
            worker.close()

    def _install_signal_handlers(self) -> Callable[[], None]:
        """SIGTERM and SIGINT stop the loop cleanly; returns what puts the old handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("stopping signal=%s", signal.Signals(signum).name)
            self._stop.set()

        previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}

        def restore() -> None:
            for number, old in previous.items():
                signal.signal(number, old)

        return restore

    # --- the loop -------------------------------------------------------------

    def _loop(
        self,
        store: Store,
        clock: TrustedClock,
        signals: Signals,
        decoder: Decoder,
        worker: SyncWorker,
    ) -> None:
        interval = watchdog_interval() or START_EXTENSION_PING
        last_ping = 0.0
        last_floor_save = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_ping >= interval:
                # Until the camera gives a frame the service is still starting:
                # the fault signal shows, and the start timeout is stretched from
                # here, so a hung loop still gets restarted but a missing camera
                # does not make a crash loop.
                notify("WATCHDOG=1" if self._ready else START_EXTENSION)
                last_ping = now
            if now - last_floor_save >= FLOOR_SAVE_SECONDS:
                self._save_floor(store, clock)
                last_floor_save = now
            self._set_fault(signals, "sync", worker.fault)
            for seq in sorted(self._unclosed):
                self._close_record(store, signals, seq)
            self._drain_inputs(store, signals)
            if self._window is not None and now >= self._window.closes_at:
                self._close_window(store, signals)
            item = self._next_item(signals)
            if item is None:
                if self.until_idle and self._source.exhausted and self._inputs.empty():
                    break
                continue
            payloads = self._payloads(item, decoder)
            # A code still in view from the previous frame is the same scan, however
            # slowly frames arrive; a scanner's texts are each a scan of their own.
            held = self._in_view
            self._in_view = {p.key for p in payloads} if not isinstance(item, str) else set()
            for payload in payloads:
                if not self._is_repeat(payload, held):
                    self._handle(payload, store, signals, clock)

    def _next_item(self, signals: Signals) -> Any:
        """The next frame or text, keeping the camera open and faults shown."""
        now = time.monotonic()
        if not self._source_open:
            if now < self._retry_at:
                time.sleep(min(0.1, self._retry_at - now))
                return None
            try:
                self._source.open()
            except CameraError as error:
                self._camera_failed(signals, error)
                return None
            self._source_open = True
            self._last_frame_at = now
        try:
            item = self._source.read()
            if item is None and self._live_camera:
                if time.monotonic() - self._last_frame_at > CAMERA_STALL_SECONDS:
                    raise CameraError("the camera gave no frame for a while")
                return None
        except CameraError as error:
            self._source.close()
            self._source_open = False
            self._camera_failed(signals, error)
            return None
        if item is not None:
            self._last_frame_at = time.monotonic()
        self._camera_ok(signals)
        return item

    def _set_fault(self, signals: Signals, name: str, detail: str | None) -> None:
        """Raise or clear one fault; the fault signal shows while any is raised."""
        if (name in self._faults) == (detail is not None):
            return
        if detail is not None:
            self._faults.add(name)
            log.error("fault %s=%s", name, detail)
            self._report(signals, "fault", result="fault", reason=name)
        else:
            self._faults.discard(name)
            log.info("fault cleared %s", name)
        signals.fault(bool(self._faults))

    def _camera_failed(self, signals: Signals, error: CameraError) -> None:
        self._set_fault(signals, "camera", str(error))
        log.info("camera retry_in=%.0fs", self._retry_delay)
        notify(f"STATUS=camera fault, retrying: {error}")
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, CAMERA_RETRY_MAX)

    def _camera_ok(self, signals: Signals) -> None:
        self._retry_delay = CAMERA_RETRY_FIRST
        self._set_fault(signals, "camera", None)
        if not self._ready:
            self._ready = True
            notify("READY=1\nSTATUS=scanning")
            log.info("ready source=%s", self.config.camera.source.split(":", 1)[0])

    def _payloads(self, item: Any, decoder: Decoder) -> list[Payload]:
        hosts = self.config.decoder.card_url_hosts
        codes = (self.config.companions.child_code, self.config.companions.done_code)
        if isinstance(item, str):
            raws: list[bytes | str] = [item]
        else:
            raws = [symbol.data for symbol in decoder.decode(item)]
        return [parse_payload(raw, hosts, codes) for raw in raws]

    def _is_repeat(self, payload: Payload, held: set[str]) -> bool:
        """Whether this read repeats a scan: the code was in view in the previous frame,
        or was seen within ``repeat_suppress_seconds``."""
        now = time.monotonic()
        window = self.config.rules.repeat_suppress_seconds
        last = self._seen.get(payload.key)
        self._seen[payload.key] = now
        if len(self._seen) > 1000:
            self._seen = {key: at for key, at in self._seen.items() if now - at < window}
        return payload.key in held or (last is not None and now - last < window)

    def _drain_inputs(self, store: Store, signals: Signals) -> None:
        while True:
            try:
                button = self._inputs.get_nowait()
            except queue.Empty:
                return
            if button == "child":
                self._add_child(store, signals)
            else:
                self._close_window(store, signals)

    # --- decisions --------------------------------------------------------------

    def _handle(
        self, payload: Payload, store: Store, signals: Signals, clock: TrustedClock
    ) -> None:
        if payload.control == self.config.companions.child_code:
            self._add_child(store, signals)
            return
        if payload.control == self.config.companions.done_code:
            self._close_window(store, signals)
            return
        self._close_window(store, signals)
        reading = clock.read()
        try:
            card = store.card(payload.card_id) if payload.card_id else None
            counters = read_counters(store, self.config, payload.card_id, reading.now)
            decision = decide(payload.card_id, card, reading.now, counters, self.config)
            seq = store.record(self._record(payload, decision, reading))
        except (StoreError, sqlite3.DatabaseError) as error:
            # Nothing can be looked up or recorded, so nobody is admitted: see
            # staff. Damage deep in the file shows only when a page is read;
            # `kiosk doctor` runs the full integrity check.
            self._set_fault(signals, "store", str(error))
            return
        self._set_fault(signals, "store", None)
        masked = mask_card_id(payload.card_id)
        log.info(
            "decision seq=%d card=%s result=%s reason=%s clock_trusted=%s",
            seq,
            masked,
            decision.result,
            decision.reason,
            reading.trusted,
        )
        if decision.accepted:
            signals.accept()
            self._window = _Window(
                seq=seq,
                card=masked,
                max_children=decision.max_children,
                children=0,
                closes_at=time.monotonic() + self.config.companions.window_seconds,
            )
        else:
            signals.reject(see_staff=decision.reason in SEE_STAFF_REASONS)
        self._report(
            signals,
            "decision",
            seq=seq,
            card=masked,
            result=decision.result,
            reason=decision.reason,
            adults=decision.adults,
        )

    def _record(self, payload: Payload, decision: Decision, reading: Reading) -> EventRecord:
        venue = self.config.venue
        local = reading.now.astimezone(venue.tz)
        return EventRecord(
            event_id=new_event_id(),
            card_id=payload.card_id,
            payload_sha256=None if payload.card_id else payload.digest,
            result=decision.result,
            reason=decision.reason,
            adults=decision.adults,
            children=0,
            max_children=decision.max_children,
            category=venue.category,
            mode=venue.mode,
            venue_id=venue.id,
            scanned_at=local.isoformat(timespec="milliseconds"),
            local_date=local.date().isoformat(),
            mono_ns=reading.monotonic_ns,
            boot_id=self._boot_id,
            clock_trusted=reading.trusted,
            # An accepted record stays open while children may still be added.
            closed=not decision.accepted,
        )

    def _add_child(self, store: Store, signals: Signals) -> None:
        window = self._window
        if window is None or not child_admission(window.children, window.max_children):
            signals.reject(see_staff=False)
            log.info("child refused card=%s", window.card if window else "-")
            self._report(signals, "child_refused", window, result="rejected")
            return
        try:
            store.add_child(window.seq)
        except StoreError as error:
            self._set_fault(signals, "store", str(error))
            return
        window.children += 1
        # Each child restarts the window, so a family can come through at its pace.
        window.closes_at = time.monotonic() + self.config.companions.window_seconds
        signals.child()
        log.info("child seq=%d card=%s children=%d", window.seq, window.card, window.children)
        self._report(signals, "child", window, result="accepted")

    def _close_window(self, store: Store, signals: Signals) -> None:
        window, self._window = self._window, None
        if window is None:
            return
        self._close_record(store, signals, window.seq)
        self._report(signals, "window_closed", window, result="accepted")

    def _close_record(self, store: Store, signals: Signals, seq: int) -> None:
        try:
            store.close_event(seq)
        except StoreError as error:
            # Retried every loop: an open record is not uploaded, and waiting for
            # the next start could take weeks on a kiosk that is never restarted.
            self._unclosed.add(seq)
            self._set_fault(signals, "store", str(error))
        else:
            self._unclosed.discard(seq)

    def _save_floor(self, store: Store, clock: TrustedClock) -> None:
        with contextlib.suppress(StoreError), store.transaction() as conn:
            store.set_meta(conn, TIME_FLOOR, clock.floor().isoformat())

    def _report(
        self,
        signals: Signals,
        kind: str,
        window: _Window | None = None,
        *,
        seq: int | None = None,
        card: str = "-",
        result: str = "",
        reason: str = "",
        adults: int = 0,
        children: int = 0,
    ) -> None:
        if window is not None:
            # Child and window reports describe the accepted record the window belongs to.
            seq, card, adults, children = window.seq, window.card, 1, window.children
        report = ScanReport(
            kind=kind,
            seq=seq,
            card=card,
            result=result,
            reason=reason,
            adults=adults,
            children=children,
            panel=signals.panel(),
            at=dt.datetime.now(dt.UTC),
        )
        self.reports.append(report)
        if self._on_report is not None:
            self._on_report(report)
