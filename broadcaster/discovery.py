"""Finding snapservers on the local network with mDNS (zeroconf).

snapserver announces itself under several service types, which changed over
the versions:

* up to 0.32: ``_snapcast._tcp`` and ``_snapcast-stream._tcp`` (stream port),
  ``_snapcast-jsonrpc._tcp`` and ``_snapcast-tcp._tcp`` (JSON-RPC control
  port), ``_snapcast-http._tcp`` (HTTP port);
* from 0.33: ``_snapcast._tcp`` (stream), ``_snapcast-ctrl._tcp`` (control),
  ``_snapcast-http._tcp`` and ``_snapcast-https._tcp``
  (snapcast's ``server/snapserver.cpp``, checked against v0.26.0 and master).

Several of these are longer than the 15 bytes RFC 6335 allows, so records are
matched with zeroconf's non-strict name checks.  :func:`discover` browses all
types for ``timeout`` seconds and merges the records of one server (same
host and instance name) into a :class:`DiscoveredServer`.  A server seen only
through a stream record gets the control port stream+1 (snapserver's default
layout).  zeroconf is imported inside the functions, so importing this module
is cheap.

:func:`sightings` browses the same types for as long as a block runs and
reports each announcement of one given server: a control connection waiting
to reconnect (:class:`~broadcaster.control.Reconnector`) uses it to try at
once when snapserver announces itself again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DiscoveryError
from .lifecycle import cancel_and_wait
from .net import port_answers

if TYPE_CHECKING:
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPES: dict[str, str] = {
    "_snapcast._tcp.local.": "stream",
    "_snapcast-stream._tcp.local.": "stream",
    "_snapcast-jsonrpc._tcp.local.": "control",
    "_snapcast-tcp._tcp.local.": "control",
    "_snapcast-ctrl._tcp.local.": "control",
    "_snapcast-http._tcp.local.": "http",
    "_snapcast-https._tcp.local.": "https",
}
"""Every service type snapserver has announced, and which port it names."""


@dataclass(frozen=True)
class DiscoveredServer:
    """One snapserver seen with mDNS."""

    name: str
    """The instance name (``Snapcast`` by default)."""
    host: str
    """The announced host name (``vm.local.``)."""
    addresses: tuple[str, ...]
    control_port: int
    stream_port: int = 0
    http_port: int = 0
    types: tuple[str, ...] = field(default_factory=tuple)
    """The service types it was seen under."""

    @property
    def address(self) -> str:
        return self.addresses[0] if self.addresses else self.host.rstrip(".")

    @property
    def control_address(self) -> str:
        """``HOST:PORT`` for ``--server``."""
        host = self.address
        return f"[{host}]:{self.control_port}" if ":" in host else f"{host}:{self.control_port}"

    def is_at(self, host: str, port: int) -> bool:
        """Whether this may be the server a connection to ``host:port`` reaches.

        The control port must match.  An IP address must be among the
        announced ones, unless it is loopback (a server on this machine is
        announced with its network addresses); a name is not resolved: the
        port alone decides, and a wrong guess costs one early connect attempt.
        """
        if port != self.control_port:
            return False
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return True
        return address.is_loopback or str(address) in self.addresses

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "addresses": list(self.addresses),
            "control_port": self.control_port,
            "stream_port": self.stream_port,
            "http_port": self.http_port,
            "server": self.control_address,
            "types": list(self.types),
        }


@dataclass
class _Partial:
    name: str
    host: str
    addresses: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    types: list[str] = field(default_factory=list)

    def done(self) -> DiscoveredServer:
        stream = self.ports.get("stream", 0)
        control = self.ports.get("control") or (stream + 1 if stream else 0)
        return DiscoveredServer(
            name=self.name,
            host=self.host,
            addresses=tuple(self.addresses),
            control_port=control,
            stream_port=stream,
            http_port=self.ports.get("http", 0),
            types=tuple(sorted(self.types)),
        )


def merge(records: Sequence[tuple[str, str, str, Sequence[str], int]]) -> list[DiscoveredServer]:
    """Merge ``(type, instance, host, addresses, port)`` records into servers."""
    servers: dict[tuple[str, str], _Partial] = {}
    for type_, instance, host, addresses, port in records:
        kind = SERVICE_TYPES.get(type_)
        if kind is None:
            continue
        entry = servers.setdefault((host, instance), _Partial(instance, host))
        entry.addresses += [a for a in addresses if a not in entry.addresses]
        entry.ports.setdefault(kind, port)
        if type_ not in entry.types:
            entry.types.append(type_)
    found = [s.done() for s in servers.values()]
    return sorted((s for s in found if s.control_port), key=lambda s: (s.host, s.name))


async def discover(
    timeout: float = 2.0, *, interfaces: Sequence[str] | None = None
) -> list[DiscoveredServer]:
    """Browse for snapservers for ``timeout`` seconds."""
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

    seen: set[tuple[str, str]] = set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            seen.add((service_type, name))

    azc = _zeroconf(interfaces)
    records: list[tuple[str, str, str, Sequence[str], int]] = []
    try:
        browser = AsyncServiceBrowser(azc.zeroconf, list(SERVICE_TYPES), handlers=[on_change])
        try:
            await asyncio.sleep(timeout)
        finally:
            await browser.async_cancel()
        for type_, name in sorted(seen):
            info = AsyncServiceInfo(type_, name)
            try:
                ok = await info.async_request(azc.zeroconf, 1000)
            except Exception as err:  # zeroconf raises assorted types on odd records
                _LOGGER.debug("cannot resolve %s: %s", name, err)
                continue
            if not ok or not info.port:
                continue
            records.append(
                (
                    type_,
                    _instance(type_, name),
                    info.server or "",
                    info.parsed_addresses(),
                    info.port,
                )
            )
    finally:
        await azc.async_close()
    servers = merge(records)
    _LOGGER.debug("discovered %d snapserver(s): %s", len(servers), servers)
    return servers


def _instance(type_: str, name: str) -> str:
    return name[: -len(type_)].rstrip(".") if name.endswith(type_) else name


@contextlib.asynccontextmanager
async def sightings(
    host: str,
    port: int,
    on_seen: Callable[[], None],
    *,
    interfaces: Sequence[str] | None = None,
    resolve_timeout: float = 1.0,
) -> AsyncIterator[None]:
    """Browse for snapservers while the block runs; call ``on_seen`` whenever the
    one at ``host:port`` (:meth:`DiscoveredServer.is_at`) is announced.

    Browsing is best effort: without mDNS (no multicast, no interface) the
    block runs without it.  Every resolution is a task of this block, and
    the browser, the tasks and the zeroconf instance end with it.
    """
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

    try:
        azc = _zeroconf(interfaces)
    except DiscoveryError as err:
        _LOGGER.warning("%s: snapserver's return is noticed by retrying only", err)
        yield
        return
    tasks: set[asyncio.Task[None]] = set()

    async def resolve(type_: str, name: str) -> None:
        info = AsyncServiceInfo(type_, name)
        try:
            if not await info.async_request(azc.zeroconf, resolve_timeout * 1000):
                return
        except Exception as err:  # zeroconf raises assorted types on odd records
            _LOGGER.debug("cannot resolve %s: %s", name, err)
            return
        if not info.port:
            return
        record = (type_, _instance(type_, name), info.server or "", info.parsed_addresses())
        for server in merge([(*record, info.port)]):
            if server.is_at(host, port):
                _LOGGER.debug("snapserver %s announced (%s)", server.control_address, type_)
                on_seen()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            return
        task = asyncio.get_running_loop().create_task(
            resolve(service_type, name), name=f"mdns-resolve {name}"
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        browser = AsyncServiceBrowser(azc.zeroconf, list(SERVICE_TYPES), handlers=[on_change])
        try:
            _LOGGER.debug("watching mDNS for snapserver at %s:%d", host, port)
            yield
        finally:
            await browser.async_cancel()
            for task in list(tasks):
                await cancel_and_wait(task)
    finally:
        await azc.async_close()


def _zeroconf(interfaces: Sequence[str] | None) -> AsyncZeroconf:
    """An IPv4 zeroconf instance (on ``interfaces``, else all); DiscoveryError if none."""
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncZeroconf

    try:
        if interfaces:
            return AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=list(interfaces))
        return AsyncZeroconf(ip_version=IPVersion.V4Only)
    except OSError as err:
        raise DiscoveryError(f"cannot browse with mDNS: {err}") from None


async def first_answering(found: Sequence[DiscoveredServer]) -> DiscoveredServer:
    """The first server whose control port accepts a connection (else the first found).

    mDNS can list a server that is gone (a record not yet expired) or several
    servers; one that does not even accept connections is skipped.
    """
    if len(found) > 1:
        for server in found:
            if await port_answers(server.address, server.control_port):
                return server
            _LOGGER.info("snapserver %s found with mDNS does not answer", server.control_address)
    return found[0]
