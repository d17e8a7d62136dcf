"""Configuration: a TOML file, environment variables and command-line flags.

Precedence, lowest first: built-in defaults, the TOML file, environment
variables, command-line flags.  Every value is checked against the type of its
dataclass field, unknown keys are refused (a typo must not be ignored
silently), and each section validates its own ranges; every problem raises
:class:`~broadcaster.errors.ConfigError` naming the file/variable/flag and key.

File: ``--config FILE``, else ``$BROADCASTER_CONFIG``, else
``$XDG_CONFIG_HOME/broadcaster/config.toml`` (``~/.config/...``) if it exists.

Environment: top-level keys are ``BROADCASTER_<KEY>`` (``BROADCASTER_SERVER``),
section keys ``BROADCASTER_<SECTION>_<KEY>`` (``BROADCASTER_DELIVERY_PIPE``).

To add a setting, add a field to a section dataclass (and a check to its
``validate``); loading, env variables and error messages follow from the field.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .jsonrpc import DEFAULT_TIMEOUT
from .paths import config_file
from .settings import DEFAULT_CONTROL_PORT, ENV_PREFIX, check_port, parse_address


def conf_value_problem(value: str, *, in_uri: bool = False) -> str | None:
    """Why ``value`` cannot be written into snapserver.conf as it is, or None.

    snapserver's config format has no quoting: a line break would start a new
    line of its own (a ``source = process://...`` runs a program), and in a
    ``source = pipe://PATH?...`` URI, ``?``, ``&``, ``#`` and ``%`` would change
    the stream's parameters.  Such values are refused, not escaped.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "it holds a line break or another control character"
    if in_uri and any(c in value for c in "?&#% "):
        return "it holds one of ? & # % or a space"
    return None


def _check_conf_value(value: str, key: str, *, in_uri: bool = False) -> None:
    problem = conf_value_problem(value, in_uri=in_uri)
    if problem:
        raise ConfigError(f"{key} = {value!r} cannot go into snapserver.conf: {problem}")


def _check_bind(value: str, key: str) -> None:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", value):
            raise ConfigError(f"{key} = {value!r} is not an IP address or host name") from None


@dataclass(frozen=True)
class CaptureConfig:
    """Where and how the application's audio is captured."""

    sink: str = ""
    """An existing sink to isolate the app on (e.g. the snd-aloop one); empty: a
    virtual null sink created for the run and removed after it."""
    format: str = "48000:s16:2"
    """What to ask PipeWire to deliver from the sink monitor (RATE:SAMPLE:CH).
    The default lets PipeWire do the cheap conversion; any other format is
    normalized by soxr/numpy."""
    restore: bool = True
    """Move the app's streams back where they were when the run ends."""
    latency_ms: int = 100
    """pw-record's node latency: how much audio each wakeup hands over.  Lower
    means more wakeups of PipeWire, pw-record and broadcaster (CPU: 40 ms costs
    about twice 100 ms, measured in docs/performance.md) for a capture delay
    that snapserver's buffer (1 s by default) dwarfs anyway.  100 ms is
    pw-record's own default."""

    idle_stop: float = 10.0
    """Seconds after the app's last stream ends before pw-record is stopped
    (an idle broadcaster keeps neither itself nor PipeWire awake)."""
    native: bool = True
    """Let PipeWire write snapserver's pipe itself when nothing needs Python
    (docs/architecture.md); false forces the Python data path."""

    def validate(self) -> None:
        from .audio import AudioFormat
        from .errors import AudioFormatError

        if not 0 <= self.idle_stop <= 3600:
            raise ConfigError(f"capture.idle_stop = {self.idle_stop} is out of range (0-3600 s)")
        if not 5 <= self.latency_ms <= 200:
            raise ConfigError(f"capture.latency_ms = {self.latency_ms} is out of range (5-200)")

        try:
            AudioFormat.parse(self.format)
        except AudioFormatError as err:
            raise ConfigError(f"capture.format: {err}") from None


@dataclass(frozen=True)
class DeliveryConfig:
    """Where the normalized audio goes."""

    pipe: str = ""
    """snapserver's named pipe; empty: the server's pipe stream, else the
    embedded snapserver's."""
    tcp: str = ""
    """``tcp://HOST:PORT`` of a snapserver tcp source in server mode."""
    stream: str = ""
    """Name (or id) of the stream to feed on the server; empty: the first pipe stream."""
    buffer_ms: int = 100
    """Most audio held between capture and snapserver (pipe fill + queue)."""

    def validate(self) -> None:
        if self.pipe and self.tcp:
            raise ConfigError("delivery.pipe and delivery.tcp are exclusive: set one of them")
        if self.tcp:
            parse_tcp_url(self.tcp)
        if not 20 <= self.buffer_ms <= 5000:
            raise ConfigError(f"delivery.buffer_ms = {self.buffer_ms} is out of range (20-5000)")


@dataclass(frozen=True)
class SnapserverConfig:
    """The embedded snapserver ``run`` starts when no other one is configured or reachable."""

    mode: str = "auto"
    """auto: start one only if none answers on the control port; always; never."""
    bind: str = "0.0.0.0"
    """Address the rooms connect to (the stream port); control stays on loopback."""
    lan_control: bool = False
    """Also serve snapserver's control (the tcp ``control_port`` and the http
    ``http_port``: JSON-RPC, snapweb) on ``bind``, for the Snapcast apps.  That
    control is NOT authenticated: anyone who reaches it can change every room.
    Off: the tcp control stays on loopback, the http port is not served at all
    (any web page in a browser on this machine could reach it), and browser
    rooms go through broadcaster's /stream."""
    stream_port: int = 1704
    control_port: int = DEFAULT_CONTROL_PORT
    http_port: int = 1780
    codec: str = "pcm"
    """pcm (the default: browser rooms can play it; ~1.5 Mbit/s per room, fine on
    a LAN) or flac (a third of the bandwidth, but no browser room); ogg, opus."""
    fifo: str = ""
    """Pipe path; empty: $XDG_RUNTIME_DIR/broadcaster/snapfifo."""
    datadir: str = ""
    """snapserver's state (client names, groups); empty: ~/.local/state/broadcaster/snapserver."""
    stream_name: str = "broadcaster"

    def validate(self) -> None:
        if self.mode not in ("auto", "always", "never"):
            raise ConfigError(f"snapserver.mode = {self.mode!r} is not auto, always or never")
        for key in ("stream_port", "control_port", "http_port"):
            check_port(getattr(self, key), f"snapserver.{key}")
        _check_bind(self.bind, "snapserver.bind")
        _check_conf_value(self.fifo, "snapserver.fifo", in_uri=True)
        _check_conf_value(self.datadir, "snapserver.datadir")
        if self.codec not in ("flac", "pcm", "ogg", "opus"):
            raise ConfigError(f"snapserver.codec = {self.codec!r} is not flac, pcm, ogg or opus")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.stream_name):
            raise ConfigError(
                f"snapserver.stream_name = {self.stream_name!r}: use letters, digits, _ . -"
            )


@dataclass(frozen=True)
class WebConfig:
    """``broadcaster serve``: the HTTP API and web page, captures, zeroconf."""

    bind: str = "127.0.0.1"
    """Address the API and page listen on; anything but loopback needs ``token``."""
    port: int = 1788
    """0: any free port (serve prints the one it got); not with ``publish``."""
    token: str = ""
    """Shared secret for every API request (Bearer or ?token=); the page and its
    files load without it."""
    public_reads: bool = False
    """With a token: answer GET requests (state, metrics, health) without it.
    Changes and the WebSockets still need it."""
    hosts: str = ""
    """Host names the service answers to besides loopback names, IP addresses
    and this machine's name (NAME, NAME.local), comma-separated
    (``music.home,broadcaster.example``); ``*`` answers to any name, which
    turns off the guard against DNS rebinding."""
    slots: int = 4
    """Pipe streams the managed snapserver gets: how many apps can be captured at once."""
    publish: bool = True
    """Use zeroconf: announce the service (and the managed snapserver), and,
    with a snapserver not managed here, browse for its announcements while the
    connection to it is lost, to reconnect as soon as it is back."""

    def host_names(self) -> list[str]:
        """``hosts`` as a list of lower-case names."""
        return [name.strip().lower() for name in self.hosts.split(",") if name.strip()]

    def validate(self) -> None:
        if self.port != 0:  # 0: any free port, which serve prints once it listens
            check_port(self.port, "web.port")
        elif self.publish:
            raise ConfigError(
                "web.port = 0 (any free port) cannot be announced with zeroconf: "
                "set web.publish = false (or --no-publish), or a port"
            )
        if not 1 <= self.slots <= 32:
            raise ConfigError(f"web.slots = {self.slots} is out of range (1-32)")
        for name in self.host_names():
            if name != "*" and not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,252})", name):
                raise ConfigError(
                    f"web.hosts: {name!r} is not a host name (comma-separated names, or *)"
                )
        if self.token and not re.fullmatch(r"[\x21-\x7e]{8,256}", self.token):
            raise ConfigError("web.token must be 8-256 printable characters without spaces")
        if not self.token and not _is_loopback(self.bind):
            raise ConfigError(
                f"web.bind = {self.bind!r} is not loopback, so a token is required: "
                "set web.token (or $BROADCASTER_WEB_TOKEN, or --token)"
            )


def _is_loopback(address: str) -> bool:
    """``localhost`` or an address of 127.0.0.0/8 or ::1 (no name lookup)."""
    import ipaddress

    try:
        return address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ProcessingConfig:
    """Real-time processing of the normalized audio (see :mod:`broadcaster.processing`)."""

    speed: float = 1.0
    """Play faster (and higher) or slower, like asetrate: 1.1 is nightcore."""
    speed_policy: str = "prebuffer"
    """What happens when speed outruns the live source: prebuffer (buffer
    ``prebuffer_s``, play until drained, refill) or pad (pad with silence)."""
    prebuffer_s: float = 3.0
    """Seconds of sped-up audio buffered before playing (policy prebuffer)."""
    gain_db: float = 0.0
    mono: bool = False
    swap: bool = False
    """Swap left and right."""
    filter: str = ""
    """``module:function`` taking and returning a frames x 2 float32 numpy block."""

    @property
    def active(self) -> bool:
        return bool(self.speed != 1.0 or self.gain_db or self.mono or self.swap or self.filter)

    def validate(self) -> None:
        if not 0.5 <= self.speed <= 2.0:
            raise ConfigError(f"processing.speed = {self.speed} is out of range (0.5-2.0)")
        if self.speed_policy not in ("prebuffer", "pad"):
            raise ConfigError(
                f"processing.speed_policy = {self.speed_policy!r} is not prebuffer or pad"
            )
        if not 0.1 <= self.prebuffer_s <= 60:
            raise ConfigError(
                f"processing.prebuffer_s = {self.prebuffer_s} is out of range (0.1-60 s)"
            )
        if not -60 <= self.gain_db <= 24:
            raise ConfigError(f"processing.gain_db = {self.gain_db} is out of range (-60-+24 dB)")
        if self.filter and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.filter):
            raise ConfigError(
                f"processing.filter = {self.filter!r} is not module:function (e.g. myfilters:echo)"
            )


@dataclass(frozen=True)
class AnnounceConfig:
    """Announcements over the music (see :mod:`broadcaster.announce`)."""

    duck_db: float = 12.0
    """How far the music is lowered while an announcement plays."""
    ramp_ms: int = 250
    """How long the music takes to go down and to come back up."""
    announcer: str = ""
    """An app (name as for ``run APP``) whose sound is mixed in, the music ducked
    while it plays: a doorbell program, a player speaking Home Assistant's TTS."""
    lead_ms: int = 300
    """Silence before an announcement: the music is ducked meanwhile."""
    max_seconds: float = 120.0
    """Longest announcement (a file or spoken text)."""
    max_upload_mb: float = 16.0
    """Largest sound file ``POST /api/announce`` accepts."""
    voice: str = ""
    """espeak-ng voice for spoken announcements (``espeak-ng --voices``); empty: its default."""

    def validate(self) -> None:
        if not 0 <= self.duck_db <= 60:
            raise ConfigError(f"announce.duck_db = {self.duck_db} is out of range (0-60 dB)")
        if not 0 <= self.ramp_ms <= 2000:
            raise ConfigError(f"announce.ramp_ms = {self.ramp_ms} is out of range (0-2000)")
        if not 0 <= self.lead_ms <= 5000:
            raise ConfigError(f"announce.lead_ms = {self.lead_ms} is out of range (0-5000)")
        if not 1 <= self.max_seconds <= 3600:
            raise ConfigError(f"announce.max_seconds = {self.max_seconds} is out of range (1-3600)")
        if not 0.1 <= self.max_upload_mb <= 512:
            raise ConfigError(
                f"announce.max_upload_mb = {self.max_upload_mb} is out of range (0.1-512)"
            )
        if self.voice and not re.fullmatch(r"[A-Za-z0-9_+.-]{1,64}", self.voice):
            raise ConfigError(f"announce.voice = {self.voice!r} is not an espeak-ng voice name")


@dataclass(frozen=True)
class Config:
    """All of broadcaster's settings."""

    server: str = ""
    """snapserver control address HOST[:PORT]; empty: localhost, else discovery."""
    timeout: float = DEFAULT_TIMEOUT
    """Deadline in seconds for every request to snapserver."""
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    snapserver: SnapserverConfig = field(default_factory=SnapserverConfig)
    web: WebConfig = field(default_factory=WebConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    announce: AnnounceConfig = field(default_factory=AnnounceConfig)

    def validate(self) -> None:
        if not 0.1 <= self.timeout <= 300:
            raise ConfigError(f"timeout = {self.timeout} is out of range (0.1-300 seconds)")
        if self.server:
            parse_address(self.server, DEFAULT_CONTROL_PORT, "server")
        for section in (
            self.capture,
            self.delivery,
            self.snapserver,
            self.web,
            self.processing,
            self.announce,
        ):
            section.validate()


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def is_local_host(host: str) -> bool:
    """True if ``host`` names this machine, so a snapserver there has pipes we can write."""
    return host in LOCAL_HOSTS


def parse_tcp_url(text: str) -> tuple[str, int]:
    """Split ``tcp://HOST:PORT`` into host and port."""
    if not text.startswith("tcp://"):
        raise ConfigError(f"{text!r} is not a tcp://HOST:PORT address")
    return parse_address(text[len("tcp://") :], 4953)


# --- loading -----------------------------------------------------------------

_T = TypeVar("_T")


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration.

    ``overrides`` maps dotted keys (``"delivery.pipe"``) to values from
    command-line flags; ``None`` values are ignored (flag not given).
    """
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(ENV_PREFIX + "CONFIG"))
    file = Path(path) if path is not None else Path(env.get(ENV_PREFIX + "CONFIG") or "")
    if not explicit:
        file = config_file(env)
    data: dict[str, Any] = {}
    if explicit or file.exists():
        data = _read_toml(file)
    config = _build(Config, data, origin=str(file), prefix="")
    config = _apply_env(config, env)
    if overrides:
        config = apply_overrides(config, overrides, origin="command line")
    config.validate()
    return config


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {file}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {file} is not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {file} is not UTF-8 text") from None


def _build(cls: type[_T], data: Mapping[str, Any], *, origin: str, prefix: str) -> _T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        known = ", ".join(sorted(names))
        raise ConfigError(f"{origin}: unknown key '{prefix}{unknown[0]}' (known: {known})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{prefix}{name}] must be a table")
            kwargs[name] = _build(hint, value, origin=origin, prefix=f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(value, hint, f"{origin}: {prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a field type; accept ints for floats."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{where} must be {names}, not {value!r}")


def _parse_env_value(text: str, hint: Any, where: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if bool in options:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} must be true or false, not {text!r}")
    for kind in (int, float):
        if kind in options:
            try:
                return kind(text)
            except ValueError:
                raise ConfigError(f"{where} must be a number, not {text!r}") from None
    return text


def _apply_env(config: Config, env: Mapping[str, str]) -> Config:
    overrides: dict[str, Any] = {}
    for key, hint, prefix in _walk(Config, ""):
        var = ENV_PREFIX + (prefix + key).replace(".", "_").upper()
        if var in env and var != ENV_PREFIX + "CONFIG":
            overrides[prefix + key] = _parse_env_value(env[var], hint, f"${var}")
            if var == ENV_PREFIX + "SERVER" and env[var]:
                # Named as the quick path of the CLI names it (cli/lookup.py).
                parse_address(env[var], DEFAULT_CONTROL_PORT, f"${var}")
    return apply_overrides(config, overrides, origin="environment") if overrides else config


def _walk(cls: type[Any], prefix: str) -> list[tuple[str, Any, str]]:
    out: list[tuple[str, Any, str]] = []
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            out += _walk(hint, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            out.append((name, hint, prefix))
    return out


def apply_overrides(config: Config, overrides: Mapping[str, Any], *, origin: str) -> Config:
    """Return ``config`` with dotted keys replaced (``None`` values skipped)."""
    result: Any = config
    for dotted, value in overrides.items():
        if value is None:
            continue
        result = _replace_path(result, dotted.split("."), value, origin, dotted)
    return typing.cast(Config, result)


def _replace_path(obj: Any, path: list[str], value: Any, origin: str, dotted: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    head = path[0]
    if head not in hints:
        raise ConfigError(f"{origin}: unknown setting {dotted!r}")
    if len(path) == 1:
        return dataclasses.replace(
            obj, **{head: _coerce(value, hints[head], f"{origin}: {dotted}")}
        )
    inner = _replace_path(getattr(obj, head), path[1:], value, origin, dotted)
    return dataclasses.replace(obj, **{head: inner})
