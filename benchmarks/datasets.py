"""The shared real-photo datasets: reading them and scoring a decoder on them.

Both the benchmarks and tests/test_datasets.py score decoders here, so a figure
in docs/PERFORMANCE.md and a floor in the tests mean the same thing. The data
stays read-only in ``$KIOSK_DATASETS`` (default ``<repo>/../shared/datasets``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from kiosk.decoder import Decoder, Frame, Symbol, load_grey

REPO = Path(__file__).resolve().parent.parent
ZXING = "zxing-cpp-samples"
BOOFCV = "boofcv-qrcodes-v3"
# The camera's frame; "shrunk" photos are fitted to it in either orientation.
FRAME_LONG, FRAME_SHORT = 640, 480
# A labelled QR code's four corners, x y per row.
Outline = npt.NDArray[np.float64]

# Photos that show a second code besides the one their .txt names, checked by eye:
# reading the other code is right, not a misread.
OTHER_CODES = {
    "code39-3/02.png": "001EC947D49B",
    "code39-3/08.png": "001EC9476B0A",
    "qrcode-2/16.png": "[外側QRコード]",  # the outer of two nested QR codes; a prefix
}


def datasets_root() -> Path:
    return Path(os.environ.get("KIOSK_DATASETS") or REPO.parent / "shared" / "datasets")


@dataclasses.dataclass(frozen=True)
class Sample:
    """A zxing-cpp test photo and the exact text it must decode to."""

    name: str  # folder/file, e.g. qrcode-1/1.png
    path: Path
    expected: str

    @property
    def is_qr(self) -> bool:
        return self.name.startswith("qrcode")

    def is_wrong(self, text: str) -> bool:
        other = OTHER_CODES.get(self.name)
        return text != self.expected and not (other and text.startswith(other))


@dataclasses.dataclass(frozen=True)
class Photo:
    """A BoofCV photo and the outlines of the QR codes in it."""

    path: Path
    outlines: tuple[Outline, ...]

    @property
    def category(self) -> str:
        return self.path.parent.name


def zxing_samples(root: Path) -> list[Sample]:
    """Every zxing-cpp photo with an expected text (qrcode-7 has none)."""
    samples = []
    for text in sorted((root / ZXING).glob("*/*.txt")):
        if text.name.endswith(".result.txt"):
            continue
        images = [text.with_suffix(ext) for ext in (".png", ".jpg")]
        for image in images:
            if image.exists():
                name = f"{image.parent.name}/{image.name}"
                expected = text.read_bytes().decode("utf-8")
                samples.append(Sample(name, image, expected))
    return samples


def _outlines(label: Path) -> tuple[Outline, ...]:
    # Either "SETS" then one code of 8 numbers per line, or one corner per line.
    numbers = [
        float(word)
        for line in label.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "SETS"))
        for word in line.split()
    ]
    return tuple(np.array(numbers, dtype=float).reshape(-1, 4, 2))


def boofcv_photos(root: Path, every: int = 1) -> list[Photo]:
    """The BoofCV photos, or every n-th of them to keep a run short."""
    labels = sorted((root / BOOFCV).glob("*/*.txt"))[::every]
    return [Photo(label.with_suffix(".jpg"), _outlines(label)) for label in labels]


def fit_to_frame(frame: Frame) -> tuple[Frame, float]:
    """The frame shrunk (bilinear) to fit 640x480 in its own orientation, and the scale."""
    height, width = frame.shape
    scale = min(FRAME_LONG / max(height, width), FRAME_SHORT / min(height, width), 1.0)
    if scale == 1.0:
        return frame, scale
    size = (round(width * scale), round(height * scale))
    image = Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8), scale


def centre(symbol: Symbol) -> tuple[float, float]:
    xs, ys = zip(*symbol.polygon, strict=True)
    return sum(xs) / len(xs), sum(ys) / len(ys)


def inside(point: tuple[float, float], outline: Outline) -> bool:
    """Whether the point lies in the polygon (even-odd rule)."""
    x, y = point
    result = False
    for (x1, y1), (x2, y2) in zip(outline, np.roll(outline, -1, axis=0), strict=True):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            result = not result
    return result


@dataclasses.dataclass
class ZxingScore:
    qr: int = 0
    linear: int = 0
    wrong: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def score_zxing(decoder: Decoder, samples: Iterable[Sample]) -> ZxingScore:
    """Photos read to their expected text, by kind, and every wrong text seen."""
    score = ZxingScore()
    for sample in samples:
        texts = [symbol.text for symbol in decoder.decode(load_grey(sample.path))]
        if sample.expected in texts:
            if sample.is_qr:
                score.qr += 1
            else:
                score.linear += 1
        score.wrong += [(sample.name, text) for text in texts if sample.is_wrong(text)]
    return score


@dataclasses.dataclass
class BoofScore:
    found: int = 0
    codes: int = 0
    # Decoded symbols whose centre lies in no labelled outline.
    strays: int = 0

    @property
    def rate(self) -> float:
        return self.found / self.codes if self.codes else 0.0


def score_photo(symbols: Sequence[Symbol], outlines: Sequence[Outline]) -> BoofScore:
    centres = [centre(symbol) for symbol in symbols]
    found = sum(any(inside(point, outline) for point in centres) for outline in outlines)
    strays = sum(not any(inside(point, outline) for outline in outlines) for point in centres)
    return BoofScore(found, len(outlines), strays)


def score_boofcv(decoder: Decoder, frames: Iterable[tuple[Frame, Photo, float]]) -> BoofScore:
    """Codes found over ``(frame, photo, scale of frame to photo)`` triples."""
    total = BoofScore()
    for frame, photo, scale in frames:
        one = score_photo(decoder.decode(frame), [outline * scale for outline in photo.outlines])
        total.found += one.found
        total.codes += one.codes
        total.strays += one.strays
    return total


def boofcv_frames(photos: Iterable[Photo], shrunk: bool) -> list[tuple[Frame, Photo, float]]:
    """Each photo as stored, or fitted to the camera frame, with its scale."""
    frames = []
    for photo in photos:
        frame, scale = load_grey(photo.path), 1.0
        if shrunk:
            frame, scale = fit_to_frame(frame)
        frames.append((frame, photo, scale))
    return frames
