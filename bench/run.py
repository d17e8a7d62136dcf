"""``python -m bench``: every benchmark of docs/performance.md, in one run.

1. conversion CPU per audio second (broadcaster's Converter vs ffmpeg vs sox);
2. quality of the converted sine (SNR against the ideal, THD+N), and what a
   bare relay (asyncio, blocking Python, ffmpeg, cat) costs with no conversion;
3. added latency, block in -> bytes in the fifo, p50/p99;
4. CLI start-up: ``broadcaster status`` vs a bare Python JSON-RPC call;
5. the headline: the whole live path's CPU (every process) vs a hand-made
   ``pw-record | ffmpeg > fifo`` on the same playing app, and RSS.

Figures are printed as they come; the last line is ``summary {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import conversion, latency, live, native, relay, startup
from tests.support.snapserver import SnapServer, StreamSpec


def _ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is too small to divide by (a run too short to measure)."""
    return round(a / b, 2) if b > 0 else None


def run_conversion(args: argparse.Namespace, work: Path, summary: dict[str, Any]) -> None:
    print(
        f"\n== conversion: {args.seconds:g} s of 44.1 kHz f32 stereo in 20 ms writes at "
        f"{args.pace:g}x real time -> 48 kHz s16 stereo (all tools at once), "
        f"{args.conversion_rounds} rounds"
    )
    # A wakeup's price moves by 2x from one minute to the next on a small VM:
    # the tools run side by side, and the ratio is taken within each round.
    rounds: list[list[conversion.ConversionResult]] = []
    for index in range(args.conversion_rounds):
        results, outputs = conversion.measure(args.seconds, args.pace, work)
        rounds.append(results)
        cells = ", ".join(f"{r.tool} {r.cpu_per_audio_s * 1000:.2f}" for r in results)
        print(f"round {index + 1} (ms CPU/audio s): {cells}")
    tools = [r.tool for r in rounds[0]]

    def per_round(tool: str) -> list[conversion.ConversionResult]:
        return [next(r for r in results if r.tool == tool) for results in rounds]

    def ratios(tool: str) -> list[float]:
        pairs = zip(per_round(tool), per_round("ffmpeg"), strict=True)
        return [r.cpu_per_audio_s / f.cpu_per_audio_s for r, f in pairs if f.cpu_per_audio_s > 0]

    print(f"{'tool':<26}{'ms CPU/audio s':>16}{'incl. start-up':>16}", end="")
    print(f"{'start-up ms':>13}{'vs ffmpeg':>11}  (each round)")
    summary["conversion"] = {}
    for tool in tools:
        runs = per_round(tool)
        steady = statistics.median(r.cpu_per_audio_s for r in runs)
        total = statistics.median(r.cpu_per_audio_s_total for r in runs)
        startup = statistics.median(r.startup_cpu_s for r in runs)
        each = ratios(tool)
        versus = round(statistics.median(each), 2) if each else None
        print(
            f"{tool:<26}{steady * 1000:>16.2f}{total * 1000:>16.2f}{startup * 1000:>13.0f}"
            f"{versus!s:>10}x  ({', '.join(f'{x:.2f}' for x in each)})"
        )
        summary["conversion"][tool] = {
            "cpu_ms_per_audio_s": round(steady * 1000, 3),
            "cpu_ms_per_audio_s_with_startup": round(total * 1000, 3),
            "startup_cpu_ms": round(startup * 1000, 1),
            "vs_ffmpeg": versus,
            "vs_ffmpeg_each_round": [round(x, 2) for x in each],
        }
    print(f"\n== quality: {conversion.TONE_HZ:g} Hz sine at -6 dBFS, converted vs ideal")
    print(f"{'tool':<26}{'SNR dB':>10}{'THD+N dB':>10}{'gain dB':>10}")
    summary["quality"] = {}
    for tool in ("broadcaster", "ffmpeg", "sox"):
        q = conversion.quality(tool, outputs[tool])
        print(f"{tool:<26}{q.snr_db:>10.1f}{q.thd_n_db:>10.1f}{q.gain_db:>10.4f}")
        summary["quality"][tool] = {k: round(v, 2) for k, v in asdict(q).items() if k != "tool"}


def run_relay(args: argparse.Namespace, work: Path, summary: dict[str, Any]) -> None:
    print(
        f"\n== relay floor: {args.seconds:g} s of 48 kHz s16 in 1024-frame writes at real time "
        "-> 20 ms chunks, no conversion (all at once)"
    )
    results = relay.measure(args.seconds, work)
    for name, value in results.items():
        print(f"{name:<26}{value:>8.2f} ms CPU/audio s")
    summary["relay"] = {k: round(v, 3) for k, v in results.items()}


def run_latency(args: argparse.Namespace, work: Path, summary: dict[str, Any]) -> None:
    print(f"\n== added latency: {args.latency_seconds:g} s of 20 ms blocks at real time")
    print(f"{'path':<42}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'dropped':>9}")
    summary["latency"] = {}
    cases: dict[str, tuple[latency.Case, dict[str, object]]] = {
        "44.1k f32 20 ms -> 48k s16 (soxr HQ)": (latency.LIVE_SPEC, {}),
        "the same + --gain -3dB (chain)": (latency.LIVE_SPEC, {"gain_db": -3.0}),
        "48k s16 1024-frame blocks (Python path)": (latency.PW_DEFAULT, {}),
        "48k f32 1024-frame blocks + --gain -3dB": (latency.PW_FLOAT, {"gain_db": -3.0}),
    }
    for name, (case, processing) in cases.items():
        result = latency.measure(case, args.latency_seconds, work, **processing)
        print(
            f"{name:<42}{result.p50_ms:>9.1f}{result.p99_ms:>9.1f}{result.max_ms:>9.1f}"
            f"{result.dropped:>9}"
        )
        summary["latency"][name] = {k: round(v, 2) for k, v in asdict(result).items()}


def run_startup(args: argparse.Namespace, work: Path, summary: dict[str, Any]) -> None:
    server = SnapServer(work / "startup", [StreamSpec("Bench", path=work / "startup" / "fifo")])
    server.start()
    try:
        print(
            f"\n== CLI start-up against snapserver {server.version()} on 127.0.0.1:"
            f"{server.control_port}, {args.startup_runs} rounds, median "
            f"(load average {os.getloadavg()[0]:.2f})"
        )
        results = startup.measure(server.control_port, args.startup_runs)
    finally:
        server.stop()
    bare = next(s for s in results if s.name == startup.BARE)
    print(f"{'command':<48}{'wall ms':>9}{'CPU ms':>9}{'vs bare (wall)':>16}")
    summary["startup"] = {}
    for s in results:
        versus = _ratio(s.wall_ms, bare.wall_ms)
        print(f"{s.name:<48}{s.wall_ms:>9.1f}{s.cpu_ms:>9.1f}{versus!s:>15}x")
        summary["startup"][s.name] = {
            "wall_ms": round(s.wall_ms, 1),
            "cpu_ms": round(s.cpu_ms, 1),
            "vs_bare_wall": versus,
            "vs_bare_cpu": _ratio(s.cpu_ms, bare.cpu_ms),
            "wall_each_ms": s.wall_each,
        }


def run_live(args: argparse.Namespace, work: Path, summary: dict[str, Any]) -> None:
    phases = tuple(args.phases.split(","))
    print(
        f"\n== live path, every process, {args.live_seconds:g} s per phase x {args.rounds} rounds "
        f"(private headless PipeWire, app playing 44.1 kHz): {', '.join(phases)}"
    )
    count = len(phases) * args.rounds
    with live.Bench(work / "live", args.live_seconds, args.settle, count) as bench:
        rounds = [bench.run(phases) for _ in range(args.rounds)]
        run_native(args, bench, work, summary)
    # Other load on the machine comes and goes: phases run in turn, round after
    # round, and each phase reports its median round.
    results = []
    for index, name in enumerate(phases):
        runs = sorted((r[index] for r in rounds), key=lambda p: p.per_second)
        results.append(runs[len(runs) // 2])
        if args.rounds > 1:
            totals = ", ".join(f"{p.per_second * 1000:.1f}" for p in (r[index] for r in rounds))
            print(f"{name:<20}rounds: {totals} ms CPU/s")
            for number, phase in enumerate((r[index] for r in rounds), 1):
                parts = ", ".join(
                    f"{k} {v * 1000 / phase.seconds:.1f}" for k, v in phase.cpu.items() if v
                )
                print(f"{'':<20}round {number}: {parts}")
                if phase.detail:
                    inside = ", ".join(
                        f"{k} {v * 1000 / phase.seconds:.1f}" for k, v in phase.detail.items()
                    )
                    print(f"{'':<20}  broadcaster (python) by part: {inside}")
    print()
    by_name = {p.name: p for p in results}
    summary["live"] = {}
    for phase in results:
        parts = ", ".join(f"{k} {v * 1000 / phase.seconds:.1f}" for k, v in phase.cpu.items())
        print(f"{phase.name:<20}{phase.per_second * 1000:>7.1f} ms CPU/s  ({parts})")
        if phase.rss:
            print(f"{'':<20}RSS MiB: " + ", ".join(f"{k} {v:.1f}" for k, v in phase.rss.items()))
        summary["live"][phase.name] = {
            "cpu_ms_per_s": round(phase.per_second * 1000, 2),
            "by_process_ms_per_s": {
                k: round(v * 1000 / phase.seconds, 2) for k, v in phase.cpu.items()
            },
            "rss_mib": {k: round(v, 1) for k, v in phase.rss.items()},
        }
    hand = by_name.get("handmade")
    idle = by_name.get("idle")
    if hand is not None:
        print()
        for phase in results:
            if phase.name.startswith("broadcaster"):
                total = _ratio(phase.per_second, hand.per_second)
                line = f"{phase.name} / handmade: total CPU {total}x"
                summary["live"][phase.name]["vs_handmade"] = total
                if idle is not None:
                    added = _ratio(
                        phase.per_second - idle.per_second, hand.per_second - idle.per_second
                    )
                    line += f", CPU added to the playing app {added}x"
                    summary["live"][phase.name]["added_vs_handmade"] = added
                # The PipeWire daemons' share moves by several ms/s from round to
                # round whatever captures; the capturing processes alone are steadier.
                own = _ratio(_own(phase), _own(hand))
                line += f", the capturing processes alone {own}x"
                summary["live"][phase.name]["own_vs_handmade"] = own
                print(line)
    # The headline: median of the ratios taken within each round (the machine's
    # load moves between rounds, not within one).
    for base in ("handmade", "pipe-sink"):
        if base not in phases or "broadcaster" not in phases:
            continue
        b, n = phases.index(base), phases.index("broadcaster")
        each = [_ratio(r[n].per_second, r[b].per_second) for r in rounds]
        valid = [x for x in each if x is not None]
        median = round(statistics.median(valid), 2) if valid else None
        print(
            f"headline: broadcaster (native) / {base}, median of per-round ratios: {median}x",
            end="",
        )
        print(f" (rounds: {', '.join(str(x) for x in each)})")
        summary["live"]["broadcaster"][f"vs_{base}_median_of_rounds"] = median
        summary["live"]["broadcaster"][f"vs_{base}_each_round"] = each


def run_native(
    args: argparse.Namespace, bench: live.Bench, work: Path, summary: dict[str, Any]
) -> None:
    seconds = args.latency_seconds
    print(f"== native path: {seconds:g} s of a 44.1 kHz f32 997 Hz sine through the pipe sink")
    q, timing = native.measure(bench.session, work / "native", seconds)
    others = summary.get("quality", {})
    versus = ", ".join(f"{tool} {v['snr_db']:.1f}" for tool, v in others.items())
    print(f"SNR {q.snr_db:.1f} dB, THD+N {q.thd_n_db:.1f} dB, gain {q.gain_db:.4f} dB", end="")
    print(f" (this run's conversion part: {versus})" if versus else "")
    print(
        f"capture -> fifo, each write's last sample vs the most prompt: p50 "
        f"{timing.p50_ms:.1f} ms, p99 {timing.p99_ms:.1f} ms, max {timing.max_ms:.1f} ms "
        f"({timing.writes} writes of {timing.bytes_per_write / 4:.0f} frames on average)"
    )
    summary.setdefault("quality", {})["native"] = {
        k: round(v, 2) for k, v in asdict(q).items() if k != "tool"
    }
    summary["latency"] = summary.get("latency", {})
    summary["latency"]["native: pipe sink -> fifo"] = {
        k: round(v, 2) for k, v in asdict(timing).items()
    }


def _own(phase: live.Phase) -> float:
    """CPU per second of the processes a phase started (PipeWire's daemons left out)."""
    return sum(v for k, v in phase.cpu.items() if k not in live.DAEMONS) / phase.seconds


PARTS = {
    "conversion": run_conversion,
    "relay": run_relay,
    "latency": run_latency,
    "startup": run_startup,
    "live": run_live,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="audio for the conversion run")
    parser.add_argument("--pace", type=float, default=1.0, help="conversion feed, x real time")
    parser.add_argument("--conversion-rounds", type=int, default=3, help="conversion runs")
    parser.add_argument(
        "--latency-seconds", type=float, default=10, help="latency runs, and the native path's"
    )
    parser.add_argument("--live-seconds", type=float, default=30, help="window per live phase")
    parser.add_argument("--rounds", type=int, default=3, help="live phases, round after round")
    parser.add_argument("--settle", type=float, default=3, help="seconds before each window")
    parser.add_argument("--phases", default=",".join(live.PHASES))
    parser.add_argument("--startup-runs", type=int, default=15, help="start-up rounds")
    parser.add_argument("--skip-live", action="store_true", help="no PipeWire/snapserver parts")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated parts: conversion, relay, latency, startup, live",
    )
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    if only - set(PARTS):
        parser.error(f"--only takes {', '.join(PARTS)}")
    summary: dict[str, Any] = {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    print(f"broadcaster bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="broadcaster-bench-") as tmp:
        work = Path(tmp)
        for part, run in PARTS.items():
            needs_servers = part in ("live", "startup")
            if (not only or part in only) and not (needs_servers and args.skip_live):
                run(args, work, summary)
    print("summary " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
