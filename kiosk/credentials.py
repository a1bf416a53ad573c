"""The device's identity: its API token and ``device.json``.

``kiosk enroll`` writes both into the state directory (the parent of
``storage.path``). The token file is created with mode 0600 from the start, never
widened and narrowed later. Under systemd the service reads the token from
``$CREDENTIALS_DIRECTORY/token`` (``LoadCredential=``), so the daemon itself need
not be able to read the state directory's copy. The token is never put in the
environment, a log line or an error message.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from kiosk.errors import KioskError

__all__ = [
    "Credentials",
    "Device",
    "is_enrolled",
    "load_credentials",
    "read_device",
    "token_path",
    "write_enrollment",
]

TOKEN_FILE = "token"  # noqa: S105 (a file name, not a secret)
DEVICE_FILE = "device.json"


@dataclasses.dataclass(frozen=True)
class Device:
    """What enrollment told the device about itself, and which API it belongs to."""

    device_id: str
    venue_id: str
    api: str


@dataclasses.dataclass(frozen=True)
class Credentials:
    device: Device
    token: str = dataclasses.field(repr=False)


def token_path(state_dir: Path) -> Path:
    """Where the token is read from: systemd's credential, else the state directory."""
    credentials_directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials_directory:
        return Path(credentials_directory) / TOKEN_FILE
    return state_dir / TOKEN_FILE


def read_device(state_dir: Path) -> Device | None:
    """The enrolled device, or None when the device was never enrolled."""
    try:
        data = json.loads((state_dir / DEVICE_FILE).read_text(encoding="utf-8"))
        return Device(str(data["device_id"]), str(data["venue_id"]), str(data["api"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KioskError(f"cannot read {state_dir / DEVICE_FILE}: {error}") from None


def load_credentials(state_dir: Path) -> Credentials | None:
    """The device and its token, or None when either is missing."""
    device = read_device(state_dir)
    if device is None:
        return None
    path = token_path(state_dir)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise KioskError(f"cannot read the token file {path}: {error.strerror}") from None
    return Credentials(device, token) if token else None


def is_enrolled(state_dir: Path) -> bool:
    """Whether enrollment left its files (without needing to read the token)."""
    return (state_dir / DEVICE_FILE).is_file() and token_path(state_dir).is_file()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to ``path``, readable by the owner only from birth."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_enrollment(state_dir: Path, device: Device, token: str) -> None:
    """Store a fresh enrollment: ``device.json`` and the token (both mode 0600)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(state_dir / TOKEN_FILE, token + "\n")
    _write_private(state_dir / DEVICE_FILE, json.dumps(dataclasses.asdict(device), indent=2))
