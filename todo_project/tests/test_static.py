"""Static files: collected at the image's build with a gzip copy of each, which whitenoise serves
to a client that accepts gzip; served straight from the apps when nothing was collected."""

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import drf_spectacular_sidecar
import pytest
from django.conf import settings
from django.contrib import admin
from django.core.management import call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
ADMIN_CSS = "admin/css/base.css"
BUNDLE_IN_APP = Path(drf_spectacular_sidecar.__file__).parent / "static" / BUNDLE
ADMIN_CSS_IN_APP = Path(admin.__file__).parent / "static" / ADMIN_CSS

# The real WSGI application (todo_project/wsgi.py, as gunicorn loads it) asked for static files;
# what it answered, as JSON on the last line.
ASK_THE_WSGI_APP = """
import json, sys
from wsgiref.util import setup_testing_defaults
from todo_project.wsgi import application

answers = []
for path, accept_encoding in json.loads(sys.argv[1]):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    if accept_encoding is not None:
        environ["HTTP_ACCEPT_ENCODING"] = accept_encoding
    setup_testing_defaults(environ)
    started = {}
    body = application(environ, lambda status, headers: started.update(s=status, h=headers))
    try:
        size = sum(len(chunk) for chunk in body)
    finally:
        getattr(body, "close", lambda: None)()
    answers.append({"status": started["s"], "headers": dict(started["h"]), "size": size})
print(json.dumps(answers))
"""


def env_without(*names: str, **extra: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key not in names}
    return {**base, **extra}


def ask_the_wsgi_app(static_root: Path, *requests: tuple[str, str | None]):
    """Loads the app in a fresh process, DEBUG off, with STATIC_ROOT=static_root."""
    env = env_without(
        "DEBUG",
        "PYTHONWARNINGS",
        "PYTEST_CURRENT_TEST",
        DEBUG="0",
        HTTPS="0",
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",  # wsgiref's setup_testing_defaults
        FRONTEND_URL="https://app.example.com",
        STATIC_ROOT=str(static_root),
    )
    ran = subprocess.run(
        [sys.executable, "-c", ASK_THE_WSGI_APP, json.dumps(requests)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout.splitlines()[-1]), ran.stderr


def dockerfile_collectstatic_step() -> str:
    """The Dockerfile's RUN step that collects the static files, continuation lines joined."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = [line for line in dockerfile.splitlines() if re.match(r"RUN .*\bcollectstatic\b", line)]
    assert len(steps) == 1, steps
    return steps[0].removeprefix("RUN ").strip()


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """STATIC_ROOT after the Dockerfile's own collectstatic step, run as the build runs it:
    DEBUG off, with only the throwaway values the step sets (nothing listens there)."""
    static_root = tmp_path_factory.mktemp("image") / "staticfiles"
    env = env_without(
        "DEBUG",
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "FRONTEND_URL",
        "HTTPS",
        "PYTEST_CURRENT_TEST",
    )
    env["STATIC_ROOT"] = str(static_root)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this venv's python
    ran = subprocess.run(
        ["sh", "-c", dockerfile_collectstatic_step()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return static_root


def test_collectstatic_writes_a_much_smaller_gzip_copy_beside_each_file(tmp_path):
    with override_settings(STATIC_ROOT=tmp_path):
        call_command("collectstatic", interactive=False, verbosity=0)
    bundle = (tmp_path / BUNDLE).read_bytes()
    assert bundle == BUNDLE_IN_APP.read_bytes()  # under its own name: no manifest, no hashes
    compressed = (tmp_path / f"{BUNDLE}.gz").read_bytes()
    assert gzip.decompress(compressed) == bundle
    assert len(bundle) > 1_000_000
    assert len(compressed) < len(bundle) / 3  # ~1.6 MB to ~0.43 MB
    assert gzip.decompress((tmp_path / f"{ADMIN_CSS}.gz").read_bytes()) == (
        ADMIN_CSS_IN_APP.read_bytes()
    )
    assert not (tmp_path / "staticfiles.json").exists()


def test_the_dockerfile_collects_after_copying_the_code_and_before_dropping_to_the_app_user():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    copy_code = next(i for i, line in enumerate(runtime) if re.fullmatch(r"COPY .*\. \.", line))
    collect = next(i for i, line in enumerate(runtime) if re.match(r"RUN .*collectstatic", line))
    assert copy_code < collect < runtime.index("USER app")
    # No --chown: root owns the code (and the static files), the app user only reads them.
    assert runtime[copy_code] == "COPY . ."
    assert not any("--chown" in line for line in runtime)
    # Throwaway values for that step only, never a real secret baked into the image.
    step = dockerfile_collectstatic_step()
    assert re.search(r"\bSECRET_KEY=\S+", step) and re.search(r"\bDATABASE_URL=\S+", step)
    assert not any(re.match(r"(ENV|ARG)\b.*\bSECRET_KEY\b", line) for line in runtime)


def test_the_image_serves_the_gzip_copy_to_a_client_that_accepts_it(collected):
    plain_size = BUNDLE_IN_APP.stat().st_size
    gzip_size = (collected / f"{BUNDLE}.gz").stat().st_size
    bundle = f"/static/{BUNDLE}"
    answers, _ = ask_the_wsgi_app(
        collected,
        (bundle, "gzip, deflate, br"),
        (bundle, None),
        (bundle, "identity"),
        (f"/static/{ADMIN_CSS}", "gzip"),
    )
    gzipped, no_header, identity, admin_css = answers

    assert gzipped["status"] == "200 OK"
    assert gzipped["headers"]["Content-Encoding"] == "gzip"
    assert gzipped["headers"]["Vary"] == "Accept-Encoding"
    assert gzipped["headers"]["Content-Type"].startswith("text/javascript")
    assert gzipped["size"] == int(gzipped["headers"]["Content-Length"]) == gzip_size

    for plain in (no_header, identity):
        assert plain["status"] == "200 OK"
        assert "Content-Encoding" not in plain["headers"]
        assert plain["headers"]["Vary"] == "Accept-Encoding"  # caches keep both answers apart
        assert plain["size"] == int(plain["headers"]["Content-Length"]) == plain_size

    assert admin_css["status"] == "200 OK"
    assert admin_css["headers"]["Content-Encoding"] == "gzip"
    assert admin_css["size"] == (collected / f"{ADMIN_CSS}.gz").stat().st_size


def test_without_collectstatic_the_apps_files_are_served_as_they_are(tmp_path):
    # make run, make serve, the tests: nothing collected, the files straight from the apps.
    answers, stderr = ask_the_wsgi_app(
        tmp_path / "never-collected",
        (f"/static/{BUNDLE}", "gzip"),
        (f"/static/{ADMIN_CSS}", None),
    )
    bundle, admin_css = answers
    assert bundle["status"] == admin_css["status"] == "200 OK"
    assert "Content-Encoding" not in bundle["headers"]
    assert bundle["size"] == BUNDLE_IN_APP.stat().st_size
    assert admin_css["size"] == ADMIN_CSS_IN_APP.stat().st_size
    assert "No directory at" not in stderr  # whitenoise's warning, expected here, is silenced
