"""A private network namespace for tests that speak mDNS.

Tests must never send multicast on the real interface: their announcements and
queries would reach every machine on the LAN, and real services there would
answer them.  So such a test runs its child under ``unshare -n``: a new network
namespace whose only interface is ``lo``, brought up with multicast on and
224.0.0.0/4 routed to it, so that zeroconf on 127.0.0.1 works and nothing
leaves the machine.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

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
