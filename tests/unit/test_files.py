"""Atomic writes: the old file or the new one, never a torn one, no litter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broadcaster.files import write_atomic


def test_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "state" / "snapserver.conf"  # the directory is created
    write_atomic(path, "one\n")
    write_atomic(path, "zwei 🎵\n")
    assert path.read_text(encoding="utf-8") == "zwei 🎵\n"
    assert [p.name for p in path.parent.iterdir()] == ["snapserver.conf"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "scenes.json"
    write_atomic(path, "old")

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scenes.json"]


def test_an_interrupted_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between writing and renaming (here: KeyboardInterrupt) tears nothing."""
    path = tmp_path / "config.toml"
    write_atomic(path, "old")

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
