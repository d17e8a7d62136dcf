"""The committed locks cover what pyproject.toml asks for (ci/refresh-lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def pins(lock: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, version in PIN.findall((REPO / lock).read_text(encoding="utf-8")):
        found.setdefault(canonicalize_name(name), set()).add(version)
    return found


def wanted(*extras: str) -> list[Requirement]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)
    texts = list(project["project"]["dependencies"]) + list(project["build-system"]["requires"])
    for extra in extras:
        texts += project["project"]["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", ()), ("requirements-test.lock", ("test",))]
)
def test_every_dependency_is_locked_within_its_range(lock: str, extras: tuple[str, ...]) -> None:
    locked = pins(lock)
    for requirement in wanted(*extras):
        versions = locked.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in {lock}: run ci/refresh-lock"
        spec = SpecifierSet(str(requirement.specifier))
        for version in versions:
            assert spec.contains(version, prereleases=True), (
                f"{lock} pins {requirement.name}=={version}, outside {requirement}: "
                "run ci/refresh-lock"
            )
