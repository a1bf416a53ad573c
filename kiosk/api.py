"""The central API client: enrollment, card registry pages, event batches, heartbeat.

One :class:`ApiClient` speaks the contract of ``docs/central-api.yaml`` over
httpx. It owns the transport rules: TLS verification is always on (a private CA
via ``api.ca_file``), ``trust_env`` is off so environment proxies and
certificate variables cannot change whom the kiosk trusts, and every failure
becomes one exception of the hierarchy below. What to *do* about a failure
(retry, split, quarantine, stop) is :mod:`kiosk.sync`'s business.

The bearer token lives only in a private attribute and the request headers: it
is never logged, never part of an exception message and not in ``repr``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import certifi
import httpx

from kiosk import __version__
from kiosk.errors import ApiError, AuthError

__all__ = [
    "SOFTWARE_VERSION",
    "ApiClient",
    "ApiError",
    "AuthError",
    "BatchRejected",
    "BatchTooLarge",
    "CardPage",
    "Enrollment",
    "EnrollmentRefused",
    "EventResult",
    "RetryableError",
    "parse_retry_after",
    "tls_context",
]

SOFTWARE_VERSION = __version__
# A Retry-After beyond a day is a broken server, not a plan; records wait at most this.
MAX_RETRY_AFTER_SECONDS = 86_400.0


class RetryableError(ApiError):
    """Network error, timeout, TLS failure, 5xx or 429: try again later.

    ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BatchTooLarge(ApiError):
    """413: the server refuses a batch this big; send it in smaller parts."""


class BatchRejected(ApiError):
    """400 for a whole event batch; ``error`` is the server's reason."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the central API rejected the whole batch: {error}")
        self.error = error


class EnrollmentRefused(ApiError):
    """The enrollment code is unknown or used already."""


@dataclasses.dataclass(frozen=True)
class Enrollment:
    device_id: str
    token: str = dataclasses.field(repr=False)
    venue_id: str


@dataclasses.dataclass(frozen=True)
class CardPage:
    """One page of the card registry delta; ``cards`` are unvalidated server rows."""

    cards: list[dict[str, Any]]
    next: str
    more: bool
    server_time: dt.datetime


@dataclasses.dataclass(frozen=True)
class EventResult:
    event_id: str
    status: str  # stored | duplicate | invalid
    error: str | None = None


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """A verifying TLS context: the private CA in ``ca_file``, else certifi's bundle.

    Naming a file explicitly keeps OpenSSL from reading ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR``, which the default verify paths would honour.
    """
    return ssl.create_default_context(cafile=ca_file or certifi.where())


def parse_retry_after(value: str | None, date: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when absent or unusable.

    An HTTP date is judged against the response's own ``Date`` header, never the
    local clock, which may be wrong on a kiosk that has not synced its time.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    if not date:
        return None
    try:
        until = email.utils.parsedate_to_datetime(value)
        now = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    if until.tzinfo is None or now.tzinfo is None:
        return None
    return min(max((until - now).total_seconds(), 0.0), MAX_RETRY_AFTER_SECONDS)


def _parse_time(value: Any, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ApiError(f"the central API sent a bad {name}: {value!r}") from None
    if parsed.tzinfo is None:
        raise ApiError(f"the central API sent {name} without an offset: {value!r}")
    return parsed


def _error_text(response: httpx.Response) -> str:
    """The server's ``{"error": ...}`` text, shortened, or the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:200]
    return f"HTTP {response.status_code}"


class ApiClient:
    """A connection to the central API at ``base_url`` for one device token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        ca_file: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            verify=tls_context(ca_file),
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": f"kaikukortti-kiosk/{SOFTWARE_VERSION}"},
        )

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, token={'set' if self._token else 'none'})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the four calls ------------------------------------------------------

    def enroll(self, code: str, device: Mapping[str, str]) -> Enrollment:
        """Trade a one-time code for a device id, a token and the venue id."""
        response = self._request(
            "POST", "/v1/enroll", json={"code": code, "device": dict(device)}, auth=False
        )
        if response.status_code in (400, 401, 403):
            raise EnrollmentRefused(f"enrollment refused: {_error_text(response)}")
        body = self._json(response, 201)
        try:
            return Enrollment(
                device_id=str(body["device_id"]),
                token=str(body["token"]),
                venue_id=str(body["venue_id"]),
            )
        except KeyError as missing:
            raise ApiError(f"the enrollment answer lacks {missing}") from None

    def cards(self, since: str | None, limit: int) -> CardPage:
        """One page of the registry delta after ``since`` (None: from the start)."""
        params: dict[str, str | int] = {"limit": limit}
        if since is not None:
            params["since"] = since
        body = self._json(self._request("GET", "/v1/cards", params=params), 200)
        cards, cursor, more = body.get("cards"), body.get("next"), body.get("more")
        if (
            not isinstance(cards, list)
            or not all(isinstance(card, dict) for card in cards)
            or not isinstance(cursor, str)
            or not isinstance(more, bool)
        ):
            raise ApiError("the central API sent a malformed card page")
        return CardPage(cards, cursor, more, _parse_time(body.get("server_time"), "server_time"))

    def post_events(
        self, device_id: str, batch_id: str, events: Sequence[Mapping[str, Any]]
    ) -> list[EventResult]:
        """Send one batch; the per-event results the server gave."""
        response = self._request(
            "POST",
            "/v1/events",
            json={"device_id": device_id, "batch_id": batch_id, "events": list(events)},
            headers={"Idempotency-Key": batch_id},
        )
        if response.status_code == 413:
            raise BatchTooLarge(f"batch of {len(events)} events is too large for the server")
        if response.status_code == 400:
            raise BatchRejected(_error_text(response))
        results = self._json(response, 200).get("results")
        if not isinstance(results, list):
            raise ApiError("the central API sent no results list")
        parsed = []
        for item in results:
            if not isinstance(item, dict) or item.get("status") not in (
                "stored",
                "duplicate",
                "invalid",
            ):
                raise ApiError("the central API sent a malformed event result")
            error = item.get("error")
            parsed.append(
                EventResult(
                    str(item.get("event_id")),
                    item["status"],
                    None if error is None else str(error)[:500],
                )
            )
        return parsed

    def heartbeat(self, report: Mapping[str, Any]) -> dt.datetime:
        """Report the device's health; returns the server's time."""
        body = self._json(self._request("POST", "/v1/heartbeat", json=dict(report)), 200)
        return _parse_time(body.get("server_time"), "server_time")

    # --- transport -------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> httpx.Response:
        headers: dict[str, str] = dict(kwargs.pop("headers", {}))
        if auth:
            if not self._token:
                raise AuthError("the device has no token: enroll it with `kiosk enroll`")
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as error:
            # Includes timeouts, refused and dropped connections and TLS failures.
            raise RetryableError(f"{method} {path}: {type(error).__name__}: {error}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetryableError(
                f"{method} {path}: HTTP {status}",
                parse_retry_after(
                    response.headers.get("Retry-After"), response.headers.get("Date")
                ),
            )
        if auth and status in (401, 403):
            raise AuthError(f"{method} {path}: the central API refused the device's token")
        return response

    @staticmethod
    def _json(response: httpx.Response, expected: int) -> dict[str, Any]:
        request = response.request
        if response.status_code != expected:
            # An unexpected answer (404, 409, a captive portal...) is worth retrying
            # later: nothing is lost by waiting, and records stay queued.
            raise RetryableError(
                f"{request.method} {request.url.path}: HTTP {response.status_code}:"
                f" {_error_text(response)}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RetryableError(
                f"{request.method} {request.url.path}: answer is not a JSON object"
            )
        return body
