"""The blocking one-shot client and the quick commands, on faults only a stand-in can produce.

(``broadcaster status`` against the real snapserver: tests/integration/test_control.py.)
The client blocks, so it runs in a thread while the scripted server answers
on the test's loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from broadcaster import oneshot
from broadcaster.cli import lookup, main
from broadcaster.config import load
from broadcaster.errors import (
    ConfigError,
    ControlConnectionError,
    ControlTimeoutError,
    ServerReplyError,
)
from tests.support.fake_snapserver import (
    NON_ASCII_NAME,
    Answer,
    FakeSnapserver,
    status_cut_mid_character,
)
from tests.support.procs import free_port

KITCHEN = NON_ASCII_NAME
ROOT = Path(__file__).resolve().parents[2]


async def _status(port: int, timeout: float = 3) -> object:
    return await asyncio.to_thread(oneshot.read_status, "127.0.0.1", port, timeout=timeout)


def _notification() -> bytes:
    message = {"jsonrpc": "2.0", "method": "Client.OnVolumeChanged", "params": {"id": "x"}}
    return json.dumps(message).encode() + b"\r\n"


async def test_reply_split_mid_character_after_notifications_and_garbage() -> None:
    async with FakeSnapserver() as fake:
        status_cut_mid_character(fake, 1, [_notification(), b"}{ garbage\r\n", b"[1, 2]\r\n"])
        result = await _status(fake.port)
    assert result.room(KITCHEN).id == "room1"  # type: ignore[attr-defined]
    assert [r["method"] for r in fake.requests] == ["Server.GetStatus"]


async def test_a_hung_server_is_a_timeout_within_the_deadline() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(silent=True)
        started = time.monotonic()
        with pytest.raises(ControlTimeoutError, match=r"did not answer within 0\.5 s$"):
            await _status(fake.port, timeout=0.5)
        assert time.monotonic() - started < 2


async def test_a_server_that_trickles_notifications_cannot_stretch_the_deadline() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(silent=True)
        task = asyncio.create_task(_status(fake.port, timeout=0.6))
        started = time.monotonic()
        while not task.done():
            await fake.notify("Client.OnVolumeChanged", {"id": "x"})
            await asyncio.sleep(0.05)
        with pytest.raises(ControlTimeoutError):
            await task
        assert time.monotonic() - started < 2


async def test_a_listener_that_never_accepts_is_a_timeout() -> None:
    with socket.socket() as listener:  # the kernel completes the handshake; nobody reads
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(ControlTimeoutError, match=r"did not answer within 0\.3 s"):
            await _status(port, timeout=0.3)


async def test_a_hang_up_is_a_connection_error_naming_the_request() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(hang_up=True)
        with pytest.raises(ControlConnectionError, match=r"lost the connection .* during Server"):
            await _status(fake.port)


async def test_garbage_then_a_hang_up_says_what_the_server_sent() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(
            before=[b"HTTP/1.1 400 Bad Request\r\n"], hang_up=True
        )
        with pytest.raises(ControlConnectionError) as failed:
            await _status(fake.port)
    assert "during Server.GetStatus" in str(failed.value)
    assert "not JSON: 'HTTP/1.1 400 Bad Request" in str(failed.value)
    assert "\n" not in str(failed.value)


async def test_error_reply_and_malformed_status() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(
            error={"code": -32603, "message": "Internal error", "data": "why"}
        )
        with pytest.raises(
            ServerReplyError, match=r"refused Server\.GetStatus: Internal error \(why\)"
        ):
            await _status(fake.port)
        malformed: list[Any] = [[1, 2], {"server": 5}, {"server": {"groups": 3, "streams": []}}]
        for result in malformed:
            fake.handlers["Server.GetStatus"] = functools.partial(_answer, result)
            with pytest.raises(ControlConnectionError, match="it sent no valid status"):
                await _status(fake.port)


def _answer(result: Any, _params: Any) -> Answer:
    return Answer(result=result)


def test_nothing_listening_is_one_clear_error() -> None:
    port = free_port()
    with pytest.raises(
        ControlConnectionError, match=rf"cannot reach snapserver at 127\.0\.0\.1:{port}: "
    ):
        oneshot.read_status("127.0.0.1", port, timeout=2)


async def test_status_command_against_faults_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    async with FakeSnapserver() as fake:
        server = f"127.0.0.1:{fake.port}"
        for answer, text in [
            (Answer(silent=True), f"snapserver at {server} did not answer within 0.5 s"),
            (Answer(hang_up=True), f"lost the connection to snapserver at {server}"),
            (Answer(before=[b"\x00\xff garbage\r\n"], hang_up=True), "not JSON"),
        ]:
            fake.handlers["Server.GetStatus"] = lambda _p, a=answer: a  # type: ignore[misc]
            argv = ["status", "--server", server, "--timeout", "0.5"]
            assert await asyncio.to_thread(main, argv) == 1
            out, err = capsys.readouterr()
            assert out == ""
            assert err.startswith("broadcaster: error: ")
            assert text in err
            assert err.count("\n") == 1


def test_a_bad_scene_name_is_refused_before_the_server_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing listening the name is still what is wrong, not 'cannot reach'."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    argv = ["scene", "save", "a/b", "--server", f"127.0.0.1:{free_port()}"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "printable characters without '/'" in err, err
    assert "cannot reach" not in err


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"BROADCASTER_SERVER": "kitchen:1800"},
        {"BROADCASTER_SERVER": "[::1]"},
        {"BROADCASTER_SERVER": ""},
        {"BROADCASTER_TIMEOUT": "2.5"},
        {"BROADCASTER_SERVER": "h", "BROADCASTER_TIMEOUT": "9"},
    ],
)
def test_quick_settings_are_what_config_load_gives(tmp_path: Path, env: dict[str, str]) -> None:
    env = {"HOME": str(tmp_path), **env}
    cfg = load(env=env)
    assert lookup.control_settings(None, env) == (cfg.server, cfg.timeout)
    (tmp_path / ".config" / "broadcaster").mkdir(parents=True)
    (tmp_path / ".config" / "broadcaster" / "config.toml").write_text('server = "file"\n')
    cfg = load(env=env)
    assert lookup.control_settings(None, env) == (cfg.server, cfg.timeout)


@pytest.mark.parametrize("value", ["a:b:c", "host:99999"])
def test_quick_settings_refuse_what_config_load_refuses(tmp_path: Path, value: str) -> None:
    env = {"HOME": str(tmp_path), "BROADCASTER_SERVER": value}
    with pytest.raises(ConfigError) as by_config:
        load(env=env)
    with pytest.raises(ConfigError) as quick:
        lookup.control_settings(None, env)
    assert str(quick.value) == str(by_config.value)


async def test_status_imports_none_of_the_costly_modules(tmp_path: Path) -> None:
    """What keeps `broadcaster status` fast (bench/startup.py has the figures)."""
    code = (
        "import sys\nfrom broadcaster.cli import main\nrc = main(sys.argv[1:])\n"
        "heavy = ['asyncio', 'broadcaster.config', 'tomllib', 'logging', 'snapcast', 'zeroconf',"
        " 'pathlib', 'shutil']\n"
        "print(rc, [m for m in heavy if m in sys.modules], file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    async with FakeSnapserver() as fake:
        env["BROADCASTER_SERVER"] = f"127.0.0.1:{fake.port}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, "status", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert err.decode().strip() == "0 []", err
    assert b"Snapserver 0.26.0" in out
