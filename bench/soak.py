"""Soak: broadcast a playing app for a long time and print what was lost.

Runs a private headless PipeWire, a real snapserver with one real snapclient
room (its file player), a tone-playing app and broadcaster, with a busy loop
hogging the other core.  Two paths (``--path``):

* ``native`` (the default path): the real ``broadcaster run APP`` as a child
  process; PipeWire writes the fifo and no sample passes through Python, so
  the soak is measured where it matters, at the room: seconds of audio the
  room played against wall time, and every gap in it (the app's 1013 Hz tone
  checked window by window, :mod:`bench.roomaudio`); RSS and CPU of
  broadcaster's Python and of its pipe sink's ``pipewire -c`` child over time.
* ``python`` (``capture.native = false``): broadcaster's library in this
  process, its counters read: seconds of audio captured and delivered, chunks
  (one per captured block) written/dropped/discarded, pipe reopenings,
  pw-record restarts and this process's RSS.

Prints a sample every ``--every`` seconds and a summary; the figures, not an
assertion, are the result; ``tests/integration/test_soak.py`` runs it.

    python bench/soak.py --minutes 10 [--path python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.procstat import children, comm, cpu_seconds  # noqa: E402
from bench.procstat import rss_mib as rss_of  # noqa: E402
from bench.roomaudio import Gap, ToneWatch  # noqa: E402
from broadcaster.config import CaptureConfig, Config, DeliveryConfig  # noqa: E402
from broadcaster.pipeline import Broadcast  # noqa: E402
from broadcaster.pipewire import TargetApp, pw_cat_stdio_options  # noqa: E402
from tests.support.pipewire import PipeWireSession  # noqa: E402
from tests.support.procs import Proc, wait_until  # noqa: E402
from tests.support.snapserver import SnapClient, SnapServer, StreamSpec  # noqa: E402


@dataclass
class Sample:
    elapsed_s: float
    captured_s: float
    """Audio pw-record handed over (48 kHz s16 stereo: the default capture format)."""
    delivered_s: float
    """Audio the fifo took."""
    written: int
    dropped: int
    discarded: int
    reconnects: int
    recorder_restarts: int
    rss_mib: float
    cpu_ms_per_s: float
    """broadcaster's own CPU (this process, children excluded) per second of audio."""


def burn() -> None:
    """Keep one core busy (the 'other core' of a 2-core box)."""
    while True:
        pass


async def soak(seconds: float, every: float, base: Path) -> list[Sample]:
    session = PipeWireSession(base / "pw")
    server = SnapServer(base / "snap", [StreamSpec("Main", path=base / "snap" / "fifo")])
    room = SnapClient(server, "room1", base / "room1.raw")
    hog = multiprocessing.Process(target=burn, daemon=True)
    samples: list[Sample] = []
    try:
        session.start()
        session.add_speakers()
        wav = base / "tone.wav"
        server.start()
        room.start()
        wait_until(lambda: len(server.clients()) == 1, 15, "the room to connect")
        favour_instruments(server, room)
        session.play(wav, "SoakApp")
        hog.start()
        os.environ.update(session.env)  # the library runs pw-record/pactl in this session
        # The Python data path: its counters are what a soak reads (on the
        # native path no sample passes through broadcaster to count).
        config = Config(
            capture=CaptureConfig(native=False),
            delivery=DeliveryConfig(pipe=str(base / "snap" / "fifo")),
        )
        broadcast = Broadcast(TargetApp("SoakApp"), config, env=session.env)
        stop = asyncio.Event()
        task = asyncio.create_task(broadcast.run(stop))
        started = time.monotonic()
        while broadcast.status.state != "playing":
            if task.done():
                task.result()
            if time.monotonic() - started > 30:
                raise RuntimeError("the app never started playing")
            await asyncio.sleep(0.1)
        started = time.monotonic()
        cpu_start = time.process_time()
        base_written = broadcast.status.delivery.bytes_written
        base_captured = broadcast.status.capture.bytes_captured
        per_second = 48000 * 4
        while (elapsed := time.monotonic() - started) < seconds:
            await asyncio.sleep(min(every, seconds - elapsed))
            status = broadcast.status
            sample = Sample(
                elapsed_s=round(time.monotonic() - started, 1),
                captured_s=round((status.capture.bytes_captured - base_captured) / per_second, 3),
                delivered_s=round((status.delivery.bytes_written - base_written) / per_second, 3),
                written=status.delivery.chunks_written,
                dropped=status.delivery.chunks_dropped,
                discarded=status.delivery.chunks_discarded,
                reconnects=status.delivery.reconnects,
                recorder_restarts=status.capture.restarts,
                rss_mib=round(rss_of(), 1),
                cpu_ms_per_s=round(
                    1000 * (time.process_time() - cpu_start) / (time.monotonic() - started), 2
                ),
            )
            samples.append(sample)
            print(json.dumps(asdict(sample)), flush=True)
            if task.done():
                task.result()
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        if hog.is_alive():
            hog.kill()
            hog.join()
        room.stop()
        server.stop()
        session.stop()
    return samples


FREQ = 1013.0
"""The app's tone: a prime, so that a dropped stretch moves its phase (bench.roomaudio)."""


@dataclass
class NativeSample:
    elapsed_s: float
    room_s: float
    """Audio the room played since the check began."""
    tone_s: float
    """Of that, the app's tone, whole and in phase."""
    gaps: int
    """Gaps (silence inserted, audio dropped or repeated) in the room's audio so far."""
    at_sink: int
    """Gaps in what the graph handed the capture sink (its monitor, recorded)."""
    unexplained: int
    """The room's gaps that the sink's monitor did not have: made after the sink."""
    rss_mib: float
    """broadcaster's Python process."""
    sink_rss_mib: float
    """Its pipe sink's ``pipewire -c`` child."""
    cpu_ms_per_s: float
    """broadcaster's Python (with its reaped children: pactl, pw-dump) per wall second."""
    sink_cpu_ms_per_s: float
    pipewire_cpu_ms_per_s: float
    """The PipeWire daemon (the graph that runs the app and the sink)."""
    sink_restarts: int


def favour(pid: int) -> bool:
    """Every thread of ``pid`` to real-time priority 10 (below PipeWire's 88); False if refused.

    The soak measures broadcaster's path (broadcaster, PipeWire: real-time
    already) under load, at the room; snapserver and the room are its
    instruments.  At normal priority this box's load makes them late, and what
    they then pad or skip would be blamed on the path under test
    (docs/reliability.md, Soak).
    """
    done = True
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setscheduler(int(task.name), os.SCHED_FIFO, os.sched_param(10))
        except OSError:
            done = False
    return done


def favour_instruments(server: SnapServer, room: SnapClient) -> None:
    for proc in (server.proc, room.proc):
        if proc is not None and not favour(proc.pid):
            print(f"{proc.argv[0]} stays at normal priority: it shares this box's load")


class Listener:
    """Reads a growing file of S16LE stereo audio (written in real time) into a ToneWatch.

    Notes when (wall clock) each gap was played: the file ends at the moment
    of reading, so a gap ``n`` frames before its end was played ``n / rate``
    seconds before.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.watch = ToneWatch(FREQ)
        self.offset = 0
        self.when: list[float] = []
        """Wall-clock time (monotonic) of each gap of ``watch.gaps``."""

    def listen(self) -> bool:
        data = b""
        with contextlib.suppress(OSError), self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        now = time.monotonic()
        self.offset += len(data)
        self.watch.feed(data)
        frames = self.offset // 4
        watch = self.watch
        for gap in watch.gaps[len(self.when) :]:
            at = watch.windows_before * watch.window + round(gap.at_s * watch.rate)
            self.when.append(now - (frames - at) / watch.rate)
        return watch.checking


def unexplained(room: Listener, sink: Listener, start: int = 0, latency: float = 2.0) -> list[Gap]:
    """The room's gaps that the sink's own monitor did not have up to ``latency`` s before.

    Those the monitor had came into the sink that way (the PipeWire graph
    missed a cycle: under load a whole quantum, 2048 frames, went missing);
    the rest were made on the way from the sink to the room.
    """
    found = []
    for gap, when in list(zip(room.watch.gaps, room.when, strict=True))[start:]:
        if not any(0 <= when - seen <= latency for seen in sink.when):
            found.append(gap)
    return found


def sink_child(pid: int) -> int:
    """The child holding broadcaster's capture sink, 0 if none: ``pipewire -c`` (its
    pipe sink), or ``pw-cli`` (the Python path's null sink, ``capture.native = false``)."""
    found = [c for c in children(pid) if comm(c) in ("pipewire", "pw-cli")]
    return found[0] if found else 0


def soak_native(seconds: float, every: float, base: Path, wav: Path) -> list[NativeSample]:
    session = PipeWireSession(base / "pw")
    server = SnapServer(base / "snap", [StreamSpec("Main", path=base / "snap" / "fifo")])
    room = SnapClient(server, "room1", base / "room1.raw")
    hog = multiprocessing.Process(target=burn, daemon=True)
    broadcaster: Proc | None = None
    monitor: subprocess.Popen[bytes] | None = None
    samples: list[NativeSample] = []
    heard = Listener(room.out)
    at_sink = Listener(base / "monitor.raw")

    def alive(proc: Proc) -> None:
        if not proc.alive():
            raise RuntimeError(f"broadcaster exited:\n{proc.log_tail()}")

    try:
        session.start()
        session.add_speakers()
        server.start()
        room.start()
        wait_until(lambda: len(server.clients()) == 1, 15, "the room to connect")
        favour_instruments(server, room)
        session.play(wav, "SoakApp")
        env = {k: v for k, v in session.env.items() if not k.startswith("BROADCASTER_")}
        broadcaster = Proc(
            [sys.executable, "-m", "broadcaster", "-v", "run", "SoakApp",
             "--server", f"127.0.0.1:{server.control_port}"],
            base / "broadcaster.log",
            {**env, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        proc = broadcaster

        def native() -> bool:
            alive(proc)
            return "data path: " in proc.log_path.read_text() and sink_child(proc.pid) > 0

        wait_until(native, 30, "broadcaster's capture sink")
        # What the graph hands the capture sink, recorded from its monitor: a
        # gap there came into the sink (the graph missed a cycle), not after it.
        stdio = asyncio.run(pw_cat_stdio_options(session.env))
        with (base / "monitor.raw").open("wb") as out:
            monitor = subprocess.Popen(
                ["pw-record", "--target", "broadcaster.soakapp", "-P",
                 "stream.capture.sink=true", "--rate", "48000", "--channels", "2",
                 "--format", "s16", *stdio, "-"],
                env=session.env, stdout=out, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        hog.start()

        def settled() -> bool:
            alive(proc)
            return at_sink.listen() and heard.listen() and at_sink.watch.checked_s > 2

        wait_until(settled, 30, "the room and the sink's monitor to play the app's tone")
        sink = sink_child(proc.pid)
        restarts = 0
        sink_cpu_before = 0.0  # CPU of sink children that were replaced
        daemon = session.procs["pipewire"].pid
        started = next_sample = time.monotonic()
        cpu0 = cpu_seconds(proc.pid, children=True)
        sink0 = cpu_seconds(sink)
        daemon0 = cpu_seconds(daemon)
        room0, tone0 = heard.watch.room_s, heard.watch.tone_s
        gaps0, monitor0 = len(heard.watch.gaps), len(at_sink.watch.gaps)
        while (elapsed := time.monotonic() - started) < seconds:
            time.sleep(min(0.25, seconds - elapsed))
            at_sink.listen()
            heard.listen()
            if time.monotonic() < next_sample + every and time.monotonic() - started < seconds:
                continue
            next_sample += every
            alive(proc)
            now = sink_child(proc.pid)
            if now != sink:
                restarts += 1
                sink_cpu_before += cpu_seconds(sink) - sink0
                sink, sink0 = now, 0.0
            wall = time.monotonic() - started
            watch = heard.watch
            sample = NativeSample(
                elapsed_s=round(wall, 1),
                room_s=round(watch.room_s - room0, 2),
                tone_s=round(watch.tone_s - tone0, 2),
                gaps=len(watch.gaps) - gaps0,
                at_sink=len(at_sink.watch.gaps) - monitor0,
                unexplained=len(unexplained(heard, at_sink, gaps0)),
                rss_mib=round(rss_of(proc.pid), 1),
                sink_rss_mib=round(rss_of(sink), 1),
                cpu_ms_per_s=round(1000 * (cpu_seconds(proc.pid, children=True) - cpu0) / wall, 2),
                sink_cpu_ms_per_s=round(
                    1000 * (sink_cpu_before + cpu_seconds(sink) - sink0) / wall, 2
                ),
                pipewire_cpu_ms_per_s=round(1000 * (cpu_seconds(daemon) - daemon0) / wall, 2),
                sink_restarts=restarts,
            )
            samples.append(sample)
            print(json.dumps(asdict(sample)), flush=True)
        made = unexplained(heard, at_sink, gaps0)
        for gap in heard.watch.gaps[gaps0:]:
            ms = gap.length_s * 1000
            where = "made after the sink" if gap in made else "already at the sink's monitor"
            print(
                f"gap at {gap.at_s:.2f} s of the room's audio, {ms:.0f} ms, {where}, "
                f"the tone's phase moved {gap.shift_rad:.2f} rad: {gap.why}"
            )
        proc.signal(signal.SIGTERM)
        code = proc.popen.wait(30)
        if code != 0:
            raise RuntimeError(f"broadcaster exited {code} on SIGTERM:\n{proc.log_tail()}")
    finally:
        if hog.is_alive():
            hog.kill()
            hog.join()
        if monitor is not None:
            monitor.kill()
            monitor.wait()
        if broadcaster is not None:
            broadcaster.stop()
        room.stop()
        server.stop()
        session.stop()
    return samples


def memory(name: str, mib: list[float]) -> dict[str, float]:
    """A process's memory over the soak: first, last and highest sample (MiB)."""
    return {f"{name}_first_mib": mib[0], f"{name}_last_mib": mib[-1], f"{name}_max_mib": max(mib)}


def native_summary(samples: list[NativeSample]) -> dict[str, float]:
    last = samples[-1]
    return {
        "seconds": last.elapsed_s,
        "room_s": last.room_s,
        "tone_s": last.tone_s,
        "gaps": last.gaps,
        "gaps_at_sink": last.at_sink,
        "gaps_after_sink": last.unexplained,
        **memory("rss", [s.rss_mib for s in samples]),
        **memory("sink_rss", [s.sink_rss_mib for s in samples]),
        "cpu_ms_per_s": last.cpu_ms_per_s,
        "sink_cpu_ms_per_s": last.sink_cpu_ms_per_s,
        "pipewire_cpu_ms_per_s": last.pipewire_cpu_ms_per_s,
        "sink_restarts": last.sink_restarts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--path", choices=("native", "python"), default="native")
    args = parser.parse_args(argv)
    # SIGTERM (timeout, pkill) unwinds like Ctrl-C: the servers it started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="broadcaster-soak-") as tmp:
        seconds = args.minutes * 60
        wav = Path(tmp) / "tone.wav"
        subprocess.run(
            ["sox", "-n", "-r", "44100", "-c", "2", "-b", "16", str(wav), "synth",
             str(int(seconds) + 90), "sine", str(FREQ), "vol", "0.5"],
            check=True,
        )  # fmt: skip
        if args.path == "native":
            native = soak_native(seconds, args.every, Path(tmp), wav)
            summary = native_summary(native) if native else {}
        else:
            samples = asyncio.run(soak(seconds, args.every, Path(tmp)))
            summary = python_summary(samples) if samples else {}
    if not summary:
        return 1
    print("summary " + json.dumps(summary), flush=True)
    return 0


def python_summary(samples: list[Sample]) -> dict[str, float]:
    last = samples[-1]
    return {
        "seconds": last.elapsed_s,
        "audio_captured_s": last.captured_s,
        "audio_delivered_s": last.delivered_s,
        "chunks_written": last.written,
        "chunks_dropped": last.dropped,
        "chunks_discarded": last.discarded,
        "pipe_reopens": last.reconnects,
        "recorder_restarts": last.recorder_restarts,
        **memory("rss", [s.rss_mib for s in samples]),
        "cpu_ms_per_s": last.cpu_ms_per_s,
    }


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
