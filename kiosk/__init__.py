"""Kaikukortti scanner kiosk: read the card, decide offline, signal, record, upload.

The public face of the package; the modules behind it each own one concern.
"""

from kiosk.config import Config, load_config
from kiosk.errors import ApiError, AuthError, CameraError, ConfigError, KioskError, StoreError
from kiosk.payload import Payload, mask_card_id, parse_payload
from kiosk.rules import Counters, Decision, decide

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AuthError",
    "CameraError",
    "Config",
    "ConfigError",
    "Counters",
    "Decision",
    "KioskError",
    "Payload",
    "StoreError",
    "__version__",
    "decide",
    "load_config",
    "mask_card_id",
    "parse_payload",
]
