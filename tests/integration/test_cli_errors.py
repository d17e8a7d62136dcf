"""Bad input to `broadcaster run` gets one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pipewire import PipeWireSession
from tests.support.procs import free_ports


def broadcaster(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"), **extra)
    return env


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("broadcaster: error: ")
    assert text in lines[0]


def test_no_app_named(tmp_path: Path) -> None:
    assert_one_line_error(broadcaster("run", env=clean_env(tmp_path)), "name the application")


def test_malformed_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[delivery]\nbuffer_ms = 'lots'\n")
    result = broadcaster("--config", str(config), "run", "x", env=clean_env(tmp_path))
    assert_one_line_error(result, "delivery.buffer_ms must be int")


def test_bad_environment_variable(tmp_path: Path) -> None:
    env = clean_env(tmp_path, BROADCASTER_SNAPSERVER_STREAM_PORT="99999")
    assert_one_line_error(broadcaster("run", "x", env=env), "not a TCP port")


def test_pid_1_and_own_ancestors_are_refused(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    assert_one_line_error(broadcaster("run", "--pid", "1", env=env), "pid 1 is init")
    result = broadcaster("run", "--pid", str(os.getpid()), env=env)  # the CLI's parent
    assert_one_line_error(result, "an ancestor of broadcaster")


def test_a_pid_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    """It cannot start playing later (it used to wait for it forever)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    result = broadcaster("run", "--pid", str(gone.pid), env=clean_env(tmp_path))
    assert_one_line_error(result, f"there is no process {gone.pid}")


@pytest.mark.integration
def test_no_pipewire_session(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = clean_env(tmp_path, XDG_RUNTIME_DIR=str(runtime), PULSE_SERVER="unix:/nonexistent")
    result = broadcaster("run", "spotify", "--pipe", str(tmp_path / "fifo"), env=env)
    assert_one_line_error(result, "PipeWire")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = broadcaster("run", "x", "--pipe", "/a", "--tcp", "tcp://b:1", env=clean_env(tmp_path))
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


@pytest.mark.integration
def test_unknown_existing_sink(tmp_path: Path, pw_session: PipeWireSession) -> None:
    env = {k: v for k, v in pw_session.env.items() if not k.startswith("BROADCASTER_")}
    result = broadcaster(
        "run", "x", "--sink", "no-such-sink", "--pipe", str(tmp_path / "fifo"), env=env
    )
    assert_one_line_error(result, "there is no sink 'no-such-sink' (sinks: speakers")


@pytest.mark.integration
def test_named_server_that_does_not_answer(tmp_path: Path, pw_session: PipeWireSession) -> None:
    env = {k: v for k, v in pw_session.env.items() if not k.startswith("BROADCASTER_")}
    result = broadcaster("run", "x", "--server", "127.0.0.1:9", env=env)
    assert_one_line_error(result, "cannot reach snapserver at 127.0.0.1:9")


@pytest.mark.integration
def test_the_rooms_port_taken_is_one_line_not_a_server_no_room_can_reach(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> None:
    """Something else listening on snapserver's stream port: broadcaster started its
    snapserver anyway (which could not bind it) and said "rooms connect to port N"."""
    stream_port, control_port = free_ports(2)
    env = {k: v for k, v in pw_session.env.items() if not k.startswith("BROADCASTER_")}
    env.update(
        BROADCASTER_SNAPSERVER_BIND="127.0.0.1",
        BROADCASTER_SNAPSERVER_STREAM_PORT=str(stream_port),
        BROADCASTER_SNAPSERVER_CONTROL_PORT=str(control_port),
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stream_port))
        taken.listen()
        result = broadcaster("run", "x", env=env)
    assert_one_line_error(result, f"port {stream_port} (snapserver.stream_port")
