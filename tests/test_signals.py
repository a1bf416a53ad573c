"""Signals on mock pins: each outcome has its own pattern, told apart without colour or sound."""

from __future__ import annotations

import time

from gpiozero.pins.mock import MockFactory

from kiosk.config import GpioConfig
from kiosk.signals import PATTERNS, Signals

GREEN, RED, AMBER, BUZZER, RELAY = 17, 27, 22, 18, 23


def test_every_outcome_has_a_light_pattern_and_a_sound_pattern_of_its_own() -> None:
    lights = [light for light, _ in PATTERNS.values()]
    sounds = [sound for _, sound in PATTERNS.values()]
    # Without colour, the light's rhythm alone tells the outcome; without light, the sound's.
    assert len(set(lights)) == len(PATTERNS)
    assert len(set(sounds)) == len(PATTERNS)


def test_accept_lights_green_steadily_beeps_once_and_pulses_the_relay(
    mock_factory: MockFactory,
) -> None:
    signals = Signals(GpioConfig(relay=RELAY), mock_factory)
    signals.accept()
    assert mock_factory.pin(GREEN).state and mock_factory.pin(RELAY).state
    assert not mock_factory.pin(RED).state
    time.sleep(0.4)
    buzzer_changes = [s.state for s in mock_factory.pin(BUZZER).states]
    assert buzzer_changes.count(True) == 1, "one beep"
    signals.close()


def test_reject_blinks_red_and_asks_for_staff_without_an_alarm(mock_factory: MockFactory) -> None:
    signals = Signals(GpioConfig(), mock_factory)
    signals.reject(see_staff=True)
    time.sleep(0.6)
    assert mock_factory.pin(AMBER).state, "amber 'see staff' glows"
    assert not mock_factory.pin(GREEN).state
    buzzer_changes = [s.state for s in mock_factory.pin(BUZZER).states]
    assert buzzer_changes.count(True) == 2, "two short beeps, no alarm"
    signals.close()


def test_a_fault_blinks_until_cleared(mock_factory: MockFactory) -> None:
    signals = Signals(GpioConfig(), mock_factory)
    signals.fault(True)
    time.sleep(2.2)
    amber_on = [s.state for s in mock_factory.pin(AMBER).states].count(True)
    assert amber_on >= 2, "keeps blinking"
    signals.fault(False)
    assert not mock_factory.pin(AMBER).state
    signals.close()


def test_without_an_amber_led_faults_show_on_red(mock_factory: MockFactory) -> None:
    signals = Signals(GpioConfig(led_amber=None), mock_factory)
    signals.fault(True)
    assert mock_factory.pin(RED).state
    signals.close()


def test_the_console_panel_shows_the_pins() -> None:
    factory = MockFactory()
    signals = Signals(GpioConfig(relay=RELAY), factory)
    signals.accept()
    assert signals.panel().startswith("[green ●  red ○  amber ○  buzzer ●  relay ●")
    signals.close()
    factory.close()


def test_each_admitted_person_gets_a_relay_pulse_of_their_own(mock_factory: MockFactory) -> None:
    # A holder and two children in quick succession: a turnstile counting pulses counts 3.
    signals = Signals(GpioConfig(relay=RELAY), mock_factory)
    signals.accept()
    signals.child()
    signals.child()
    time.sleep(3 * 1.3 + 0.3)
    pulses = [s.state for s in mock_factory.pin(RELAY).states].count(True)
    signals.close()
    assert pulses == 3
