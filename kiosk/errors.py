"""The kiosk's exception hierarchy.

Every error the kiosk raises on purpose derives from :class:`KioskError`, so the
CLI can turn it into one clear line and an exit status instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthError",
    "CameraError",
    "ConfigError",
    "KioskError",
    "StoreError",
]


class KioskError(Exception):
    """Base class of every error the kiosk raises on purpose."""


class ConfigError(KioskError):
    """The configuration is invalid; ``key`` names the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}")
        self.key = key
        self.message = message


class CameraError(KioskError):
    """The frame source failed or vanished; the daemon retries with backoff."""


class StoreError(KioskError):
    """The local record store cannot be opened or written."""


class ApiError(KioskError):
    """The central API could not be reached or answered with an error."""


class AuthError(ApiError):
    """The central API refused the device's token: the device must be enrolled again."""
