"""The default decoder on real photos: what it reads, and that it never misreads.

The floors sit a few codes under what the default pipeline reaches (see
docs/PERFORMANCE.md), so a change that loses reads fails here. BoofCV is sampled
(every third photo) to keep the suite fast; the zxing-cpp set is read whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.datasets import (
    Photo,
    boofcv_frames,
    boofcv_photos,
    fit_to_frame,
    score_boofcv,
    score_zxing,
    zxing_samples,
)
from kiosk.config import DecoderConfig
from kiosk.decode_pipeline import Pipeline
from kiosk.decoder import Decoder, Frame, make_decoder


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return make_decoder(DecoderConfig())


@pytest.fixture(scope="module")
def boofcv_sample(datasets: Path) -> list[tuple[Frame, Photo, float]]:
    return boofcv_frames(boofcv_photos(datasets, every=3), shrunk=False)


def test_default_backend_is_the_zxing_pipeline(decoder: Decoder) -> None:
    assert isinstance(decoder, Pipeline)


def test_zxing_samples_read_to_their_text_and_none_misread(
    decoder: Decoder, datasets: Path
) -> None:
    samples = zxing_samples(datasets)
    assert len(samples) == 221
    score = score_zxing(decoder, samples)
    assert score.wrong == []
    assert score.linear == 51
    assert score.qr >= 160


def test_boofcv_photos_as_stored(
    decoder: Decoder, boofcv_sample: list[tuple[Frame, Photo, float]]
) -> None:
    score = score_boofcv(decoder, boofcv_sample)
    assert score.codes == 242
    # Every decoded symbol sits on a labelled code: nothing is read from the background.
    assert score.strays == 0
    assert score.found >= 178  # 182 of 242 (75%) when written


def test_boofcv_photos_at_camera_size(
    decoder: Decoder, boofcv_sample: list[tuple[Frame, Photo, float]]
) -> None:
    frames = []
    for frame, photo, _ in boofcv_sample:
        small, scale = fit_to_frame(frame)
        assert max(small.shape) <= 640
        frames.append((small, photo, scale))
    score = score_boofcv(decoder, frames)
    assert score.strays == 0
    assert score.found >= 162  # 167 of 242 (69%) when written
