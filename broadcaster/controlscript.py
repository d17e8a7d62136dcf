"""snapserver stream plugin: now playing and remote control from the Snapcast apps.

snapserver 0.26 starts this for a stream whose source line has
``controlscript=/absolute/path/to/broadcaster-controlscript`` and passes
``--stream=<id>`` and (when its HTTP server is on) ``--snapcast-port=<port>``.
The two talk newline-delimited JSON-RPC 2.0 over the script's stdin/stdout:
we send ``Plugin.Stream.Ready`` at once and ``Plugin.Stream.Player.Properties``
whenever the followed MPRIS player changes; snapserver sends
``Plugin.Stream.Player.Control``/``SetProperty``/``GetProperties`` requests.
stderr lines end up in snapserver's log.

It ends when snapserver is gone, whichever way: stdin closing (EOF), SIGTERM,
the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG)``, armed first
thing by :mod:`broadcaster.controlscript_entry`),
or its parent process changing (polled each second).  EOF alone is not
enough: snapserver 0.31 with several streams lets each script inherit the
others' stdin pipes, so none sees EOF when snapserver dies.

Which player to follow: ``--player NAME`` and/or ``--pid PID``, else the
environment variables ``BROADCASTER_MPRIS_PLAYER``/``BROADCASTER_MPRIS_PID``
(snapserver passes its environment on), else whatever broadcaster last wrote
for this stream with :func:`broadcaster.nowplaying.write_target` (re-read every
second, so it follows the app a capture slot is switched to).  With none of
these, the stream just shows no metadata.  See docs/now-playing.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .backoff import SESSION_BUS, Backoff
from .errors import MprisError
from .lifecycle import cancel_and_wait
from .mpris import CAPABILITIES, NowPlaying, PlayerFollower, capability_key
from .nowplaying import PlayerMatch, read_target
from .proc import die_with_parent
from .process import read_lines

log = logging.getLogger("broadcaster.controlscript")

#: How often :func:`serve` checks that its parent is still snapserver.
PARENT_POLL_S = 1.0

#: JSON-RPC error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


def snapcast_properties(playing: NowPlaying | None) -> dict[str, Any]:
    """Plugin.Stream.Player properties (snapcast 0.26 names) for what plays.

    Always carries ``metadata`` (empty when nothing plays), since snapserver
    keeps the last metadata when the field is missing.
    """
    if playing is None:
        return {
            "playbackStatus": "stopped",
            **{capability_key(c, "can"): False for c in CAPABILITIES},
            "metadata": {},
        }
    meta: dict[str, Any] = {}
    for key, value in (
        ("title", playing.title),
        ("album", playing.album),
        ("artUrl", playing.art_url),
        ("url", playing.url),
        ("trackId", playing.track_id),
        ("duration", playing.duration),
    ):
        if value is not None:
            meta[key] = value
    if playing.artist:
        meta["artist"] = list(playing.artist)
    if playing.album_artist:
        meta["albumArtist"] = list(playing.album_artist)
    props: dict[str, Any] = {
        "playbackStatus": playing.status,
        **{capability_key(c, "can"): getattr(playing, f"can_{c}") for c in CAPABILITIES},
        "metadata": meta,
    }
    if playing.position is not None:
        props["position"] = playing.position
    if playing.volume is not None:
        props["volume"] = round(max(0.0, min(1.0, playing.volume)) * 100)
    if playing.shuffle is not None:
        props["shuffle"] = playing.shuffle
    if playing.loop is not None:
        props["loopStatus"] = playing.loop
    if playing.rate is not None:
        props["rate"] = playing.rate
    return props


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    # snapserver 0.26 reads the error's "data" as a string; without it the
    # response fails to parse there and the client's request never gets an answer.
    error = {"code": code, "message": message, "data": message}
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class ControlScript:
    """The plugin's logic, apart from stdin/stdout so tests can drive it."""

    def __init__(
        self,
        match: PlayerMatch | None,
        send: Callable[[dict[str, Any]], None],
        *,
        bus_address: str | None = None,
        stream: str | None = None,
        target_base: Path | None = None,
        target_poll_s: float = 1.0,
    ) -> None:
        self.match = match
        self.send = send
        self.bus_address = bus_address
        #: With no fixed match: follow broadcaster's target file for this stream.
        self.stream = stream if match is None else None
        self.target_base = target_base
        self.target_poll_s = target_poll_s
        self.follower: PlayerFollower | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.send({"jsonrpc": "2.0", "method": "Plugin.Stream.Ready"})
        if self.match is not None or self.stream is not None:
            self._task = asyncio.create_task(self._follow(), name="controlscript-follow")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.follower is not None:
            await self.follower.stop()
            self.follower = None

    def _target(self) -> PlayerMatch | None:
        if self.stream is None:
            return self.match
        return read_target(self.stream, self.target_base)

    async def _follow(self) -> None:
        """Connect to the session bus (retrying while it is not there yet), then
        keep the followed app in step with broadcaster's target file."""
        backoff = Backoff(SESSION_BUS)
        while True:
            follower = PlayerFollower(self._target(), self._on_change, bus_address=self.bus_address)
            try:
                await follower.start()
            except MprisError as err:
                log.log(logging.DEBUG if backoff.attempts else logging.WARNING, "%s; retrying", err)
                await backoff.wait()
                continue
            self.follower = follower
            break
        while self.stream is not None:
            await asyncio.sleep(self.target_poll_s)
            follower.set_match(self._target())

    async def _on_change(self, playing: NowPlaying | None) -> None:
        self.send(
            {
                "jsonrpc": "2.0",
                "method": "Plugin.Stream.Player.Properties",
                "params": snapcast_properties(playing),
            }
        )

    async def handle(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Answer one request from snapserver (None for a notification or response)."""
        method = message.get("method")
        request_id = message.get("id")
        if not isinstance(method, str):
            if "result" in message or "error" in message:
                return None  # a response: snapserver sends none we need
            return _error(request_id, INVALID_REQUEST, "a request needs a 'method' string")
        if request_id is None:
            return None  # a notification: never answered
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        try:
            if method == "Plugin.Stream.Player.GetProperties":
                return {"jsonrpc": "2.0", "id": request_id, "result": await self._properties()}
            if method == "Plugin.Stream.Player.Control":
                command = params.get("command")
                if not isinstance(command, str):
                    return _error(request_id, INVALID_PARAMS, "Control needs a 'command'")
                args = params.get("params")
                await self._follower().control(command, args if isinstance(args, dict) else {})
                return {"jsonrpc": "2.0", "id": request_id, "result": "ok"}
            if method == "Plugin.Stream.Player.SetProperty":
                if not params:
                    return _error(request_id, INVALID_PARAMS, "SetProperty needs a property")
                for prop, value in params.items():
                    await self._follower().set_property(prop, value)
                return {"jsonrpc": "2.0", "id": request_id, "result": "ok"}
        except MprisError as err:
            log.warning("%s failed: %s", method, err)
            return _error(request_id, INTERNAL_ERROR, str(err))
        return _error(request_id, METHOD_NOT_FOUND, f"unknown method {method}")

    async def _properties(self) -> dict[str, Any]:
        if self.follower is None:
            return snapcast_properties(None)
        # Fresh, so the position is current (MPRIS does not signal it).
        try:
            return snapcast_properties(await self.follower.poll())
        except MprisError as err:
            log.warning("reading the player failed: %s", err)
            return snapcast_properties(self.follower.current)

    def _follower(self) -> PlayerFollower:
        if self.follower is None:
            raise MprisError("no MPRIS player is followed for this stream")
        return self.follower


def _write_line(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


MAX_MESSAGE = 1 << 20
"""Longest message from snapserver, in bytes; a longer one is answered with an error."""


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


async def answer(script: ControlScript, line: bytes, *, cut: bool = False) -> dict[str, Any] | None:
    """The reply to one line from snapserver: every malformed one gets a JSON-RPC error."""
    if cut:
        return _error(None, INVALID_REQUEST, f"message longer than {MAX_MESSAGE >> 20} MiB")
    try:
        message = json.loads(line, parse_constant=_refuse_constant)  # no NaN, Infinity
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deeply
        log.warning("not JSON from snapserver: %.200r", line)
        return _error(None, PARSE_ERROR, f"not JSON: {type(err).__name__}")
    if not isinstance(message, dict):
        return _error(None, INVALID_REQUEST, "a request must be a JSON object")
    try:
        return await script.handle(message)
    except Exception as err:  # a bug must cost one request, not the stream's metadata
        log.exception("request %.200r failed", line)
        return _error(message.get("id"), INTERNAL_ERROR, f"{type(err).__name__}: {err}")


async def serve_lines(reader: asyncio.StreamReader, script: ControlScript) -> None:
    """Answer each line of ``reader`` until it ends; nothing a message holds stops it."""
    async for line, cut in read_lines(reader, MAX_MESSAGE):
        if line.strip() and (reply := await answer(script, line, cut=cut)):
            script.send(reply)


async def _parent_gone(parent: int, interval: float) -> None:
    """Return once this process's parent is no longer ``parent`` (it died and
    the process was re-parented)."""
    while True:
        await asyncio.sleep(interval)
        if os.getppid() != parent:
            return


async def serve(
    match: PlayerMatch | None,
    bus_address: str | None = None,
    stream: str | None = None,
    *,
    parent: int | None = None,
    parent_poll_s: float = PARENT_POLL_S,
) -> None:
    """Run the plugin on stdin/stdout until snapserver is gone: stdin closes,
    SIGTERM arrives, or the parent process (``parent``, default: the current
    one) is no longer ours."""
    parent = os.getppid() if parent is None else parent
    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, terminated.set)
    reader = asyncio.StreamReader(limit=MAX_MESSAGE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    script = ControlScript(match, _write_line, bus_address=bus_address, stream=stream)
    await script.start()
    tasks = {
        asyncio.create_task(serve_lines(reader, script), name="controlscript-stdin"),
        asyncio.create_task(terminated.wait(), name="controlscript-sigterm"),
        asyncio.create_task(_parent_gone(parent, parent_poll_s), name="controlscript-parent"),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.get_name() != "controlscript-stdin":
                log.info("snapserver is gone (%s): stopping", task.get_name().split("-")[1])
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        loop.remove_signal_handler(signal.SIGTERM)
        await script.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="broadcaster-controlscript",
        description="snapserver stream plugin following the captured app's MPRIS player",
    )
    parser.add_argument("--player", help="MPRIS name or Identity of the app (e.g. spotify)")
    parser.add_argument("--pid", type=int, help="process id of the app")
    parser.add_argument("--bus", help="D-Bus address (default: the session bus)")
    # Passed by snapserver 0.26; unused but accepted.
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    parser.add_argument("--snapcast-port", help=argparse.SUPPRESS)
    parser.add_argument("--snapcast-host", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def target(args: argparse.Namespace, env: dict[str, str]) -> PlayerMatch | None:
    """Which player to follow, from the flags, else the environment."""
    app = args.player or env.get("BROADCASTER_MPRIS_PLAYER") or None
    pid_text = env.get("BROADCASTER_MPRIS_PID", "")
    pid = args.pid if args.pid is not None else (int(pid_text) if pid_text.isdigit() else None)
    if not app and pid is None:
        return None
    return PlayerMatch(app, pid)


def main(argv: Sequence[str] | None = None, *, parent: int) -> int:
    """The plugin, once :func:`broadcaster.controlscript_entry.run` armed the death signal.

    ``parent`` is snapserver (which execs us, or a wrapper that execs us), as
    read before the signal was armed.
    """
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(name)s %(levelname)s %(message)s"
    )
    args = parse_args(argv)
    match = target(args, dict(os.environ))
    if match is None and args.stream is None:
        log.info("no player to follow and no --stream: the stream shows no metadata")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(match, args.bus, args.stream, parent=parent))
    return 0


if __name__ == "__main__":
    # ``python -m``: armed only now, after this module's imports (the console
    # script, broadcaster.controlscript_entry, arms before them).
    _parent = die_with_parent(signal.SIGTERM)
    sys.exit(0 if _parent is None else main(parent=_parent))
