"""Real snapserver and snapclient processes for integration tests.

:class:`SnapServer` writes a config file on loopback with free ports and its
own datadir, starts ``snapserver -c``, and waits until the control port
answers.  :class:`SnapClient` is a room with no sound card: ``snapclient
--player file:filename=...`` writes what it plays (48 kHz S16LE stereo) to a
file the test reads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import Daemon, Proc, free_ports, port_open, wait_until


def missing_tools() -> list[str]:
    return [tool for tool in ("snapserver", "snapclient") if shutil.which(tool) is None]


@dataclass
class StreamSpec:
    """One ``source =`` line: a pipe (created by snapserver) or a tcp server source."""

    name: str
    path: Path | None = None
    tcp_port: int | None = None
    codec: str = "pcm"
    extra: dict[str, str] = field(default_factory=dict)

    def source(self) -> str:
        query = {"name": self.name, "sampleformat": "48000:16:2", "codec": self.codec, **self.extra}
        args = "&".join(f"{k}={v}" for k, v in query.items())
        if self.path is not None:
            return f"pipe://{self.path}?mode=create&{args}"
        return f"tcp://127.0.0.1:{self.tcp_port}?mode=server&{args}"


def _settled(proc: Proc) -> bool:
    """snapserver has made (or failed to make) its acceptors."""
    return "Number of threads" in proc.log_path.read_text(errors="replace")


class SnapServer(Daemon):
    def __init__(self, base: Path, streams: list[StreamSpec], *, buffer_ms: int = 400) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.streams = streams
        self.buffer_ms = buffer_ms
        self.config = base / "snapserver.conf"
        (base / "data").mkdir(exist_ok=True)
        self._pick_ports()
        self.starts = 0
        self._started = False

    def _pick_ports(self) -> None:
        """Free ports (free when picked: another test may take one before snapserver
        binds it, which :meth:`start` notices) and the config file naming them."""
        self.stream_port, self.control_port, self.http_port = free_ports(3)
        sources = "\n".join(f"source = {s.source()}" for s in self.streams)
        self.config.write_text(
            f"""[server]
datadir = {self.base / "data"}
threads = 2

[stream]
bind_to_address = 127.0.0.1
port = {self.stream_port}
{sources}
buffer = {self.buffer_ms}
chunk_ms = 20

[tcp]
enabled = true
bind_to_address = 127.0.0.1
port = {self.control_port}

[http]
enabled = true
bind_to_address = 127.0.0.1
port = {self.http_port}
doc_root =

[logging]
filter = *:info
""",
            encoding="utf-8",
        )

    def fifo(self, stream: str = "Main") -> Path:
        """The pipe of stream ``stream``."""
        (path,) = [s.path for s in self.streams if s.name == stream and s.path is not None]
        return path

    def start(self) -> None:
        """Start snapserver and wait until it listens on its three ports.

        On the first start a port taken by someone else in the meantime (other
        suites run concurrently) means new ports and another try; snapserver
        itself only logs such a failure and runs on.  A restart keeps its ports.
        """
        for _ in range(5):
            self.starts += 1
            proc = Proc(
                ["snapserver", "-c", str(self.config)], self.base / f"snapserver-{self.starts}.log"
            )
            # Its acceptors are made (or failed) once it logs its thread count.
            self.launch(proc, functools.partial(_settled, proc), 15, "snapserver to start")
            if "Address already in use" not in proc.log_path.read_text(errors="replace"):
                break
            if self._started:
                raise AssertionError(f"snapserver lost its ports:\n{proc.log_tail()}")
            self.stop()
            self._pick_ports()
        else:
            raise AssertionError("snapserver found no free ports in five tries")
        self._started = True
        wait_until(lambda: port_open(self.control_port), 15, "snapserver's control port")

    def stop(self) -> None:
        if self.proc is not None:
            # A test that SIGSTOPped it (pause) may have failed before resuming it.
            self.proc.signal(signal.SIGCONT)
        super().stop()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.signal(signal.SIGCONT)

    def rpc(self, method: str, params: dict[str, Any] | None = None, timeout: float = 5) -> Any:
        """One JSON-RPC call over the control port (a test's independent view)."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=timeout) as sock:
            request = {"id": 1, "jsonrpc": "2.0", "method": method, "params": params or {}}
            sock.sendall(json.dumps(request).encode() + b"\r\n")
            buffer = b""
            with sock.makefile("rb") as stream:
                while True:
                    line = stream.readline()
                    if not line:
                        raise AssertionError(f"snapserver closed the connection ({buffer!r})")
                    message = json.loads(line)
                    if message.get("id") == 1:
                        if "error" in message:
                            raise AssertionError(f"{method} failed: {message['error']}")
                        return message["result"]

    def status(self) -> dict[str, Any]:
        return dict(self.rpc("Server.GetStatus")["server"])

    def version(self) -> str:
        """The version the running snapserver reports (e.g. "0.26.0", "0.31.0")."""
        return str(self.status()["server"]["snapserver"]["version"])

    def version_info(self) -> tuple[int, ...]:
        """:meth:`version` as numbers, to compare with what a release promises."""
        return tuple(int(part) for part in self.version().split("-")[0].split("."))

    def clients(self) -> dict[str, dict[str, Any]]:
        """Clients by host id (``--hostID``)."""
        found = {}
        for group in self.status()["groups"]:
            for client in group["clients"]:
                found[client["host"]["name"] if not client.get("id") else client["id"]] = client
        return found

    def stream_status(self, name: str) -> str:
        for stream in self.status()["streams"]:
            if stream["id"] == name:
                return str(stream["status"])
        raise AssertionError(f"no stream {name}")


class SnapClient(Daemon):
    def __init__(self, server: SnapServer | None, host_id: str, out: Path) -> None:
        self.server = server
        self.stream_port = server.stream_port if server is not None else 0
        self.host_id = host_id
        self.out = out

    @classmethod
    def for_port(cls, stream_port: int, host_id: str, out: Path) -> SnapClient:
        """A room for a snapserver this harness did not start (e.g. broadcaster's own)."""
        client = cls(None, host_id, out)
        client.stream_port = stream_port
        return client

    def start(self) -> None:
        self.proc = Proc(
            [
                "snapclient",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.stream_port),
                "--hostID",
                self.host_id,
                "--player",
                # mode=a: the default (w) truncates the file at every reconnect.
                f"file:filename={self.out},mode=a",
                "--logsink",
                "stderr",
            ],
            self.out.with_suffix(".log"),
        )

    def size(self) -> int:
        with contextlib.suppress(OSError):
            return self.out.stat().st_size
        return 0

    def crash(self) -> int:
        """The signal snapclient died of (SIGSEGV: 0.31 on Debian 13 now and then when
        its server is killed and restarted), or 0 while it runs or after a clean exit."""
        code = self.proc.popen.poll() if self.proc is not None else None
        return -code if code is not None and code < 0 else 0

    def state(self) -> str:
        """Why a room may be silent, for a failure message: its process, its server's view."""
        if self.proc is None:
            return "not started"
        code = self.proc.popen.poll()
        if code is not None:
            return f"snapclient exited ({code}; negative: killed by that signal)"
        if self.server is None:
            return "snapclient running"
        try:
            client = self.server.clients().get(self.host_id)
        except (OSError, AssertionError, ValueError) as err:
            return f"snapclient running; snapserver did not answer ({err})"
        if client is None:
            return "snapclient running but unknown to snapserver (never connected)"
        connected = "connected" if client.get("connected") else "NOT connected"
        return f"snapclient running, {connected} to snapserver"

    def read_from(self, offset: int) -> bytes:
        with self.out.open("rb") as handle:
            handle.seek(offset)
            return handle.read()


@dataclass(frozen=True)
class EmbeddedPorts:
    """Loopback ports for the snapserver broadcaster starts on its own, free when
    picked; :meth:`env` is the settings that put it there."""

    stream: int
    control: int
    http: int

    @classmethod
    def free(cls) -> EmbeddedPorts:
        return cls(*free_ports(3))

    def env(self) -> dict[str, str]:
        return {
            "BROADCASTER_SNAPSERVER_BIND": "127.0.0.1",
            "BROADCASTER_SNAPSERVER_STREAM_PORT": str(self.stream),
            "BROADCASTER_SNAPSERVER_CONTROL_PORT": str(self.control),
            "BROADCASTER_SNAPSERVER_HTTP_PORT": str(self.http),
        }


def serve_against(server: SnapServer, port: int) -> list[str]:
    """``broadcaster serve`` arguments: the service on ``port`` (0: it picks one) using
    ``server``, never a snapserver of its own, and announcing nothing with mDNS."""
    return [
        *("serve", "--server", f"127.0.0.1:{server.control_port}", "--embedded", "never"),
        *("--port", str(port), "--no-publish"),
    ]


@dataclass(frozen=True)
class House:
    """A running snapserver and its rooms (snapclients), all connected."""

    server: SnapServer
    rooms: tuple[SnapClient, ...]

    @property
    def room(self) -> SnapClient:
        """The first room: the one a newcomer meets."""
        return self.rooms[0]


@contextlib.contextmanager
def snap_house(
    tmp_path: Path, *streams: str, rooms: int = 2, timeout: float = 20
) -> Iterator[House]:
    """A snapserver with a pipe stream per name in ``streams`` (default one, ``Main``;
    fifos ``tmp_path/snap/fifo-NAME``) and ``rooms`` rooms ``room1``, ``room2``, ...
    (snapclients writing ``tmp_path/roomN.raw``), all connected; all stopped on exit."""
    base = tmp_path / "snap"
    server = SnapServer(
        base, [StreamSpec(name, path=base / f"fifo-{name}") for name in streams or ("Main",)]
    )
    server.start()
    clients = [
        SnapClient(server, f"room{i}", tmp_path / f"room{i}.raw") for i in range(1, rooms + 1)
    ]
    try:
        for client in clients:
            client.start()
        wait_until(
            lambda: sum(bool(c.get("connected")) for c in server.clients().values()) == rooms,
            timeout,
            f"{rooms} room(s) to connect",
        )
        yield House(server, tuple(clients))
    finally:
        for client in clients:
            client.stop()
        server.stop()
