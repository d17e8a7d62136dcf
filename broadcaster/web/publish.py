"""Zeroconf announcements of the service (and of its managed snapserver).

broadcaster announces itself as ``_broadcaster._tcp`` (TXT: ``path=/``,
``api=/api``, ``auth=token|none``, ``version``).  When the snapserver runs on
this machine (its own, or one on localhost) and no avahi-daemon runs here
(snapserver announces itself only through avahi), it also announces the
snapserver the way snapserver would:
``_snapcast._tcp`` and ``_snapcast-stream._tcp`` on the stream port,
``_snapcast-jsonrpc._tcp`` and ``_snapcast-tcp._tcp`` on the control port,
``_snapcast-http._tcp`` on the HTTP port, so the Android/iOS Snapcast apps
find it.  Only the :class:`AsyncZeroconf` created here is closed here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import __version__
from ..service import Service

if TYPE_CHECKING:
    from zeroconf import ServiceInfo
    from zeroconf.asyncio import AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_broadcaster._tcp.local."
AVAHI_SOCKET = "/run/avahi-daemon/socket"


@dataclass(frozen=True)
class Announcement:
    type: str
    port: int
    properties: dict[str, str]


def host_addresses(bind: str) -> list[str]:
    """Addresses to announce: ``bind`` itself, or every IPv4 address of this host."""
    if bind not in ("0.0.0.0", "", "::"):
        return [bind]
    import ifaddr

    found: list[str] = []
    loopback: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue
            address = ipaddress.ip_address(ip.ip)
            (loopback if address.is_loopback else found).append(ip.ip)
    return found or loopback


def announcements(service: Service, *, avahi_running: bool | None = None) -> list[Announcement]:
    """What to announce for ``service``."""
    web = service.config.web
    items = [
        Announcement(
            SERVICE_TYPE,
            web.port,
            {
                "path": "/",
                "api": "/api",
                "auth": "token" if web.token else "none",
                "version": __version__,
            },
        )
    ]
    if avahi_running is None:
        avahi_running = os.path.exists(AVAHI_SOCKET)
    local = service.managed is not None or service.snap.host in ("127.0.0.1", "localhost", "::1")
    if local and not avahi_running:
        snap = service.config.snapserver
        kinds = [
            ("_snapcast._tcp.local.", snap.stream_port),
            ("_snapcast-stream._tcp.local.", snap.stream_port),
        ]
        if snap.lan_control:  # control listens beyond loopback only then
            kinds += [
                ("_snapcast-jsonrpc._tcp.local.", snap.control_port),
                ("_snapcast-tcp._tcp.local.", snap.control_port),
                ("_snapcast-http._tcp.local.", snap.http_port),
            ]
        for kind, port in kinds:
            items.append(Announcement(kind, port, {}))
    return items


def _instance_name() -> str:
    return f"broadcaster on {socket.gethostname()}"


class Publisher:
    """Registers the announcements on start, withdraws them on stop."""

    def __init__(self, service: Service, *, timeout: float = 5.0) -> None:
        self._service = service
        self._timeout = timeout
        self._zeroconf: AsyncZeroconf | None = None
        self._infos: list[ServiceInfo] = []

    async def start(self) -> None:
        from zeroconf import InterfaceChoice, IPVersion, ServiceInfo
        from zeroconf.asyncio import AsyncZeroconf

        bind = self._service.config.web.bind
        addresses = host_addresses(bind)
        if not addresses:
            _LOGGER.warning("no address to announce; zeroconf announcement skipped")
            return
        interfaces: list[str | int] | InterfaceChoice = (
            InterfaceChoice.All if bind in ("0.0.0.0", "") else list(addresses)
        )
        zc = AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=interfaces)
        self._zeroconf = zc
        name = _instance_name()
        host = socket.gethostname().split(".")[0] + ".local."
        infos = [
            ServiceInfo(
                item.type,
                f"{name}.{item.type}",
                port=item.port,
                properties=item.properties,
                server=host,
                parsed_addresses=addresses,
            )
            for item in announcements(self._service)
        ]
        # Probing takes a second or two per name: claim them all at once.
        results = await asyncio.gather(*(self._register(zc, info) for info in infos))
        self._infos = [info for info, ok in zip(infos, results, strict=True) if ok]
        _LOGGER.info("announced %d zeroconf services on %s", len(self._infos), addresses)

    async def _register(self, zc: AsyncZeroconf, info: ServiceInfo) -> bool:
        try:
            # snapserver's own "_snapcast-jsonrpc" is longer than RFC 6335's 15
            # characters; avahi allows it, so must we.  The call returns a task
            # that finishes once the name is claimed.
            async with asyncio.timeout(self._timeout):
                await (await zc.async_register_service(info, allow_name_change=True, strict=False))
        except Exception as err:  # zeroconf raises several unrelated types
            _LOGGER.warning("cannot announce %s with zeroconf: %s", info.type, err)
            return False
        return True

    async def stop(self) -> None:
        zc, self._zeroconf = self._zeroconf, None
        if zc is None:
            return
        for info in self._infos:
            try:
                async with asyncio.timeout(self._timeout):
                    await (await zc.async_unregister_service(info))
            except Exception as err:
                _LOGGER.debug("cannot withdraw %s: %s", info.type, err)
        self._infos.clear()
        await zc.async_close()
