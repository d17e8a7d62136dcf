"""The one exception hierarchy of broadcaster.

Every error a user can meet derives from :class:`BroadcasterError` and carries a
message that says what went wrong and what to do about it; the CLI prints that
message on one line and exits non-zero.  Subclasses name the phase that failed,
so callers (and retry logic) decide on the class, never on the message text.
"""

from __future__ import annotations


class BroadcasterError(Exception):
    """Root of every error broadcaster raises on purpose."""


class ConfigError(BroadcasterError):
    """The configuration file, a flag or an environment variable is invalid."""


class PipeWireError(BroadcasterError):
    """PipeWire (or its pulse server) is unreachable or refused a request."""


class CaptureError(BroadcasterError):
    """Capturing the application's audio failed."""


class AudioFormatError(BroadcasterError):
    """An audio format is unsupported or malformed."""


class DeliveryError(BroadcasterError):
    """Audio could not be delivered to snapserver (pipe or TCP source)."""


class UnsafePathError(BroadcasterError):
    """A runtime file or directory could be controlled by another local user."""


class SnapserverError(BroadcasterError):
    """The embedded snapserver could not be started or kept running."""


class ControlError(BroadcasterError):
    """Talking to snapserver's JSON-RPC control API failed."""


class ControlConnectionError(ControlError):
    """snapserver's control port could not be reached, or the connection dropped."""


class ControlTimeoutError(ControlError, TimeoutError):
    """snapserver did not answer within the deadline (hung or overloaded)."""


class ServerReplyError(ControlError):
    """snapserver answered a request with a JSON-RPC error."""

    #: JSON-RPC "method not found": the server does not have this request.
    METHOD_NOT_FOUND = -32601

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        #: The JSON-RPC error code, when the server gave one.
        self.code = code


class OutOfRangeError(BroadcasterError, ValueError):
    """A value is outside what snapserver accepts (a room's latency beyond -10000 to 10000 ms)."""


class BadNameError(BroadcasterError, ValueError):
    """A name broadcaster would store is unusable (a scene named '' or 'a/b')."""


class NotFoundError(BroadcasterError, LookupError):
    """What the user named does not exist: a room, group, stream, scene, capture or slot."""


class AmbiguousNameError(BroadcasterError, LookupError):
    """A name matches more than one room, group or stream; the id picks one."""


class DiscoveryError(BroadcasterError):
    """No snapserver could be found with mDNS."""


class BusyError(BroadcasterError):
    """What was asked for is in use (every capture slot is taken, the app is already captured)."""


class MprisError(BroadcasterError):
    """The D-Bus session bus or the app's MPRIS player could not be reached or refused."""


class PlayerCannotError(BusyError):
    """A stream's player does not allow a command now (no player, cannot seek...)."""


class CoverError(BroadcasterError):
    """A player's announced cover cannot be served (gone, not an image, too large)."""


class CoverMissingError(CoverError):
    """The announced cover file does not exist (any more) or cannot be read."""


class AnnounceError(BroadcasterError):
    """An announcement could not be prepared or played (undecodable file, no speech)."""


class CalibrationError(BroadcasterError):
    """A room calibration could not be run, heard nothing usable, or cannot be applied."""
