"""CLI start-up: ``broadcaster status`` as a user runs it, against a bare Python JSON-RPC call.

Every command is a fresh process asking the same real snapserver (one of its
own, loopback) for its status, or a reference that asks nothing:

* ``broadcaster status``: the venv's console script, the server in
  ``$BROADCASTER_SERVER`` and no config file (config.py is not loaded);
* the same with the server in a config file instead (config.py loaded);
* the bare call: the venv's Python, a socket, one ``Server.GetStatus``, exit;
* ``python -c pass`` and ``python -c "import asyncio"``: the interpreter's own
  start, and what a CLI built on asyncio could not start below.

The commands run in turn, round after round (load that comes and goes hits them
all alike); wall time and CPU (utime+stime from wait4) are the median of the
rounds.  A first round, not counted, warms the page cache and writes the
bytecode caches a user's installation has (``PYTHONDONTWRITEBYTECODE`` is
dropped from the environment: without cached bytecode every module is compiled
at each start, which measures the compiler).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
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

STATUS = "broadcaster status"
WITH_CONFIG = "broadcaster status (server in a config file)"
BARE = "bare python JSON-RPC call"
PASS = "python -c pass"
ASYNCIO = 'python -c "import asyncio"'


@dataclass
class Startup:
    name: str
    wall_ms: float
    cpu_ms: float
    wall_each: list[float]


def console_script() -> list[str]:
    """``broadcaster`` beside this Python (the venv's), as a user runs it."""
    script = Path(sys.executable).parent / "broadcaster"
    return [str(script)] if script.exists() else [sys.executable, "-m", "broadcaster"]


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
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BROADCASTER_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory(prefix="broadcaster-startup-") as tmp:
        no_config = {**base, "XDG_CONFIG_HOME": str(Path(tmp) / "none")}
        no_config["BROADCASTER_SERVER"] = f"127.0.0.1:{control_port}"
        config = Path(tmp) / "with" / "broadcaster" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'server = "127.0.0.1:{control_port}"\n', encoding="utf-8")
        with_config = {**base, "XDG_CONFIG_HOME": str(config.parent.parent)}
        python = sys.executable
        commands = {
            STATUS: ([*console_script(), "status"], no_config),
            WITH_CONFIG: ([*console_script(), "status"], with_config),
            BARE: ([python, "-c", BARE_CALL, str(control_port)], no_config),
            PASS: ([python, "-c", "pass"], no_config),
            ASYNCIO: ([python, "-c", "import asyncio"], no_config),
        }
        for argv, env in commands.values():
            _timed(argv, env)  # page cache, bytecode caches
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, (argv, env) in commands.items():
                samples[name].append(_timed(argv, env))
    return [
        Startup(
            name,
            statistics.median(s[0] for s in each),
            statistics.median(s[1] for s in each),
            [round(s[0], 1) for s in each],
        )
        for name, each in samples.items()
    ]
