"""Configuration: the TOML file, its defaults and its validation.

Every key has a default, so an operator's file names only what differs. The file
is validated completely at start-up; the first problem raises :class:`ConfigError`
naming the key (``section.key``), which the CLI turns into one line and exit 2.
``config/kiosk.toml`` in the repository documents every key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ApiConfig",
    "CameraConfig",
    "CompanionsConfig",
    "Config",
    "DecoderConfig",
    "GpioConfig",
    "OpeningHours",
    "PrivacyConfig",
    "RulesConfig",
    "StorageConfig",
    "VenueConfig",
    "config_path",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.toml")

CATEGORIES = ("culture", "education", "science", "sports")
MODES = ("ticket", "course")
SYMBOLOGIES = ("qrcode", "code39", "code128")
PIN_FACTORIES = ("auto", "mock", "lgpio", "rpigpio", "pigpio", "native")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# BCM GPIO numbers a device may sit on; 0 and 1 are reserved for HAT EEPROMs.
PIN_RANGE = range(2, 28)

# Opening hours per weekday (0 = Monday): a list of (open, close) local times.
OpeningHours = Mapping[int, tuple[tuple[dt.time, dt.time], ...]]


@dataclasses.dataclass(frozen=True)
class VenueConfig:
    id: str = ""
    category: str = "culture"
    mode: str = "ticket"
    timezone: str = "Europe/Helsinki"
    daily_cap: int = 0
    opening_hours: OpeningHours = dataclasses.field(default_factory=dict)
    closed_dates: tuple[dt.date, ...] = ()
    reentry_minutes: int = 30

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    source: str = "picamera2"
    width: int = 640
    height: int = 480
    fps: int = 30
    frames_per_image: int = 3
    blank_frames: int = 3


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    symbologies: tuple[str, ...] = SYMBOLOGIES
    backend: str = "auto"
    card_url_hosts: tuple[str, ...] = ("kaikukortti.fi", "www.kaikukortti.fi", "omakaiku.fi")


@dataclasses.dataclass(frozen=True)
class GpioConfig:
    pin_factory: str = "auto"
    led_green: int | None = 17
    led_red: int | None = 27
    led_amber: int | None = 22
    buzzer: int | None = 18
    relay: int | None = None
    child_button: int | None = 5
    done_button: int | None = 6

    def pins(self) -> dict[str, int]:
        """The fitted devices and their BCM pins, by config key."""
        names = (
            "led_green",
            "led_red",
            "led_amber",
            "buzzer",
            "relay",
            "child_button",
            "done_button",
        )
        return {name: pin for name in names if (pin := getattr(self, name)) is not None}


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    path: Path = Path("/var/lib/kiosk/kiosk.db")
    min_free_mb: int = 50

    @property
    def state_dir(self) -> Path:
        return self.path.parent


@dataclasses.dataclass(frozen=True)
class RulesConfig:
    unknown_card: str = "reject"
    registry_stale_hours: float = 48.0
    default_max_children: int = 4
    community_max_children: int = 10
    repeat_suppress_seconds: float = 3.0


@dataclasses.dataclass(frozen=True)
class CompanionsConfig:
    window_seconds: float = 8.0
    child_code: str = "KAIKU:CHILD"
    done_code: str = "KAIKU:DONE"


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    base_url: str = ""
    batch_size: int = 200
    upload_interval_seconds: float = 10.0
    registry_sync_interval_seconds: float = 300.0
    timeout_seconds: float = 10.0
    max_backoff_seconds: float = 300.0
    ca_file: str = ""


@dataclasses.dataclass(frozen=True)
class PrivacyConfig:
    retention_days: int = 30


@dataclasses.dataclass(frozen=True)
class Config:
    venue: VenueConfig = dataclasses.field(default_factory=VenueConfig)
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    gpio: GpioConfig = dataclasses.field(default_factory=GpioConfig)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    rules: RulesConfig = dataclasses.field(default_factory=RulesConfig)
    companions: CompanionsConfig = dataclasses.field(default_factory=CompanionsConfig)
    api: ApiConfig = dataclasses.field(default_factory=ApiConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (for tests and the demo)."""
        updated = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: updated})


# --- value checkers: each takes the raw TOML value and returns the typed one, or
# raises ValueError with a message that completes "expected ...".

Checker = Callable[[Any], Any]


def _integer(low: int, high: int) -> Checker:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"an integer from {low} to {high}, got {value!r}")
        return value

    return check


def _number(low: float, high: float) -> Checker:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a number from {low} to {high}, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"a number from {low} to {high}, got {value!r}")
        return float(value)

    return check


def _text(max_length: int = 200, pattern: str | None = None) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_length:
            raise ValueError(f"a string of at most {max_length} characters, got {value!r}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ValueError(f"a string matching {pattern}, got {value!r}")
        return value

    return check


def _choice(*choices: str) -> Checker:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return check


def _pin(value: Any) -> int | None:
    if value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in PIN_RANGE:
        raise ValueError(f"a BCM GPIO number from 2 to 27, or false if not fitted, got {value!r}")
    return value


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(_text()(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"an IANA time zone such as Europe/Helsinki, got {value!r}") from None
    return str(value)


def _string_list(item: Checker) -> Checker:
    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list) or not value:
            raise ValueError(f"a non-empty list, got {value!r}")
        return tuple(item(element) for element in value)

    return check


def _hostname(value: Any) -> str:
    return _text(253, r"[A-Za-z0-9.-]+")(value).lower()


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"a date such as 2026-12-24, got {value!r}")


def _dates(value: Any) -> tuple[dt.date, ...]:
    if not isinstance(value, list):
        raise ValueError(f'a list of dates such as ["2026-12-24"], got {value!r}')
    return tuple(_date(element) for element in value)


_HOURS = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")


def _time_range(value: Any) -> tuple[dt.time, dt.time]:
    match = _HOURS.fullmatch(value) if isinstance(value, str) else None
    if match:
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        if h1 < 24 and m1 < 60 and m2 < 60 and (h2 < 24 or (h2, m2) == (24, 0)):
            opens = dt.time(h1, m1)
            closes = dt.time.max if h2 == 24 else dt.time(h2, m2)
            if opens < closes:
                return opens, closes
    raise ValueError(f'opening hours such as "09:00-17:00", got {value!r}')


def _opening_hours(value: Any) -> OpeningHours:
    if not isinstance(value, dict):
        raise ValueError(f'a table of weekdays such as {{ mon = "09:00-17:00" }}, got {value!r}')
    hours: dict[int, tuple[tuple[dt.time, dt.time], ...]] = {}
    for day, ranges in value.items():
        if day not in WEEKDAYS:
            raise ValueError(f"weekdays among {', '.join(WEEKDAYS)}, got {day!r}")
        ranges = ranges if isinstance(ranges, list) else [ranges]
        hours[WEEKDAYS.index(day)] = tuple(_time_range(item) for item in ranges)
    return hours


def _url(value: Any) -> str:
    text = _text(500)(value)
    if text and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ValueError(f"an http(s) URL such as https://api.example.fi, got {value!r}")
    return text.rstrip("/")


def _control_code(value: Any) -> str:
    return _text(64, r"[ -~]+")(value).strip().upper()


SCHEMA: dict[str, dict[str, Checker]] = {
    "venue": {
        "id": _text(64, r"[A-Za-z0-9._-]*"),
        "category": _choice(*CATEGORIES),
        "mode": _choice(*MODES),
        "timezone": _timezone,
        "daily_cap": _integer(0, 1_000_000),
        "opening_hours": _opening_hours,
        "closed_dates": _dates,
        "reentry_minutes": _integer(0, 7 * 24 * 60),
    },
    "camera": {
        "source": _text(500, r"(picamera2|v4l2:/dev/\S+|dir:.+|hid:/dev/\S+)"),
        "width": _integer(160, 4608),
        "height": _integer(120, 3456),
        "fps": _integer(1, 120),
        "frames_per_image": _integer(1, 1000),
        "blank_frames": _integer(0, 1000),
    },
    "decoder": {
        "symbologies": _string_list(_choice(*SYMBOLOGIES)),
        "backend": _choice("auto", "zxing", "zbar"),
        "card_url_hosts": _string_list(_hostname),
    },
    "gpio": {
        "pin_factory": _choice(*PIN_FACTORIES),
        "led_green": _pin,
        "led_red": _pin,
        "led_amber": _pin,
        "buzzer": _pin,
        "relay": _pin,
        "child_button": _pin,
        "done_button": _pin,
    },
    "storage": {
        "path": lambda value: Path(_text(4096, r".+")(value)),
        "min_free_mb": _integer(0, 1_000_000),
    },
    "rules": {
        "unknown_card": _choice("reject", "accept_provisional"),
        "registry_stale_hours": _number(0, 24 * 365),
        "default_max_children": _integer(0, 50),
        "community_max_children": _integer(0, 100),
        "repeat_suppress_seconds": _number(0, 3600),
    },
    "companions": {
        "window_seconds": _number(1, 600),
        "child_code": _control_code,
        "done_code": _control_code,
    },
    "api": {
        "base_url": _url,
        "batch_size": _integer(1, 10_000),
        "upload_interval_seconds": _number(0.1, 86_400),
        "registry_sync_interval_seconds": _number(1, 7 * 86_400),
        "timeout_seconds": _number(0.1, 600),
        "max_backoff_seconds": _number(1, 86_400),
        "ca_file": _text(4096),
    },
    "privacy": {
        "retention_days": _integer(1, 3650),
    },
}


SECTION_TYPES: dict[str, Callable[..., Any]] = {
    "venue": VenueConfig,
    "camera": CameraConfig,
    "decoder": DecoderConfig,
    "gpio": GpioConfig,
    "storage": StorageConfig,
    "rules": RulesConfig,
    "companions": CompanionsConfig,
    "api": ApiConfig,
    "privacy": PrivacyConfig,
}


def parse_config(data: Mapping[str, Any]) -> Config:
    """Validate a parsed TOML document and build the :class:`Config`.

    Raises :class:`ConfigError` naming the first key that is unknown or wrong.
    """
    sections: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SCHEMA:
            raise ConfigError(section, f"unknown section; known: {', '.join(SCHEMA)}")
        if not isinstance(table, dict):
            raise ConfigError(section, "expected a [section] table")
        values: dict[str, Any] = {}
        for key, raw in table.items():
            checker = SCHEMA[section].get(key)
            if checker is None:
                raise ConfigError(f"{section}.{key}", "unknown key")
            try:
                values[key] = checker(raw)
            except ValueError as error:
                raise ConfigError(f"{section}.{key}", f"expected {error}") from None
        sections[section] = SECTION_TYPES[section](**values)
    config = Config(**sections)
    _check_consistency(config)
    return config


def _check_consistency(config: Config) -> None:
    """Checks that span keys: no pin used twice, distinct control codes."""
    seen: dict[int, str] = {}
    for name, pin in config.gpio.pins().items():
        if pin in seen:
            raise ConfigError(f"gpio.{name}", f"pin {pin} is already used by gpio.{seen[pin]}")
        seen[pin] = name
    if config.companions.child_code == config.companions.done_code:
        raise ConfigError("companions.done_code", "must differ from companions.child_code")


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file to read: the given path, else ``$KIOSK_CONFIG``, else the default."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("KIOSK_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file (see :func:`config_path` for which one)."""
    source = config_path(path)
    try:
        with source.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(source), "file not found") from None
    except PermissionError:
        raise ConfigError(str(source), "file not readable") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(source), f"not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(source), "not valid UTF-8") from None
    return parse_config(data)
