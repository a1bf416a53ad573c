"""The decoding pipeline: cheap refusals first, then one engine pass, then retries.

Most camera frames at an idle entrance hold no code, so the pipeline first skips
frames without barcode-like texture (a blank wall, a dark or noisy sensor). A
frame with texture gets one pass of the engine; only when that finds nothing
does the pipeline retry with the contrast stretched or equalised, or with the
frame enlarged, in the order that gained most on the shared datasets (see
docs/PERFORMANCE.md). Each step is itself a :class:`~kiosk.decoder.Decoder`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from kiosk.decoder import Decoder, Frame, Symbol

__all__ = [
    "Equalized",
    "Pipeline",
    "Stretched",
    "Upscaled",
    "equalize",
    "has_texture",
    "stretch",
]

# A 2x2-averaged neighbour step above this (grey levels) is a strong edge; sensor
# noise of sigma 8 almost never makes one once averaged, a printed bar always does.
EDGE_STEP = 24
# The fewest strong edges a frame with a readable code has shown (46 on the
# BoofCV photos shrunk to 640x480); noise frames show under 10.
MIN_EDGES = 20
# Share of the darkest and lightest pixels that contrast stretching clips.
STRETCH_CLIP = 0.02


def has_texture(frame: Frame) -> bool:
    """Whether the frame has enough strong edges to be worth decoding."""
    height, width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
    grey = frame[:height, :width].astype(np.int16)
    # The sum of each 2x2 block: averaging halves the noise but keeps bar edges.
    blocks = grey[::2, ::2] + grey[1::2, ::2] + grey[::2, 1::2] + grey[1::2, 1::2]
    step = 4 * EDGE_STEP
    across = np.count_nonzero(np.abs(np.diff(blocks, axis=1)) > step)
    down = np.count_nonzero(np.abs(np.diff(blocks, axis=0)) > step)
    return bool(across + down >= MIN_EDGES)


def _apply(frame: Frame, lut: np.ndarray) -> Frame:
    return np.asarray(lut.astype(np.uint8)[frame], dtype=np.uint8)


def equalize(frame: Frame) -> Frame:
    """Histogram equalisation: spreads the grey levels a dim or hazy code uses."""
    cdf = np.cumsum(np.bincount(frame.ravel(), minlength=256))
    lowest = cdf[np.flatnonzero(cdf)[0]]
    span = max(int(cdf[-1] - lowest), 1)
    return _apply(frame, np.clip((cdf - lowest) * 255 // span, 0, 255))


def stretch(frame: Frame) -> Frame:
    """Linear contrast stretch, clipping the extreme few percent (glare, shadow)."""
    low, high = np.quantile(frame[::2, ::2], (STRETCH_CLIP, 1 - STRETCH_CLIP))
    if high <= low:
        return frame
    levels = (np.arange(256) - low) * 255 / (high - low)
    return _apply(frame, np.clip(levels, 0, 255))


class _Mapped:
    """Decodes a transformed frame with the same geometry as the original."""

    def __init__(self, inner: Decoder, transform: Callable[[Frame], Frame]) -> None:
        self._inner = inner
        self._transform = transform

    def decode(self, frame: Frame) -> list[Symbol]:
        return self._inner.decode(self._transform(frame))


class Equalized(_Mapped):
    def __init__(self, inner: Decoder) -> None:
        super().__init__(inner, equalize)


class Stretched(_Mapped):
    def __init__(self, inner: Decoder) -> None:
        super().__init__(inner, stretch)


class Upscaled:
    """Decodes the frame enlarged, so small QR modules span more pixels.

    Only frames whose long side is at most ``max_side`` are enlarged: a big
    frame's modules are already large enough and enlarging it costs most.
    """

    def __init__(self, inner: Decoder, factor: int = 2, max_side: int = 1024) -> None:
        self._inner = inner
        self._factor = factor
        self._max_side = max_side

    def decode(self, frame: Frame) -> list[Symbol]:
        if max(frame.shape) > self._max_side:
            return []
        from PIL import Image

        height, width = frame.shape
        size = (width * self._factor, height * self._factor)
        bigger = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
        return [
            Symbol(
                symbol.type,
                symbol.data,
                tuple((x // self._factor, y // self._factor) for x, y in symbol.polygon),
            )
            for symbol in self._inner.decode(bigger)
        ]


class Pipeline:
    """Texture gate, then each step in turn until one finds a symbol."""

    def __init__(self, steps: Sequence[Decoder]) -> None:
        self._steps = tuple(steps)

    def decode(self, frame: Frame) -> list[Symbol]:
        if not has_texture(frame):
            return []
        for step in self._steps:
            if found := step.decode(frame):
                return found
        return []
