"""A private, headless PipeWire session for integration tests.

Everything lives in a temporary directory: XDG_RUNTIME_DIR (sockets),
HOME/XDG_STATE_HOME/XDG_CONFIG_HOME (WirePlumber's remembered routes), and a
session D-Bus.  ``env`` is what a process needs to join this session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .procs import Proc, wait_until

REQUIRED = (
    "pipewire",
    "wireplumber",
    "pipewire-pulse",
    "dbus-daemon",
    "pactl",
    "pw-dump",
    "pw-play",
)


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED if shutil.which(tool) is None]


class PipeWireSession:
    def __init__(self, base: Path) -> None:
        self.base = base
        run = base / "run"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PIPEWIRE_", "PULSE_"))},
            "XDG_RUNTIME_DIR": str(run),
            "HOME": str(base / "home"),
            "XDG_STATE_HOME": str(base / "state"),
            "XDG_CONFIG_HOME": str(base / "config"),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run}/bus",
        }
        for key in ("XDG_RUNTIME_DIR", "HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
            Path(self.env[key]).mkdir(parents=True, exist_ok=True)
        run.chmod(0o700)
        self.logs = base / "logs"
        self.logs.mkdir(exist_ok=True)
        self.procs: dict[str, Proc] = {}
        self.apps: list[Proc] = []

    def start(self) -> None:
        self.procs["dbus"] = Proc(
            [
                "dbus-daemon",
                "--session",
                "--nofork",
                "--nopidfile",
                f"--address={self.env['DBUS_SESSION_BUS_ADDRESS']}",
            ],
            self.logs / "dbus.log",
            self.env,
        )
        bus = Path(self.env["XDG_RUNTIME_DIR"]) / "bus"
        wait_until(bus.exists, 10, "the session bus")
        self.start_daemons()

    def start_daemons(self) -> None:
        run = Path(self.env["XDG_RUNTIME_DIR"])
        self.procs["pipewire"] = Proc(["pipewire"], self.logs / "pipewire.log", self.env)
        wait_until((run / "pipewire-0").exists, 10, "pipewire's socket")
        self.procs["wireplumber"] = Proc(["wireplumber"], self.logs / "wireplumber.log", self.env)
        # pipewire-pulse 0.3.65 stats XDG_RUNTIME_DIR/pulse, then mkdirs it, and gives up
        # if that fails with EEXIST; the pactl polled below may create it in between
        # (seen: "mkdir() .../pulse failed: File exists").  Made here, it already exists.
        (run / "pulse").mkdir(mode=0o700, exist_ok=True)
        self.procs["pipewire-pulse"] = Proc(["pipewire-pulse"], self.logs / "pulse.log", self.env)
        wait_until(lambda: self.pactl_ok("info"), 15, "pipewire-pulse to answer")
        wait_until(lambda: self.default_sink(), 15, "WirePlumber to set a default sink")

    def stop_daemons(self) -> None:
        for name in ("pipewire-pulse", "wireplumber", "pipewire"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                proc.stop()

    def stop(self) -> None:
        for app in self.apps:
            app.stop()
        self.apps.clear()
        self.stop_daemons()
        dbus = self.procs.pop("dbus", None)
        if dbus is not None:
            dbus.stop()

    # --- tools ---------------------------------------------------------------

    def run(self, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def pactl_ok(self, *args: str) -> bool:
        return self.run("pactl", *args).returncode == 0

    def pactl(self, *args: str) -> str:
        result = self.run("pactl", *args)
        if result.returncode != 0:
            raise AssertionError(f"pactl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def default_sink(self) -> str:
        result = self.run("pactl", "get-default-sink")
        name = result.stdout.strip()
        return name if result.returncode == 0 and name else ""

    def wait_default(self, name: str) -> None:
        wait_until(lambda: self.default_sink() == name, 10, f"default sink {name}")

    def load_null_sink(self, name: str) -> int:
        return int(self.pactl("load-module", "module-null-sink", f"sink_name={name}").strip())

    def add_speakers(self, name: str = "speakers") -> int:
        """A null sink standing in for a sound card, made the configured default.

        pipewire-pulse may answer "Not supported" to set-default-sink for a
        sink loaded a moment ago (not registered yet): retried until it takes.
        """
        module = self.load_null_sink(name)
        wait_until(lambda: self.pactl_ok("set-default-sink", name), 10, f"{name} to be settable")
        self.wait_default(name)
        return module

    def dump(self) -> list[dict[str, Any]]:
        text = self.run("pw-dump").stdout
        decoder, pos = json.JSONDecoder(), 0
        objects: dict[int, dict[str, Any]] = {}
        # pw-dump prints further arrays for changes during the dump ("info": null = removed).
        while (pos := len(text) - len(text[pos:].lstrip())) < len(text):
            chunk, pos = decoder.raw_decode(text, pos)
            for obj in chunk:
                if obj.get("info", True) is None and "type" not in obj:
                    objects.pop(obj["id"], None)
                else:
                    objects[obj["id"]] = obj
        return list(objects.values())

    def sinks(self) -> set[str]:
        return {
            o["info"]["props"].get("node.name", "")
            for o in self.dump()
            if o.get("type") == "PipeWire:Interface:Node"
            and o["info"]["props"].get("media.class") == "Audio/Sink"
        }

    def stream_sinks(self, app_name: str) -> list[str]:
        """The sink names each output stream of ``app_name`` is linked to now."""
        objects = self.dump()
        nodes = {o["id"]: o for o in objects if o.get("type") == "PipeWire:Interface:Node"}
        links = [o["info"] for o in objects if o.get("type") == "PipeWire:Interface:Link"]
        found = []
        for node_id, node in nodes.items():
            props = node["info"]["props"]
            if props.get("media.class") != "Stream/Output/Audio":
                continue
            if props.get("application.name") != app_name:
                continue
            targets = {link["input-node-id"] for link in links if link["output-node-id"] == node_id}
            names = sorted(
                nodes[t]["info"]["props"].get("node.name", "") for t in targets if t in nodes
            )
            found.append(",".join(names))
        return found

    def play(self, path: Path, app_name: str, *extra: str, target: str | None = None) -> Proc:
        """Start ``pw-play`` of ``path`` as an app named ``app_name`` (a native client)."""
        argv: list[str] = ["pw-play", f"--properties={{application.name={app_name}}}"]
        if target:
            argv += ["--target", target]
        argv += [*extra, str(path)]
        return self._app(argv, app_name)

    def play_on_speakers(
        self, path: Path, app_name: str, *extra: str, timeout: float = 15.0
    ) -> Proc:
        """:meth:`play`, once the app's stream is linked to the default sink (``speakers``)."""
        proc = self.play(path, app_name, *extra)
        wait_until(
            lambda: self.stream_sinks(app_name) == ["speakers"], timeout, f"{app_name} playing"
        )
        return proc

    def play_pulse(self, path: Path, app_name: str) -> Proc:
        """Start ``paplay`` of ``path`` as an app named ``app_name`` (a pulse client)."""
        return self._app(["paplay", f"--client-name={app_name}", str(path)], app_name)

    def _app(self, argv: Sequence[str], name: str) -> Proc:
        proc = Proc(argv, self.logs / f"app-{name}.log", self.env)
        self.apps.append(proc)
        return proc
