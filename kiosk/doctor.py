"""``kiosk doctor``'s checks: one small function per part of an installed kiosk.

Each check takes the config and the :class:`Probes` (everything it touches
outside the config, so tests can drive both outcomes without hardware) and
returns a :class:`CheckResult`: ``ok``, ``fail`` with a concrete fix, or
``skip`` when the check does not apply. A check never raises: a surprise is a
failed check, not a traceback. Only ``fail`` makes the doctor exit non-zero.

Decisions:

- A store file that does not exist yet passes with a note: the kiosk creates it
  at its first start. An existing one is opened read-only, so the doctor does
  not create or migrate anything.
- An offline site (not enrolled and ``api.base_url`` empty) skips the token and
  API checks. Once enrolled, the API checked is the one in ``device.json``, the
  URL the kiosk uploads to.
- When the config is invalid, every check that needs it is skipped with that
  reason; the config's own failure still makes the exit status non-zero.
- The token is never printed, only its path, mode and owner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.api import ApiClient, AuthError
from kiosk.clock import SYNC_FLAG
from kiosk.config import CameraConfig, Config, DecoderConfig, config_path, load_config
from kiosk.credentials import Device, read_device, token_path
from kiosk.decoder import Decoder, make_decoder
from kiosk.errors import CameraError, ConfigError, KioskError
from kiosk.signals import Signals, make_pin_factory
from kiosk.sources import Source, open_source
from kiosk.store import MIGRATIONS

__all__ = [
    "CHECKS",
    "CheckResult",
    "Probes",
    "check_api",
    "check_camera",
    "check_clock",
    "check_disk",
    "check_pins",
    "check_store",
    "check_token",
    "check_zbar",
    "run_checks",
]

STOP_SERVICE = (
    "if the kiosk service is running it holds the {what}: `sudo systemctl stop kiosk` first"
)
CAMERA_FIXES = {
    "picamera2": "apt install python3-picamera2 (and a venv made with --system-site-packages);"
    " check the ribbon cable; `rpicam-hello --list-cameras` must list the camera; "
    + STOP_SERVICE.format(what="camera"),
    "v4l2": "check the USB cable and `v4l2-ctl --list-devices`; the user needs the video group; "
    + STOP_SERVICE.format(what="camera"),
    "dir": "create the folder camera.source names and put an image file in it",
    "hid": "check the scanner's USB cable and `ls -l /dev/input/by-id/`; the user needs the"
    " input group; " + STOP_SERVICE.format(what="scanner"),
}
ENROLL_FIX = "enroll the device: `kiosk enroll CODE --api URL`, then `sudo systemctl restart kiosk`"
NOT_ENROLLED_FIX = "run the doctor as the kiosk's user (`sudo -u kiosk kiosk doctor`), or " + (
    ENROLL_FIX
)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check's outcome; ``status`` is ``ok``, ``fail`` or ``skip``."""

    status: str
    detail: str
    fix: str = ""
    name: str = ""

    @property
    def ok(self) -> bool | None:
        """True when passed, False when failed, None when not checked."""
        return None if self.status == "skip" else self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
        }

    def line(self) -> str:
        """The console line, e.g. ``FAIL  clock: not synchronised — fix: ...``."""
        label = "FAIL" if self.status == "fail" else self.status
        fix = f" — fix: {self.fix}" if self.fix else ""
        return f"{label:<5} {self.name}: {self.detail}{fix}"


def _pass(detail: str) -> CheckResult:
    return CheckResult("ok", detail)


def _fail(detail: str, fix: str) -> CheckResult:
    return CheckResult("fail", detail, fix)


def _skip(detail: str) -> CheckResult:
    return CheckResult("skip", detail)


def _unpaced_source(camera: CameraConfig) -> Source:
    return open_source(camera, paced=False)


def _disk_free(folder: Path) -> int:
    return shutil.disk_usage(folder).free


@dataclasses.dataclass(frozen=True)
class Probes:
    """What the checks touch besides the config; tests replace parts of it."""

    open_source: Callable[[CameraConfig], Source] = _unpaced_source
    make_decoder: Callable[[DecoderConfig], Decoder] = make_decoder
    make_pin_factory: Callable[[str], Any] = make_pin_factory
    sync_flag: Path = SYNC_FLAG
    disk_free: Callable[[Path], int] = _disk_free
    user_id: Callable[[], int] = os.geteuid
    # A camera that gives no frame within this is as broken as one that is missing.
    camera_seconds: float = 5.0
    api_timeout_seconds: float = 5.0


# --- the checks ------------------------------------------------------------------


def _first_frame(camera: CameraConfig, probes: Probes) -> CheckResult:
    fix = CAMERA_FIXES[camera.source.partition(":")[0]]
    source = probes.open_source(camera)
    try:
        source.open()
        if camera.source.startswith("hid:"):
            # A scanner gives nothing until someone scans; opening (grabbing) it is the test.
            return _pass(f"{camera.source} opened; scan a card to see it work")
        deadline = time.monotonic() + probes.camera_seconds
        while time.monotonic() < deadline and not source.exhausted:
            frame = source.read()
            if isinstance(frame, np.ndarray):
                height, width = frame.shape[:2]
                return _pass(f"{camera.source} gave a {width}x{height} frame")
        return _fail(f"{camera.source} opened but gave no frame", fix)
    except CameraError as error:  # its message names the device
        return _fail(str(error), fix)
    except Exception as error:  # whatever a camera library lets escape
        return _fail(f"{camera.source}: {type(error).__name__}: {error}", fix)
    finally:
        source.close()


def check_camera(config: Config, probes: Probes) -> CheckResult:
    """The camera opens and gives a frame within ``probes.camera_seconds``."""
    outcome: list[CheckResult] = []
    # A hung camera blocks in read() for ever; a thread lets the doctor report it.
    worker = threading.Thread(
        target=lambda: outcome.append(_first_frame(config.camera, probes)),
        name="doctor-camera",
        daemon=True,
    )
    worker.start()
    worker.join(probes.camera_seconds + 1.0)
    if outcome:
        return outcome[0]
    return _fail(
        f"{config.camera.source} hung: no frame and no error",
        CAMERA_FIXES[config.camera.source.partition(":")[0]],
    )


def check_zbar(config: Config, probes: Probes) -> CheckResult:
    """The zbar library loads and decodes a blank frame."""
    try:
        decoder = probes.make_decoder(config.decoder)
        decoder.decode(np.full((120, 160), 255, dtype=np.uint8))
    except Exception as error:  # ImportError, OSError: each way zbar can be missing
        return _fail(
            f"zbar does not load: {error}",
            "apt install libzbar0 (and pyzbar in the kiosk's venv: reinstall the package)",
        )
    return _pass(f"zbar loaded ({', '.join(config.decoder.symbologies)})")


def check_pins(config: Config, probes: Probes) -> CheckResult:
    """Every configured pin can be claimed, then is released again."""
    pins = config.gpio.pins()
    if not pins:
        return _pass("no pins configured")
    try:
        factory = probes.make_pin_factory(config.gpio.pin_factory)
    except ConfigError as error:
        return _fail(
            str(error),
            "install the backend (apt install python3-lgpio) or set gpio.pin_factory to"
            " auto or lgpio",
        )
    try:
        signals = Signals(config.gpio, factory)
        mock = signals.is_mock
        signals.close()
    except ConfigError as error:
        key = error.key.removeprefix("gpio.")
        pin = pins.get(key)
        return _fail(
            f"{error.key}: {error.message}",
            STOP_SERVICE.format(what="pins")
            + f"; else see what uses GPIO {pin} (`pinctrl get {pin}`), check that the user"
            f" is in the gpio group, or move {error.key} to a free pin",
        )
    finally:
        if factory is not None:
            factory.close()
    claimed = ", ".join(f"{key}={pin}" for key, pin in pins.items())
    return _pass(f"claimed {claimed}" + (" (mock pins: no real pin was tried)" if mock else ""))


def check_store(config: Config, probes: Probes) -> CheckResult:
    """The store opens read-only, passes ``PRAGMA integrity_check`` and is writable."""
    path = config.storage.path
    if not path.exists():
        return _pass(f"{path} does not exist yet; the kiosk creates it at its first start")
    restore = (
        f"stop the kiosk (`sudo systemctl stop kiosk`), move {path} aside and start it again"
        " (a new store is created; records not yet uploaded stay in the old file)"
    )
    try:
        # Without a -wal file no kiosk has the store open, and immutable=1 keeps
        # SQLite from creating -wal and -shm files (owned by whoever runs the doctor).
        live = path.with_name(path.name + "-wal").exists()
        uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if live else "&immutable=1")
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as error:
        return _fail(f"{path} cannot be read: {error}", restore)
    if rows != ["ok"]:
        return _fail(f"{path} is damaged: {'; '.join(map(str, rows[:3]))}", restore)
    if version > len(MIGRATIONS):
        return _fail(
            f"{path} has schema {version}, newer than this software ({len(MIGRATIONS)})",
            "install the newer kiosk software, or restore a backup of the store",
        )
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return _fail(
            f"{path} or its folder is not writable by this user",
            f"sudo chown -R kiosk:kiosk {path.parent}, and run the doctor as the kiosk's"
            " user (`sudo -u kiosk kiosk doctor`)",
        )
    return _pass(f"{path} passes integrity_check (schema {version})")


def _offline(config: Config, device: Device | None) -> bool:
    return device is None and not config.api.base_url


def _read_token(path: Path) -> str | None:
    """The token, or None when absent; systemd's lone-newline fallback counts as absent."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def check_token(config: Config, probes: Probes) -> CheckResult:
    """The token and ``device.json`` exist; the token is private to the running user."""
    state_dir = config.storage.state_dir
    path = token_path(state_dir)
    try:
        device = read_device(state_dir)
        token = _read_token(path)
        info = path.stat() if token else None
    except (KioskError, OSError) as error:
        return _fail(f"cannot read the enrollment: {error}", NOT_ENROLLED_FIX)
    if _offline(config, device) and token is None:
        return _skip("offline site: not enrolled and api.base_url is empty, so no token needed")
    if token is None or info is None:
        return _fail(f"no token at {path}", ENROLL_FIX)
    if device is None:
        return _fail(f"{state_dir / 'device.json'} is missing", ENROLL_FIX)
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return _fail(f"{path} has mode {mode:04o}: others may read the token", f"chmod 600 {path}")
    user = probes.user_id()
    if info.st_uid != user:
        return _fail(
            f"{path} belongs to {_user_name(info.st_uid)}, not to {_user_name(user)} who runs this",
            f"sudo chown kiosk: {path}, and run the doctor as the kiosk's user"
            " (`sudo -u kiosk kiosk doctor`)",
        )
    return _pass(f"{path} is present, mode {mode:04o}, owned by {_user_name(user)}")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_api(config: Config, probes: Probes) -> CheckResult:
    """The enrolled API answers and accepts the token (one card registry page)."""
    state_dir = config.storage.state_dir
    try:
        device = read_device(state_dir)
        token = _read_token(token_path(state_dir))
    except (KioskError, OSError):
        return _skip("the enrollment cannot be read (see token)")
    if _offline(config, device):
        return _skip("offline site: not enrolled and api.base_url is empty")
    if device is None or token is None:
        return _skip("not enrolled, nothing to try (see token)")
    url = device.api
    ca_fix = (
        "set api.ca_file to the PEM of the CA that signed the API's certificate"
        " (or fix the server's certificate chain); check the clock too"
    )
    try:
        with ApiClient(
            url, token, timeout=probes.api_timeout_seconds, ca_file=config.api.ca_file
        ) as client:
            client.cards(since=None, limit=1)
    except AuthError:
        return _fail(f"{url} refused the device's token", ENROLL_FIX)
    except OSError as error:  # the CA file itself: missing, unreadable or not PEM
        return _fail(f"api.ca_file {config.api.ca_file}: {error}", ca_fix)
    except KioskError as error:
        if "SSL" in str(error) or "certificate" in str(error).lower():
            return _fail(f"TLS to {url} failed: {error}", ca_fix)
        return _fail(
            f"{url} did not answer: {error}",
            f"check the network, DNS and firewall (`curl -sS {url}/v1/cards` should say 401);"
            " the URL comes from device.json: enroll again to change it",
        )
    note = ""
    if config.api.base_url and config.api.base_url != url:
        note = f" (api.base_url is {config.api.base_url}; the kiosk uses the enrolled URL)"
    return _pass(f"{url} accepted the token{note}")


def check_clock(config: Config | None, probes: Probes) -> CheckResult:
    """systemd-timesyncd says the clock is synchronised."""
    if probes.sync_flag.exists():
        return _pass("synchronised (systemd-timesyncd)")
    return _fail(
        f"not synchronised ({probes.sync_flag} is missing)",
        "sudo timedatectl set-ntp true && sudo systemctl enable --now systemd-timesyncd;"
        " NTP (UDP 123) must be allowed out",
    )


def check_disk(config: Config, probes: Probes) -> CheckResult:
    """The store's file system has at least ``storage.min_free_mb`` free."""
    folder = config.storage.state_dir
    # Before the first start the folder may not exist; its file system is the parent's.
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free_mb = probes.disk_free(folder) // (1024 * 1024)
    except OSError as error:
        return _fail(f"cannot measure free space at {folder}: {error}", f"check {folder}")
    minimum = config.storage.min_free_mb
    if free_mb < minimum:
        return _fail(
            f"{free_mb} MB free at {folder}, below storage.min_free_mb = {minimum}",
            "free space (`sudo journalctl --vacuum-size=50M`, `sudo apt clean`) or use a"
            " larger card",
        )
    return _pass(f"{free_mb} MB free at {folder} (minimum {minimum})")


Check = Callable[[Config, Probes], CheckResult]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("camera", check_camera),
    ("zbar", check_zbar),
    ("pins", check_pins),
    ("store", check_store),
    ("token", check_token),
    ("api", check_api),
    ("clock", check_clock),
    ("disk", check_disk),
)


def _config_check(config_file: str | None) -> tuple[Config | None, CheckResult]:
    path = config_path(config_file)
    try:
        return load_config(path), _pass(f"{path} is valid")
    except ConfigError as error:
        if error.key == str(path):
            fix = (
                f"install a config at {path} (config/kiosk.toml documents every key)"
                " or pass --config"
            )
        else:
            fix = f"correct {error.key} in {path}; config/kiosk.toml documents every key"
        return None, _fail(str(error), fix)


def _guarded(check: Check, config: Config, probes: Probes) -> CheckResult:
    try:
        return check(config, probes)
    except Exception as error:  # a doctor that crashes tells the operator nothing
        return _fail(f"the check itself failed: {type(error).__name__}: {error}", "report a bug")


def run_checks(config_file: str | None, probes: Probes | None = None) -> list[CheckResult]:
    """Every check, config first; the others are skipped when it is invalid."""
    probes = probes or Probes()
    config, result = _config_check(config_file)
    results = [dataclasses.replace(result, name="config")]
    for name, check in CHECKS:
        if config is not None:
            result = _guarded(check, config, probes)
        elif name == "clock":  # the one check that needs no config
            result = check_clock(None, probes)
        else:
            result = _skip("needs a valid config (see config)")
        results.append(dataclasses.replace(result, name=name))
    return results
