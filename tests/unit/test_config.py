"""Configuration: TOML file, environment and flags, validated with clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broadcaster import config, settings
from broadcaster.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    cfg = config.load(env={"HOME": str(tmp_path)})
    assert cfg == config.Config()
    assert cfg.snapserver.control_port == 1705


def test_default_file_is_read_from_xdg_config_home(tmp_path: Path) -> None:
    (tmp_path / "broadcaster").mkdir()
    (tmp_path / "broadcaster" / "config.toml").write_text('server = "nas:1705"\n')
    assert config.load(env={"XDG_CONFIG_HOME": str(tmp_path)}).server == "nas:1705"


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'server = "file-host"\ntimeout = 3\n[delivery]\npipe = "/file/fifo"\nbuffer_ms = 80\n',
    )
    env = {"BROADCASTER_SERVER": "env-host:1800", "BROADCASTER_DELIVERY_BUFFER_MS": "60"}
    cfg = config.load(path, env=env, overrides={"delivery.pipe": "/flag/fifo", "server": None})
    assert cfg.server == "env-host:1800"
    assert cfg.timeout == 3.0
    assert cfg.delivery.pipe == "/flag/fifo"
    assert cfg.delivery.buffer_ms == 60


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[snapserver]\ncodec = 'pcm'\n")
    assert config.load(env={"BROADCASTER_CONFIG": str(path)}).snapserver.codec == "pcm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[delivery]\npipee = '/x'\n", "unknown key 'delivery.pipee'"),
        ("timeout = 'soon'\n", "timeout must be float"),
        ("[snapserver]\nstream_port = 70000\n", "not a TCP port"),
        ("[snapserver]\nmode = 'sometimes'\n", "auto, always or never"),
        ("[delivery]\npipe = '/a'\ntcp = 'tcp://b:1'\n", "exclusive"),
        ("[delivery]\ntcp = 'udp://b:1'\n", "not a tcp://HOST:PORT"),
        ("delivery = 3\n", "must be a table"),
        ("[capture]\nformat = '44100'\n", "capture.format"),
        ("server = 'a b c'\n", "is not HOST or HOST:PORT"),
        ("this is = not toml", "not valid TOML"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        config.load(path, env={})
    assert "\n" not in str(info.value).strip()


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml", env={})


def test_bad_environment_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$BROADCASTER_TIMEOUT must be a number"):
        config.load(env={"HOME": str(tmp_path), "BROADCASTER_TIMEOUT": "fast"})
    with pytest.raises(ConfigError, match="true or false"):
        config.load(env={"HOME": str(tmp_path), "BROADCASTER_CAPTURE_RESTORE": "maybe"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("nas", ("nas", 1705)), ("nas:1800", ("nas", 1800)), ("[::1]:17", ("::1", 17))],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert settings.parse_address(text, 1705) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("BROADCASTER_SNAPSERVER_FIFO", "/run/x\nsource = process:///bin/sh"),
        ("BROADCASTER_SNAPSERVER_DATADIR", "/d\n[http]"),
        ("BROADCASTER_SNAPSERVER_BIND", "0.0.0.0\nport = 1"),
        ("BROADCASTER_SNAPSERVER_BIND", "not an address"),
    ],
)
def test_snapserver_values_that_break_its_config_file_are_refused(
    tmp_path: Path, key: str, value: str
) -> None:
    setting = key.removeprefix("BROADCASTER_").lower().replace("_", ".", 1)
    with pytest.raises(ConfigError, match=re.escape(setting)):
        config.load(env={"XDG_CONFIG_HOME": str(tmp_path), key: value})


def test_web_port_zero_is_any_free_port_but_not_announced() -> None:
    from broadcaster.config import WebConfig

    WebConfig(port=0, publish=False).validate()
    with pytest.raises(ConfigError, match="publish"):
        WebConfig(port=0).validate()
    with pytest.raises(ConfigError, match="not a TCP port"):
        WebConfig(port=70000, publish=False).validate()


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "127.1.2.3", "localhost", "::1"])
def test_any_loopback_address_needs_no_token(bind: str) -> None:
    config.WebConfig(bind=bind).validate()  # 127.0.0.2 was refused as "not loopback"


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.5", "myhost"])
def test_other_addresses_need_a_token(bind: str) -> None:
    with pytest.raises(ConfigError, match="is not loopback, so a token is required"):
        config.WebConfig(bind=bind).validate()
    config.WebConfig(bind=bind, token="long-enough-token").validate()
