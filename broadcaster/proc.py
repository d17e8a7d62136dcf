"""Facts about processes read from ``/proc`` (Linux)."""

from __future__ import annotations

import os


def process_exists(pid: int, procfs: str = "/proc") -> bool:
    """Whether a process ``pid`` exists now (any user's)."""
    return os.path.exists(f"{procfs}/{pid}")


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


#: prctl(2) option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> int | None:
    """Have Linux send ``sig`` to this process when its parent dies, even by SIGKILL.

    Returns the parent's pid, read just before arming; None if the parent
    changed meanwhile (it died before the signal was armed, which then never
    comes: the caller should stop now).  Without prctl (not Linux) the signal
    is not armed and the parent is returned: the caller's other watches remain.
    Cheap imports only: a program that needs it calls it first thing.
    """
    import ctypes  # here: the other facts of this module are read by modules that start fast

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        return parent
    return parent if os.getppid() == parent else None
