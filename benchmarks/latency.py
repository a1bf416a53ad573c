"""Latency figure: from a camera frame arriving to the signal pin rising, through the daemon.

The real :class:`~kiosk.daemon.Daemon` runs on a fresh store with mock pins. A
camera stand-in hands out generated card frames (QR and Code 39, a distinct
card each time, one in four unknown to the registry) and notes the moment
``read`` returns one; a mock pin notes the moment the green or red light goes
high. Between the two lie the decode, the decision, the durable commit
(``synchronous=FULL``) and gpiozero's blink thread. After each card the camera
waits for the signal, as a real one blocks until its next frame, and then gives
a blank frame. The same run is repeated with plain zbar and plain zxing-cpp as
the decoder, for the baselines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from benchmarks.report import Figure
from kiosk.config import Config, DecoderConfig
from kiosk.counters import TIME_FLOOR
from kiosk.daemon import Daemon
from kiosk.decode_zxing import ZxingDecoder
from kiosk.decoder import Decoder, Frame, ZbarDecoder, make_decoder
from kiosk.demo import FRAME_SIZE, card_image
from kiosk.store import CardRow, Store

# A signal not shown within this long counts as a missed scan.
SIGNAL_TIMEOUT = 2.0


@dataclasses.dataclass
class Probe:
    """What the camera stand-in and the pins share: when the last frame came, when a light rose."""

    lights: frozenset[str]
    rose: threading.Event = dataclasses.field(default_factory=threading.Event)
    rose_at: float = 0.0

    def pin_changed(self, name: str, high: bool) -> None:
        if high and name in self.lights and not self.rose.is_set():
            self.rose_at = time.perf_counter()
            self.rose.set()


def stamping_pin(probe: Probe) -> type[MockPin]:
    """A mock pin class that tells ``probe`` each time a pin goes high."""

    class StampingPin(MockPin):  # type: ignore[misc]  # gpiozero has no type hints
        def _change_state(self, value: bool) -> bool:
            changed = bool(super()._change_state(value))
            if changed:
                probe.pin_changed(self.info.name, value)
            return changed

    return StampingPin


class CardCamera:
    """A :class:`~kiosk.sources.Source` that shows each card frame once and times its signal."""

    def __init__(self, frames: list[Frame], probe: Probe) -> None:
        self._frames = iter(frames)
        self._probe = probe
        self._blank: Frame = np.full(FRAME_SIZE[::-1], 255, dtype=np.uint8)
        self._shown_at: float | None = None
        self._exhausted = False
        self.latencies: list[float] = []
        self.missed = 0

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def read(self) -> Frame | str | None:
        if self._shown_at is not None:
            # The next frame comes once the last card's signal shows (or never will).
            if self._probe.rose.wait(SIGNAL_TIMEOUT):
                self.latencies.append((self._probe.rose_at - self._shown_at) * 1000)
            else:
                self.missed += 1
            self._shown_at = None
            return self._blank
        frame = next(self._frames, None)
        if frame is None:
            self._exhausted = True
            return None
        self._probe.rose.clear()
        self._shown_at = time.perf_counter()
        return frame


def card_frames(count: int) -> tuple[list[Frame], list[CardRow]]:
    """``count`` frames of distinct cards, and the registry rows of three in four of them."""
    today = dt.date.today()
    frames, known = [], []
    for number in range(count):
        card_id = f"B{number:09d}"
        symbology = "code39" if number % 2 else "qrcode"
        frames.append(np.asarray(card_image(card_id, symbology), dtype=np.uint8))
        if number % 4:
            known.append(
                CardRow(
                    card_id,
                    "personal",
                    "active",
                    today - dt.timedelta(days=30),
                    today + dt.timedelta(days=300),
                    0,
                    dt.datetime.now(dt.UTC).isoformat(),
                )
            )
    return frames, known


def bench_config(folder: Path) -> Config:
    config = Config()
    config = config.replace("storage", path=folder / "state" / "kiosk.db")
    config = config.replace("gpio", pin_factory="mock")
    # Every frame shows another card, so neither re-entry nor repeat suppression
    # may hold one back; the companion window closes before the next card.
    config = config.replace("venue", reentry_minutes=0)
    config = config.replace("rules", repeat_suppress_seconds=0.01)
    return config.replace("companions", window_seconds=0.0)


def prepare_store(config: Config, known: list[CardRow]) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    with Store(config.storage.path) as store, store.transaction() as conn:
        store.upsert_cards(conn, known)
        store.set_meta(conn, "last_registry_sync", now)
        # A kiosk that once synchronised its clock trusts it from this floor on.
        store.set_meta(conn, TIME_FLOOR, now)


def daemon_latencies(
    decoder: Decoder, frames: list[Frame], known: list[CardRow]
) -> tuple[list[float], int]:
    """Frame-to-signal latencies in ms through a fresh daemon, and how many scans showed none."""
    with tempfile.TemporaryDirectory() as folder:
        config = bench_config(Path(folder))
        prepare_store(config, known)
        gpio = config.gpio
        probe = Probe(frozenset(f"GPIO{pin}" for pin in (gpio.led_green, gpio.led_red)))
        camera = CardCamera(frames, probe)
        factory = MockFactory(pin_class=stamping_pin(probe))
        try:
            Daemon(
                config, source=camera, decoder=decoder, pin_factory=factory, until_idle=True
            ).run()
        finally:
            factory.close()
            Device.pin_factory = None
    return camera.latencies, camera.missed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _runs(count: int) -> Iterator[tuple[str, list[float]]]:
    frames, known = card_frames(count)
    symbologies = DecoderConfig().symbologies
    decoders = {
        "pipeline": make_decoder(DecoderConfig()),
        "zbar": ZbarDecoder(symbologies),
        "zxing": ZxingDecoder(symbologies),
    }
    for name, decoder in decoders.items():
        latencies, missed = daemon_latencies(decoder, frames, known)
        if missed:
            raise RuntimeError(f"{name}: {missed} of {count} cards gave no signal")
        yield name, latencies


def run(full: bool) -> list[Figure]:
    count = 1000 if full else 300
    runs = dict(_runs(count))
    goal = f"frame to signal pin, through the daemon ({count} cards)"

    def figure(label: str, stat: Callable[[list[float]], float]) -> Figure:
        values = {name: stat(latencies) for name, latencies in runs.items()}
        return Figure(
            f"{goal}: {label}", 25, values["pipeline"], "ms", True, values["zbar"], values["zxing"]
        )

    return [
        figure("p50", statistics.median),
        figure("p95", lambda values: percentile(values, 0.95)),
        figure("max (the goal is on p95)", max),
    ]
