"""What README.md, bench/README.md and the commands' docstrings say about the repository itself
(its migrations, test files and modules), checked against it so it cannot go stale."""

import json
import re
from pathlib import Path

import pytest

from conftest import client_for
from tasks import services
from tasks.models import TaskList
from todo_project.problems import MAX_URL_BYTES, title_for

ROOT = Path(__file__).resolve().parent.parent


def labels_named(text: str) -> set[str]:
    """ "tasks.0008, 0011, accounts.0008" (backticks or not) as {tasks.0008, tasks.0011, ...}:
    a bare number belongs to the app named last."""
    labels, app = set(), None
    for named_app, number in re.findall(r"(?:([a-z]+)\.)?(\d{4})", text):
        app = named_app or app
        labels.add(f"{app}.{number}")
    return labels


def test_the_docs_name_every_migration_that_builds_an_index_concurrently():
    # The README and migrate.py named tasks.0008, 0011 (and 0014): an operator planning a
    # release's write pause from that list missed 0016, 0017 and accounts.0008 (review 31c).
    building = {
        f"{path.parent.parent.name}.{path.name[:4]}"
        for path in ROOT.glob("*/migrations/0*.py")
        if "build_concurrently(" in path.read_text()
    }
    assert {"tasks.0008", "accounts.0008"} <= building
    readme = " ".join((ROOT / "README.md").read_text().split())
    docstring = " ".join((ROOT / "tasks/management/commands/migrate.py").read_text().split())
    for text in (readme, docstring):
        named = re.search(r"CREATE INDEX CONCURRENTLY`? \(([^)]*)\)", text)
        assert named, "the sentence moved"
        assert labels_named(named.group(1)) == building


@pytest.mark.parametrize("document", ["README.md", "bench/README.md"])
def test_every_test_file_the_docs_name_exists(document):
    # bench/README.md sent its reader to tasks/tests/test_rank_plans.py, renamed
    # test_query_plans.py since (review 31c).
    text = (ROOT / document).read_text()
    named = set(re.findall(r"(?<![\w/.])((?:[a-z_]+/)+test_[a-z0-9_]+\.py)", text))
    assert named, "no test file named any more"
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_the_layout_names_every_module_of_todo_project():
    # "The rest of todo_project/" left out parsers.py, cache.py, commands.py, reporting.py,
    # healthcheck.py, testing.py and the formats/ and templates/ directories (review 31c).
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    package = ROOT / "todo_project"
    modules = [f"{path.name}" for path in package.glob("*.py") if path.stem != "__init__"]
    directories = [f"{path.name}/" for path in package.iterdir() if path.is_dir()]
    directories = [name for name in directories if name not in {"tests/", "__pycache__/"}]
    # "settings, urls, wsgi/asgi" name those four without their .py.
    named = re.sub(r"\b(settings|urls|wsgi|asgi)\b", r"\1.py", layout)
    assert sorted(name for name in modules + directories if name not in named) == []


@pytest.mark.django_db
def test_the_readme_has_the_proxy_compress_only_answers_without_an_etag(user):
    # nginx marks a strong ETag weak when it compresses, and a weak tag never matches If-Match:
    # compressing a task or a list would make every conditional write of its clients a 412.
    task = services.task_create(user=user, data={"title": "a"})
    task_list = TaskList.objects.create(owner=user, name="Home", position=1)
    located = re.search(r"location ~ (\S+) \{\n\s*gzip on;", (ROOT / "README.md").read_text())
    assert located, "the nginx example moved"
    client = client_for(user)
    compressed = {}
    for path in [
        "/api/v1/tasks/",
        "/api/v1/tasks/changes/",
        "/api/v1/lists/",
        "/api/v1/tags/",
        f"/api/v1/tasks/{task.pk}/",
        f"/api/v1/lists/{task_list.pk}/",
        "/api/v1/auth/me/",
    ]:
        response = client.get(path)
        assert response.status_code == 200
        if re.search(located.group(1), path):
            compressed[path] = response.get("ETag")
    assert compressed == dict.fromkeys(
        ["/api/v1/tasks/", "/api/v1/tasks/changes/", "/api/v1/lists/", "/api/v1/tags/"]
    )


def test_the_readme_s_nginx_problems_are_shaped_as_the_app_s(anon_client, settings):
    # A client handles nginx's 503, 413, 414 and 431 with the code it has for the app's problems.
    readme = (ROOT / "README.md").read_text()
    app_problem = anon_client.get("/api/v1/no-such-route/").json()
    answers = re.findall(r"return (\d{3}) '(\{.*\})';", readme)
    assert [status for status, _ in answers] == ["503", "413", "414", "431"]
    for status, body in answers:
        problem = json.loads(body.replace("$request_id", "x"))
        assert set(problem) == set(app_problem), status
        assert (problem["status"], problem["title"]) == (int(status), title_for(int(status)))
    assert f"larger than {settings.MAX_REQUEST_BODY_BYTES} bytes" in readme
    assert f"longer than {MAX_URL_BYTES} bytes" in readme


def test_the_readme_s_nginx_example_hides_nginx_s_version_in_every_answer():
    # Set in the 443 server only, the port-80 server's 301 still named nginx's version (32e).
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```nginx\n(.*?)```", readme, re.DOTALL).group(1)
    outside, *servers = re.split(r"(?m)^server \{", block)
    assert servers, "the nginx example moved"
    assert "server_tokens off;" in outside or all("server_tokens off;" in s for s in servers)


def test_the_readme_s_docker_run_allows_the_origins_its_nginx_map_allows():
    # The nginx example answers CORS for https://app.example.com (its `map`, "#
    # CORS_ALLOWED_ORIGINS"), and FRONTEND_URL is that origin; the docker run example set no
    # CORS_ALLOWED_ORIGINS, whose default is none: the browser app's every request failed
    # its preflight (review 47d, the image's command run with those variables).
    readme = (ROOT / "README.md").read_text()
    mapped = re.search(r"map \$http_origin \$cors_origin \{(.*?)\}", readme)[1]
    origins = set(re.findall(r'"(https?://[^"]+)" \$http_origin', mapped))
    run = re.search(r"^docker run .*?^  todo$", readme, re.DOTALL | re.MULTILINE)[0]
    allowed = re.search(r"-e CORS_ALLOWED_ORIGINS=(\S+)", run)
    frontend = re.search(r"-e FRONTEND_URL=(\S+)", run)[1]

    assert origins == {frontend}
    assert allowed, "the docker run example sets no CORS_ALLOWED_ORIGINS"
    assert set(allowed[1].split(",")) == origins
