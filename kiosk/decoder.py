"""Barcode decoding: a grey frame in, the symbols found in it out.

The decoder reads only the symbologies Kaikukortti prints (QR and Code 39) and
Code 128, which USB scanners and phone apps also show. Each symbol keeps its raw
bytes; :mod:`kiosk.payload` decides what they mean.

``decoder.backend`` picks the engine: ``zxing`` (zxing-cpp, in the full pipeline
of :mod:`kiosk.decode_pipeline`), ``zbar`` (pyzbar, behind the same texture gate)
or ``auto``, which is zxing when zxing-cpp is installed and zbar otherwise.
docs/PERFORMANCE.md has the measurements behind these choices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kiosk.config import DecoderConfig

__all__ = ["Decoder", "Frame", "Symbol", "ZbarDecoder", "load_grey", "make_decoder"]

# A grey (8-bit luminance) frame, rows by columns.
Frame = npt.NDArray[np.uint8]


@dataclasses.dataclass(frozen=True)
class Symbol:
    """One decoded barcode: its symbology, raw payload and outline in the frame."""

    type: str
    data: bytes
    polygon: tuple[tuple[int, int], ...]

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class Decoder(Protocol):
    def decode(self, frame: Frame) -> list[Symbol]: ...


class ZbarDecoder:
    """zbar through pyzbar, restricted to the configured symbologies."""

    def __init__(self, symbologies: Sequence[str]) -> None:
        # Imported here so a missing libzbar is a clear error at start, not at import.
        from pyzbar import pyzbar

        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol[name.upper()] for name in symbologies]

    def decode(self, frame: Frame) -> list[Symbol]:
        grey = np.ascontiguousarray(frame, dtype=np.uint8)
        height, width = grey.shape
        found = self._pyzbar.decode((grey.tobytes(), width, height), symbols=self._symbols)
        return [
            Symbol(
                type=str(item.type),
                data=bytes(item.data),
                polygon=tuple((int(point.x), int(point.y)) for point in item.polygon),
            )
            for item in found
        ]


def _zxing_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("zxingcpp") is not None


def make_decoder(config: DecoderConfig) -> Decoder:
    """The decoder pipeline the config asks for."""
    from kiosk.decode_pipeline import Equalized, Pipeline, Stretched, Upscaled

    backend = config.backend
    if backend == "auto":
        backend = "zxing" if _zxing_available() else "zbar"
    if backend == "zbar":
        # zbar costs ~10x zxing-cpp per pass, so it gets the gate but no retries.
        return Pipeline([ZbarDecoder(config.symbologies)])
    from kiosk.decode_zxing import ZxingDecoder

    plain = ZxingDecoder(config.symbologies)
    histogram = ZxingDecoder(config.symbologies, binarizer="GlobalHistogram")
    # Ordered by what each step added on the shared datasets, see docs/PERFORMANCE.md.
    return Pipeline(
        [
            plain,
            Equalized(plain),
            Stretched(plain),
            Upscaled(plain),
            histogram,
            Upscaled(histogram),
        ]
    )


def load_grey(path: str | Path) -> Frame:
    """Read an image file as a grey frame, with its EXIF rotation applied."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        grey = ImageOps.exif_transpose(image).convert("L")
        return np.asarray(grey, dtype=np.uint8)
