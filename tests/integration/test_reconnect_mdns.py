"""A snapserver's mDNS announcement ends the service's wait to reconnect, in a private
network namespace.

mDNS must never leave the machine: the service, a real snapserver and the
announcements all run in one child started under ``unshare -n`` with only ``lo``
up (see :mod:`tests.support.netns`).  No avahi runs there, so the test announces
the restarted snapserver the way it announces itself through avahi
(``_snapcast._tcp`` on the stream port, ``_snapcast-jsonrpc._tcp`` on the
control port).  The service's reconnect backoff is an hour: only the
announcement can bring the connection back within the test's deadline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import netns

pytestmark = pytest.mark.integration

INNER = r"""
import asyncio, json, logging, os, sys, time
from pathlib import Path

sys.path.insert(0, os.getcwd())
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf
from broadcaster.backoff import Policy
from broadcaster.config import Config, SnapserverConfig, WebConfig
from broadcaster.control import ReconnectState
from broadcaster.service import Service
from tests.support.netns import report_with_snapserver

tmp = Path(sys.argv[1])
logging.basicConfig(filename=tmp / "service.log", level=logging.DEBUG,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")

async def until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)

async def main(server):
    config = Config(
        server=f"127.0.0.1:{server.control_port}",
        timeout=2.0,
        snapserver=SnapserverConfig(mode="never"),
        web=WebConfig(publish=False),
    )
    hour = Policy(first=3600.0, cap=3600.0)
    service = Service(config, env={"XDG_STATE_HOME": str(tmp / "state")}, reconnect=hour)
    await service.start(mdns=True)
    result = {}
    azc = None
    try:
        await until(lambda: service.snap.connected, 20, "the first connection")
        reconnector = service.snap.control.reconnector
        result["watching_while_connected"] = reconnector.watching
        await asyncio.to_thread(server.stop)
        await until(lambda: reconnector.watching and reconnector.state is ReconnectState.WAITING,
                    20, "the service to wait to reconnect, watching mDNS")
        await asyncio.to_thread(server.start)  # back, on the same ports, and not yet announced
        result["attempts_before"] = reconnector.attempts
        azc = AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=["127.0.0.1"])
        for type_, port in (("_snapcast._tcp.local.", server.stream_port),
                            ("_snapcast-jsonrpc._tcp.local.", server.control_port)):
            info = ServiceInfo(type_, f"Snapcast.{type_}", port=port, server="house.local.",
                               parsed_addresses=["127.0.0.1"], properties={})
            await (await azc.async_register_service(info, strict=False))
        await until(lambda: service.snap.connected, 30, "the reconnect after the announcement")
        result.update(
            attempts=reconnector.attempts,
            state=reconnector.state.value,
            watching_after=reconnector.watching,
            connects=service.snap.connects,
        )
    finally:
        await service.stop()
        if azc is not None:
            await azc.async_close()
    return result

report_with_snapserver(tmp, main)
"""


def test_an_announcement_of_the_lost_snapserver_reconnects_at_once(
    tmp_path: Path, snap_tools: None, netns_tools: None
) -> None:
    result, log = netns.run_script(INNER, tmp_path, timeout=180, log="service.log")
    assert result["watching_while_connected"] is False
    # One wait (of an hour) begun when the server went, cut short by its announcement.
    assert result["attempts_before"] == 1, log
    assert (result["attempts"], result["state"]) == (1, "connected"), log
    assert result["watching_after"] is False  # connected: browsing ended
    assert result["connects"] == 2
    assert "the server may be back: reconnecting now" in log
