"""What the holder sees and hears: LEDs, buzzer, turnstile relay, and buttons.

Each outcome has its own *pattern*, so it can be told apart by timing alone,
without colour or sound:

==========  =====================================  ======================
outcome     light                                   buzzer
==========  =====================================  ======================
accept      green, one steady 2 s glow              one short beep
child       green, two quick flashes                one very short beep
reject      red, three slow blinks; amber "see      two short beeps
            staff" glows 4 s where it is fitted
fault       amber (red if none) blinks slowly       three long beeps once
            until the fault clears
==========  =====================================  ======================

A reject is deliberately quiet: no alarm, nothing that shames the holder. The
relay pulses once per admitted person. Off the Pi, gpiozero's ``MockFactory``
drives the pins and :meth:`Signals.panel` renders them as one console line.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiosk.config import GpioConfig
from kiosk.errors import ConfigError

__all__ = [
    "PATTERNS",
    "Pattern",
    "RelayPulses",
    "Signals",
    "make_pin_factory",
    "on_raspberry_pi",
]


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A light and buzzer pattern: ``count`` pulses of ``on`` seconds, ``off`` apart."""

    on: float
    off: float
    count: int


PATTERNS: dict[str, tuple[Pattern, Pattern]] = {
    # outcome: (light pattern, buzzer pattern)
    "accept": (Pattern(2.0, 0.0, 1), Pattern(0.15, 0.0, 1)),
    "child": (Pattern(0.15, 0.15, 2), Pattern(0.05, 0.0, 1)),
    "reject": (Pattern(0.4, 0.4, 3), Pattern(0.1, 0.15, 2)),
    "fault": (Pattern(1.0, 1.0, 0), Pattern(0.5, 0.3, 3)),
}
SEE_STAFF_SECONDS = 4.0
RELAY_PULSE_SECONDS = 1.0
RELAY_GAP_SECONDS = 0.3


def on_raspberry_pi() -> bool:
    try:
        return Path("/proc/device-tree/model").read_text().startswith("Raspberry Pi")
    except OSError:
        return False


def make_pin_factory(name: str) -> Any:
    """The gpiozero pin factory ``gpio.pin_factory`` names; ``auto`` is mock off the Pi."""
    if name == "mock" or (name == "auto" and not on_raspberry_pi()):
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "auto":
        return None  # gpiozero picks the best installed backend on the Pi
    # Imported only when named: these backends exist only on a Pi.
    try:
        if name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if name == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
        if name == "pigpio":
            from gpiozero.pins.pigpio import PiGPIOFactory

            return PiGPIOFactory()
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    except Exception as error:  # each backend fails in its own way off the Pi
        raise ConfigError("gpio.pin_factory", f"{name} is not usable here: {error}") from error


class RelayPulses:
    """Pulses the turnstile relay once per admitted person, one pulse after another.

    A family scanned in quick succession must give one separate pulse each, or a
    turnstile that counts pulses would let fewer people through. The first pulse
    starts at once; later ones queue behind it.
    """

    def __init__(self, relay: Any) -> None:
        self._relay = relay
        self._queued = 0
        self._busy = False
        self._lock = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def pulse(self) -> None:
        with self._lock:
            if self._busy:
                self._queued += 1
                return
            self._busy = True
            self._relay.on()
            self._lock.notify()

    def _run(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                if not self._busy:
                    self._lock.wait(0.5)
                    continue
            # A pulse is on: hold it, release, and start the next queued one.
            self._closed.wait(RELAY_PULSE_SECONDS)
            self._relay.off()
            self._closed.wait(RELAY_GAP_SECONDS)
            with self._lock:
                if self._queued and not self._closed.is_set():
                    self._queued -= 1
                    self._relay.on()
                else:
                    self._busy = False

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._lock.notify()
        self._thread.join(RELAY_PULSE_SECONDS + RELAY_GAP_SECONDS + 1)


class Signals:
    """The kiosk's output devices and buttons, built on one pin factory."""

    def __init__(self, gpio: GpioConfig, pin_factory: Any = None) -> None:
        from gpiozero import LED, Button, Buzzer, DigitalOutputDevice

        self.pin_factory = pin_factory
        self.is_mock = type(pin_factory).__name__ == "MockFactory"
        self._devices: list[Any] = []
        options = {"pin_factory": pin_factory}

        def fitted(kind: Callable[..., Any], key: str) -> Any:
            pin = getattr(gpio, key)
            if pin is None:
                return None
            try:
                device = kind(pin, **options)
            except Exception as error:  # gpiozero raises per backend and pin state
                raise ConfigError(f"gpio.{key}", f"cannot claim pin {pin}: {error}") from error
            self._devices.append(device)
            return device

        self.green = fitted(LED, "led_green")
        self.red = fitted(LED, "led_red")
        self.amber = fitted(LED, "led_amber")
        self.buzzer = fitted(Buzzer, "buzzer")
        self.relay = fitted(DigitalOutputDevice, "relay")
        self._relay_pulses = RelayPulses(self.relay) if self.relay is not None else None
        self.child_button = fitted(Button, "child_button")
        self.done_button = fitted(Button, "done_button")
        self._fault = False

    def _play(self, device: Any, pattern: Pattern) -> None:
        if device is None:
            return
        # count 0 means "until stopped"; gpiozero's n=None blinks forever.
        device.blink(
            on_time=pattern.on,
            off_time=pattern.off or 0.01,
            n=pattern.count or None,
            background=True,
        )

    def _show(self, outcome: str, light: Any) -> None:
        light_pattern, sound_pattern = PATTERNS[outcome]
        # A new outcome replaces what is still showing, so two never mix.
        lights = [self.green, self.red] if outcome != "fault" else []
        if not self._fault and outcome != "fault":
            lights.append(self.amber)
        for device in (*lights, self.buzzer):
            if device is not None:
                device.off()
        self._play(light, light_pattern)
        self._play(self.buzzer, sound_pattern)

    def _pulse_relay(self) -> None:
        if self._relay_pulses is not None:
            self._relay_pulses.pulse()

    def accept(self) -> None:
        self._show("accept", self.green)
        self._pulse_relay()

    def child(self) -> None:
        self._show("child", self.green)
        self._pulse_relay()

    def reject(self, see_staff: bool = True) -> None:
        self._show("reject", self.red)
        if see_staff and self.amber is not None and not self._fault:
            self.amber.blink(on_time=SEE_STAFF_SECONDS, off_time=0.01, n=1, background=True)

    def fault(self, active: bool) -> None:
        """Show or clear the fault signal; the buzzer sounds only when a fault begins."""
        if active == self._fault:
            return
        self._fault = active
        light = self.amber or self.red
        if active:
            self._show("fault", light)
        elif light is not None:
            light.off()

    def on_child_button(self, callback: Callable[[], None]) -> None:
        if self.child_button is not None:
            self.child_button.when_pressed = callback

    def on_done_button(self, callback: Callable[[], None]) -> None:
        if self.done_button is not None:
            self.done_button.when_pressed = callback

    def panel(self) -> str:
        """The output pins as one console line, e.g. ``[green ● red ○ amber ○ buzzer ○]``."""
        lamps = []
        for name in ("green", "red", "amber", "buzzer", "relay"):
            device = getattr(self, name)
            if device is not None:
                lamps.append(f"{name} {'●' if device.value else '○'}")
        return "[" + "  ".join(lamps) + "]"

    def close(self) -> None:
        if self._relay_pulses is not None:
            self._relay_pulses.close()
        for device in self._devices:
            device.close()
        self._devices.clear()
