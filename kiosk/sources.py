"""Frame sources: where the daemon's frames (or scanned texts) come from.

Every source has the same small interface, :class:`Source`: ``open``, ``read``
and ``close``. ``read`` returns a grey frame, a scanned text (from a keyboard-mode
barcode scanner), or None when nothing arrived within about a tenth of a second.
Any failure of the device raises :class:`CameraError`, which the daemon shows as
a fault and retries.

``camera.source`` selects one:

- ``picamera2``: the Raspberry Pi camera (imported only when used);
- ``v4l2:/dev/videoN``: a USB webcam, through OpenCV when it is installed;
- ``dir:PATH``: replays image files, for the demo, the tests and site debugging;
- ``hid:/dev/input/eventN``: a USB barcode scanner in keyboard mode.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kiosk.config import CameraConfig
from kiosk.decoder import Frame, load_grey
from kiosk.errors import CameraError

__all__ = [
    "IMAGE_SUFFIXES",
    "DirSource",
    "HidSource",
    "KeyboardDecoder",
    "Picamera2Source",
    "Source",
    "V4l2Source",
    "open_source",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
# How long a read may block before it returns None, so the main loop stays alive.
READ_TIMEOUT = 0.1
# How long a replayed image that cannot be read is retried before it counts as blank.
UNREADABLE_RETRY_SECONDS = 2.0


class Source(Protocol):
    def open(self) -> None: ...

    def read(self) -> Frame | str | None: ...

    def close(self) -> None: ...

    @property
    def exhausted(self) -> bool:
        """True when a replay source has nothing more to give (never for cameras)."""
        ...


class DirSource:
    """Replays the image files of a folder as camera frames.

    Files are taken in name order; each is shown for ``frames_per_image`` frames,
    then ``blank_frames`` blank frames follow, at ``fps``. Files added later are
    picked up too. ``exhausted`` turns true once every file has been shown.
    """

    def __init__(self, folder: Path, camera: CameraConfig, *, paced: bool = True) -> None:
        self.folder = folder
        self.frames_per_image = camera.frames_per_image
        self.blank_frames = camera.blank_frames
        self.interval = 1.0 / camera.fps if paced else 0.0
        self._blank: Frame = np.full((camera.height, camera.width), 255, dtype=np.uint8)
        self._shown: set[str] = set()
        self._unreadable_since: dict[str, float] = {}
        self._queue: list[Frame] = []
        self._next_frame_at = 0.0
        self._exhausted = False

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"replay folder {self.folder} does not exist")

    def close(self) -> None:
        self._queue.clear()

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def _next_file(self) -> Path | None:
        try:
            names = sorted(
                entry.name
                for entry in self.folder.iterdir()
                if entry.suffix.lower() in IMAGE_SUFFIXES and entry.name not in self._shown
            )
        except OSError as error:
            raise CameraError(f"cannot list replay folder {self.folder}: {error}") from error
        return self.folder / names[0] if names else None

    def _pace(self) -> None:
        delay = self._next_frame_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next_frame_at = max(self._next_frame_at, time.monotonic()) + self.interval

    def read(self) -> Frame | str | None:
        if not self._queue:
            path = self._next_file()
            if path is None:
                self._exhausted = True
                time.sleep(min(READ_TIMEOUT, self.interval or READ_TIMEOUT))
                return None
            self._exhausted = False
            try:
                image = load_grey(path)
            except (OSError, ValueError):
                # Probably still being written: try again for a while (by the
                # monotonic clock, which a wall-clock change does not move).
                first_failure = self._unreadable_since.setdefault(path.name, time.monotonic())
                if time.monotonic() - first_failure < UNREADABLE_RETRY_SECONDS:
                    time.sleep(READ_TIMEOUT)
                    return None
                # An unreadable file is shown as blank: a camera sees noise, not errors.
                image = self._blank
            self._shown.add(path.name)
            self._queue = [image] * self.frames_per_image + [self._blank] * self.blank_frames
        self._pace()
        return self._queue.pop(0)


class Picamera2Source:
    """The Raspberry Pi camera through picamera2, reading the YUV420 ``lores`` stream.

    The Y plane of YUV420 is the grey image, so no colour conversion is needed.
    picamera2 comes from Raspberry Pi OS's apt package and is imported only here.
    """

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self._picam: Any = None

    @property
    def exhausted(self) -> bool:
        return False

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as error:
            raise CameraError(
                "picamera2 is not installed: apt install python3-picamera2, and create the "
                "venv with --system-site-packages"
            ) from error
        try:
            picam = Picamera2()
            size = (self.camera.width, self.camera.height)
            config = picam.create_video_configuration(
                main={"size": size},
                lores={"size": size, "format": "YUV420"},
                controls={"FrameRate": self.camera.fps},
            )
            picam.configure(config)
            # Camera Module 3 focuses; continuous autofocus follows a card moving in.
            if "AfMode" in picam.camera_controls:
                from libcamera import controls

                picam.set_controls({"AfMode": controls.AfModeEnum.Continuous})
            picam.start()
        except Exception as error:  # picamera2 raises many kinds; all mean "no camera"
            raise CameraError(f"cannot start the Pi camera: {error}") from error
        self._picam = picam

    def read(self) -> Frame | str | None:
        if self._picam is None:
            raise CameraError("the Pi camera is not open")
        try:
            yuv = self._picam.capture_array("lores")
        except Exception as error:
            raise CameraError(f"the Pi camera stopped giving frames: {error}") from error
        frame: Frame = np.ascontiguousarray(yuv[: self.camera.height, : self.camera.width])
        return frame

    def close(self) -> None:
        if self._picam is not None:
            with contextlib.suppress(Exception):
                self._picam.stop()
                self._picam.close()
            self._picam = None


class V4l2Source:
    """A USB webcam (Video4Linux2) through OpenCV, when OpenCV is installed."""

    def __init__(self, device: str, camera: CameraConfig) -> None:
        self.device = device
        self.camera = camera
        self._capture: Any = None

    @property
    def exhausted(self) -> bool:
        return False

    def open(self) -> None:
        if not Path(self.device).exists():
            raise CameraError(f"video device {self.device} does not exist")
        try:
            import cv2
        except ImportError as error:
            raise CameraError(
                "a v4l2 source needs OpenCV: apt install python3-opencv "
                "(or pip install opencv-python-headless)"
            ) from error
        capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not capture.isOpened():
            raise CameraError(f"cannot open video device {self.device}")
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.camera.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.camera.height)
        capture.set(cv2.CAP_PROP_FPS, self.camera.fps)
        self._capture = capture

    def read(self) -> Frame | str | None:
        import cv2

        if self._capture is None:
            raise CameraError(f"video device {self.device} is not open")
        ok, image = self._capture.read()
        if not ok:
            raise CameraError(f"video device {self.device} stopped giving frames")
        frame: Frame = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class KeyboardDecoder:
    """Turns a keyboard-mode scanner's key events into scanned texts.

    Keys make characters (with Shift), Enter ends a scan. Any other key (Ctrl,
    Alt, function keys a Code 128 may carry) is dropped, so no control key ever
    reaches anything. A scan longer than ``max_length`` is cut there; the payload
    parser refuses it as not a card.
    """

    def __init__(self, max_length: int = 512) -> None:
        from evdev import ecodes

        self.event_type = ecodes.EV_KEY
        self._shift_keys = {ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT}
        self._enter_keys = {ecodes.KEY_ENTER, ecodes.KEY_KPENTER}
        self._chars = self._keymap(ecodes)
        self.max_length = max_length
        self._buffer: list[str] = []
        self._shift = False

    @staticmethod
    def _keymap(ecodes: Any) -> dict[int, tuple[str, str]]:
        keys: dict[int, tuple[str, str]] = {}
        for char in "abcdefghijklmnopqrstuvwxyz":
            keys[getattr(ecodes, f"KEY_{char.upper()}")] = (char, char.upper())
        for digit, shifted in zip("1234567890", "!@#$%^&*()", strict=True):
            keys[getattr(ecodes, f"KEY_{digit}")] = (digit, shifted)
        punctuation = {
            "MINUS": ("-", "_"),
            "EQUAL": ("=", "+"),
            "LEFTBRACE": ("[", "{"),
            "RIGHTBRACE": ("]", "}"),
            "SEMICOLON": (";", ":"),
            "APOSTROPHE": ("'", '"'),
            "GRAVE": ("`", "~"),
            "BACKSLASH": ("\\", "|"),
            "COMMA": (",", "<"),
            "DOT": (".", ">"),
            "SLASH": ("/", "?"),
            "SPACE": (" ", " "),
        }
        for name, pair in punctuation.items():
            keys[getattr(ecodes, f"KEY_{name}")] = pair
        return keys

    def feed(self, key_code: int, value: int) -> str | None:
        """Take one key event (value 1 = down, 0 = up, 2 = repeat); a finished scan is returned."""
        if key_code in self._shift_keys:
            self._shift = value != 0
            return None
        if value != 1:
            return None
        if key_code in self._enter_keys:
            text, self._buffer = "".join(self._buffer), []
            return text or None
        pair = self._chars.get(key_code)
        if pair is not None and len(self._buffer) < self.max_length:
            self._buffer.append(pair[1] if self._shift else pair[0])
        return None


class HidSource:
    """A USB barcode scanner in keyboard mode, read with python-evdev.

    The device is grabbed exclusively, so its keystrokes never reach a console
    or a login prompt. ``device_factory`` is injectable for tests.
    """

    def __init__(self, path: str, device_factory: Callable[[str], Any] | None = None) -> None:
        self.path = path
        self._device_factory = device_factory
        self._device: Any = None
        self._keys: KeyboardDecoder | None = None
        self._pending: deque[str] = deque()

    @property
    def exhausted(self) -> bool:
        return False

    def open(self) -> None:
        try:
            factory = self._device_factory
            if factory is None:
                from evdev import InputDevice

                factory = InputDevice
            device = factory(self.path)
            device.grab()
        except (ImportError, OSError) as error:
            raise CameraError(f"cannot open barcode scanner {self.path}: {error}") from error
        self._device = device
        self._keys = KeyboardDecoder()

    def read(self) -> Frame | str | None:
        if self._device is None or self._keys is None:
            raise CameraError(f"barcode scanner {self.path} is not open")
        if self._pending:
            return self._pending.popleft()
        try:
            ready, _, _ = select.select([self._device.fd], [], [], READ_TIMEOUT)
            if ready:
                for event in self._device.read():
                    if event.type == self._keys.event_type:
                        text = self._keys.feed(event.code, event.value)
                        if text is not None:
                            self._pending.append(text)
        except OSError as error:
            raise CameraError(f"barcode scanner {self.path} vanished: {error}") from error
        return self._pending.popleft() if self._pending else None

    def close(self) -> None:
        if self._device is not None:
            with contextlib.suppress(OSError):
                self._device.ungrab()
                self._device.close()
            self._device = None


def open_source(camera: CameraConfig, *, paced: bool = True) -> Source:
    """The source ``camera.source`` names (not yet opened)."""
    spec = camera.source
    if spec == "picamera2":
        return Picamera2Source(camera)
    kind, _, target = spec.partition(":")
    if kind == "dir":
        return DirSource(Path(target), camera, paced=paced)
    if kind == "v4l2":
        return V4l2Source(target, camera)
    if kind == "hid":
        return HidSource(target)
    raise CameraError(f"unknown camera source {spec!r}")
