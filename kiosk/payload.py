"""From a decoded payload to a card id, a control code, or ``not_a_card``.

Whatever anyone holds up to the camera ends here, so this is the one gate for
hostile input: a payload that is not plainly a card id or a configured control
code is rejected as ``not_a_card``, and only its SHA-256 is kept. Nothing of the
raw text travels further (logs, SQL, a shell).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import urllib.parse
from collections.abc import Collection

__all__ = ["MAX_PAYLOAD_BYTES", "Payload", "mask_card_id", "parse_payload"]

# A card payload is a short id or URL; anything longer is refused before parsing.
MAX_PAYLOAD_BYTES = 256
# Card ids are letters and digits, for example A999123453 (X… and Z… are mobile cards).
CARD_ID = re.compile(r"[A-Z0-9]{6,24}")
URL_ID_PARAMETERS = ("id", "card")
# The white space a scanner or a printed code may put around a card id. Unicode
# spaces are not stripped: a decoder that guesses Latin-1 for invalid UTF-8 turns
# a trailing 0xA0 or 0x85 byte into one, and such a payload is not a card.
ASCII_SPACE = " \t\r\n\v\f"


@dataclasses.dataclass(frozen=True)
class Payload:
    """What a payload turned out to be.

    Exactly one of ``card_id`` and ``control`` is set, or neither for
    ``not_a_card``; ``digest`` is the payload's SHA-256 when it is not a card id.
    """

    card_id: str | None = None
    control: str | None = None
    digest: str | None = None

    @property
    def is_card(self) -> bool:
        return self.card_id is not None

    @property
    def key(self) -> str:
        """What makes two reads of the same code the same scan."""
        return self.card_id or self.control or self.digest or ""


def _card_id(text: str) -> str | None:
    candidate = text.strip(ASCII_SPACE).upper()
    if CARD_ID.fullmatch(candidate) and any(char.isdigit() for char in candidate):
        return candidate
    return None


def _card_id_from_url(text: str, hosts: Collection[str]) -> str | None:
    try:
        url = urllib.parse.urlsplit(text.strip())
        host = url.hostname
        port = url.port
    except ValueError:
        return None
    if url.scheme.lower() not in ("http", "https") or url.username or url.password:
        return None
    if host is None or host.lower() not in hosts or port not in (None, 80, 443):
        return None
    query = urllib.parse.parse_qs(url.query)
    for name in URL_ID_PARAMETERS:
        for value in query.get(name, []):
            if card_id := _card_id(value):
                return card_id
    segments = [segment for segment in url.path.split("/") if segment]
    return _card_id(urllib.parse.unquote(segments[-1])) if segments else None


def _raw_bytes(raw: bytes | str) -> bytes:
    if not isinstance(raw, str):
        return bytes(raw)
    try:
        return raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A lone surrogate: kept as invalid UTF-8, which is never a card.
        return raw.encode("utf-8", "surrogatepass")


def parse_payload(
    raw: bytes | str,
    card_url_hosts: Collection[str] = (),
    control_codes: Collection[str] = (),
) -> Payload:
    """Classify one decoded payload.

    Accepts a bare card id (case and surrounding white space normalised), a URL
    on one of ``card_url_hosts`` whose last path segment or ``id``/``card``
    query parameter is a card id, or one of ``control_codes`` (upper case).
    Everything else, including over-long, non-UTF-8 or control-character
    payloads, is ``not_a_card``.
    """
    data = _raw_bytes(raw)
    refused = Payload(digest=hashlib.sha256(data).hexdigest())
    if len(data) > MAX_PAYLOAD_BYTES:
        return refused
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return refused
    stripped = text.strip(ASCII_SPACE)
    # Control characters and terminal escapes inside a payload mark it hostile.
    if not stripped.isprintable():
        return refused
    if stripped.upper() in control_codes:
        return Payload(control=stripped.upper())
    hosts = {host.lower() for host in card_url_hosts}
    card_id = _card_id(stripped) or _card_id_from_url(stripped, hosts)
    return Payload(card_id=card_id) if card_id else refused


def mask_card_id(card_id: str | None) -> str:
    """A card id as logs may show it: only its last four characters."""
    if not card_id:
        return "-"
    return "****" + card_id[-4:]
