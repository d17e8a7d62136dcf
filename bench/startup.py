"""CLI start-up: ``broadcaster status`` against a bare Python JSON-RPC call to snapserver.

Both are fresh ``python`` processes asking the same real snapserver for its
status; wall time and CPU (utime+stime from wait4) are the median of
``runs``.  Until ``broadcaster status`` exists (broadcaster/cli/control.py),
``broadcaster --help`` is measured in its place and the result says so
(:func:`status_command`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE_CALL = """
import json, socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    s.sendall(b'{"id":1,"jsonrpc":"2.0","method":"Server.GetStatus"}\\r\\n')
    data = b""
    while not data.endswith(b"\\n"):
        data += s.recv(65536)
print(len(json.loads(data)["result"]["server"]["groups"]), "groups")
"""


@dataclass
class Startup:
    name: str
    command: str
    wall_ms: float
    cpu_ms: float


def status_command() -> tuple[str, list[str]]:
    """``broadcaster status`` once the command exists, else the placeholder ``--help``."""
    probe = subprocess.run(
        [sys.executable, "-m", "broadcaster", "status", "--help"],
        capture_output=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    if probe.returncode == 0:
        return "broadcaster status", ["status"]
    return "broadcaster --help (placeholder: no status command yet)", ["--help"]


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    errors = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {errors[-500:]}")
    return wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def measure(control_port: int, runs: int) -> list[Startup]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["BROADCASTER_SERVER"] = f"127.0.0.1:{control_port}"
    label, args = status_command()
    commands = {
        label: [sys.executable, "-m", "broadcaster", *args],
        "bare python JSON-RPC call": [sys.executable, "-c", BARE_CALL, str(control_port)],
    }
    results = []
    for name, argv in commands.items():
        _timed(argv, env)  # warm the page cache
        samples = [_timed(argv, env) for _ in range(runs)]
        results.append(
            Startup(
                name,
                " ".join(["python", *argv[1:3]]),
                statistics.median(s[0] for s in samples),
                statistics.median(s[1] for s in samples),
            )
        )
    return results
