"""The reference central API server (``kiosk devserver``), per ``docs/central-api.yaml``.

A strict, small stand-in for the national card database's API, for the demo,
the tests and a pilot region. Its data lives in SQLite; it checks every bearer
token, dedupes events by ``event_id``, validates each event on its own and pages
the card registry by an opaque cursor (a revision number that grows with every
card change, so a card that changes again shows up again after the cursor).

Faults can be injected at start (``--fault``) or while it runs, through
:meth:`DevServer.inject` in-process or ``POST /admin/faults`` from loopback with
the admin token: 500, 503, 429 with ``Retry-After`` (seconds or an HTTP date),
400, 401, 413, slow answers and dropped connections. It notes each request's
arrival on its monotonic clock, so tests can measure the client's waiting.
Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import email.utils
import hashlib
import hmac
import http.server
import ipaddress
import json
import logging
import secrets
import socket
import sqlite3
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kiosk.config import CATEGORIES, MODES
from kiosk.payload import CARD_ID
from kiosk.sync import EVENT_FIELDS as SENT_EVENT_FIELDS

__all__ = [
    "FAULT_KINDS",
    "HARD_BODY_LIMIT",
    "DevServer",
    "Fault",
    "Reply",
    "RequestRecord",
    "load_cards_csv",
    "parse_fault",
    "validate_event",
]

log = logging.getLogger(__name__)

FAULT_KINDS = ("500", "503", "429", "400", "401", "413", "slow", "drop", "drop_after")
REASONS = {
    "accepted": ("ok", "ok_provisional"),
    "rejected": (
        "not_a_card",
        "unknown_card",
        "inactive_card",
        "expired",
        "not_yet_valid",
        "closed",
        "quota_full",
        "already_used",
    ),
}
CARD_FIELDS = ("card_id", "kind", "status", "valid_from", "valid_until", "children")
EVENT_FIELDS = frozenset((*SENT_EVENT_FIELDS, "clock_trusted"))
HEARTBEAT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "device_id": str,
    "software_version": str,
    "queue_depth": int,
    "quarantined": int,
    "last_registry_sync": (str, type(None)),
    "registry_cards": int,
    "camera_ok": bool,
    "clock_synced": bool,
    "disk_free_bytes": int,
    "uptime_s": int,
}
MAX_EVENTS_PER_BATCH = 1000
MAX_PAGE = 1000
DEFAULT_PAGE = 500
# Bodies beyond this are refused with 413 whatever --max-body-bytes says.
HARD_BODY_LIMIT = 16 * 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS enroll_codes (
    code TEXT PRIMARY KEY, venue_id TEXT NOT NULL, used_at TEXT);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, venue_id TEXT NOT NULL,
    device TEXT NOT NULL, enrolled_at TEXT NOT NULL, last_heartbeat TEXT);
CREATE TABLE IF NOT EXISTS cards (
    card_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,
    valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, children INTEGER,
    rev INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL);
"""


@dataclasses.dataclass
class Fault:
    """A fault for ``count`` requests whose path starts with ``path``, after ``after`` more.

    ``retry_after`` goes into a 429/503's ``Retry-After``: as seconds, or with
    ``as_date`` as the HTTP date that many seconds after the server's ``Date``.
    ``delay`` is how long a ``slow`` answer waits after doing the work.
    """

    kind: str
    count: int = 1
    path: str = "/v1/"
    after: int = 0  # matching requests to let through before the fault starts
    retry_after: float | None = None
    as_date: bool = False
    delay: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if self.count < 1 or self.after < 0 or self.delay < 0 or (self.retry_after or 0) < 0:
            raise ValueError("fault count must be positive, delays not negative")


def parse_fault(spec: str) -> Fault:
    """A fault from ``KIND [count=N] [after=N] [path=P] [retry_after=S] [as_date=1] [delay=S]``."""
    kind, *options = spec.split()
    values: dict[str, Any] = {}
    for option in options:
        key, _, value = option.partition("=")
        if key in ("count", "after"):
            values[key] = int(value)
        elif key in ("retry_after", "delay"):
            values[key] = float(value)
        elif key == "as_date":
            values[key] = value.lower() in ("1", "true", "yes")
        elif key == "path":
            values[key] = value
        else:
            raise ValueError(f"unknown fault option {key!r}")
    return Fault(kind, **values)


@dataclasses.dataclass
class RequestRecord:
    """One request as the server saw it; ``arrived`` is the server's monotonic clock."""

    arrived: float
    method: str
    path: str
    query: str
    status: int | None = None  # None: the connection was dropped
    fault: str | None = None


@dataclasses.dataclass
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_time(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        return dt.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def validate_event(event: Any) -> str | None:
    """Why ``event`` is not a valid API event, or None when it is."""
    if not isinstance(event, dict):
        return "an event must be an object"
    missing = EVENT_FIELDS - event.keys()
    extra = event.keys() - EVENT_FIELDS
    if missing or extra:
        return f"missing fields {sorted(missing)}, unknown fields {sorted(extra)}"
    card_id, result, reason = event["card_id"], event["result"], event["reason"]
    checks = (
        (_is_uuid(event["event_id"]), "event_id must be a UUID"),
        (_is_int(event["seq"], 1), "seq must be a positive integer"),
        (result in REASONS, "result must be accepted or rejected"),
        (reason in REASONS.get(result, ()), f"reason {reason!r} does not fit result"),
        (
            (card_id is None) == (reason == "not_a_card"),
            "card_id must be null exactly for not_a_card",
        ),
        (
            card_id is None or (isinstance(card_id, str) and bool(CARD_ID.fullmatch(card_id))),
            "card_id must be letters and digits",
        ),
        (_is_int(event["adults"]) and event["adults"] <= 1, "adults must be 0 or 1"),
        (_is_int(event["children"]), "children must be a non-negative integer"),
        (event["category"] in CATEGORIES, "unknown category"),
        (event["mode"] in MODES, "unknown mode"),
        (isinstance(event["venue_id"], str) and event["venue_id"] != "", "venue_id missing"),
        (_is_time(event["scanned_at"]), "scanned_at must be RFC 3339 with an offset"),
        (isinstance(event["clock_trusted"], bool), "clock_trusted must be a boolean"),
    )
    return next((message for ok, message in checks if not ok), None)


def _card_from(row: Mapping[str, Any]) -> dict[str, Any]:
    """A validated registry card; ValueError says what is wrong."""
    card_id = str(row.get("card_id") or "").strip().upper()
    if not CARD_ID.fullmatch(card_id):
        raise ValueError(f"bad card_id {card_id!r}")
    if row.get("kind") not in ("personal", "community"):
        raise ValueError(f"{card_id}: kind must be personal or community")
    if row.get("status") not in ("active", "inactive"):
        raise ValueError(f"{card_id}: status must be active or inactive")
    valid_from = dt.date.fromisoformat(str(row.get("valid_from"))).isoformat()
    valid_until = dt.date.fromisoformat(str(row.get("valid_until"))).isoformat()
    children = row.get("children")
    if children in ("", None):
        children = None
    else:
        children = int(children)
        if children < 0:
            raise ValueError(f"{card_id}: children must not be negative")
    return {
        "card_id": card_id,
        "kind": row["kind"],
        "status": row["status"],
        "valid_from": valid_from,
        "valid_until": valid_until,
        "children": children,
    }


def load_cards_csv(path: str | Path) -> list[dict[str, Any]]:
    """Cards from a CSV with header ``card_id,kind,status,valid_from,valid_until,children``."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CARD_FIELDS:
            raise ValueError(f"{path}: the header must be {','.join(CARD_FIELDS)}")
        cards = []
        for line, row in enumerate(reader, start=2):
            try:
                cards.append(_card_from(row))
            except ValueError as error:
                raise ValueError(f"{path}:{line}: {error}") from None
        return cards


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


class DevServer:
    """The reference server; ``start()`` serves in a thread, ``serve_forever()`` in this one."""

    def __init__(
        self,
        *,
        data: str | Path = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        cards: Iterable[Mapping[str, Any]] = (),
        enroll_codes: Iterable[str] = (),
        venue_id: str = "demo-venue",
        max_body_bytes: int = HARD_BODY_LIMIT,
        clock_offset: float = 0.0,
        admin_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        faults: Iterable[Fault] = (),
    ) -> None:
        self.venue_id = venue_id
        self.max_body_bytes = max_body_bytes
        self.clock_offset = clock_offset
        self._admin_token = admin_token
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(data), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)
        self._faults: list[Fault] = list(faults)
        self._requests: list[RequestRecord] = []
        self.upsert_cards(cards)
        for code in enroll_codes:
            self.add_enroll_code(code)
        self._httpd = http.server.ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        scheme = "https" if ssl_context is not None else "http"
        bound_host, bound_port = self._httpd.server_address[:2]
        self.url = f"{scheme}://{_url_host(str(bound_host))}:{bound_port}"

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> DevServer:
        if self._thread is not None:
            return self  # already serving; a second loop would outlive stop()
        self._thread = threading.Thread(target=self.serve_forever, name="devserver", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._db.close()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control and inspection (tests, admin endpoint) -------------------------

    def inject(self, fault: Fault | str) -> None:
        """Queue a fault (or its ``parse_fault`` spec) for matching requests."""
        with self._lock:
            self._faults.append(parse_fault(fault) if isinstance(fault, str) else fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self, path: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def add_enroll_code(self, code: str, venue_id: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO enroll_codes (code, venue_id) VALUES (?, ?)",
                (code, venue_id or self.venue_id),
            )

    def unused_enroll_codes(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT code FROM enroll_codes WHERE used_at IS NULL")
            return [row[0] for row in rows]

    def upsert_cards(self, cards: Iterable[Mapping[str, Any]]) -> int:
        """Add or change cards; each changed card gets a new revision. Returns how many."""
        changed = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for raw in cards:
                card = _card_from(raw)
                old = self._db.execute(
                    "SELECT * FROM cards WHERE card_id = ?", (card["card_id"],)
                ).fetchone()
                if old is not None and {key: old[key] for key in CARD_FIELDS} == card:
                    continue
                rev = self._db.execute("SELECT coalesce(max(rev), 0) + 1 FROM cards").fetchone()
                self._db.execute(
                    "INSERT OR REPLACE INTO cards VALUES (:card_id, :kind, :status,"
                    " :valid_from, :valid_until, :children, :rev)",
                    {**card, "rev": rev[0]},
                )
                changed += 1
            self._db.execute("COMMIT")
        return changed

    def stored_events(self) -> list[dict[str, Any]]:
        """Every event stored, in arrival order, as the device sent it."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM events ORDER BY rowid")
            return [json.loads(row[0]) for row in rows]

    def devices(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, venue_id, device, enrolled_at, last_heartbeat FROM devices"
            )
            return [dict(row) for row in rows]

    def now(self) -> dt.datetime:
        """The server's time: the wall clock shifted by ``clock_offset`` seconds."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset)

    # --- request handling (called by the handler threads) -----------------------

    def arrived(self, method: str, path: str, query: str) -> RequestRecord:
        record = RequestRecord(time.monotonic(), method, path, query)
        if not path.startswith("/admin/"):
            with self._lock:
                self._requests.append(record)
        return record

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not path.startswith(fault.path):
                    continue
                if fault.after:
                    fault.after -= 1
                    return None
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def fault_reply(self, fault: Fault) -> Reply:
        reply = _error(int(fault.kind), f"injected fault {fault.kind}")
        if fault.retry_after is not None:
            if fault.as_date:
                when = self.now() + dt.timedelta(seconds=fault.retry_after)
                reply.headers["Retry-After"] = email.utils.format_datetime(when, usegmt=True)
            else:
                reply.headers["Retry-After"] = str(int(fault.retry_after))
        return reply

    def route(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Reply:
        if (method, path) == ("POST", "/v1/enroll"):
            return self._enroll(body)
        routes = {
            ("GET", "/v1/cards"): self._cards,
            ("POST", "/v1/events"): self._events,
            ("POST", "/v1/heartbeat"): self._heartbeat,
        }
        handler = routes.get((method, path))
        if handler is None:
            known = path == "/v1/enroll" or any(path == known for _, known in routes)
            return _error(405 if known else 404, f"no route {method} {path}")
        device = self._device(headers.get("Authorization", ""))
        if device is None:
            return _error(401, "missing or unknown bearer token")
        return handler(device, query, headers, body)

    def admin(self, method: str, path: str, client: str, headers: Any, body: bytes) -> Reply:
        token = headers.get("X-Admin-Token", "")
        if (
            self._admin_token is None
            or not ipaddress.ip_address(client).is_loopback
            or not hmac.compare_digest(token.encode(), self._admin_token.encode())
        ):
            return _error(403, "admin endpoints need loopback and the admin token")
        data = _json_body(body) if body else {}
        try:
            if (method, path) == ("POST", "/admin/faults"):
                self.inject(Fault(**data))
            elif (method, path) == ("DELETE", "/admin/faults"):
                self.clear_faults()
            elif (method, path) == ("POST", "/admin/cards"):
                return Reply(200, {"changed": self.upsert_cards(data["cards"])})
            elif (method, path) == ("POST", "/admin/enroll-codes"):
                self.add_enroll_code(data["code"], data.get("venue_id"))
            elif (method, path) == ("GET", "/admin/requests"):
                return Reply(200, {"requests": [dataclasses.asdict(r) for r in self.requests()]})
            elif (method, path) == ("GET", "/admin/events"):
                return Reply(200, {"events": self.stored_events()})
            else:
                return _error(404, f"no admin route {method} {path}")
        except (TypeError, KeyError, ValueError) as error:
            return _error(400, f"bad admin request: {error}")
        return Reply(200, {"ok": True})

    # --- the API ----------------------------------------------------------------

    def _device(self, authorization: str) -> sqlite3.Row | None:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return None
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(
                "SELECT * FROM devices WHERE token_sha256 = ?", (digest,)
            ).fetchone()
        return row

    def _enroll(self, body: bytes) -> Reply:
        data = _json_body(body)
        device = data.get("device") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("code"), str):
            return _error(400, "the body must be {code, device}")
        if not isinstance(device, dict) or not all(
            isinstance(device.get(key), str) for key in ("hostname", "model", "software_version")
        ):
            return _error(400, "device must have hostname, model and software_version")
        token = secrets.token_urlsafe(32)
        device_id = str(uuid.uuid4())
        with self._lock:
            code = self._db.execute(
                "SELECT venue_id, used_at FROM enroll_codes WHERE code = ?", (data["code"],)
            ).fetchone()
            if code is None:
                return _error(401, "unknown enrollment code")
            if code["used_at"] is not None:
                return _error(401, "enrollment code already used")
            now = self.now().isoformat(timespec="seconds")
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE enroll_codes SET used_at = ? WHERE code = ?", (now, data["code"])
            )
            self._db.execute(
                "INSERT INTO devices (device_id, token_sha256, venue_id, device, enrolled_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    device_id,
                    hashlib.sha256(token.encode()).hexdigest(),
                    code["venue_id"],
                    json.dumps(device),
                    now,
                ),
            )
            self._db.execute("COMMIT")
        log.info("enrolled device=%s venue=%s", device_id, code["venue_id"])
        return Reply(201, {"device_id": device_id, "token": token, "venue_id": code["venue_id"]})

    def _cards(self, device: sqlite3.Row, query: str, headers: Any, body: bytes) -> Reply:
        params = urllib.parse.parse_qs(query)
        since = params.get("since", ["0"])[-1]
        limit = params.get("limit", [str(DEFAULT_PAGE)])[-1]
        if not since.isdigit() or not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE:
            return _error(400, f"since must be a cursor and limit 1..{MAX_PAGE}")
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM cards WHERE rev > ? ORDER BY rev LIMIT ?", (int(since), int(limit))
            ).fetchall()
            last = rows[-1]["rev"] if rows else int(since)
            more = self._db.execute("SELECT 1 FROM cards WHERE rev > ?", (last,)).fetchone()
        return Reply(
            200,
            {
                "cards": [{key: row[key] for key in CARD_FIELDS} for row in rows],
                "next": str(last),
                "more": more is not None,
                "server_time": self.now().isoformat(),
            },
        )

    def _events(self, device: sqlite3.Row, query: str, headers: Any, body: bytes) -> Reply:
        data = _json_body(body)
        if not isinstance(data, dict) or set(data) != {"device_id", "batch_id", "events"}:
            return _error(400, "the body must be {device_id, batch_id, events}")
        events = data["events"]
        if data["device_id"] != device["device_id"]:
            return _error(400, "device_id does not match the token")
        if (
            not isinstance(data["batch_id"], str)
            or headers.get("Idempotency-Key") != data["batch_id"]
        ):
            return _error(400, "the Idempotency-Key header must equal batch_id")
        if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS_PER_BATCH:
            return _error(400, f"events must be a list of 1..{MAX_EVENTS_PER_BATCH}")
        results = []
        now = self.now().isoformat(timespec="seconds")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for event in events:
                error = validate_event(event)
                event_id = event.get("event_id") if isinstance(event, dict) else None
                if error is not None:
                    results.append({"event_id": event_id, "status": "invalid", "error": error})
                    continue
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        event_id,
                        device["device_id"],
                        data["batch_id"],
                        event["seq"],
                        json.dumps(event),
                        now,
                    ),
                ).rowcount
                results.append(
                    {"event_id": event_id, "status": "stored" if inserted else "duplicate"}
                )
            self._db.execute("COMMIT")
        counts = {
            s: sum(r["status"] == s for r in results) for s in ("stored", "duplicate", "invalid")
        }
        log.info(
            "events device=%s batch=%s stored=%d duplicate=%d invalid=%d",
            device["device_id"],
            data["batch_id"],
            counts["stored"],
            counts["duplicate"],
            counts["invalid"],
        )
        return Reply(200, {"results": results})

    def _heartbeat(self, device: sqlite3.Row, query: str, headers: Any, body: bytes) -> Reply:
        data = _json_body(body)
        if not isinstance(data, dict) or set(data) != set(HEARTBEAT_FIELDS):
            return _error(400, f"the body must have exactly {sorted(HEARTBEAT_FIELDS)}")
        for key, kind in HEARTBEAT_FIELDS.items():
            value = data[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                return _error(400, f"{key} has the wrong type")
        if data["device_id"] != device["device_id"]:
            return _error(400, "device_id does not match the token")
        with self._lock:
            self._db.execute(
                "UPDATE devices SET last_heartbeat = ? WHERE device_id = ?",
                (json.dumps(data), device["device_id"]),
            )
        return Reply(200, {"server_time": self.now().isoformat()})


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Handler(http.server.BaseHTTPRequestHandler):
    """Turns HTTP into :class:`DevServer` calls, applying faults on the way."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real API would
    # Headers and body go out in two writes; with Nagle on, the body waits for
    # the client's delayed ACK (~40 ms a response on Linux loopback).
    disable_nagle_algorithm = True
    server_version = "kiosk-devserver"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def app(self) -> DevServer:
        app: DevServer = self.server.app  # type: ignore[attr-defined]
        return app

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header follows the server's (possibly shifted) clock.
        return email.utils.format_datetime(self.app.now(), usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http " + format, *args)

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        record = self.app.arrived(method, url.path, url.query)
        length = self.headers.get("Content-Length", "0")
        size = int(length) if length.isdigit() else -1
        if size < 0 or size > min(self.app.max_body_bytes, HARD_BODY_LIMIT):
            # Not reading an oversized body means the connection cannot be reused.
            self.close_connection = True
            self._send(
                record, _error(413, f"the body must be at most {self.app.max_body_bytes} bytes")
            )
            return
        body = self.rfile.read(size)
        if url.path.startswith("/admin/"):
            self._send(
                record, self.app.admin(method, url.path, self.client_address[0], self.headers, body)
            )
            return
        fault = self.app.take_fault(url.path)
        record.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None and fault.kind.isdigit():
            self._send(record, self.app.fault_reply(fault))
            return
        reply = self.app.route(method, url.path, url.query, self.headers, body)
        if fault is not None and fault.kind == "drop_after":
            self._drop()
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        self._send(record, reply)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, record: RequestRecord, reply: Reply) -> None:
        record.status = reply.status
        payload = json.dumps(reply.body).encode() if reply.body is not None else b""
        log.info(
            "request method=%s path=%s status=%d fault=%s",
            self.command,
            record.path,
            reply.status,
            record.fault or "-",
        )
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client gave up (a slow answer past its timeout); the work is done.
            self.close_connection = True
