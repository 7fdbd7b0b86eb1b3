"""The Makefile's targets, run by the real make: help, install's Python, manage (with its secret
key) and clean."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from tests.missing import tool_missing
from todo_project import devservices

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


def test_empty_port_host_and_workers_are_the_makefiles_defaults():
    # make's `?=` kept an empty value: `make run` served on "127.0.0.1:", which runserver refused.
    env = {**os.environ, "PORT": "", "HOST": "", "WEB_CONCURRENCY": ""}
    show = "--eval=show: ; @echo $(HOST):$(PORT) $(WEB_CONCURRENCY)"
    shown = make(show, "show", env=env)
    assert shown.stdout.strip() == "127.0.0.1:8000 4", shown.stderr
    # Given on make's command line, which overrides the Makefile's own assignments.
    shown = make(show, "show", "PORT=", "HOST=", "WEB_CONCURRENCY=")
    assert shown.stdout.strip() == "127.0.0.1:8000 4", shown.stderr
    assert make(show, "show", "PORT=8123").stdout.strip() == "127.0.0.1:8123 4"


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


def fake_python(path: Path, version: str) -> str:
    """An interpreter that tells `version` and fails anything else, naming it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/bash\ncase "$*" in *version_info*) echo {version};; *) echo "ran: $*"; exit 3;; esac\n'
    )
    path.chmod(0o755)
    return str(path)


def install_with(project: Path, python: str) -> subprocess.CompletedProcess:
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "constraints.txt"):
        shutil.copy(ROOT / name, project / name)
    return subprocess.run(
        ["make", "--no-print-directory", "install", f"PYTHON={python}"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("version", ["3.13", "3.10"])
def test_install_with_a_python_it_cannot_use_says_which_it_needs(tmp_path, version):
    # pip failed with "ResolutionImpossible" and not a word about Python (the embedded servers
    # have no 3.13 wheels, django-filter needs 3.11).
    python = fake_python(tmp_path / "bin" / "python3", version)
    done = install_with(tmp_path, python)
    assert done.returncode != 0
    assert done.stderr.startswith(
        f"Python 3.11 or 3.12 is needed; {python} is {version}: install python3.11, or give its "
        "path: make PYTHON=/path/to/python3.11\n"
    )
    assert "ran:" not in done.stdout and not (tmp_path / ".venv").exists()


def test_install_makes_a_venv_of_another_python_again(tmp_path):
    # What a first `make run` left where python3 was 3.13: reused once python3.11 was there,
    # it failed the same way again and again.
    fake_python(tmp_path / ".venv" / "bin" / "python", "3.13")
    done = install_with(tmp_path, fake_python(tmp_path / "bin" / "python3.11", "3.11"))
    assert ".venv has Python 3.13: making it again" in done.stdout
    assert "ran: -m venv .venv" in done.stdout  # made with the Python given
    assert not (tmp_path / ".venv").exists()  # the fake one did not make it


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


def make_run_banner(env: dict) -> str:
    """What `make run` prints before its server starts (the server is then stopped)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = subprocess.Popen(
        [*MAKE, "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its group: make, devservices, bash, runserver and its child
    )
    lines = []
    deadline = time.monotonic() + 240
    try:
        for line in run.stdout:
            lines.append(line)
            # runserver's first lines: the banner, printed before it starts, is complete.
            if "Performing system checks" in line or "Watching for file changes" in line:
                break
            assert time.monotonic() < deadline, "".join(lines)
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        # Stopping may wait for pgserver's lock on the shared data directory (other tests run
        # `make` meanwhile): it once took longer than 30 s, in a CI run on a loaded machine.
        run.wait(timeout=120)
        run.stdout.close()
    return "".join(lines)


@pytest.fixture
def fresh_database_url() -> str:
    """DATABASE_URL of a new, empty database on the session's PostgreSQL server, dropped after."""
    import psycopg

    url = urlsplit(os.environ["DATABASE_URL"])
    name = f"make_run_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield urlunsplit(url._replace(path=f"/{name}"))
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


def database_socket_dir() -> Path:
    url = urlsplit(os.environ["DATABASE_URL"])
    return Path(url.hostname or parse_qs(url.query).get("host", [""])[0] or "/nonexistent")


def test_make_run_shows_the_superuser_credentials_only_where_it_made_the_superuser(
    tmp_path, fresh_database_url
):
    # A new database on the session's server, but another project-local data directory: to
    # seed_demo it is not the project-local database (as with DATABASE_URL pointing elsewhere),
    # so it creates no superuser, and make run must not print credentials that do not work.
    env = {key: value for key, value in os.environ.items() if key != "ADMIN_URL"}
    env["DATABASE_URL"] = fresh_database_url
    elsewhere = {**env, "TODO_DATA_DIR": str(tmp_path / "data")}

    banner = make_run_banner(elsewhere)

    assert "Not creating the demo superuser admin@example.com" in banner
    assert "API user demo@example.com / demo-password-2026" in banner
    assert not re.search(r"^Admin +admin@example\.com / ", banner, re.MULTILINE)
    assert "Admin    no demo superuser on this database" in banner

    if not database_socket_dir().resolve().is_relative_to(devservices.DATA_DIR.resolve()):
        pytest.skip("DATABASE_URL is not the project-local database: no superuser to show")
    banner = make_run_banner(env)  # the project-local database: the superuser is made there
    credentials = r"^Admin    admin@example\.com / admin-password-2026 \(local superuser\)$"
    assert re.search(credentials, banner, re.MULTILINE)
