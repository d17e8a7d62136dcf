"""A private network namespace for tests that speak mDNS.

Tests must never send multicast on the real interface: their announcements and
queries would reach every machine on the LAN, and real services there would
answer them.  So such a test runs its child under ``unshare -n``: a new network
namespace whose only interface is ``lo``, brought up with multicast on and
224.0.0.0/4 routed to it, so that zeroconf on 127.0.0.1 works and nothing
leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SETUP = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"


def missing_tools() -> list[str]:
    """What is lacking to make a network namespace here (for ``require_tools``)."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return missing
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return [f"unshare -n ({probe.stderr.decode().strip()})"]
    return []


def run(argv: Sequence[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` in a new network namespace with only ``lo`` (multicast) and capture it."""
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", f'{SETUP} && exec "$0" "$@"', *argv],
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_script(source: str, tmp_path: Path, *, timeout: float, log: str = "") -> tuple[Any, str]:
    """Run the Python script ``source`` (given ``tmp_path`` as its argument) in a new
    network namespace, from the repository's root (so that it can import broadcaster
    and tests.support); return what its last line of output says, as JSON, and the
    text of ``tmp_path / log`` (a log the script wrote; "" without one).  A script
    that fails fails the test with its stderr's tail and the log's."""
    script = tmp_path / "inner.py"
    script.write_text(source, encoding="utf-8")
    done = run([sys.executable, str(script), str(tmp_path)], cwd=REPO, timeout=timeout)
    log_file = tmp_path / log
    text = log_file.read_text(errors="replace") if log and log_file.exists() else ""
    assert done.returncode == 0, done.stderr.decode()[-3000:] + text[-5000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1]), text


def report_with_snapserver(tmp: Path, main: Callable[[Any], Coroutine[Any, Any, Any]]) -> None:
    """The end of a script for :func:`run_script`: ``main(server)`` with a snapserver
    (one pipe stream, ``Main``) running, what it returns printed as JSON."""
    from .snapserver import SnapServer, StreamSpec

    server = SnapServer(tmp / "snap", [StreamSpec("Main", path=tmp / "snap" / "fifo")])
    server.start()
    try:
        print(json.dumps(asyncio.run(main(server))))  # noqa: T201 - the script's report
    finally:
        server.stop()
