"""Atomic writes: the old file or the new one, never a torn one, no litter."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from broadcaster.files import scratch_dir, write_atomic


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


def test_a_scratch_dir_is_removed_afterwards_and_one_left_by_a_dead_process_too(
    tmp_path: Path,
) -> None:
    gone = subprocess.Popen(["true"])  # reaped: a pid no process has any more
    gone.wait()
    left = tmp_path / f"announce-{gone.pid}-x1"
    left.mkdir()
    (left / "announcement.wav").write_bytes(b"\0" * 1024)
    alive = tmp_path / f"announce-{os.getppid()}-x2"  # a live process: maybe still using it
    alive.mkdir()
    other = tmp_path / "upload-1-x3"  # another job's name: not this one's to judge
    other.mkdir()

    with scratch_dir("announce", tmp_path) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(f"announce-{os.getpid()}-")
        assert tmp.stat().st_mode & 0o777 == 0o700
        (tmp / "speech.wav").write_bytes(b"x")
        assert not left.exists()
    assert not tmp.exists()
    assert alive.is_dir()
    assert other.is_dir()
