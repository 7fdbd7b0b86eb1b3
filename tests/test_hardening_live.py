"""ETags and Idempotency-Key hold across processes: real gunicorn with two workers.

Both mechanisms keep their state in PostgreSQL (row locks, the idempotency table), so a retry
or a racing write is handled the same whichever worker answers it.
"""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from accounts.tokens import RefreshToken
from tasks.models import Task
from todo_project.tests.helpers import wait_for_lock_waiters
from todo_project.tests.test_ratelimit_global import gunicorn  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.live_server_processes, pytest.mark.django_db(transaction=True)]


def call(method: str, url: str, access: str, body: dict | None = None, **headers: str):
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {access}",
            "Content-Type": "application/json",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_burst_of_retries_with_one_key_creates_one_task(make_user, gunicorn):  # noqa: F811
    base, _ = gunicorn
    user = make_user(email="live-retry@example.com")
    access = str(RefreshToken.for_user(user).access_token)
    body = {"title": "Pay rent", "priority": "high"}

    def post(_):
        return call("POST", f"{base}/api/v1/tasks/", access, body, **{"Idempotency-Key": "r-1"})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    assert Task.objects.filter(owner=user).count() == 1

    status, headers, content = post(None)
    assert (status, headers["Idempotent-Replayed"]) == (201, "true")
    assert json.loads(content)["id"] == str(Task.objects.get(owner=user).pk)


def test_two_writers_with_one_etag_one_gets_412(make_user, gunicorn):  # noqa: F811
    base, _ = gunicorn
    user = make_user(email="live-etag@example.com")
    access = str(RefreshToken.for_user(user).access_token)
    created, _, content = call("POST", f"{base}/api/v1/tasks/", access, {"title": "Original"})
    assert created == 201
    task_id = json.loads(content)["id"]
    results: dict[str, int] = {}

    def patch(title: str) -> None:
        url = f"{base}/api/v1/tasks/{task_id}/"
        results[title] = call("PATCH", url, access, {"title": title}, **{"If-Match": '"1"'})[0]

    threads = [threading.Thread(target=patch, args=(title,)) for title in ("A", "B")]
    with transaction.atomic():  # the test holds the row: both writers queue behind it
        Task.objects.select_for_update().get(pk=task_id)
        for thread in threads:
            thread.start()
        # Both wait on the lock. (Polled here without wait_for_lock_waiters' snapshot reset,
        # the count never changed inside this transaction: the loop always ran its 15 s out.)
        assert wait_for_lock_waiters(connection, 2)
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results.values()) == [200, 412], results
    task = Task.objects.get(pk=task_id)
    assert task.version == 2 and results[task.title] == 200


def test_a_304_through_gunicorn_has_no_body_nor_length_and_the_connection_goes_on(
    make_user,
    gunicorn,  # noqa: F811
):
    """No `Content-Length: 0` (RFC 9110, 8.6), and no chunked framing either: the next answer
    on the same keep-alive connection reads whole."""
    import http.client
    from urllib.parse import urlsplit

    base, _ = gunicorn
    user = make_user(email="live-304@example.com")
    access = str(RefreshToken.for_user(user).access_token)
    _, headers, content = call("POST", f"{base}/api/v1/tasks/", access, {"title": "t"})
    path, auth = (
        f"/api/v1/tasks/{json.loads(content)['id']}/",
        {"Authorization": f"Bearer {access}"},
    )
    server = urlsplit(base)
    client = http.client.HTTPConnection(server.hostname, server.port, timeout=20)
    client.request("GET", path, headers={**auth, "If-None-Match": headers["ETag"]})
    not_modified = client.getresponse()
    assert (not_modified.status, not_modified.read()) == (304, b"")
    assert not_modified.getheader("Content-Length") is None
    assert not_modified.getheader("Transfer-Encoding") is None
    client.request("GET", path, headers=auth)  # the same connection
    assert json.loads(client.getresponse().read())["title"] == "t"
    client.close()
