"""The decoder on generated frames: what each backend reads, and what it skips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kiosk.config import DecoderConfig, parse_config
from kiosk.decode_pipeline import has_texture
from kiosk.decoder import Frame, make_decoder
from kiosk.demo import card_image
from kiosk.errors import ConfigError

CARD = "A999123453"


def frame_of(image: Image.Image) -> Frame:
    return np.asarray(image, dtype=np.uint8)


def noise(sigma: float, seed: int = 0) -> Frame:
    values = np.random.default_rng(seed).normal(128, sigma, (480, 640))
    return np.clip(values, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("backend", ["auto", "zxing", "zbar"])
@pytest.mark.parametrize(("symbology", "kind"), [("qrcode", "QRCODE"), ("code39", "CODE39")])
def test_each_backend_reads_a_card(backend: str, symbology: str, kind: str) -> None:
    decoder = make_decoder(DecoderConfig(backend=backend))
    [symbol] = decoder.decode(frame_of(card_image(CARD, symbology)))
    assert (symbol.type, symbol.text) == (kind, CARD)
    assert all(0 <= x < 640 and 0 <= y < 480 for x, y in symbol.polygon)


def test_a_small_distant_qr_code_is_read_where_it_is() -> None:
    # A quarter-size card: its modules are under 2 px, and the outline must still
    # be in the camera frame's coordinates.
    small = card_image(CARD, "qrcode").resize((160, 120), Image.Resampling.BILINEAR)
    frame = Image.new("L", (640, 480), 255)
    frame.paste(small, (100, 100))
    [symbol] = make_decoder(DecoderConfig()).decode(frame_of(frame))
    assert symbol.text == CARD
    xs, ys = zip(*symbol.polygon, strict=True)
    assert min(xs) >= 100 and max(xs) <= 260
    assert min(ys) >= 100 and max(ys) <= 220


@pytest.mark.parametrize("frame", [noise(8), noise(0), np.zeros((480, 640), np.uint8)])
def test_frames_without_texture_are_skipped(frame: Frame) -> None:
    assert not has_texture(frame)
    assert make_decoder(DecoderConfig()).decode(frame) == []


def test_a_card_has_texture_even_in_sensor_noise() -> None:
    card = frame_of(card_image(CARD, "qrcode")).astype(np.int16) + noise(8) - 128
    assert has_texture(np.clip(card, 0, 255).astype(np.uint8))


def test_a_dim_low_contrast_card_is_read() -> None:
    # A card in shade: the whole frame spans only grey levels 60..120.
    dim = (60 + frame_of(card_image(CARD, "qrcode")) * (60 / 255)).astype(np.uint8)
    assert [symbol.text for symbol in make_decoder(DecoderConfig()).decode(dim)] == [CARD]


def test_the_backend_is_a_config_choice() -> None:
    assert DecoderConfig().backend == "auto"
    assert parse_config({"decoder": {"backend": "zbar"}}).decoder.backend == "zbar"
    with pytest.raises(ConfigError, match=r"decoder\.backend"):
        parse_config({"decoder": {"backend": "opencv"}})
