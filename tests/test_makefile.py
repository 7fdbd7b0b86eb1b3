"""The Makefile's targets, run by the real make: help, manage (with its secret key) and clean."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.missing import tool_missing

ROOT = Path(__file__).resolve().parent.parent
# -o: never (re)install the virtualenv here, whatever the requirements files' dates say.
MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed"]


@pytest.fixture(scope="module", autouse=True)
def make_installed() -> None:
    if shutil.which("make") is None:
        tool_missing("make not found (apt-get install make)")


def make(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_target():
    phony = (
        re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    )

    out = make("help").stdout

    listed = set(re.findall(r"^make (\S+)", out, re.MULTILINE))
    assert listed == set(phony) - {"help"}


def test_manage_runs_a_command_with_debug_off_and_a_key_only_its_owner_can_read(tmp_path):
    # The environment of a fresh clone: no SECRET_KEY, DEBUG unset; the database and Redis are
    # the ones this test session started (their variables are set), so no second server starts.
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
    key_file = tmp_path / "data" / "secret_key"
    show = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    args = f"ARGS=shell --no-imports -c '{show}'"

    done = make(f"KEY_FILE={key_file}", "manage", args, env=env)

    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 50
    assert done.stdout == f"False {key}\n"
    key_file.chmod(0o644)  # made by an older Makefile, readable by everyone
    again = make(f"KEY_FILE={key_file}", "manage", args, env=env)
    assert again.stdout == done.stdout  # the same key next time: signed tokens stay valid
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_key_lives_in_the_data_directory_todo_data_dir_names(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
    env["TODO_DATA_DIR"] = str(tmp_path / "elsewhere")
    show = "from django.conf import settings; print(settings.SECRET_KEY)"
    done = make("manage", f"ARGS=shell --no-imports -c '{show}'", env=env)
    assert done.returncode == 0, done.stderr
    key_file = tmp_path / "elsewhere" / "secret_key"
    assert done.stdout == f"{key_file.read_text().strip()}\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_clean_removes_generated_state_and_keeps_what_git_tracks(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    generated = [
        ".venv/bin/python",
        ".data/postgres/PG_VERSION",
        ".hypothesis/examples/x",
        ".schemathesis/x",
        ".pytest_cache/x",
        "tasks/__pycache__/models.cpython-311.pyc",
        "bench/results/data.lua",
        "bench/results/server.log",
    ]
    kept = ["bench/results/latest.md", "bench/results/explain.md", "tasks/models.py"]
    for name in generated + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    done = make("clean", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert [name for name in generated if (tmp_path / name).exists()] == []
    assert not (tmp_path / "tasks" / "__pycache__").exists()
    assert [name for name in kept if not (tmp_path / name).exists()] == []
