"""The Kaikukortti domain: card ids, registry rows, reason codes and the record shape.

Every fact about the card lives here once, and every other module asks here:

- the card-id rule (:func:`normalise_card_id`), used by the payload parser, the
  CSV import, the registry sync and the central service alike;
- one registry row (:class:`CardRow`) and its one validation
  (:func:`validate_card_row`), so a row refused by one of them is refused by all,
  with the same words;
- the reason codes (:class:`Reason`): what each means, what staff can tell the
  holder, whether it admits, and whether it asks the holder to see staff;
- the shape of a scan record (:class:`EventRecord`) and of the event the central
  API receives (:func:`event_body`, :func:`validate_event`).

Nothing here does I/O or imports a database, a network or a device library.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from kiosk.errors import CardRowError

__all__ = [
    "ASCII_SPACE",
    "CARD_ID_RULE",
    "CARD_ROW_FIELDS",
    "EARLIEST_DATE",
    "EVENT_FIELDS",
    "LATEST_DATE",
    "MAX_CHILDREN",
    "CardKind",
    "CardRow",
    "CardStatus",
    "EventRecord",
    "Reason",
    "ReasonInfo",
    "Result",
    "event_body",
    "normalise_card_id",
    "validate_card_row",
    "validate_event",
]

# --- the card id -------------------------------------------------------------

# Card ids are letters and digits, for example A999123453 (X… and Z… are mobile
# cards). The real format is not public; this is the widest rule that still
# tells a card from a word.
_CARD_ID: Final = re.compile(r"[A-Z0-9]{6,24}")
CARD_ID_RULE: Final = "6 to 24 letters and digits, with at least one digit"
# The white space a scanner or a printed code may put around a card id. Unicode
# spaces are not stripped: a decoder that guesses Latin-1 for invalid UTF-8 turns
# a trailing 0xA0 or 0x85 byte into one, and such a payload is not a card.
ASCII_SPACE: Final = " \t\r\n\v\f"


def normalise_card_id(text: str) -> str | None:
    """The card id ``text`` spells (surrounding ASCII space dropped, upper case), or None."""
    candidate = text.strip(ASCII_SPACE).upper()
    if _CARD_ID.fullmatch(candidate) and any(char.isdigit() for char in candidate):
        return candidate
    return None


# --- the registry row ----------------------------------------------------------


class CardKind(StrEnum):
    PERSONAL = "personal"
    COMMUNITY = "community"


class CardStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


# More registered children than this is a typing error, not a family.
MAX_CHILDREN: Final = 99
# A card valid outside these dates is a typing or a server error.
EARLIEST_DATE: Final = dt.date(2000, 1, 1)
LATEST_DATE: Final = dt.date(2099, 12, 31)
CARD_ROW_FIELDS: Final = ("card_id", "kind", "status", "valid_from", "valid_until", "children")
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclasses.dataclass(frozen=True)
class CardRow:
    """One card of the registry, as the national database describes it."""

    card_id: str
    kind: CardKind
    status: CardStatus
    valid_from: dt.date
    valid_until: dt.date
    children: int | None  # None: not registered, the venue's default applies
    updated_at: str = ""

    def as_row(self) -> dict[str, Any]:
        """The row as text and numbers, for SQL and JSON."""
        # Not dataclasses.asdict: its deep copy of each field was most of the
        # time a 100,000-card registry sync took.
        return {
            "card_id": self.card_id,
            "kind": str(self.kind),
            "status": str(self.status),
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "children": self.children,
            "updated_at": self.updated_at,
        }


def _choice(name: str, value: object, kind: type[StrEnum]) -> Any:
    if isinstance(value, str) and value.strip() in kind.__members__.values():
        return kind(value.strip())
    raise CardRowError(f"{name} must be {' or '.join(kind)}")


def _date(name: str, value: object) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    elif isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise CardRowError(f"{name} is not a date like 2026-12-31") from None
    else:
        raise CardRowError(f"{name} is not a date like 2026-12-31")
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise CardRowError(f"{name} is outside {EARLIEST_DATE} to {LATEST_DATE}")
    return day


def _children(value: object) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 2:
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_CHILDREN:
        return value
    raise CardRowError(f"children is not a number from 0 to {MAX_CHILDREN}, or empty")


def validate_card_row(fields: Mapping[str, object], updated_at: str = "") -> CardRow:
    """A registry row from text (a CSV line) or JSON (the central API).

    Raises :class:`~kiosk.errors.CardRowError` with the same words wherever the
    row came from; the message never contains the card id.
    """
    missing = [name for name in CARD_ROW_FIELDS if name not in fields]
    if missing:
        raise CardRowError(f"missing {', '.join(missing)}")
    raw_id = fields["card_id"]
    card_id = normalise_card_id(raw_id) if isinstance(raw_id, str) else None
    if card_id is None:
        raise CardRowError(f"card_id is not a card id ({CARD_ID_RULE})")
    kind = _choice("kind", fields["kind"], CardKind)
    status = _choice("status", fields["status"], CardStatus)
    valid_from = _date("valid_from", fields["valid_from"])
    valid_until = _date("valid_until", fields["valid_until"])
    if valid_from > valid_until:
        raise CardRowError("valid_from is after valid_until")
    return CardRow(
        card_id, kind, status, valid_from, valid_until, _children(fields["children"]), updated_at
    )


# --- reasons -------------------------------------------------------------------


class Result(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclasses.dataclass(frozen=True)
class ReasonInfo:
    """What a reason code means, for staff and for the signals."""

    admits: bool
    # Whether a member of staff can help: the amber "see staff" light shows.
    see_staff: bool
    words: str
    advice: str


class Reason(StrEnum):
    """Why a scan was decided as it was: one stable code per decision."""

    OK = "ok"
    OK_PROVISIONAL = "ok_provisional"
    NOT_A_CARD = "not_a_card"
    UNKNOWN_CARD = "unknown_card"
    INACTIVE_CARD = "inactive_card"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    CLOSED = "closed"
    QUOTA_FULL = "quota_full"
    ALREADY_USED = "already_used"

    @property
    def info(self) -> ReasonInfo:
        return _REASONS[self]

    @property
    def admits(self) -> bool:
        return self.info.admits

    @property
    def see_staff(self) -> bool:
        return self.info.see_staff

    @property
    def words(self) -> str:
        return self.info.words

    @property
    def advice(self) -> str:
        return self.info.advice

    @property
    def result(self) -> Result:
        return Result.ACCEPTED if self.admits else Result.REJECTED


_REASONS: Final[Mapping[Reason, ReasonInfo]] = {
    Reason.OK: ReasonInfo(True, False, "valid card", "Welcome."),
    Reason.OK_PROVISIONAL: ReasonInfo(
        True,
        False,
        "card not in the local registry, accepted while the registry is stale",
        "Welcome; the card will be checked when the registry is refreshed.",
    ),
    Reason.NOT_A_CARD: ReasonInfo(
        False,
        False,
        "the code is not a Kaikukortti card",
        "Show the Kaikukortti card itself, or the card in the mobile app.",
    ),
    Reason.UNKNOWN_CARD: ReasonInfo(
        False,
        True,
        "card not in the registry (it may not be registered yet)",
        "A new card works once it is registered; ask the service that issued it, "
        "or try again in a day or two.",
    ),
    Reason.INACTIVE_CARD: ReasonInfo(
        False,
        True,
        "card is marked lost, replaced or withdrawn",
        "The card was reported lost, replaced or withdrawn; the service that issued "
        "it can tell which and give a new card.",
    ),
    Reason.EXPIRED: ReasonInfo(
        False,
        True,
        "card validity has ended",
        "Ask the service that issued the card whether it can be renewed.",
    ),
    Reason.NOT_YET_VALID: ReasonInfo(
        False,
        True,
        "card validity has not started",
        "The card can be used from its first valid day.",
    ),
    Reason.CLOSED: ReasonInfo(
        False,
        False,
        "outside the venue's opening hours or on a closed day",
        "Free entry is given during the opening hours.",
    ),
    Reason.QUOTA_FULL: ReasonInfo(
        False,
        True,
        "the venue's daily number of free entries is used up",
        "Today's free entries are used up; please come another day.",
    ),
    Reason.ALREADY_USED: ReasonInfo(
        False,
        True,
        "card was already used here a moment ago",
        "The card was used here a moment ago; it can be used again later.",
    ),
}


# --- the scan record ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """One decision, as the kiosk records it."""

    event_id: str
    card_id: str | None  # None for not_a_card
    payload_sha256: str | None  # only for a payload that is not a card id
    result: Result
    reason: Reason
    adults: int
    children: int
    max_children: int
    category: str
    mode: str
    venue_id: str
    scanned_at: str  # RFC 3339 with the venue's offset
    local_date: str  # the venue's date of the scan
    mono_ns: int
    boot_id: str
    clock_trusted: bool
    closed: bool  # False while the companion window is open


# The event the central API receives: these fields of a record.
EVENT_FIELDS: Final = (
    "event_id",
    "seq",
    "card_id",
    "result",
    "reason",
    "adults",
    "children",
    "category",
    "mode",
    "venue_id",
    "scanned_at",
    "clock_trusted",
)
# Children on one record beyond this are a broken or hostile client.
MAX_EVENT_CHILDREN: Final = 100


def event_body(record: EventRecord, seq: int) -> dict[str, Any]:
    """One record as the API's event object."""
    return {
        "event_id": record.event_id,
        "seq": seq,
        "card_id": record.card_id,
        "result": str(record.result),
        "reason": str(record.reason),
        "adults": record.adults,
        "children": record.children,
        "category": record.category,
        "mode": record.mode,
        "venue_id": record.venue_id,
        "scanned_at": record.scanned_at,
        "clock_trusted": record.clock_trusted,
    }


def _is_count(value: object, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _is_time(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value or len(value) > 40:
        return False
    try:
        return dt.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def validate_event(event: Mapping[str, Any]) -> str | None:
    """Why ``event`` (an API event object) breaks the domain's rules, or None.

    The wire types are the contract's business; this checks what the contract
    cannot say: the reason fits the result, a card id is a card id exactly when
    the code was a card, and the counts are those of one holder.
    """
    missing = [name for name in EVENT_FIELDS if name not in event]
    if missing:
        return f"missing fields {missing}"
    reason, card_id = event["reason"], event["card_id"]
    try:
        known = Reason(reason)
    except ValueError:
        return f"unknown reason {str(reason)[:40]!r}"
    checks = (
        (_is_uuid(event["event_id"]), "event_id must be a UUID"),
        (event["result"] == known.result, f"reason {known} does not fit the result"),
        (
            (card_id is None) == (known is Reason.NOT_A_CARD),
            "card_id must be null exactly for not_a_card",
        ),
        (
            card_id is None or (isinstance(card_id, str) and normalise_card_id(card_id) == card_id),
            f"card_id must be a card id ({CARD_ID_RULE})",
        ),
        (event["adults"] == (1 if known.admits else 0), "adults must be 1 when admitted, else 0"),
        (
            _is_count(event["children"], MAX_EVENT_CHILDREN)
            and (known.admits or event["children"] == 0),
            f"children must be 0 to {MAX_EVENT_CHILDREN}, and 0 when not admitted",
        ),
        (_is_time(event["scanned_at"]), "scanned_at must be RFC 3339 with an offset"),
        (isinstance(event["clock_trusted"], bool), "clock_trusted must be a boolean"),
    )
    return next((message for ok, message in checks if not ok), None)
