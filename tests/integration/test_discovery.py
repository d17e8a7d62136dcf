"""Discovery of snapservers with mDNS, inside a private network namespace.

mDNS must never leave the machine: the publisher, a real snapserver and the
``broadcaster`` commands all run in one child started under ``unshare -n``
with only ``lo`` up (multicast on, 224.0.0.0/4 routed to it; see
:mod:`tests.support.netns`).  Records are published as snapserver 0.26 does
(``_snapcast._tcp``, ``_snapcast-stream._tcp``, ``_snapcast-jsonrpc._tcp``,
``_snapcast-tcp._tcp``, ``_snapcast-http._tcp``) for one server and as 0.33+
does (``_snapcast-ctrl._tcp`` for control) for another, which is a real
snapserver.  ``broadcaster discover`` must list both with the right ports;
``broadcaster status`` without --server must find the real one by mDNS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import netns

pytestmark = pytest.mark.integration

INNER = r"""
import asyncio, json, os, subprocess, sys
from pathlib import Path

sys.path.insert(0, os.getcwd())
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf
from tests.support.netns import report_with_snapserver

tmp = Path(sys.argv[1])
env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
env["BROADCASTER_CONFIG"] = os.devnull

def broadcaster(*args):
    done = subprocess.run([sys.executable, "-m", "broadcaster", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr}

OLD = [("_snapcast._tcp.local.", 1704), ("_snapcast-stream._tcp.local.", 1704),
       ("_snapcast-jsonrpc._tcp.local.", 1705), ("_snapcast-tcp._tcp.local.", 1705),
       ("_snapcast-http._tcp.local.", 1780)]

async def main(server):
    new = [("_snapcast._tcp.local.", server.stream_port),
           ("_snapcast-ctrl._tcp.local.", server.control_port),
           ("_snapcast-http._tcp.local.", server.http_port)]
    azc = AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=["127.0.0.1"])
    def info(instance, host, type_, port):
        return ServiceInfo(type_, f"{instance}.{type_}", port=port, server=host,
                           parsed_addresses=["127.0.0.1"], properties={})
    old_infos = [info("Snapcast old", "old-house.local.", t, p) for t, p in OLD]
    new_infos = [info("Snapcast new", "new-house.local.", t, p) for t, p in new]
    result = {"ports": [server.control_port, server.stream_port, server.http_port]}
    try:
        tasks = [await azc.async_register_service(i, strict=False) for i in old_infos + new_infos]
        await asyncio.gather(*tasks)
        result["discover"] = await asyncio.to_thread(
            broadcaster, "discover", "--json", "--timeout", "3")
        result["table"] = await asyncio.to_thread(broadcaster, "discover", "--timeout", "3")
        for i in old_infos:
            await (await azc.async_unregister_service(i))
        result["status"] = await asyncio.to_thread(broadcaster, "-v", "status", "--json")
    finally:
        await azc.async_close()
    return result

report_with_snapserver(tmp, main)
"""


def test_discover_finds_both_generations_and_status_uses_it(
    tmp_path: Path, snap_tools: None, netns_tools: None
) -> None:
    result, _ = netns.run_script(INNER, tmp_path, timeout=180)
    control, stream, http = result["ports"]

    assert result["discover"]["rc"] == 0, result["discover"]["err"]
    found = {s["host"]: s for s in json.loads(result["discover"]["out"])}
    assert set(found) == {"old-house.local.", "new-house.local."}
    old = found["old-house.local."]
    assert (old["control_port"], old["stream_port"], old["http_port"]) == (1705, 1704, 1780)
    assert "_snapcast-jsonrpc._tcp.local." in old["types"]
    new = found["new-house.local."]
    assert (new["control_port"], new["stream_port"], new["http_port"]) == (control, stream, http)
    assert "_snapcast-ctrl._tcp.local." in new["types"]
    assert new["server"] == f"127.0.0.1:{control}"
    assert "old-house.local." in result["table"]["out"]

    status = result["status"]
    assert status["rc"] == 0, status["err"]
    assert f"using snapserver 127.0.0.1:{control} found with mDNS" in status["err"]
    assert json.loads(status["out"])["streams"][0]["id"] == "Main"
