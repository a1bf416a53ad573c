"""The zxing-cpp engine: one pass of zxing-cpp over a grey frame.

zxing-cpp reads more codes than zbar and costs far less on a frame with no code
(see docs/PERFORMANCE.md). It is imported when a decoder is built, so a kiosk
without it can still run zbar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kiosk.decoder import Frame, Symbol

__all__ = ["ZXING_FORMATS", "ZxingDecoder"]

# Our symbology names and zxing-cpp's; Code 39 includes its full-ASCII form.
ZXING_FORMATS = {"qrcode": "QRCode", "code39": "Code39", "code128": "Code128"}
# zxing-cpp's format names back to the names zbar uses, which the rest of the kiosk
# knows. Code 32 and PZN are Code 39 symbols whose text zxing-cpp interprets.
_TYPE_NAMES = {
    "QRCode": "QRCODE",
    "Code39": "CODE39",
    "Code39Std": "CODE39",
    "Code39Ext": "CODE39",
    "Code32": "CODE39",
    "PZN": "CODE39",
    "Code128": "CODE128",
}


class ZxingDecoder:
    """zxing-cpp restricted to the configured symbologies, with one binarizer."""

    def __init__(self, symbologies: Sequence[str], binarizer: str = "LocalAverage") -> None:
        import zxingcpp

        self._zxing = zxingcpp
        self._formats = zxingcpp.BarcodeFormats(
            [
                zxingcpp.BarcodeFormat.__members__[ZXING_FORMATS[name.lower()]]
                for name in symbologies
            ]
        )
        self._binarizer = zxingcpp.Binarizer.__members__[binarizer]

    def decode(self, frame: Frame) -> list[Symbol]:
        found = self._zxing.read_barcodes(
            np.ascontiguousarray(frame, dtype=np.uint8),
            formats=self._formats,
            binarizer=self._binarizer,
            # Plain keeps control characters (GS1 separators) as they are, not "<GS>".
            text_mode=self._zxing.TextMode.Plain,
        )
        return [_symbol(item) for item in found]


def _symbol(item: object) -> Symbol:
    position = item.position  # type: ignore[attr-defined]
    corners = (
        position.top_left,
        position.top_right,
        position.bottom_right,
        position.bottom_left,
    )
    name = str(item.format.name)  # type: ignore[attr-defined]
    return Symbol(
        type=_TYPE_NAMES.get(name, name.upper()),
        data=str(item.text).encode("utf-8"),  # type: ignore[attr-defined]
        polygon=tuple((int(point.x), int(point.y)) for point in corners),
    )
