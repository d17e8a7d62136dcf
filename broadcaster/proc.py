"""Facts about processes read from ``/proc`` (Linux)."""

from __future__ import annotations


def process_lineage(pid: int, procfs: str = "/proc", limit: int = 64) -> list[int]:
    """``pid`` and its ancestors, nearest first, up to and including init.

    A browser plays from a child of the process the user knows, so matching a
    process "or its family" walks this chain.
    """
    chain = [pid]
    while len(chain) < limit:
        try:
            with open(f"{procfs}/{chain[-1]}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            break
        # Field 4 (ppid) comes after the parenthesised command name, which may hold spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            parent = int(fields[1]) if len(fields) > 1 else 0
        except ValueError:
            break
        if parent <= 0 or parent in chain:
            break
        chain.append(parent)
    return chain
