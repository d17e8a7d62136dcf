"""PipeWire: reading the audio graph and changing it.

broadcaster talks to the user's PipeWire session with its standard tools,
started with argument lists and a deadline each:

* ``pw-dump`` gives one snapshot of the graph; :func:`parse_dump` turns it into
  a :class:`Graph` of output streams and sinks (pure, unit-tested).  The process
  that owns a stream is found on the node for pulse clients and on the node's
  Client object for native PipeWire clients (node ``client.id``).
* ``pactl`` (pipewire-pulse) creates and removes null sinks and reports graph
  changes (``pactl subscribe``).
* ``pw-metadata`` moves streams (``target.object`` in the default metadata;
  see :meth:`PipeWire.move` for why not ``pactl move-sink-input``).

:class:`PipeWire` is the one place that runs these tools.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, NotFoundError, PipeWireError
from .proc import process_exists, process_lineage
from .process import ChildProcess, CommandResult, run_command

_LOGGER = logging.getLogger(__name__)

STREAM_OUTPUT = "Stream/Output/Audio"
AUDIO_SINK = "Audio/Sink"


@dataclass(frozen=True)
class AppStream:
    """One audio output stream of an application (a sink-input, in pulse terms)."""

    node_id: int
    serial: int
    name: str
    app_name: str = ""
    binary: str = ""
    pid: int | None = None
    sink_ids: tuple[int, ...] = ()
    """The sink nodes this stream's output is linked to now (two while it moves)."""
    target: str = ""
    """The sink the session manager was told to route it to (``target.object`` or
    ``target.node``, resolved to a node name), if any."""
    dont_move: bool = False
    volumes: tuple[float, ...] = ()
    """Its channel volumes (linear), the user's setting; empty when not reported."""

    def describe(self) -> str:
        who = self.app_name or self.binary or self.name
        return f"{who} (stream {self.serial}{f', pid {self.pid}' if self.pid else ''})"


@dataclass(frozen=True)
class Sink:
    node_id: int
    serial: int
    name: str
    description: str = ""
    state: str = ""
    """PipeWire's state of the node: running, idle, suspended, creating or error."""


@dataclass(frozen=True)
class Graph:
    """A snapshot of the audio graph: output streams, sinks, the default sink."""

    streams: tuple[AppStream, ...] = ()
    sinks: tuple[Sink, ...] = ()
    default_sink: str = ""

    def sink(self, name: str) -> Sink | None:
        """The sink with this node name."""
        return next((s for s in self.sinks if s.name == name), None) if name else None

    def sink_by_id(self, node_id: int) -> Sink | None:
        return next((s for s in self.sinks if s.node_id == node_id), None)

    def sinks_of(self, stream: AppStream) -> list[Sink]:
        """Where ``stream`` plays now: its linked sinks, else its routing target."""
        linked = [s for s in map(self.sink_by_id, stream.sink_ids) if s is not None]
        if linked:
            return linked
        target = self.sink(stream.target)
        return [target] if target is not None else []


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (pw-dump output is not trusted)."""
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def merge_dump(text: str) -> list[Mapping[str, Any]]:
    """The objects of ``pw-dump`` output.

    pw-dump may print more than one JSON array when the graph changes while it
    runs: later arrays update objects by id, and ``"info": null`` removes one.
    """
    decoder = json.JSONDecoder()
    objects: dict[Any, Mapping[str, Any]] = {}
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        try:
            chunk, pos = decoder.raw_decode(text, pos)
        except ValueError as err:
            raise PipeWireError(f"pw-dump printed something that is not JSON: {err}") from None
        if not isinstance(chunk, list):
            raise PipeWireError("pw-dump printed JSON that is not a list of objects")
        for obj in chunk:
            if not isinstance(obj, Mapping) or not isinstance(obj.get("id"), int):
                continue
            if obj.get("info", True) is None and "type" not in obj:
                objects.pop(obj["id"], None)
            else:
                objects[obj["id"]] = obj
    return list(objects.values())


def parse_dump(objects: Sequence[Mapping[str, Any]]) -> Graph:
    """Build a :class:`Graph` from ``pw-dump``'s JSON array."""
    clients: dict[int, Mapping[str, Any]] = {}
    nodes: list[tuple[int, Mapping[str, Any]]] = []
    states: dict[int, str] = {}
    links: dict[int, list[int]] = {}  # output node id -> input node ids
    targets: dict[int, tuple[str, str]] = {}  # node id -> (metadata key, value)
    default_sink = ""
    volumes: dict[int, tuple[float, ...]] = {}
    for obj in objects:
        kind = obj.get("type", "")
        info = _mapping(obj.get("info"))
        props = _mapping(info.get("props")) or _mapping(obj.get("props"))
        oid = _int(obj.get("id"))
        if oid is None:
            continue
        if kind == "PipeWire:Interface:Client":
            clients[oid] = props
        elif kind == "PipeWire:Interface:Node":
            nodes.append((oid, props))
            volumes[oid] = _channel_volumes(info)
            states[oid] = str(info.get("state") or "")
        elif kind == "PipeWire:Interface:Link":
            out_node, in_node = _int(info.get("output-node-id")), _int(info.get("input-node-id"))
            if out_node is not None and in_node is not None:
                targets_of = links.setdefault(out_node, [])
                if in_node not in targets_of:
                    targets_of.append(in_node)
        elif kind == "PipeWire:Interface:Metadata" and props.get("metadata.name") == "default":
            entries = obj.get("metadata")
            for entry in entries if isinstance(entries, list) else []:
                entry = _mapping(entry)
                key, subject, value = entry.get("key"), entry.get("subject"), entry.get("value")
                if key == "default.audio.sink" and subject == 0:
                    default_sink = _metadata_name(value)
                elif key in ("target.object", "target.node") and (node := _int(subject)):
                    text = value if isinstance(value, str) else json.dumps(value)
                    if text not in ("", "-1"):
                        targets[node] = (key, text)

    sinks: list[Sink] = []
    stream_nodes: list[tuple[int, Mapping[str, Any]]] = []
    for oid, props in nodes:
        media_class = props.get("media.class", "")
        serial = _int(props.get("object.serial"))
        serial = oid if serial is None else serial
        if media_class == AUDIO_SINK:
            sinks.append(
                Sink(
                    oid,
                    serial,
                    str(props.get("node.name", "")),
                    str(props.get("node.description", "")),
                    states.get(oid, ""),
                )
            )
        elif media_class == STREAM_OUTPUT:
            stream_nodes.append((oid, props))

    def resolve(key: str, value: str) -> str:
        """A routing target (node id for target.node; serial or name for target.object)."""
        number = _int(value)
        for sink in sinks:
            if number is None and sink.name == value:
                return sink.name
            if number is not None and number == (
                sink.node_id if key == "target.node" else sink.serial
            ):
                return sink.name
        return ""

    streams: list[AppStream] = []
    for oid, props in stream_nodes:
        client = clients.get(_int(props.get("client.id")) or -1, {})

        def prop(
            key: str, props: Mapping[str, Any] = props, client: Mapping[str, Any] = client
        ) -> str:
            # Pulse clients carry the process on the node, native ones on their Client.
            value = props.get(key)
            if value in (None, ""):
                value = client.get(key)
            return "" if value is None else str(value)

        serial = _int(props.get("object.serial"))
        if oid in targets:
            target = resolve(*targets[oid])
        else:
            target = resolve("target.object", str(props.get("target.object") or ""))
        streams.append(
            AppStream(
                node_id=oid,
                serial=oid if serial is None else serial,
                name=str(props.get("node.name", "")),
                app_name=prop("application.name"),
                binary=prop("application.process.binary"),
                pid=_int(prop("application.process.id")),
                sink_ids=tuple(links.get(oid, ())),
                target=target,
                dont_move=str(props.get("node.dont-reconnect", "")).lower() == "true"
                or str(props.get("node.dont-move", "")).lower() == "true",
                volumes=volumes.get(oid, ()),
            )
        )
    return Graph(tuple(streams), tuple(sinks), default_sink)


def _channel_volumes(info: Mapping[str, Any]) -> tuple[float, ...]:
    """A node's ``channelVolumes`` from its Props param, if it reports them."""
    props = _mapping(info.get("params")).get("Props")
    for entry in props if isinstance(props, list) else []:
        values = _mapping(entry).get("channelVolumes")
        if isinstance(values, list):
            try:
                return tuple(float(v) for v in values)
            except (TypeError, ValueError):
                return ()
    return ()


def _metadata_name(value: Any) -> str:
    """``{"name": "alsa_output..."}`` (as JSON text or object) -> the name."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    if isinstance(value, Mapping):
        return str(value.get("name", ""))
    return ""


# --- identifying the target application ---------------------------------------


@dataclass(frozen=True)
class TargetApp:
    """Which application to capture: by name (process, binary or application.name) or PID."""

    name: str = ""
    pid: int | None = None

    def __post_init__(self) -> None:
        if not self.name and self.pid is None:
            raise ValueError("a target needs a name or a pid")

    def describe(self) -> str:
        return f"pid {self.pid}" if self.pid is not None else repr(self.name)

    def matches(self, stream: AppStream, procfs: str = "/proc") -> bool:
        if self.pid is not None:
            return stream.pid is not None and self.pid in process_lineage(stream.pid, procfs)
        wanted = self.name.casefold()
        candidates = {stream.app_name, stream.binary, os.path.basename(stream.binary)}
        if stream.pid is not None:
            candidates.add(process_name(stream.pid, procfs))
        return wanted in {c.casefold() for c in candidates if c}


_STDIO_OPTIONS: tuple[str, ...] | None = None


async def pw_cat_stdio_options(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The options ``pw-play``/``pw-record`` need for headerless PCM on ``-``.

    Up to PipeWire 0.3.x the file name ``-`` alone means raw samples on
    stdin/stdout.  From 1.0 it means a sound file unless ``--raw`` is given:
    pw-play looks for a header in what it reads and exits at once on raw
    samples, pw-record writes an AU header.  0.3.x does not know ``--raw``, so
    ask the installed ``pw-play --help`` (once per process).
    """
    global _STDIO_OPTIONS
    if _STDIO_OPTIONS is None:
        try:
            result = await run_command(["pw-play", "--help"], timeout=5, env=env)
        except (OSError, TimeoutError):
            return ()  # the caller's own run of pw-play reports what is wrong
        _STDIO_OPTIONS = ("--raw",) if "--raw" in result.stdout + result.stderr else ()
    return _STDIO_OPTIONS


def refuse_broad_pid(pid: int, procfs: str = "/proc") -> None:
    """Refuse a pid whose capture would take far more than one app.

    A pid target also matches the streams of its descendants (a browser plays
    from a child process), so init (pid 1) would match every app, and any
    ancestor of broadcaster (the login session, the terminal, the service
    manager) every app started next to it.  A pid no process has is refused
    too: it cannot start playing later.
    """
    if pid <= 0:
        raise ConfigError(f"pid {pid} is not a process id")
    if pid == 1:
        raise ConfigError(
            "pid 1 is init, the ancestor of every app; give the app's own pid or name"
        )
    if not process_exists(pid, procfs):
        # Not one that is yet to play: it can never play (it used to be waited for forever).
        raise NotFoundError(
            f"there is no process {pid}; give a running app's pid, or its name to wait for it"
        )
    lineage = process_lineage(os.getpid(), procfs)
    if pid in lineage:
        what = "broadcaster itself" if pid == lineage[0] else "an ancestor of broadcaster"
        raise ConfigError(
            f"pid {pid} ({process_name(pid, procfs) or '?'}) is {what}, so every app "
            "started under it would be captured; give the app's own pid or name"
        )


def process_name(pid: int, procfs: str = "/proc") -> str:
    """The kernel's name for a process (``comm``), or "" if it is gone."""
    try:
        with open(f"{procfs}/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


# --- the session -------------------------------------------------------------

_MODULE_LINE = re.compile(r"^(\d+)\t(\S+)\t?(.*)$")


class PipeWire:
    """The user's PipeWire session, reached through pw-dump and pactl."""

    def __init__(self, *, env: Mapping[str, str] | None = None, timeout: float = 5.0) -> None:
        self._env = dict(env) if env is not None else None
        self._timeout = timeout

    async def _run(self, *argv: str) -> CommandResult:
        try:
            result = await run_command(argv, timeout=self._timeout, env=self._env)
        except FileNotFoundError:
            package = "pulseaudio-utils" if argv[0] == "pactl" else "pipewire-bin"
            raise PipeWireError(
                f"{argv[0]} is not installed (sudo apt-get install {package})"
            ) from None
        except TimeoutError:
            raise PipeWireError(
                f"{argv[0]} did not answer within {self._timeout:.0f} s; is PipeWire hung?"
            ) from None
        return result

    async def _pactl(self, *args: str) -> str:
        result = await self._run("pactl", *args)
        if not result.ok:
            raise PipeWireError(result.describe_failure())
        return result.stdout

    async def check(self) -> str:
        """Raise a clear :class:`PipeWireError` unless a PipeWire session answers."""
        result = await self._run("pactl", "info")
        if not result.ok:
            raise PipeWireError(
                "cannot reach PipeWire's pulse server (is pipewire-pulse running in this "
                f"user session? XDG_RUNTIME_DIR={os.environ.get('XDG_RUNTIME_DIR', 'unset')}): "
                f"{result.describe_failure()}"
            )
        server = re.search(r"^Server Name:\s*(.*)$", result.stdout, re.MULTILINE)
        name = server.group(1) if server else ""
        if "PipeWire" not in name:
            raise PipeWireError(
                f"the sound server is {name or 'unknown'}, not PipeWire; broadcaster needs PipeWire"
            )
        return name

    async def graph(self) -> Graph:
        result = await self._run("pw-dump")
        if not result.ok:
            raise PipeWireError(result.describe_failure())
        return parse_dump(merge_dump(result.stdout))

    def null_sink(self, name: str, description: str) -> ChildProcess:
        """A 48 kHz stereo null sink that lives as long as the returned child (not started).

        The child is ``pw-cli`` (killed with broadcaster, see ``die_with_parent``)
        asked on its stdin to create the sink with ``object.linger = false``:
        PipeWire destroys the sink when pw-cli disconnects, so a crashed
        broadcaster cannot leave it behind (``pactl load-module
        module-null-sink`` would put it in pipewire-pulse, which outlives us).
        """
        props = {
            "factory.name": "support.null-audio-sink",
            "node.name": name,
            "node.description": description,
            "media.class": AUDIO_SINK,
            "audio.rate": 48000,
            "audio.channels": 2,
            "audio.position": ["FL", "FR"],
            "monitor.channel-volumes": True,
            "object.linger": False,
        }
        command = f"create-node adapter {json.dumps(props)}\n".encode()
        return ChildProcess(
            ["pw-cli"],
            name=f"pw-cli ({name})",
            env=self._env,
            stdin=command,
            die_with_parent=True,
        )

    async def wait_for_sink(self, name: str, child: ChildProcess, timeout: float = 5.0) -> None:
        """Wait until the sink ``name`` that ``child`` holds is in the graph."""
        deadline = time.monotonic() + timeout
        while True:
            if not child.running:
                raise PipeWireError(f"the sink {name} could not be made: {child.last_words()}")
            if (await self.graph()).sink(name) is not None:
                return
            if time.monotonic() > deadline:
                raise PipeWireError(
                    f"the sink {name} did not appear within {timeout:.0f} s: {child.last_words()}"
                )
            await asyncio.sleep(0.05)

    async def unload_module(self, index: int) -> None:
        await self._pactl("unload-module", str(index))

    async def modules(self) -> list[tuple[int, str, str]]:
        """Loaded pulse modules as (index, name, arguments)."""
        out = await self._pactl("list", "short", "modules")
        found = []
        for line in out.splitlines():
            match = _MODULE_LINE.match(line)
            if match:
                found.append((int(match.group(1)), match.group(2), match.group(3)))
        return found

    async def move(self, stream: AppStream, sink_name: str) -> None:
        """Route ``stream`` to ``sink_name`` through the session manager's metadata.

        Not ``pactl move-sink-input``: WirePlumber 0.4 saves a pulse move in its
        restore-stream state under the stream's *first* of media.role,
        application.id, application.name…, so moving one app's "Music" stream
        would send every later Music stream of every app to the capture sink.
        A ``target.object`` set by sink name is followed but not remembered.
        """
        result = await self._run(
            # "--": a sink name starting with "-" must not be read as an option.
            "pw-metadata",
            "-n",
            "default",
            "--",
            str(stream.node_id),
            "target.object",
            sink_name,
        )
        if not result.ok:
            raise PipeWireError(result.describe_failure())

    async def set_soft_volumes(self, node_id: int, volumes: Sequence[float]) -> None:
        """Set a stream's soft volumes: the gain applied, leaving the user's volume alone.

        PipeWire's audioconvert multiplies a stream by its ``softVolumes``,
        which follow ``channelVolumes`` (the volume the user and the app see)
        until set on their own.  Set here, they change what plays without
        moving the app's volume slider and without WirePlumber storing them;
        the next change of ``channelVolumes`` replaces them again.
        """
        values = ", ".join(f"{max(0.0, v):.6f}" for v in volumes)
        result = await self._run(
            "pw-cli", "set-param", str(node_id), "Props", f'{{ "softVolumes": [ {values} ] }}'
        )
        # pw-cli 0.3.65 exits 0 and prints "Error: ..." on stdout for a gone node.
        if not result.ok or "Error" in result.stdout + result.stderr:
            raise PipeWireError(result.describe_failure())

    def subscribe(self) -> ChildProcess:
        """A ``pactl subscribe`` child whose stdout reports graph changes, one per line."""
        return ChildProcess(
            ["pactl", "subscribe"], name="pactl-subscribe", env=self._env, read_stdout=True
        )
