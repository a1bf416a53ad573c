"""Every exception the kiosk raises on purpose, in one hierarchy.

Each derives from :class:`KioskError`, so the CLI can turn it into one clear
line and an exit status instead of a traceback. Errors from libraries (sqlite3,
httpx, OS calls) are mapped to these at the module that meets them.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthError",
    "BatchRejected",
    "BatchTooLarge",
    "CameraError",
    "CardRowError",
    "ConfigError",
    "EnrollmentRefused",
    "KioskError",
    "MalformedPage",
    "NotEnrolled",
    "RegistryImportError",
    "RetryableError",
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
    """The local record store cannot be opened, read or written."""


class CardRowError(KioskError, ValueError):
    """A registry row breaks the card rules; the message never holds the card id."""


class RegistryImportError(KioskError):
    """A registry file cannot be imported; nothing of it was applied."""


class ApiError(KioskError):
    """The central API could not be reached or answered with an error."""


class AuthError(ApiError):
    """The central API refused the device's token: the device must be enrolled again."""


class NotEnrolled(ApiError):
    """The device has no token yet: it scans offline until ``kiosk enroll``."""


class EnrollmentRefused(ApiError):
    """The enrollment code is unknown, expired or used already."""


class RetryableError(ApiError):
    """Network error, timeout, TLS failure, 5xx or 429: try again later.

    ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MalformedPage(ApiError):
    """A registry page with a row the kiosk cannot trust; the page is refused whole."""


class BatchTooLarge(ApiError):
    """413: the server refuses a batch this big; send it in smaller parts."""


class BatchRejected(ApiError):
    """400 for a whole event batch; ``error`` is the server's reason."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the central API rejected the whole batch: {error}")
        self.error = error
