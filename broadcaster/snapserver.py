"""The managed snapserver: started and supervised by ``broadcaster run`` and ``serve``.

When no snapserver is configured or reachable, broadcaster runs its own from
the one template ``snapcast/snapserver.conf.in``, filled in one pass by
:func:`render_config`: pipe sources in ``mode=create`` (snapserver makes the
fifos; one for ``run``, one per capture slot for ``serve``), the control port
on loopback, state in broadcaster's own state directory.
:class:`EmbeddedSnapserver` is an async context manager that returns once the
server really answers (control port accepts, first fifo exists) and stops and
reaps it on exit; :meth:`~EmbeddedSnapserver.supervise` restarts it with capped
backoff if it dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import string
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .backoff import SNAPSERVER_RESTART, Backoff, Policy
from .config import SnapserverConfig, conf_value_problem
from .errors import SnapserverError, UnsafePathError
from .files import check_private, write_atomic
from .lifecycle import Resource
from .net import port_answers
from .paths import private_runtime_dir, runtime_dir, state_dir
from .process import ChildProcess

_LOGGER = logging.getLogger(__name__)

TEMPLATE_NAME = "snapserver.conf.in"

ANNOUNCE_STREAM = "broadcaster-announce"
"""The pipe stream an announcement for chosen rooms plays on (never a capture's)."""

ANNOUNCE_FIFO = "announce-fifo"
"""Its fifo's name in broadcaster's runtime directory."""


def read_template(name: str = TEMPLATE_NAME) -> str:
    """A config template from ``snapcast/``.

    In a checkout (or an editable install) that is the top-level ``snapcast/``
    folder; a wheel carries the same files as ``broadcaster._snapcast_conf``.
    """
    checkout = Path(__file__).resolve().parent.parent / "snapcast" / name
    try:
        if checkout.is_file():
            return checkout.read_text("utf-8")
        return resources.files("broadcaster._snapcast_conf").joinpath(name).read_text("utf-8")
    except (OSError, ModuleNotFoundError) as err:
        raise SnapserverError(f"snapserver config template {name} is missing: {err}") from None


SCRIPT_NAME = "broadcaster-controlscript"


def installed_path(search_path: str | None = None) -> Path | None:
    """The ``broadcaster-controlscript`` executable snapserver can start, or None.

    snapserver 0.26 splits the command line on spaces and the source URI on
    ``&``/``?``/``#``, so a path holding one of those is no use.
    """
    beside_python = Path(sys.executable).parent / SCRIPT_NAME
    candidates = [beside_python] if search_path is None else []
    found = shutil.which(SCRIPT_NAME, path=search_path)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        usable = not any(c in str(candidate) for c in " \t\n&?#\"'%")
        if usable and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    return None


def source_query(search_path: str | None = None) -> str:
    """``&controlscript=...`` for a snapserver ``source =`` line, or "" when the
    script is not installed (the stream then simply has no metadata)."""
    path = installed_path(search_path)
    return f"&controlscript={path}" if path is not None else ""


@dataclass(frozen=True)
class EmbeddedPaths:
    fifo: Path
    datadir: Path
    config_file: Path


@dataclass(frozen=True)
class Slot:
    """A snapserver pipe stream a capture can feed."""

    stream: str
    fifo: Path
    added: bool = False
    """Added to the running snapserver for one capture, removed when it ends."""


def resolve_paths(settings: SnapserverConfig) -> EmbeddedPaths:
    run_dir = runtime_dir()
    fifo = Path(settings.fifo) if settings.fifo else run_dir / "snapfifo"
    datadir = Path(settings.datadir) if settings.datadir else state_dir() / "snapserver"
    return EmbeddedPaths(fifo, datadir, run_dir / "snapserver.conf")


def managed_slots(settings: SnapserverConfig, count: int = 1) -> list[Slot]:
    """The pipe streams of the managed snapserver: ``stream_name``, ``stream_name-2``, ..."""
    base = resolve_paths(settings).fifo
    name = settings.stream_name
    slots = [Slot(name, base)]
    for index in range(2, count + 1):
        slots.append(Slot(f"{name}-{index}", base.with_name(f"{base.name}-{index}")))
    return slots


def source_line(slot: Slot, codec: str, controlscript: str) -> str:
    """The ``source =`` line of one pipe stream."""
    return (
        f"source = pipe://{slot.fifo}?name={slot.stream}&mode=create"
        f"&sampleformat=48000:16:2&codec={codec}{controlscript}"
    )


def announce_slot() -> Slot:
    """The :data:`ANNOUNCE_STREAM` pipe stream of the snapserver ``broadcaster run`` starts."""
    return Slot(ANNOUNCE_STREAM, runtime_dir() / ANNOUNCE_FIFO)


def render_config(
    settings: SnapserverConfig,
    paths: EmbeddedPaths,
    template: str | None = None,
    *,
    slots: list[Slot] | None = None,
    announce: Slot | None = None,
) -> str:
    """Fill the template's ``${...}`` fields from the settings, in one pass.

    ``slots`` are the pipe streams (default: one, ``stream_name`` on the fifo
    of ``paths``); ``announce``, if given, is one more, last (snapserver gives
    new rooms its first stream) and without the controlscript (it has no
    player): announcements in chosen rooms play there and it is idle
    otherwise.  ``template`` defaults to ``snapcast/snapserver.conf.in``.
    """
    # Control (tcp and http: unauthenticated JSON-RPC) on loopback, unless the
    # user opted in; broadcaster itself always reaches it on 127.0.0.1.  http
    # is off unless opted in: browsers reach loopback, and it takes plain POSTs.
    control = ["127.0.0.1"]
    if settings.lan_control:
        control = (
            [settings.bind] if settings.bind in ("0.0.0.0", "::") else [*control, settings.bind]
        )
    if slots is None:
        slots = [Slot(settings.stream_name, paths.fifo)]
    controlscript = source_query()  # now playing and remote control, when installed
    fields = {
        "datadir": str(paths.datadir),
        "fifo": str(paths.fifo),
        "sources": "\n".join(
            [source_line(s, settings.codec, controlscript) for s in slots]
            + ([source_line(announce, settings.codec, "")] if announce else [])
        ),
        "bind": settings.bind,
        "control_binds": "\n".join(f"bind_to_address = {address}" for address in control),
        "stream_port": str(settings.stream_port),
        "control_port": str(settings.control_port),
        "http_port": str(settings.http_port),
        "http_enabled": "true" if settings.lan_control else "false",
        "codec": settings.codec,
        "controlscript": controlscript,
        "stream_name": settings.stream_name,
        "doc_root": "/usr/share/snapserver/snapweb"
        if Path("/usr/share/snapserver/snapweb").is_dir()
        else "/usr/share/snapserver",
    }
    # Paths may come from $XDG_RUNTIME_DIR or $XDG_STATE_HOME, past config checks.
    checked = [("fifo", fields["fifo"], True), ("datadir", fields["datadir"], False)]
    checked += [("fifo", str(s.fifo), True) for s in [*slots, *([announce] if announce else [])]]
    for name, value, in_uri in [*checked, ("bind", fields["bind"], False)]:
        problem = conf_value_problem(value, in_uri=in_uri)
        if problem:
            raise SnapserverError(f"{name} {value!r} cannot go into snapserver.conf: {problem}")
    text = read_template() if template is None else template
    try:
        return string.Template(text).substitute(fields)
    except (KeyError, ValueError) as err:
        raise SnapserverError(f"snapserver config template has a bad field: {err}") from None


class EmbeddedSnapserver(Resource):
    """A snapserver child process configured for broadcaster, with ``slots`` pipe streams.

    ``announce``: and the :data:`ANNOUNCE_STREAM` for announcements in chosen
    rooms (``broadcaster run``'s; ``serve`` has its free slots for them).
    """

    def __init__(
        self,
        settings: SnapserverConfig,
        *,
        slots: int = 1,
        announce: bool = False,
        ready_timeout: float = 10.0,
        executable: str = "snapserver",
    ) -> None:
        self.settings = settings
        self.paths = resolve_paths(settings)
        self.slots = managed_slots(settings, slots)
        self.announce = announce_slot() if announce else None
        self._ready_timeout = ready_timeout
        self._executable = executable
        self._child: ChildProcess | None = None
        self.restarts = 0

    @property
    def control_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.settings.control_port

    @property
    def fifo(self) -> Path:
        return self.paths.fifo

    def render(self) -> str:
        """This server's snapserver.conf."""
        return render_config(self.settings, self.paths, slots=self.slots, announce=self.announce)

    def _write_config(self) -> None:
        """Write snapserver.conf into the private runtime directory (checked first)."""
        text = self.render()
        try:
            private_runtime_dir()
            self.paths.config_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.paths.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.paths.fifo.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.paths.config_file, text)
        except UnsafePathError as err:
            raise SnapserverError(f"not starting snapserver: {err}") from None
        except OSError as err:
            raise SnapserverError(f"cannot write {self.paths.config_file}: {err}") from None

    def fifos(self) -> list[Path]:
        """The pipes this snapserver creates, one per slot (and the announcements')."""
        return [slot.fifo for slot in [*self.slots, *([self.announce] if self.announce else [])]]

    def _check_fifos(self) -> None:
        """The pipes snapserver made must be its (our) own: nobody else's, no
        links; then only we may open them (snapserver makes them 0666)."""
        for fifo in self.fifos():
            try:
                info = check_private(fifo, kind="pipe")
                if info.st_mode & 0o077:
                    os.chmod(fifo, 0o600)
            except (UnsafePathError, OSError) as err:
                raise SnapserverError(f"not using snapserver's pipe: {err}") from None

    async def start(self) -> None:
        """Start snapserver and wait until it serves; raise :class:`SnapserverError` if not."""
        if shutil.which(self._executable) is None:
            raise SnapserverError(
                "snapserver is not installed; install it (sudo apt-get install snapserver) "
                "or point broadcaster at a running one with --server"
            )
        host, port = self.control_address
        if await port_answers(host, port):
            raise SnapserverError(
                f"port {port} is already in use, but not by a snapserver that answers; "
                "set snapserver.control_port to a free port"
            )
        # snapserver starts even when it cannot bind the rooms' port; no room could connect.
        stream_port, bind = self.settings.stream_port, self.settings.bind
        if await port_answers("127.0.0.1" if bind in ("0.0.0.0", "::") else bind, stream_port):
            raise SnapserverError(
                f"port {stream_port} (snapserver.stream_port, where rooms connect) is already "
                "in use; set snapserver.stream_port to a free port"
            )
        self._write_config()
        child = ChildProcess(
            [self._executable, "-c", str(self.paths.config_file)], name="snapserver"
        )
        await child.start()
        self._child = child
        deadline = time.monotonic() + self._ready_timeout
        while not (all(f.exists() for f in self.fifos()) and await port_answers(host, port)):
            if not child.running:
                await child.wait()
                raise SnapserverError(
                    f"snapserver exited at start (status {child.returncode}): {child.last_words()}"
                )
            if time.monotonic() > deadline:
                await child.stop()
                raise SnapserverError(
                    f"snapserver did not start serving within {self._ready_timeout:.0f} s: "
                    f"{child.last_words()}"
                )
            await asyncio.sleep(0.05)
        try:
            self._check_fifos()
        except SnapserverError:
            await child.stop()
            self._child = None
            raise
        _LOGGER.info(
            "started snapserver (pid %s): rooms connect to port %d, pipe %s",
            child.pid,
            self.settings.stream_port,
            self.paths.fifo,
        )

    async def supervise(
        self,
        *,
        restart: Policy = SNAPSERVER_RESTART,
    ) -> None:
        """Restart snapserver whenever it exits (waiting by ``restart``), until cancelled."""
        backoff = Backoff(restart)
        while True:
            child = self._child
            if child is not None:
                backoff.started()
                code = await child.wait()
                _LOGGER.warning("snapserver exited (status %s): %s", code, child.last_words())
                await child.stop()
                backoff.ended()
            self._child = None
            await backoff.wait()
            try:
                await self.start()
                self.restarts += 1
            except SnapserverError as err:
                _LOGGER.error("%s; retrying", err)

    async def stop(self) -> None:
        if self._child is not None:
            await self._child.stop()
            self._child = None
