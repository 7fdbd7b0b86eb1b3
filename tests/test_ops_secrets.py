"""Secrets stay out of the repository and out of the Docker image: .gitignore and .dockerignore
against the files the README's deploy steps make (todo.secret_key, an env file) and the usual
.env.* names; and the image's build context still holds everything the image runs."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SECRET_FILES = [
    "todo.secret_key",  # the README's deploy block writes a key file
    "todo.env",  # docker run --env-file todo.env
    "prod.env",
    ".env",
    ".env.local",
    ".env.production",
    "todo_project/.env",
    "todo_project/.env.production",
    "accounts/prod.secret_key",
]


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", SECRET_FILES)
def test_git_ignores_secret_files(path):
    # --no-index: the patterns alone, whether or not such a file exists or is tracked.
    assert git("check-ignore", "--no-index", "-q", path).returncode == 0, path


def test_git_keeps_the_example_env_file_and_ignores_nothing_it_tracks():
    assert git("check-ignore", "--no-index", "-q", ".env.example").returncode == 1
    # No tracked file matches an ignore pattern (a pattern too broad would hide a new one).
    assert git("ls-files", "--cached", "--ignored", "--exclude-standard").stdout == ""


# --- .dockerignore, as Docker reads it ----------------------------------------------------------
# No Docker daemon in the tests: the rules of moby/patternmatcher (which both the classic
# builder and BuildKit use), for the syntax the file uses: each pattern is rooted at the
# context, `*` and `?` stop at "/", `**` spans directories (none too), a pattern that matches a
# parent directory matches everything in it, `!` re-includes, and the last matching line wins.


def compile_patterns(lines: list[str]) -> list[tuple[bool, re.Pattern]]:
    patterns = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip().lstrip("/")
        assert not re.search(r"[\[\]\\{}]", pattern), f"syntax this test does not model: {line}"
        regex = ""
        for token in re.findall(r"\*\*/?|\*|\?|[^*?]", pattern):
            if token.startswith("**"):
                regex += ".*" if pattern.endswith(token) else "(.*/)?"
            elif token == "*":
                regex += "[^/]*"
            elif token == "?":
                regex += "[^/]"
            else:
                regex += re.escape(token)
        patterns.append((include, re.compile(regex)))
    return patterns


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    return compile_patterns((ROOT / ".dockerignore").read_text().splitlines())


def in_build_context(path: str, patterns=None) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for include, regex in patterns or dockerignore_patterns():
        if include != excluded:  # only a later line of the other kind can change the answer
            continue
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not include
    return not excluded


def test_the_matcher_reads_patterns_as_docker_does():
    old = compile_patterns([".env.*", "tests", "**/__pycache__"])
    assert not in_build_context(".env.production", old)
    assert in_build_context("x/.env.production", old)  # rooted: the context's top only
    assert not in_build_context("tests/test_x.py", old)  # a directory: everything in it
    assert in_build_context("accounts/tests/test_x.py", old)
    assert not in_build_context("__pycache__/a.pyc", old)  # **/: any depth, the top too
    assert not in_build_context("a/b/__pycache__/c.pyc", old)
    assert in_build_context("todo.secret_key", old)
    allow = compile_patterns(["*", "!app", "**/tests", "!app/tests/keep.py"])
    assert not in_build_context("README.md", allow)
    assert in_build_context("app/models.py", allow)
    assert not in_build_context("app/tests/test_x.py", allow)
    assert in_build_context("app/tests/keep.py", allow)  # the last matching line wins


@pytest.mark.parametrize("path", SECRET_FILES)
def test_secret_files_never_reach_the_image(path):
    assert not in_build_context(path)


def tracked_files() -> list[str]:
    # Tracked, and new files not ignored (about to be committed).
    return git("ls-files", "--cached", "--others", "--exclude-standard").stdout.splitlines()


def test_the_image_gets_every_file_it_runs():
    needed = [
        path
        for path in tracked_files()
        if path in {"manage.py", "gunicorn.conf.py", "requirements.txt", "constraints.txt"}
        or (
            path.split("/")[0] in {"accounts", "tasks", "todo_project"}
            and "tests" not in path.split("/")
        )
    ]
    # The templates, the migrations, the settings, the shared env readers gunicorn imports.
    for path in [
        "todo_project/settings.py",
        "todo_project/envvars.py",
        "todo_project/templates/redoc.html",
        "accounts/templates/admin/login_rate_limited.html",
        "tasks/migrations/0001_initial.py",
    ]:
        assert path in needed
    missing = [path for path in needed if not in_build_context(path)]
    assert missing == []


def test_every_file_the_dockerfile_copies_by_name_is_in_the_context():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [
        source
        for line in re.findall(r"^COPY (?!--from)(.*)$", dockerfile, re.MULTILINE)
        for source in line.split()[:-1]
        if source != "."
    ]
    assert copied == ["requirements.txt", "constraints.txt"]
    assert all(in_build_context(source) for source in copied)


def test_tests_bench_and_local_state_stay_out_of_the_image():
    for path in [
        "tests/test_makefile.py",
        "todo_project/tests/test_settings.py",
        "tasks/tests/__init__.py",
        "bench/run.py",
        ".ci/run",
        ".venv/bin/python",
        ".data/postgres/PG_VERSION",
        ".data/secret_key",
        "staticfiles/admin/css/base.css",
        "todo_project/__pycache__/settings.cpython-311.pyc",
        ".git/config",
        "README.md",
        ".env.example",
        "dump.sql",
    ]:
        assert not in_build_context(path), path
