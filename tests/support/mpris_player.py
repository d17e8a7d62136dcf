"""A private D-Bus session bus and a test MPRIS player on it.

:class:`SessionBus` runs ``dbus-daemon --session`` on a socket in a temp dir.
:class:`TestPlayer` runs this module as a process (so a test can kill and
restart it like a real app): it owns ``org.mpris.MediaPlayer2.<name>``,
plays a three-track list (``--no-seek``: one that cannot seek; ``--art URL``:
the cover every track announces), answers Play/Pause/Next/Previous/Seek/SetPosition
and property sets, signals PropertiesChanged like a real player, and appends
every method call it gets to a log file the test reads.

    python -m tests.support.mpris_player --bus ADDRESS --name NAME --calls FILE
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from .procs import Daemon, Proc

REPO = Path(__file__).resolve().parents[2]
OBJECT_PATH = "/org/mpris/MediaPlayer2"
ROOT = "org.mpris.MediaPlayer2"
PLAYER = "org.mpris.MediaPlayer2.Player"
PROPS = "org.freedesktop.DBus.Properties"

TRACKS = [
    ("First Light", ["Test Artist"], "Test Album"),
    ("Second Wind", ["Test Artist", "Guest"], "Test Album"),
    ("Third Time", ["Other Artist"], "Other Album"),
]


def missing_tools() -> list[str]:
    return [] if shutil.which("dbus-daemon") else ["dbus-daemon"]


class SessionBus(Daemon):
    """``dbus-daemon --session`` on a private socket."""

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.socket = base / "bus"
        self.address = f"unix:path={self.socket}"

    def start(self) -> None:
        self.launch(
            Proc(
                [
                    "dbus-daemon",
                    "--session",
                    "--nofork",
                    "--nopidfile",
                    f"--address={self.address}",
                ],
                self.base / "dbus-daemon.log",
            ),
            self.socket.exists,
            10,
            "dbus-daemon",
        )


class TestPlayer(Daemon):
    """The test player as a process; ``calls()`` lists the methods it received."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        bus: SessionBus,
        name: str,
        base: Path,
        *,
        can_seek: bool = True,
        art_url: str | None = None,
    ) -> None:
        self.bus = bus
        self.name = name
        self.options = [] if can_seek else ["--no-seek"]
        if art_url is not None:
            self.options += ["--art", art_url]
        self.calls_path = base / f"{name}-calls.log"
        self.log = base / f"{name}.log"

    def start(self) -> None:
        self.calls_path.unlink(missing_ok=True)
        player = Proc(
            [
                sys.executable,
                "-m",
                "tests.support.mpris_player",
                "--bus",
                self.bus.address,
                "--name",
                self.name,
                "--calls",
                str(self.calls_path),
                *self.options,
            ],
            self.log,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.launch(player, self.calls_path.exists, 15, "the test player")

    def calls(self) -> list[str]:
        try:
            return self.calls_path.read_text(encoding="utf-8").split()
        except OSError:
            return []


class _Player:
    def __init__(self, calls: Path, can_seek: bool = True, art_url: str | None = None) -> None:
        self.calls = calls
        self.can_seek = can_seek
        self.art_url = art_url
        self.track = 0
        self.status = "Paused"
        self.position_us = 0
        self.volume = 0.5
        self.shuffle = False
        self.loop = "None"

    def metadata(self) -> dict[str, Any]:
        from dbus_fast import Variant

        title, artists, album = TRACKS[self.track]
        return {
            "mpris:trackid": Variant("o", f"/org/broadcaster/test/track/{self.track}"),
            "mpris:length": Variant("x", 180_000_000 + self.track * 1_000_000),
            "mpris:artUrl": Variant(
                "s", self.art_url or f"https://example.invalid/art/{self.track}.jpg"
            ),
            "xesam:title": Variant("s", title),
            "xesam:artist": Variant("as", artists),
            "xesam:album": Variant("s", album),
        }

    def properties(self, iface: str) -> dict[str, Any]:
        from dbus_fast import Variant

        if iface == ROOT:
            return {
                "Identity": Variant("s", "Broadcaster Test Player"),
                "CanQuit": Variant("b", False),
                "CanRaise": Variant("b", False),
                "HasTrackList": Variant("b", False),
                "SupportedUriSchemes": Variant("as", []),
                "SupportedMimeTypes": Variant("as", []),
            }
        if iface == PLAYER:
            return {
                "PlaybackStatus": Variant("s", self.status),
                "LoopStatus": Variant("s", self.loop),
                "Rate": Variant("d", 1.0),
                "Shuffle": Variant("b", self.shuffle),
                "Metadata": Variant("a{sv}", self.metadata()),
                "Volume": Variant("d", self.volume),
                "Position": Variant("x", self.position_us),
                "MinimumRate": Variant("d", 1.0),
                "MaximumRate": Variant("d", 1.0),
                "CanGoNext": Variant("b", self.track < len(TRACKS) - 1),
                "CanGoPrevious": Variant("b", self.track > 0),
                "CanPlay": Variant("b", True),
                "CanPause": Variant("b", True),
                "CanSeek": Variant("b", self.can_seek),
                "CanControl": Variant("b", True),
            }
        return {}

    def call(self, member: str, body: list[Any]) -> None:
        """Apply a Player method call."""
        if member == "Play":
            self.status = "Playing"
        elif member == "Pause":
            self.status = "Paused"
        elif member == "PlayPause":
            self.status = "Paused" if self.status == "Playing" else "Playing"
        elif member == "Stop":
            self.status = "Stopped"
        elif member == "Next" and self.track < len(TRACKS) - 1:
            self.track, self.position_us = self.track + 1, 0
        elif member == "Previous" and self.track > 0:
            self.track, self.position_us = self.track - 1, 0
        elif member == "Seek":
            self.position_us = max(0, self.position_us + int(body[0]))
        elif member == "SetPosition":
            self.position_us = int(body[1])

    def set(self, prop: str, value: Any) -> None:
        if prop == "Volume":
            self.volume = float(value)
        elif prop == "Shuffle":
            self.shuffle = bool(value)
        elif prop == "LoopStatus":
            self.loop = str(value)


async def _serve(
    address: str, name: str, calls: Path, can_seek: bool = True, art_url: str | None = None
) -> None:
    from dbus_fast import Message, MessageType, Variant
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_address=address).connect()
    player = _Player(calls, can_seek, art_url)

    def changed() -> None:
        bus.send(
            Message.new_signal(
                OBJECT_PATH,
                PROPS,
                "PropertiesChanged",
                "sa{sv}as",
                [PLAYER, player.properties(PLAYER), []],
            )
        )

    def record(text: str) -> None:
        with calls.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")

    def handler(msg: Message) -> Message | None:
        if msg.message_type != MessageType.METHOD_CALL or msg.path != OBJECT_PATH:
            return None
        if msg.interface == PROPS and msg.member == "GetAll":
            return Message.new_method_return(msg, "a{sv}", [player.properties(msg.body[0])])
        if msg.interface == PROPS and msg.member == "Get":
            props = player.properties(msg.body[0])
            if msg.body[1] not in props:
                return Message.new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs", "no such")
            return Message.new_method_return(msg, "v", [props[msg.body[1]]])
        if msg.interface == PROPS and msg.member == "Set":
            value = msg.body[2].value if isinstance(msg.body[2], Variant) else msg.body[2]
            player.set(msg.body[1], value)
            record(f"Set:{msg.body[1]}={value}")
            changed()
            return Message.new_method_return(msg)
        if msg.interface == PLAYER and msg.member:
            player.call(msg.member, list(msg.body))
            record(msg.member)
            changed()
            if msg.member in ("Seek", "SetPosition"):
                bus.send(
                    Message.new_signal(OBJECT_PATH, PLAYER, "Seeked", "x", [player.position_us])
                )
            return Message.new_method_return(msg)
        return None

    bus.add_message_handler(handler)
    await bus.request_name(f"org.mpris.MediaPlayer2.{name}")
    record("ready")
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bus", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--calls", type=Path, required=True)
    parser.add_argument("--no-seek", action="store_true", help="CanSeek is false")
    parser.add_argument("--art", help="mpris:artUrl of every track")
    args = parser.parse_args()
    asyncio.run(_serve(args.bus, args.name, args.calls, not args.no_seek, args.art))


if __name__ == "__main__":
    main()


MPV_MPRIS = Path("/usr/lib/mpv-mpris/mpris.so")


def mpv_missing() -> list[str]:
    """mpv and Debian's mpv-mpris plugin (a real MPRIS player), if not installed."""
    missing = [] if shutil.which("mpv") else ["mpv"]
    return missing + ([] if MPV_MPRIS.exists() else ["mpv-mpris"])


class MpvPlayer(Daemon):
    """mpv with the mpv-mpris plugin on the private bus: a real media player.

    It plays ``media`` paused, in a loop, to no sound device (``--ao=null``);
    mpv-mpris announces ``cover.*`` beside the file as ``mpris:artUrl``.
    Same face as :class:`TestPlayer` for the tests (``name``, ``start``, ``stop``).
    """

    def __init__(self, bus: SessionBus, media: Path, base: Path) -> None:
        self.bus = bus
        self.media = media
        self.name = "mpv"
        self.log = base / "mpv.log"

    def start(self) -> None:
        self.proc = Proc(
            [
                "mpv",
                "--no-config",
                f"--script={MPV_MPRIS}",
                "--ao=null",
                "--vo=null",
                "--pause",
                "--loop-file=inf",
                "--no-terminal",
                str(self.media),
            ],
            self.log,
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.bus.address},
        )
