"""From decoded payload to card id: what counts as a card, and the hostile rest."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.payload import CARD_ID, MAX_PAYLOAD_BYTES, mask_card_id, parse_payload

HOSTS = ("kaikukortti.fi", "www.kaikukortti.fi", "omakaiku.fi")
CODES = ("KAIKU:CHILD", "KAIKU:DONE")


@pytest.mark.parametrize(
    ("payload", "card_id"),
    [
        ("A999123453", "A999123453"),
        ("  a999123453\r\n", "A999123453"),
        (b"X123456789", "X123456789"),
        ("Z000000042", "Z000000042"),
        ("https://kaikukortti.fi/kortti/A999123453", "A999123453"),
        ("https://WWW.KAIKUKORTTI.FI/k/a999123453/", "A999123453"),
        ("http://omakaiku.fi/?id=A999123453", "A999123453"),
        ("https://omakaiku.fi/app?card=a999123453&lang=fi", "A999123453"),
        ("https://kaikukortti.fi:443/A999123453", "A999123453"),
    ],
)
def test_card_ids_are_read_from_bare_ids_and_listed_urls(
    payload: str | bytes, card_id: str
) -> None:
    assert parse_payload(payload, HOSTS, CODES).card_id == card_id


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "hello",
        "ABCDEFGH",  # no digit: a word, not a card
        "A999-123453",
        "https://example.com/A999123453",
        "https://kaikukortti.fi.evil.example/A999123453",
        "https://user@kaikukortti.fi/A999123453",
        "https://kaikukortti.fi:8443/A999123453",
        "ftp://kaikukortti.fi/A999123453",
        "javascript:alert(1)//kaikukortti.fi/A999123453",
        "A999123453'; DROP TABLE events; --",
        "A999123453\x1b[2J",
        "A999\x00123453",
        "\x1b]0;owned\x07A999123453",
        "A" * 300,
        "A999123453" + " " * MAX_PAYLOAD_BYTES,
        b"A99912345\xff",
        "ｶｲｸ".encode("shift_jis"),
        "MEBKM:URL:http\\://en.wikipedia.org/wiki/Main_Page;;",
    ],
)
def test_everything_else_is_not_a_card_and_only_its_hash_is_kept(payload: str | bytes) -> None:
    result = parse_payload(payload, HOSTS, CODES)
    raw = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else payload
    assert result.card_id is None and result.control is None
    assert result.digest == hashlib.sha256(raw).hexdigest()


def test_control_codes_are_recognised_in_any_case() -> None:
    assert parse_payload(" kaiku:child ", HOSTS, CODES).control == "KAIKU:CHILD"
    assert parse_payload("KAIKU:DONE", HOSTS, CODES).control == "KAIKU:DONE"
    assert parse_payload("KAIKU:CHILD", HOSTS, ()).control is None


def test_logs_see_only_the_last_four_characters() -> None:
    assert mask_card_id("A999123453") == "****3453"
    assert mask_card_id(None) == "-"


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_no_payload_raises_and_a_card_id_is_always_plain(payload: bytes | str) -> None:
    result = parse_payload(payload, HOSTS, CODES)
    assert (result.card_id is None) or CARD_ID.fullmatch(result.card_id)
    if result.card_id is None and result.control is None:
        assert result.digest is not None and len(result.digest) == 64
