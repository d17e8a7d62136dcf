"""Zeroconf announcements of ``broadcaster serve``, inside a private network namespace.

mDNS must never leave the machine, so the whole exchange runs under
``unshare -n`` with only ``lo`` up (multicast on, 224.0.0.0/4 routed to it; see
:mod:`tests.support.netns`): serve (with its own snapserver, no avahi in the
namespace) must announce ``_broadcaster._tcp`` with its port and TXT record,
and the snapserver's ``_snapcast._tcp`` / ``_snapcast-jsonrpc._tcp`` records
for the Snapcast apps, and withdraw them when it stops.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import netns

pytestmark = pytest.mark.integration

INNER = r"""
import json, os, signal, socket, subprocess, sys, time
from zeroconf import Zeroconf, ServiceBrowser, ServiceListener

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

web, stream, control, http = (free_port() for _ in range(4))
env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
env.update(
    BROADCASTER_WEB_TOKEN="zeroconf-token",
    BROADCASTER_SNAPSERVER_STREAM_PORT=str(stream),
    BROADCASTER_SNAPSERVER_CONTROL_PORT=str(control),
    BROADCASTER_SNAPSERVER_HTTP_PORT=str(http),
    BROADCASTER_SNAPSERVER_LAN_CONTROL="1",  # the Snapcast apps' control is announced then
    XDG_RUNTIME_DIR=sys.argv[1], XDG_STATE_HOME=sys.argv[1], XDG_CONFIG_HOME=sys.argv[1],
)
log = open(os.path.join(sys.argv[1], "serve.log"), "wb")
serve = subprocess.Popen(
    [sys.executable, "-m", "broadcaster", "-v", "serve", "--embedded", "always",
     "--bind", "0.0.0.0", "--port", str(web)],
    env=env, stdout=log, stderr=subprocess.STDOUT,
)
found = {}
wanted = ["_broadcaster._tcp.local.", "_snapcast._tcp.local.", "_snapcast-jsonrpc._tcp.local."]

class Listener(ServiceListener):
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is not None:
            found[type_] = {
                "port": info.port,
                "addresses": info.parsed_addresses(),
                "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
            }
    def update_service(self, zc, type_, name): pass
    def remove_service(self, zc, type_, name): found.pop(type_, None)

result = {"ports": {"web": web, "stream": stream, "control": control}}
zc = Zeroconf(interfaces=["127.0.0.1"])
try:
    browsers = [ServiceBrowser(zc, t, Listener()) for t in wanted]
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(found) < len(wanted) and serve.poll() is None:
        time.sleep(0.1)
    result["found"] = dict(found)
    serve.send_signal(signal.SIGTERM)
    result["exit"] = serve.wait(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "_broadcaster._tcp.local." in found:
        time.sleep(0.1)
    result["after_stop"] = sorted(found)
finally:
    if serve.poll() is None:
        serve.kill()
        serve.wait()
    zc.close()
print(json.dumps(result))
"""


def test_serve_announces_itself_and_its_snapserver(
    tmp_path: Path, snap_tools: None, netns_tools: None
) -> None:
    result, log = netns.run_script(INNER, tmp_path, timeout=120, log="serve.log")
    found = result["found"]
    ours = found.get("_broadcaster._tcp.local.")
    assert ours is not None, (result, log)
    assert ours["port"] == result["ports"]["web"]
    assert ours["txt"]["auth"] == "token"
    assert "127.0.0.1" in ours["addresses"]
    assert found["_snapcast._tcp.local."]["port"] == result["ports"]["stream"]
    assert found["_snapcast-jsonrpc._tcp.local."]["port"] == result["ports"]["control"]
    assert result["exit"] == 0, log
    assert "_broadcaster._tcp.local." not in result["after_stop"]
