"""broadcaster: one application's audio in every Snapcast room.

The library API; the ``broadcaster`` command line is a thin layer over it.
Heavy dependencies (numpy, soxr, aiohttp, zeroconf) are imported by the
modules that need them, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import BroadcasterError

if TYPE_CHECKING:
    from .audio import AudioFormat, Converter
    from .config import Config
    from .pipeline import Broadcast
    from .pipewire import TargetApp

__all__ = ["AudioFormat", "Broadcast", "BroadcasterError", "Config", "Converter", "TargetApp"]
__version__ = "0.1.0"

_LAZY = {
    "AudioFormat": "audio",
    "Converter": "audio",
    "Config": "config",
    "Broadcast": "pipeline",
    "TargetApp": "pipewire",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'broadcaster' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
