"""The command line's argument parser: argparse, plus values that start with "-".

argparse reads ``--gain -3dB`` as two options, since ``-3dB`` is not a plain
negative number.  :class:`Parser` joins such an option with the word after
it (``--gain=-3dB``) before parsing, for the options in
:data:`NEGATIVE_VALUE_OPTIONS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

NEGATIVE_VALUE_OPTIONS = frozenset({"--gain"})
"""Options whose value may start with "-"."""


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``["--gain", "-3dB"]`` -> ``["--gain=-3dB"]`` (up to a ``--``)."""
    out: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            out.append(word)
            out.extend(words)
            break
        if word in NEGATIVE_VALUE_OPTIONS:
            value = next(words, None)
            out.append(word if value is None else f"{word}={value}")
        else:
            out.append(word)
    return out


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: ``$COLUMNS``, else the terminal's
    width, else 80.  argparse's help formatter asks it for every argument added
    (help printed or not), and importing shutil (with zlib, bz2 and lzma) costs
    a quick command a twentieth of its start-up."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, as wide as :func:`terminal_columns`."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
        **kwargs: Any,  # what later Pythons add (3.14: color)
    ) -> None:
        width = terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width, **kwargs)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that lets :data:`NEGATIVE_VALUE_OPTIONS` take negative
    values, with :class:`HelpFormatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        argv = sys.argv[1:] if args is None else args
        return super().parse_known_args(join_negative_values(argv), namespace)


class Deferred:
    """Calls on a parser, group or sub-parsers object, recorded to be made later.

    :func:`broadcaster.cli.build_parser` hands the commands' ``register``
    functions one of these in place of argparse's sub-parsers: every call
    (``add_parser``, ``add_argument``, ``set_defaults``, ...) is recorded, and
    what it returns is another Deferred.  :meth:`replay` makes the same calls
    on a real object, so the parser is built only for the command given.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any], Deferred]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> Deferred:
            result = Deferred()
            self.calls.append((name, args, kwargs, result))
            return result

        return record

    def replay(self, target: Any) -> None:
        for name, args, kwargs, result in self.calls:
            result.replay(getattr(target, name)(*args, **kwargs))
