"""The calibration engine on synthetic recordings, and its orchestration against a
scripted control connection and a real fifo."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from broadcaster.calibration import (
    STREAM_RATE,
    Calibration,
    FifoWriter,
    Plan,
    Progress,
    RoomResult,
    Settings,
    State,
    analyze,
    code_signal,
    plan_latencies,
)
from broadcaster.errors import BusyError, CalibrationError, ConfigError, NotFoundError
from broadcaster.rooms import ServerStatus

ROOMS = [("a", "Kitchen"), ("b", "Living"), ("c", "Porch")]


def record(
    plan: Plan,
    delays: dict[str, float],
    *,
    rate: int = STREAM_RATE,
    start: float = 0.8,
    noise: float = 0.002,
    level: float = 0.1,
    levels: dict[str, float] | None = None,
    moved: dict[str, tuple[int, float]] | None = None,
    shifts: list[tuple[float, float]] | None = None,
    seed: int = 1,
) -> Any:
    """What a microphone would record: each room's chirps at its delay (seconds), from
    ``start`` s into the recording, in its own turn and (with the reference) in its
    pair turn; ``moved``: room -> (from repeat of its own turn, extra delay);
    ``shifts``: (stream second, extra delay of every room from then on), a shift of
    the whole loop."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0, noise, round((plan.duration_s + start + 1.5) * rate))
    for slot in plan.turns:
        for room in {slot.room_id, slot.reference} - {""}:
            if room not in delays:
                continue
            chirp = code_signal(slot.code, rate) * (levels or {}).get(room, level)
            for k, position in enumerate(slot.positions):
                extra = 0.0
                if moved and room in moved and not slot.reference and k >= moved[room][0]:
                    extra = moved[room][1]
                for since, shift in shifts or []:
                    if position / STREAM_RATE >= since:
                        extra += shift
                at = round((start + position / STREAM_RATE + delays[room] + extra) * rate)
                out[at : at + chirp.size] += chirp
    return out


def by_id(results: list[RoomResult]) -> dict[str, RoomResult]:
    return {r.room_id: r for r in results}


def test_plan_lays_rooms_out_apart_with_time_to_play_out() -> None:
    settings = Settings()
    plan = Plan.build(ROOMS, settings)
    assert [s.room_id for s in plan.rooms] == ["a", "b", "c"]
    assert plan.rooms[0].positions[0] == round((settings.settle_s + settings.lead_s) * STREAM_RATE)
    for before, after in zip(plan.rooms, plan.rooms[1:], strict=False):
        gap = (after.start - before.positions[-1]) / STREAM_RATE
        assert gap > settings.playout_s + settings.max_spread_s
    assert plan.total > plan.rooms[-1].positions[-1] + settings.playout_s * STREAM_RATE
    signal = plan.render()
    assert signal.size == plan.total
    assert np.max(np.abs(signal)) == pytest.approx(settings.level, rel=0.01)


def test_plan_refuses_nothing_to_do_and_bad_settings() -> None:
    with pytest.raises(NotFoundError):
        Plan.build([], Settings())
    with pytest.raises(ConfigError):
        Plan.build(ROOMS, Settings(repeats=2))
    with pytest.raises(ConfigError):
        Plan.build(ROOMS, Settings(level=1.5))


def test_each_rooms_chirp_correlates_poorly_with_the_others() -> None:
    codes = [code_signal(k, STREAM_RATE) for k in range(8)]
    peaks = [float(np.max(np.abs(np.correlate(c, c, "full")))) for c in codes]
    for i, a in enumerate(codes):
        for j, b in enumerate(codes):
            if i != j:
                cross = float(np.max(np.abs(np.correlate(a, b, "full"))))
                assert cross < 0.25 * np.sqrt(peaks[i] * peaks[j]), (i, j)


@pytest.mark.parametrize("rate", [48000, 44100])
def test_delays_found_to_a_fraction_of_a_millisecond(rate: int) -> None:
    plan = Plan.build(ROOMS, Settings())
    delays = {"a": 0.021, "b": 0.101, "c": 0.3305}
    results = by_id(analyze(record(plan, delays, rate=rate), rate, plan))
    assert results["a"].delay_ms == pytest.approx(0.0, abs=0.1)
    assert results["b"].delay_ms == pytest.approx(80.0, abs=0.1)
    assert results["c"].delay_ms == pytest.approx(309.5, abs=0.1)
    for result in results.values():
        assert result.heard
        assert result.confidence == 1.0
        assert result.spread_ms is not None
        assert result.spread_ms < 0.1


@pytest.mark.parametrize("first", [0.02, 0.3])
@pytest.mark.parametrize("count", [5, 6])
def test_more_rooms_than_chirps_for_their_turns(count: int, first: float) -> None:
    """Five rooms take nine turns: the last pair turns replay the first turns'
    chirps (code 8 is code 0's), which must not anchor the timeline."""
    rooms = [(room_id, room_id.upper()) for room_id in "abcdef"[:count]]
    plan = Plan.build(rooms, Settings())
    delays = {room_id: first + 0.013 * i for i, (room_id, _) in enumerate(rooms)}
    results = by_id(analyze(record(plan, delays), STREAM_RATE, plan))
    for i, (room_id, _) in enumerate(rooms):
        assert results[room_id].heard, room_id
        assert results[room_id].delay_ms == pytest.approx(13.0 * i, abs=0.2), room_id


def test_the_earliest_room_need_not_be_the_first() -> None:
    plan = Plan.build(ROOMS, Settings())
    results = by_id(analyze(record(plan, {"a": 0.2, "b": 0.05, "c": 0.12}), STREAM_RATE, plan))
    assert results["b"].delay_ms == pytest.approx(0.0, abs=0.1)
    assert results["a"].delay_ms == pytest.approx(150.0, abs=0.1)
    assert results["c"].delay_ms == pytest.approx(70.0, abs=0.1)


def test_a_silent_room_is_not_heard_and_not_guessed() -> None:
    plan = Plan.build(ROOMS, Settings())
    results = by_id(analyze(record(plan, {"a": 0.02, "c": 0.25}), STREAM_RATE, plan))
    assert not results["b"].heard
    assert results["b"].delay_ms is None
    assert results["b"].note == "not heard"
    assert results["c"].delay_ms == pytest.approx(230.0, abs=0.1)


def test_only_a_middle_room_heard_is_still_placed_by_its_own_chirp() -> None:
    plan = Plan.build(ROOMS, Settings())
    results = by_id(analyze(record(plan, {"b": 0.3}), STREAM_RATE, plan))
    assert [r for r in results if results[r].heard] == ["b"]
    assert results["b"].delay_ms == 0.0


def test_nothing_heard_at_all() -> None:
    plan = Plan.build(ROOMS, Settings())
    results = analyze(record(plan, {}), STREAM_RATE, plan)
    assert not any(r.heard for r in results)
    assert plan_latencies(results, {}) == {}


def test_one_repeat_off_is_rejected_as_an_outlier() -> None:
    plan = Plan.build(ROOMS, Settings(reference=False))
    recording = record(plan, {"a": 0.0, "b": 0.08, "c": 0.23}, moved={"b": (4, 0.012)})
    results = by_id(analyze(recording, STREAM_RATE, plan))
    assert results["b"].delay_ms == pytest.approx(80.0, abs=0.1)
    assert results["b"].confidence == pytest.approx(0.8)
    assert results["b"].repeats_used == 4


def test_a_room_that_moved_midway_is_reported_not_averaged() -> None:
    delays = {"a": 0.0, "b": 0.08, "c": 0.23}
    plan = Plan.build(ROOMS, Settings(repeats=4, min_agree=3, reference=False))
    recording = record(plan, delays, moved={"c": (2, 0.027)})
    results = by_id(analyze(recording, STREAM_RATE, plan))
    assert results["c"].heard
    assert results["c"].delay_ms is None
    assert "moved by 27 ms" in results["c"].note
    # Its pair turn, where it held still, measures it all the same.
    plan = Plan.build(ROOMS, Settings(repeats=4, min_agree=3))
    results = by_id(analyze(record(plan, delays, moved={"c": (2, 0.027)}), STREAM_RATE, plan))
    assert results["c"].delay_ms == pytest.approx(230.0, abs=0.1)
    assert results["c"].reference == "a"


def test_a_loud_reference_is_not_mistaken_for_a_quiet_room() -> None:
    """13 dB apart: the quiet room's copy is found at its own level, the loud
    reference's strongest arrival at its."""
    plan = Plan.build(ROOMS, Settings())
    levels = {"a": 0.35, "b": 0.08, "c": 0.1}
    recording = record(
        plan, {"a": 0.2, "b": 0.06, "c": 0.21}, levels=levels, shifts=[(5.0, -0.0213)]
    )
    results = by_id(analyze(recording, STREAM_RATE, plan))
    assert results["b"].reference == "a"
    assert results["b"].delay_ms == pytest.approx(0.0, abs=0.1)
    assert results["a"].delay_ms == pytest.approx(140.0, abs=0.1)
    assert results["c"].delay_ms == pytest.approx(150.0, abs=0.1)


def test_noise_louder_than_the_chirps_still_places_them() -> None:
    plan = Plan.build(ROOMS, Settings())
    recording = record(plan, {"a": 0.0, "b": 0.04, "c": 0.2}, noise=0.05, level=0.05)
    results = by_id(analyze(recording, STREAM_RATE, plan))
    assert results["b"].delay_ms == pytest.approx(40.0, abs=0.2)
    assert results["c"].delay_ms == pytest.approx(200.0, abs=0.2)


def test_a_shift_of_the_whole_loop_between_turns_cancels_against_the_reference() -> None:
    """A recording that lost a graph cycle (-21.3 ms) after the first turn and gained
    a little later: every room's own turn is off by it, its pair turn is not."""
    delays = {"a": 0.02, "b": 0.08, "c": 0.23}
    shifts = [(4.0, -1024 / STREAM_RATE), (9.0, 0.006)]
    apart = Plan.build(ROOMS, Settings(reference=False))
    off = by_id(analyze(record(apart, delays, shifts=shifts), STREAM_RATE, apart))
    assert off["b"].delay_ms == pytest.approx(60.0 - 21.3, abs=0.2)  # what turns alone see
    plan = Plan.build(ROOMS, Settings())
    assert [(t.room_id, t.reference) for t in plan.turns] == [
        ("a", ""),
        ("b", ""),
        ("b", "a"),
        ("c", ""),
        ("c", "a"),
    ]
    results = by_id(analyze(record(plan, delays, shifts=shifts), STREAM_RATE, plan))
    assert results["b"].delay_ms == pytest.approx(60.0, abs=0.1)
    assert results["c"].delay_ms == pytest.approx(210.0, abs=0.1)
    assert results["b"].reference == "a"
    assert results["c"].reference == "a"
    assert results["a"].reference == ""


def test_rooms_close_together_are_told_apart_by_their_levels() -> None:
    """Two copies 6 ms apart in the pair turn, after a shift larger than that: the
    louder one is the room's, as in its own turn."""
    plan = Plan.build(ROOMS, Settings())
    levels = {"a": 0.05, "b": 0.2, "c": 0.1}
    for delay_b in (0.014, 0.026):
        recording = record(
            plan, {"a": 0.02, "b": delay_b, "c": 0.1}, levels=levels, shifts=[(5.0, 0.012)]
        )
        results = by_id(analyze(recording, STREAM_RATE, plan))
        delay, base = results["b"].delay_ms, results["a"].delay_ms
        assert results["b"].reference == "a"
        assert delay is not None
        assert base is not None
        assert delay - base == pytest.approx((delay_b - 0.02) * 1000, abs=0.1)


def test_rooms_close_together_at_one_level_keep_their_own_turns() -> None:
    """Which copy is which cannot be told: no guess, the rooms' own turns stand."""
    plan = Plan.build(ROOMS, Settings())
    results = by_id(analyze(record(plan, {"a": 0.02, "b": 0.03, "c": 0.2}), STREAM_RATE, plan))
    assert results["b"].reference == ""
    assert results["b"].delay_ms == pytest.approx(10.0, abs=0.1)
    assert results["c"].reference == "a"


def test_a_recording_too_short_is_an_error() -> None:
    plan = Plan.build(ROOMS, Settings())
    with pytest.raises(CalibrationError):
        analyze(np.zeros(100), STREAM_RATE, plan)


def test_latencies_bring_every_heard_room_to_the_slowest() -> None:
    results = [
        RoomResult("a", "A", True, 0.0, 1.0, 0.1, 40.0, 5),
        RoomResult("b", "B", True, 80.4, 1.0, 0.1, 40.0, 5),
        RoomResult("c", "C", True, 230.0, 1.0, 0.1, 40.0, 5),
        RoomResult("d", "D", False, None, 0.0, None, 0.0, 0, note="not heard"),
    ]
    new = plan_latencies(results, {"a": 0, "b": 20, "c": 10, "d": 7})
    assert new == {"a": -230, "b": 20 - 150, "c": 10}


# --- orchestration ------------------------------------------------------------------


class ScriptedControls:
    """snapserver's control API as far as calibration uses it, recording each call."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, Any]] = {
            "a": {"volume": 80, "muted": False, "latency": 0, "stream": "music"},
            "b": {"volume": 40, "muted": True, "latency": 15, "stream": "music"},
            "x": {"volume": 60, "muted": False, "latency": 0, "stream": "other"},
        }
        self.calls: list[tuple[str, str, Any]] = []

    async def status(self) -> ServerStatus:
        groups = [
            {
                "id": f"g-{rid}",
                "name": "",
                "stream_id": room["stream"],
                "muted": False,
                "clients": [
                    {
                        "id": rid,
                        "connected": room.get("connected", True),
                        "host": {"name": rid, "ip": ""},
                        "config": {
                            "name": rid.upper(),
                            "latency": room["latency"],
                            "volume": {"percent": room["volume"], "muted": room["muted"]},
                        },
                    }
                ],
            }
            for rid, room in self.rooms.items()
        ]
        return ServerStatus.from_json({"server": {"groups": groups, "streams": []}})

    async def set_room_volume(self, room_id: str, percent: int, muted: bool | None = None) -> None:
        self.calls.append(("volume", room_id, (percent, muted)))
        self.rooms[room_id]["volume"] = percent
        if muted is not None:
            self.rooms[room_id]["muted"] = muted

    async def set_room_latency(self, room_id: str, latency_ms: int) -> None:
        self.calls.append(("latency", room_id, latency_ms))
        self.rooms[room_id]["latency"] = latency_ms


class Drain:
    """A reader of the fifo (snapserver's part), keeping what it read."""

    def __init__(self, path: Path) -> None:
        self.data = bytearray()
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                chunk = b""
            if chunk:
                self.data += chunk
            else:
                self._stop.wait(0.005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._fd)


class PlanRecording:
    """A recording that hears the rooms of the plan it is handed (a microphone stand-in)."""

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays = delays
        self.plan: Plan | None = None
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def finish(self) -> tuple[Any, int]:
        assert self.plan is not None
        return record(self.plan, self.delays), STREAM_RATE


FAST = Settings(
    repeats=3, spacing_s=0.16, lead_s=0.05, settle_s=0.05, playout_s=0.1, max_spread_s=0.3
)


async def run_heard(
    calibration: Calibration, fifo: Path, drain: Drain, recording: PlanRecording
) -> Progress:
    """``calibration.run`` of the stream "music", ``recording`` hearing the plan it builds."""
    real_build = Plan.build

    def build(rooms: Any, settings: Settings) -> Plan:
        recording.plan = real_build(rooms, settings)
        return recording.plan

    try:
        Plan.build = build  # type: ignore[method-assign]
        return await calibration.run("music", str(fifo), recording)
    finally:
        Plan.build = real_build  # type: ignore[method-assign]
        drain.close()


async def test_a_run_silences_others_in_turn_restores_them_and_applies_and_undoes(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    drain = Drain(fifo)
    controls = ScriptedControls()
    changes: list[str] = []
    held: list[str] = []

    class Hold:
        def __init__(self, stream: str) -> None:
            self.stream = stream

        async def __aenter__(self) -> None:
            held.append(f"hold {self.stream}")
            return None

        async def __aexit__(self, *exc: object) -> None:
            held.append(f"release {self.stream}")

    calibration = Calibration(
        lambda: controls, on_change=lambda: changes.append("x"), hold=Hold, settings=FAST
    )
    recording = PlanRecording({"a": 0.05, "b": 0.12})
    progress = await run_heard(calibration, fifo, drain, recording)
    assert recording.plan is not None
    assert progress.state is State.DONE
    assert held == ["hold music", "release music"]
    assert changes
    # Exactly the signal went into the pipe, as 48 kHz S16LE stereo.
    assert len(drain.data) == (recording.plan.total + round(0.2 * STREAM_RATE)) * 4
    # Room a's turn: a at its volume, the others (also the other stream's) at 0, unmuted.
    volumes = [c for c in controls.calls if c[0] == "volume"]
    assert volumes[:3] == [
        ("volume", "a", (80, False)),
        ("volume", "b", (0, False)),
        ("volume", "x", (0, False)),
    ]
    assert volumes[3:6] == [
        ("volume", "a", (0, False)),
        ("volume", "b", (40, False)),
        ("volume", "x", (0, False)),
    ]
    # Then everything as it was.
    assert {rid: (r["volume"], r["muted"]) for rid, r in controls.rooms.items()} == {
        "a": (80, False),
        "b": (40, True),
        "x": (60, False),
    }
    results = {r.room_id: r for r in progress.results}
    assert set(results) == {"a", "b"}
    assert results["b"].delay_ms == pytest.approx(70.0, abs=0.2)
    assert progress.proposed == {"a": -70, "b": 15}

    assert await calibration.apply() == {"a": -70, "b": 15}
    assert controls.rooms["a"]["latency"] == -70
    assert calibration.progress.state.value == "applied"
    assert await calibration.undo() == {"a": 0, "b": 15}
    assert controls.rooms["a"]["latency"] == 0
    assert calibration.progress.state.value == "done"
    with pytest.raises(CalibrationError):
        await calibration.undo()

    # A plan snapserver cannot hold is refused whole, before any room changes.
    calibration.progress.proposed = {"b": 15, "a": -10001}
    calls = len(controls.calls)
    with pytest.raises(CalibrationError, match="-10000 to 10000"):
        await calibration.apply()
    assert len(controls.calls) == calls


async def test_a_room_not_connected_is_reported_not_heard_not_left_out(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    drain = Drain(fifo)
    controls = ScriptedControls()
    controls.rooms["c"] = {
        "volume": 50,
        "muted": True,
        "latency": 5,
        "stream": "music",
        "connected": False,
    }
    calibration = Calibration(lambda: controls, settings=FAST)
    recording = PlanRecording({"a": 0.05, "b": 0.12})
    progress = await run_heard(calibration, fifo, drain, recording)
    assert recording.plan is not None
    assert [slot.room_id for slot in recording.plan.rooms] == ["a", "b"]  # no turn for c
    results = {r.room_id: r for r in progress.results}
    assert set(results) == {"a", "b", "c"}
    assert not results["c"].heard
    assert results["c"].delay_ms is None
    assert results["c"].note.startswith("not heard")
    assert "not connected" in results["c"].note
    assert set(progress.proposed) == {"a", "b"}
    assert not [c for c in controls.calls if c[1] == "c"]  # its settings untouched


async def test_a_failed_run_still_restores_volume_and_mute(tmp_path: Path) -> None:
    controls = ScriptedControls()
    calibration = Calibration(lambda: controls, settings=FAST)
    recording = PlanRecording({})
    with pytest.raises(CalibrationError):
        await calibration.run("music", str(tmp_path / "missing-fifo"), recording)
    assert calibration.progress.state is State.FAILED
    assert "cannot open" in calibration.progress.error
    assert {rid: (r["volume"], r["muted"]) for rid, r in controls.rooms.items()} == {
        "a": (80, False),
        "b": (40, True),
        "x": (60, False),
    }
    with pytest.raises(CalibrationError):
        await calibration.apply()


async def test_one_run_at_a_time_and_no_rooms_is_an_error(tmp_path: Path) -> None:
    controls = ScriptedControls()
    calibration = Calibration(lambda: controls, settings=FAST)
    with pytest.raises(NotFoundError):
        await calibration.run("nobody-listens", str(tmp_path / "f"), PlanRecording({}))
    gate = asyncio.Event()

    class Slow(PlanRecording):
        async def start(self) -> None:
            await gate.wait()

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    first = asyncio.create_task(calibration.run("music", str(fifo), Slow({})))
    await asyncio.sleep(0.05)
    assert calibration.busy
    with pytest.raises(BusyError):
        await calibration.run("music", str(fifo), PlanRecording({}))
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert calibration.progress.state is State.FAILED


async def test_the_writer_keeps_real_time_and_gives_up_on_a_pipe_nobody_reads(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    async with FifoWriter(str(fifo)) as writer:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # 0.29 s of audio: fits in the pipe, but is paced at real time (80 ms ahead at most).
        await writer.write(bytes(round(0.29 * STREAM_RATE) * 4))
        assert loop.time() - started >= 0.15
        with pytest.raises(CalibrationError, match="stopped reading"):
            await writer.write(bytes(STREAM_RATE * 4 * 5), deadline_s=0.3)
    with pytest.raises(CalibrationError, match="not a pipe"):
        async with FifoWriter(str(tmp_path)):
            pass


@pytest.mark.parametrize(
    ("help_text", "expected"),
    [
        # PipeWire 0.3.65: "-" alone is raw PCM; --raw is unknown.
        ("  -v, --verbose   Enable verbose operations\n", []),
        # PipeWire 1.x: "-" is a sound file unless --raw is given.
        ("  -v, --verbose   Enable verbose operations\n  -a, --raw   RAW mode\n", ["--raw"]),
    ],
    ids=["pipewire-0.3", "pipewire-1.x"],
)
async def test_the_signal_goes_to_pw_play_as_raw_pcm_on_every_pipewire(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    help_text: str,
    expected: list[str],
) -> None:
    from broadcaster import pipewire
    from broadcaster.calibration import SinkWriter

    monkeypatch.setattr(pipewire, "_STDIO_OPTIONS", None)
    args = tmp_path / "args"
    (tmp_path / "help").write_text(help_text)
    fake = tmp_path / "pw-play"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --help ]; then cat {tmp_path}/help; exit 0; fi\n'
        f'printf "%s\\n" "$@" > {args}\n'
        "cat > /dev/null\n"
    )
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    async with SinkWriter("broadcaster.clicker", env=env) as writer:
        await writer.write(bytes(4 * 480))
    argv = args.read_text().splitlines()
    assert argv[-1] == "-"
    assert argv[-1 - len(expected) : -1] == expected
    assert ("--raw" in argv) == bool(expected)


def test_the_command_line_measures_again_when_a_heard_room_moved_or_the_first_was_not_heard() -> (
    None
):
    from broadcaster.cli.calibrate import measure_again

    def done(*rooms: tuple[bool, float | None]) -> dict[str, Any]:
        return {"state": "done", "results": [{"heard": h, "delay_ms": d} for h, d in rooms]}

    assert measure_again(done((True, 0.0), (True, None)))
    assert not measure_again(done((True, 0.0), (False, None)))
    assert measure_again(done((False, None), (True, 0.0)))
    assert not measure_again(done((False, None), (False, None)))
    assert not measure_again({"state": "failed", "results": []})
