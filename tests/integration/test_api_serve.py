"""``broadcaster serve`` end to end: the real CLI runs its own snapserver with a
pipe stream per slot, captures an app on a private PipeWire when asked over
HTTP, a real room hears it, and SIGTERM puts everything back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_pipeline import (
    make_tone,
    start_broadcaster,
    stop_broadcaster,
    wait_for_tone,
)
from tests.support.pipewire import PipeWireSession
from tests.support.procs import free_ports, port_open, wait_until
from tests.support.snapserver import EmbeddedPorts, SnapClient

pytestmark = pytest.mark.integration

TOKEN = "serve-test-token"


def http(method: str, url: str, body: Any = None, token: str = TOKEN) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            raw = reply.read()
            status = reply.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    text = raw.decode()
    return status, json.loads(text) if text.startswith(("{", "[")) else text


def test_serve_runs_its_snapserver_and_captures_on_request(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> None:
    web, *snap = free_ports(4)
    ports = EmbeddedPorts(*snap)
    pw_session.play_on_speakers(make_tone(tmp_path / "t.wav", 440, 48000), "TargetApp")
    serve = start_broadcaster(
        pw_session,
        "serve",
        "--embedded",
        "always",
        "--bind",
        "127.0.0.1",
        "--port",
        str(web),
        "--slots",
        "3",
        "--no-publish",
        extra_env={
            "BROADCASTER_WEB_TOKEN": TOKEN,
            **ports.env(),
            "BROADCASTER_SNAPSERVER_CODEC": "pcm",
        },
    )
    room = SnapClient.for_port(ports.stream, "room1", tmp_path / "room1.raw")
    base = f"http://127.0.0.1:{web}"
    try:
        wait_until(lambda: port_open(web) or not serve.alive(), 30, "serve to listen")
        assert serve.alive(), serve.log_tail()
        room.start()
        wait_until(lambda: len(http("GET", f"{base}/api/rooms")[1]) == 1, 30, "the room in the API")
        status, streams = http("GET", f"{base}/api/streams")
        assert [s["id"] for s in streams] == ["broadcaster", "broadcaster-2", "broadcaster-3"]
        status, health = http("GET", f"{base}/api/health")
        assert status == 200
        assert health["snapserver"]["managed"] is True

        status, refused = http("POST", f"{base}/api/captures", {"app": "TargetApp"}, token="")
        assert status == 401
        assert "token" in refused["error"]
        status, capture = http("POST", f"{base}/api/captures", {"app": "TargetApp"})
        assert status == 201, capture
        assert capture["stream"] == "broadcaster"
        wait_for_tone(room, 440, 40)
        status, metrics = http("GET", f"{base}/metrics")
        assert 'broadcaster_frames_captured_total{capture="1",app="TargetApp"' in metrics
    finally:
        room.stop()
        code = stop_broadcaster(serve, 30)
    assert code == 0, serve.log_tail()
    wait_until(lambda: pw_session.stream_sinks("TargetApp") == ["speakers"], 15, "the app restored")
    assert not port_open(ports.control), "serve left its snapserver running"


def _serve_once(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", "serve", "--no-publish", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )


def test_serve_refuses_bad_settings_in_one_line(tmp_path: Path, snap_tools: None) -> None:
    home = {"XDG_CONFIG_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    cases = [
        (("--bind", "0.0.0.0"), {}, "a token is required"),
        (("--token", "short"), {}, "web.token must be 8-256"),
        (("--slots", "0"), {}, "web.slots = 0 is out of range"),
        ((), {"BROADCASTER_DELIVERY_PIPE": "/tmp/x"}, "unset delivery.pipe"),
    ]
    for args, env, message in cases:
        done = _serve_once(*args, env={**home, **env})
        assert done.returncode == 1, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert message in lines[0], done.stderr

    # The managed snapserver's control port is taken by something that is not
    # a snapserver: one clear line, nothing left running.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        done = _serve_once(
            "--embedded",
            "always",
            "--port",
            str(free_ports(1)[0]),
            env={**home, "BROADCASTER_SNAPSERVER_CONTROL_PORT": str(port)},
        )
    assert done.returncode == 1, done.stderr
    assert f"port {port} is already in use" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
