"""``broadcaster-controlscript``'s entry point: the parent-death signal first, then the rest.

snapserver may die while the plugin starts; a plugin that armed its
parent-death signal only after importing asyncio, D-Bus and the rest would
then live on, re-parented, with stdin held open by snapserver 0.31's other
plugins.  So this module imports nothing heavy, arms the signal, checks the
parent is still there, and only then loads :mod:`broadcaster.controlscript`.
What remains unguarded is the interpreter's own start-up, before any of our code.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from .proc import die_with_parent


def run(argv: Sequence[str] | None = None) -> int:
    """Console script entry point (``broadcaster-controlscript``)."""
    parent = die_with_parent(signal.SIGTERM)
    if parent is None:
        sys.stderr.write("broadcaster.controlscript: snapserver is gone: not starting\n")
        return 0
    from .controlscript import main

    return main(argv, parent=parent)


if __name__ == "__main__":
    sys.exit(run())
