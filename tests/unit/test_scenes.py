"""Scenes: captured from a status, stored atomically, read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster.errors import BadNameError, ConfigError, NotFoundError
from broadcaster.paths import scenes_file
from broadcaster.rooms import ServerStatus
from broadcaster.scenes import Scene, SceneStore
from tests.unit.test_control_rooms import STATUS


def test_the_scenes_file_follows_xdg_state_home(tmp_path: Path) -> None:
    assert scenes_file({"XDG_STATE_HOME": str(tmp_path)}) == (
        tmp_path / "broadcaster" / "scenes.json"
    )


def test_save_load_delete_round_trip(tmp_path: Path) -> None:
    store = SceneStore(tmp_path / "s" / "scenes.json")
    assert store.load() == {}
    scene = Scene.capture("Abend ✨", ServerStatus.from_json(STATUS))
    store.save(scene)
    store.save(Scene.capture("other", ServerStatus.from_json(STATUS)))
    assert store.get("Abend ✨") == scene
    assert scene.groups[0].rooms[0].name == "Küche 🎵"
    assert "Küche 🎵" in store.path.read_text(encoding="utf-8")
    assert [p.name for p in store.path.parent.iterdir()] == ["scenes.json"]  # no temp left
    store.delete("other")
    assert list(store.load()) == ["Abend ✨"]
    with pytest.raises(NotFoundError, match="saved: 'Abend ✨'"):
        store.get("nope")


@pytest.mark.parametrize("name", ["", "   ", "a/b", "x" * 81, "tab\there", "line\nbreak"])
def test_a_scene_name_nothing_could_address_is_refused(name: str) -> None:
    """One rule for the CLI, the API (its /api/scenes/{scene} path) and the page."""
    with pytest.raises(BadNameError, match="1 to 80 printable characters without '/'"):
        Scene.capture(name, ServerStatus.from_json(STATUS))


def test_a_scene_name_keeps_any_language_and_loses_its_outer_spaces() -> None:
    for name in ("Abend ✨", "salle à manger", "x" * 80, "evening-2.0_b"):
        assert Scene.capture(f" {name} ", ServerStatus.from_json(STATUS)).name == name


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SceneStore(tmp_path / "scenes.json")
    store.save(Scene.capture("one", ServerStatus.from_json(STATUS)))
    before = store.path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ConfigError, match="No space left"):
        store.save(Scene.capture("two", ServerStatus.from_json(STATUS)))
    assert store.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scenes.json"]


def test_a_corrupt_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "scenes.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a scenes file"):
        SceneStore(path).load()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{}", "it has no 'scenes'"),
        ('{"scenes": null}', "a value of the wrong kind"),
        ('{"scenes": {"a": {"name": "a", "groups": [{"rooms": []}]}}}', "it has no 'stream_id'"),
        ('{"scenes": {"a": {"name": "a", "groups": null}}}', "a value of the wrong kind"),
        ("[]", "a value of the wrong kind"),
    ],
)
def test_a_file_of_the_wrong_shape_says_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    """Not the bare exception text ("('scenes')", "'NoneType' object is not subscriptable")."""
    path = tmp_path / "scenes.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a scenes file") as refused:
        SceneStore(path).load()
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("muted", "false", "muted must be true or false, not 'false'"),  # bool('false') is True
        ("muted", None, "muted must be true or false, not None"),
        ("volume", 500, "volume must be an integer from 0 to 100, not 500"),
        ("volume", "40", "volume must be an integer from 0 to 100, not '40'"),
        ("volume", 40.5, "volume must be an integer from 0 to 100, not 40.5"),
        ("latency", True, "latency must be an integer from -10000 to 10000, not True"),
        ("latency", 99999, "latency must be an integer from -10000 to 10000, not 99999"),
    ],
)
def test_a_hand_edited_value_out_of_its_range_is_one_clear_error(
    tmp_path: Path, field: str, value: object, says: str
) -> None:
    """A scene is put back as stored: a value the server would take otherwise
    (a string 'false' muting, 500 clamped to 100) is refused when the file is read."""
    store = SceneStore(tmp_path / "scenes.json")
    store.save(Scene.capture("evening", ServerStatus.from_json(STATUS)))
    data = json.loads(store.path.read_text(encoding="utf-8"))
    data["scenes"]["evening"]["groups"][0]["rooms"][0][field] = value
    store.path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a scenes file") as refused:
        store.load()
    assert says in str(refused.value)


SAVER = """
import sys
from pathlib import Path
from broadcaster.scenes import Scene, SceneStore
store = SceneStore(Path(sys.argv[1]))
for n in range(40):
    store.save(Scene(f"{sys.argv[2]}-{n}", "", ()))
"""


def test_concurrent_saves_from_several_processes_lose_no_scene(tmp_path: Path) -> None:
    """The service and a CLI save at the same time: each read-modify-write is locked."""
    path = tmp_path / "scenes.json"
    savers = [subprocess.Popen([sys.executable, "-c", SAVER, str(path), f"p{i}"]) for i in range(4)]
    for saver in savers:
        assert saver.wait(timeout=60) == 0
    assert len(SceneStore(path).load()) == 4 * 40
