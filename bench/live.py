"""The headline: total CPU of the live path against a hand-made ``pw-record | ffmpeg > fifo``.

One private headless PipeWire session (tests/support/pipewire.py), one app
playing a 44.1 kHz tone on the 'speakers' null sink, one real snapserver
reading a pipe stream (tests/support/snapserver.py).  In turn, for
``seconds`` each, in the same run:

``idle``
    Nothing captures: what the playing app alone costs PipeWire.
``handmade``
    The app moved by hand (``pactl move-sink-input``) to a null sink and
    ``pw-record --target SINK -P stream.capture.sink=true - | ffmpeg -f s16le
    ... > FIFO``, both with their defaults.
``pipe-sink``
    The floor: PipeWire's own pipe sink, ``pactl load-module module-pipe-sink
    file=FIFO format=s16le rate=48000 channels=2``, the app moved onto it by
    hand; nothing else runs.
``broadcaster``
    ``broadcaster run BenchApp --pipe FIFO`` (the real CLI, a child process):
    the native path.
``broadcaster-gain``
    With ``--gain -3dB``: the Python path (pw-record, f32 capture, the numpy
    processing chain).
``broadcaster-python``
    ``capture.native = false``: the Python path without effects (not in the
    default phases).

Every process involved is counted, from /proc/PID/stat utime+stime over the
window: pipewire, wireplumber, pipewire-pulse, and either broadcaster's Python
(with the cutime/cstime of the children it reaped: pactl, pw-dump) and its
live children (the pipe sink's ``pipewire -c``, pw-record, ``pactl
subscribe``), or the shell pipeline's pw-record and ffmpeg.  snapserver is
left out: it does the same in every phase.  RSS of the capturing processes
is sampled at the end of the window.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import comm, cpu_seconds, descendants, python_split, rss_mib
from tests.support.pipewire import PipeWireSession
from tests.support.procs import Proc, wait_until
from tests.support.snapserver import SnapServer, StreamSpec

ROOT = Path(__file__).resolve().parent.parent
APP = "BenchApp"
DAEMONS = ("pipewire", "wireplumber", "pipewire-pulse")
PHASES = ("idle", "handmade", "pipe-sink", "broadcaster", "broadcaster-gain")


@dataclass
class Phase:
    name: str
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds over the window, by process."""
    rss: dict[str, float] = field(default_factory=dict)
    detail: dict[str, float] = field(default_factory=dict)
    """CPU seconds over the window of broadcaster's parts (see procstat.python_split)."""

    @property
    def total(self) -> float:
        return sum(self.cpu.values())

    @property
    def per_second(self) -> float:
        """CPU seconds per wall (= audio) second, all processes together."""
        return self.total / self.seconds


def make_tone(path: Path, seconds: int) -> Path:
    subprocess.run(
        ["sox", "-n", "-r", "44100", "-c", "2", "-b", "16", str(path), "synth", str(seconds),
         "sine", "440", "vol", "0.5"],
        check=True,
    )  # fmt: skip
    return path


class Bench:
    def __init__(self, base: Path, seconds: float, settle: float, phases: int = 5) -> None:
        self.base = base
        self.phases = phases
        """How many phases will run: the app must play through all of them."""
        self.seconds = seconds
        self.settle = settle
        self.session = PipeWireSession(base / "pw")
        self.fifo = base / "snap" / "fifo"
        self.server = SnapServer(base / "snap", [StreamSpec("Bench", path=self.fifo)])

    def __enter__(self) -> Bench:
        try:
            self.session.start()
            self.session.add_speakers()
            self.server.start()
            length = (self.seconds + self.settle + 30) * self.phases + 120
            wav = make_tone(self.base / "tone.wav", int(length))
            self.session.play(wav, APP)
            wait_until(lambda: self.session.stream_sinks(APP) == ["speakers"], 15, "the app")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.session.stop()

    # --- measuring -------------------------------------------------------------

    def _window(
        self,
        phase: Phase,
        own: Callable[[], dict[str, list[int]]],
        detail: Callable[[], dict[str, float]] = dict,
    ) -> None:
        """Measure every process over ``seconds``: the daemons plus ``own()`` groups."""
        daemons = {name: self.session.procs[name].pid for name in DAEMONS}

        def snapshot() -> dict[tuple[str, int], float]:
            values = {(n, pid): cpu_seconds(pid) for n, pid in daemons.items()}
            for label, pids in own().items():
                for index, pid in enumerate(pids):
                    # The first pid of a group is its parent: count what it reaped too.
                    values[(label, pid)] = cpu_seconds(pid, children=index == 0)
            return values

        time.sleep(self.settle)
        before, detail_before = snapshot(), detail()
        time.sleep(self.seconds)
        after, detail_after = snapshot(), detail()
        for part, value in detail_after.items():
            phase.detail[part] = value - detail_before.get(part, 0.0)
        for key, value in after.items():
            label = key[0]
            phase.cpu[label] = phase.cpu.get(label, 0.0) + value - before.get(key, 0.0)
        for label, pids in own().items():
            phase.rss[label] = sum(rss_mib(pid) for pid in pids)

    def idle(self) -> Phase:
        phase = Phase("idle", self.seconds)
        self._window(phase, dict)
        return phase

    def broadcaster(self, name: str, *extra: str, env: dict[str, str] | None = None) -> Phase:
        phase = Phase(name, self.seconds)
        run_env = {k: v for k, v in self.session.env.items() if not k.startswith("BROADCASTER_")}
        run_env.update(env or {})
        proc = Proc(
            [sys.executable, "-m", "broadcaster", "-v", "run", APP, "--pipe", str(self.fifo),
             *extra],
            self.session.logs / f"{name}.log",
            run_env,
        )  # fmt: skip
        try:
            wait_until(
                lambda: "is playing" in proc.log_path.read_text() or not proc.alive(),
                30,
                f"{name} to capture",
            )
            if not proc.alive():
                raise RuntimeError(f"{name} exited: {proc.log_tail()}")
            wait_until(lambda: self.server.stream_status("Bench") == "playing", 20, "audio")

            def own() -> dict[str, list[int]]:
                kids = descendants(proc.pid)
                named = ("pw-record", "pipewire")
                return {
                    "broadcaster (python)": [proc.pid],
                    "pw-record": [p for p in kids if comm(p) == "pw-record"],
                    "pipe sink (pipewire -c)": [p for p in kids if comm(p) == "pipewire"],
                    "broadcaster's other children": [p for p in kids if comm(p) not in named],
                }

            self._window(phase, own, lambda: python_split(proc.pid))
        finally:
            proc.signal(signal.SIGTERM)
            proc.stop(15)
        wait_until(lambda: self.session.stream_sinks(APP) == ["speakers"], 15, "the app restored")
        return phase

    def handmade(self) -> Phase:
        phase = Phase("handmade", self.seconds)
        session = self.session
        module = session.load_null_sink("handmade")
        index = self._move_app("handmade")
        pipeline = (
            "pw-record --target handmade -P stream.capture.sink=true - | "
            "ffmpeg -nostdin -loglevel error -f s16le -ar 48000 -ac 2 -i pipe:0 "
            f"-f s16le -ar 48000 -ac 2 pipe:1 > {self.fifo}"
        )
        proc = Proc(["sh", "-c", pipeline], session.logs / "handmade.log", session.env)
        try:
            wait_until(lambda: self.server.stream_status("Bench") == "playing", 20, "audio")

            def own() -> dict[str, list[int]]:
                kids = descendants(proc.pid)
                return {
                    "sh": [proc.pid],
                    "pw-record": [p for p in kids if comm(p) == "pw-record"],
                    "ffmpeg": [p for p in kids if comm(p) == "ffmpeg"],
                }

            self._window(phase, own)
            if session.stream_sinks(APP) != ["handmade"]:
                raise RuntimeError("the app left the hand-made sink during the window")
        finally:
            proc.stop()
            session.pactl("move-sink-input", index, "speakers")
            session.pactl("unload-module", str(module))
        return phase

    def pipe_sink(self) -> Phase:
        phase = Phase("pipe-sink", self.seconds)
        session = self.session
        module = session.pactl(
            "load-module", "module-pipe-sink", f"file={self.fifo}", "format=s16le",
            "rate=48000", "channels=2", "sink_name=floor",
        ).strip()  # fmt: skip
        index = self._move_app("floor")
        try:
            wait_until(lambda: self.server.stream_status("Bench") == "playing", 20, "audio")
            self._window(phase, dict)
            if session.stream_sinks(APP) != ["floor"]:
                raise RuntimeError("the app left the pipe sink during the window")
        finally:
            session.pactl("move-sink-input", index, "speakers")
            session.pactl("unload-module", module)
        return phase

    def _move_app(self, sink: str) -> str:
        """Move the app to ``sink`` by hand (``pactl``), until it is there; its index."""
        index = self._app_input()

        def moved() -> bool:
            if self.session.stream_sinks(APP) == [sink]:
                return True
            # A move right after the sink is loaded may not take: ask again.
            self.session.pactl("move-sink-input", index, sink)
            return False

        wait_until(moved, 15, f"the app on {sink}", interval=0.5)
        return index

    def _app_input(self) -> str:
        inputs = json.loads(self.session.pactl("-f", "json", "list", "sink-inputs"))
        return next(
            str(i["index"]) for i in inputs if i["properties"].get("application.name") == APP
        )

    def run(self, phases: tuple[str, ...]) -> list[Phase]:
        runners: dict[str, Callable[[], Phase]] = {
            "idle": self.idle,
            "handmade": self.handmade,
            "pipe-sink": self.pipe_sink,
            "broadcaster": lambda: self.broadcaster("broadcaster"),
            "broadcaster-gain": lambda: self.broadcaster("broadcaster-gain", "--gain", "-3dB"),
            "broadcaster-python": lambda: self.broadcaster(
                "broadcaster-python", env={"BROADCASTER_CAPTURE_NATIVE": "false"}
            ),
        }
        return [runners[name]() for name in phases]
