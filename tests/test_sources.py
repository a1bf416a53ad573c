"""Frame sources: the dir: replay and the keyboard-mode barcode scanner."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from evdev import InputEvent, ecodes
from gpiozero.pins.mock import MockFactory

from kiosk.config import CameraConfig, Config
from kiosk.daemon import Daemon
from kiosk.decoder import load_grey
from kiosk.demo import card_image
from kiosk.errors import CameraError
from kiosk.sources import DirSource, HidSource, Picamera2Source, open_source
from tests.conftest import card, events, running, wait_for


def frames(source: DirSource) -> Iterator[np.ndarray | str | None]:
    source.open()
    while True:
        item = source.read()
        if item is None and source.exhausted:
            return
        yield item


def test_dir_source_shows_each_image_in_name_order_then_blank_frames(tmp_path: Path) -> None:
    camera = CameraConfig(source=f"dir:{tmp_path}", fps=1000, frames_per_image=2, blank_frames=1)
    card_image("B1", "qrcode").save(tmp_path / "002.png")
    card_image("A1", "qrcode").save(tmp_path / "001.png")
    (tmp_path / "notes.txt").write_text("ignored")
    shown = list(frames(DirSource(tmp_path, camera)))
    assert len(shown) == 6
    first, again, blank, second = shown[0], shown[1], shown[2], shown[3]
    assert isinstance(first, np.ndarray) and first.shape == (480, 640)
    assert (first == again).all() and (blank == 255).all() and (shown[5] == 255).all()
    assert (first == load_grey(tmp_path / "001.png")).all(), "001.png comes first"
    assert (second == load_grey(tmp_path / "002.png")).all()


def test_dir_source_picks_up_files_added_later(tmp_path: Path) -> None:
    camera = CameraConfig(fps=1000, frames_per_image=1, blank_frames=0)
    source = DirSource(tmp_path, camera)
    source.open()
    assert source.read() is None and source.exhausted
    card_image("A999123453", "qrcode").save(tmp_path / "001.png")
    assert isinstance(source.read(), np.ndarray) and not source.exhausted


def test_a_missing_replay_folder_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError):
        DirSource(tmp_path / "absent", Config().camera).open()


class FakeScanner:
    """A keyboard-mode scanner's event device: a pipe for select() and queued events."""

    def __init__(self, events: list[InputEvent]) -> None:
        self._read_end, self._write_end = os.pipe()
        self.fd = self._read_end
        self.grabbed = False
        self._events = events
        os.write(self._write_end, b"x")

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def read(self) -> Iterator[InputEvent]:
        os.read(self._read_end, 1)
        yield from self._events
        self._events = []

    def close(self) -> None:
        os.close(self._read_end)
        os.close(self._write_end)


def keystrokes(text: str, *, extra: Sequence[tuple[int, int]] = ()) -> list[InputEvent]:
    """Key down/up events typing ``text`` and Enter, as a scanner sends them."""
    out: list[InputEvent] = []

    def key(code: int, value: int) -> None:
        out.append(InputEvent(0, 0, ecodes.EV_KEY, code, value))
        out.append(InputEvent(0, 0, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))

    for code, value in extra:
        key(code, value)
    for char in text:
        shifted = char.isupper() or char == ":"
        names = {":": "SEMICOLON", "/": "SLASH", ".": "DOT", "-": "MINUS", " ": "SPACE"}
        name = names.get(char, char.upper())
        if shifted:
            key(ecodes.KEY_LEFTSHIFT, 1)
        key(getattr(ecodes, f"KEY_{name}"), 1)
        key(getattr(ecodes, f"KEY_{name}"), 0)
        if shifted:
            key(ecodes.KEY_LEFTSHIFT, 0)
    key(ecodes.KEY_ENTER, 1)
    key(ecodes.KEY_ENTER, 0)
    return out


def read_all(source: HidSource) -> list[str]:
    texts = []
    for _ in range(20):
        item = source.read()
        if isinstance(item, str):
            texts.append(item)
    return texts


def test_hid_scanner_is_grabbed_and_its_keystrokes_become_scans() -> None:
    scanner = FakeScanner(keystrokes("A999123453") + keystrokes("KAIKU:CHILD"))
    source = HidSource("/dev/input/event7", device_factory=lambda path: scanner)
    source.open()
    assert scanner.grabbed, "keystrokes must never reach a console"
    assert read_all(source) == ["A999123453", "KAIKU:CHILD"]
    source.close()
    assert not scanner.grabbed


def test_hid_scanner_drops_control_keys() -> None:
    # Ctrl, Alt and F-keys a Code 128 can carry are dropped, not typed.
    extra = [(ecodes.KEY_LEFTCTRL, 1), (ecodes.KEY_F4, 1), (ecodes.KEY_LEFTCTRL, 0)]
    scanner = FakeScanner(keystrokes("A999123453", extra=extra))
    source = HidSource("/dev/input/event7", device_factory=lambda path: scanner)
    source.open()
    assert read_all(source) == ["A999123453"]


def test_a_vanished_hid_scanner_is_a_camera_error() -> None:
    def absent(path: str) -> FakeScanner:
        raise OSError(2, "No such device")

    with pytest.raises(CameraError):
        HidSource("/dev/input/event9", device_factory=absent).open()


def test_hid_scans_go_through_the_same_parser_and_rules(
    kiosk_config: Config, registry: Callable[..., None], mock_factory: MockFactory
) -> None:
    registry(card("A999123453"))
    scanner = FakeScanner(keystrokes("A999123453") + keystrokes("DROP TABLE events"))
    source = HidSource("/dev/input/event7", device_factory=lambda path: scanner)
    daemon = Daemon(kiosk_config, source=source, pin_factory=mock_factory)
    with running(daemon):
        assert wait_for(lambda: len(events(kiosk_config)) == 2)
    assert [(e["card_id"], e["reason"]) for e in events(kiosk_config)] == [
        ("A999123453", "ok"),
        (None, "not_a_card"),
    ]


def test_open_source_picks_the_source_by_its_prefix(tmp_path: Path) -> None:
    assert isinstance(open_source(CameraConfig()), Picamera2Source)
    assert isinstance(open_source(CameraConfig(source=f"dir:{tmp_path}")), DirSource)
    assert isinstance(open_source(CameraConfig(source="hid:/dev/input/event0")), HidSource)


def test_an_image_still_being_written_is_read_once_it_is_complete(tmp_path: Path) -> None:
    camera = CameraConfig(fps=1000, frames_per_image=1, blank_frames=0)
    image = tmp_path / "001.png"
    card_image("A999123453", "qrcode").save(image)
    whole = image.read_bytes()
    image.write_bytes(whole[: len(whole) // 2])
    source = DirSource(tmp_path, camera)
    source.open()
    assert source.read() is None, "a half-written file is not shown yet"
    image.write_bytes(whole)
    frame = source.read()
    assert isinstance(frame, np.ndarray)
    assert (frame == load_grey(image)).all()
