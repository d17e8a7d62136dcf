"""CPU time and memory of processes, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_ticks(stat: Path) -> tuple[int, int, int, int] | None:
    """utime, stime, cutime, cstime (clock ticks) from a /proc ``stat`` file; None if gone."""
    try:
        text = stat.read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return utime, stime, cutime, cstime


def cpu_seconds(pid: int | str = "self", *, children: bool = False) -> float:
    """utime + stime of ``pid`` (+ cutime + cstime of its reaped children), in seconds.

    Read from /proc/PID/stat; 0.0 once the process is gone.
    """
    ticks = _stat_ticks(Path(f"/proc/{pid}/stat"))
    if ticks is None:
        return 0.0
    utime, stime, cutime, cstime = ticks
    return (utime + stime + (cutime + cstime if children else 0)) / CLOCK_TICKS


def python_split(pid: int) -> dict[str, float]:
    """CPU seconds of a process by part: its main thread, its other threads, its reaped children.

    For broadcaster: the event loop (control), the capture thread (the data
    path) and short children such as pw-dump and pactl.
    """
    split = {"event loop": 0.0, "other threads": 0.0, "reaped children": 0.0}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return split
    for task in tasks:
        ticks = _stat_ticks(task / "stat")
        if ticks is not None:
            seconds = (ticks[0] + ticks[1]) / CLOCK_TICKS
            split["event loop" if task.name == str(pid) else "other threads"] += seconds
    split["reaped children"] = cpu_seconds(pid, children=True) - cpu_seconds(pid)
    return split


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size (VmRSS) of ``pid`` in MiB; 0.0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (every thread's children)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for child in children(pid):
        out.append(child)
        out += descendants(child)
    return out
