"""constraints.txt pins every package the project installs at the version CI tests, direct
requirements included: a direct pin there that disagrees with requirements*.txt would make
pip refuse to install at all (on a fresh clone, in the Docker build)."""

import re
from importlib import metadata
from pathlib import Path

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
