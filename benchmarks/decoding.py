"""Decoder figures: reads on both shared datasets, and the cost of a camera frame.

The default pipeline (``make_decoder`` with the default config) runs beside
plain zbar and plain zxing-cpp, each a single pass restricted to the kiosk's
symbologies, so every figure has its baselines from the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from benchmarks.datasets import (
    BoofScore,
    boofcv_photos,
    datasets_root,
    fit_to_frame,
    score_photo,
    score_zxing,
    zxing_samples,
)
from benchmarks.report import Figure
from kiosk.config import DecoderConfig
from kiosk.decode_zxing import ZxingDecoder
from kiosk.decoder import Decoder, Frame, ZbarDecoder, load_grey, make_decoder

SYMBOLOGIES = DecoderConfig().symbologies


def decoders() -> dict[str, Decoder]:
    return {
        "pipeline": make_decoder(DecoderConfig()),
        "zbar": ZbarDecoder(SYMBOLOGIES),
        "zxing": ZxingDecoder(SYMBOLOGIES),
    }


def noise_frames(count: int, sigma: float = 8.0) -> list[Frame]:
    """Camera frames of a blank scene: mid grey with Gaussian sensor noise."""
    rng = np.random.default_rng(7)
    return [
        np.clip(rng.normal(128, sigma, (480, 640)), 0, 255).astype(np.uint8) for _ in range(count)
    ]


def median_ms(decode: Callable[[Frame], object], frames: Iterable[Frame]) -> float:
    times = []
    for frame in frames:
        start = time.perf_counter()
        decode(frame)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _figures(
    goal: str, target: float, values: Mapping[str, float], unit: str = "", lower: bool = False
) -> Figure:
    return Figure(goal, target, values["pipeline"], unit, lower, values["zbar"], values["zxing"])


def run(full: bool) -> list[Figure]:
    root = datasets_root()
    found = decoders()
    samples = zxing_samples(root)
    scores = {name: score_zxing(decoder, samples) for name, decoder in found.items()}

    stored = {name: BoofScore() for name in found}
    shrunk = {name: BoofScore() for name in found}
    card_frames = []
    for photo in boofcv_photos(root):
        frame = load_grey(photo.path)
        small, scale = fit_to_frame(frame)
        card_frames.append(small)
        for name, decoder in found.items():
            for total, image, factor in ((stored, frame, 1.0), (shrunk, small, scale)):
                one = score_photo(decoder.decode(image), [o * factor for o in photo.outlines])
                total[name].found += one.found
                total[name].codes += one.codes

    noise = noise_frames(300 if full else 60)
    linear = {name: score.linear for name, score in scores.items()}
    return [
        _figures("zxing-cpp samples: QR read (of 170)", 168, {n: s.qr for n, s in scores.items()}),
        _figures("zxing-cpp samples: 1D read (of 51)", 51, linear),
        _figures(
            "zxing-cpp samples: wrong texts",
            0,
            {n: len(s.wrong) for n, s in scores.items()},
            lower=True,
        ),
        _figures(
            "BoofCV found, up to 2016 px",
            75,
            {n: 100 * s.rate for n, s in stored.items()},
            "%",
        ),
        _figures(
            "BoofCV found, fitted to 640x480",
            65,
            {n: 100 * s.rate for n, s in shrunk.items()},
            "%",
        ),
        _figures(
            "640x480 frame, no code, sigma=8 noise: median",
            4,
            {n: median_ms(d.decode, noise) for n, d in found.items()},
            "ms",
            lower=True,
        ),
        _figures(
            "640x480 frame with a code (BoofCV fitted): median",
            10,
            {n: median_ms(d.decode, card_frames) for n, d in found.items()},
            "ms",
            lower=True,
        ),
    ]
