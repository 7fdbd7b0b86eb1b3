"""The Redis cache's one-round-trip counter, and the rate limit counted with it."""

import logging
import uuid

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django_ratelimit.core import get_usage

from todo_project.cache import RedisCache
from todo_project.ratelimit import count_request


def test_count_starts_at_one_and_expires_with_its_window():
    key = f"test-count:{uuid.uuid4()}"
    assert [cache.count(key, 60) for _ in range(3)] == [1, 2, 3]
    assert cache.get(key) == 3
    ttl = cache._cache.get_client(write=True).ttl(cache.make_key(key))
    assert 0 < ttl <= 60


def test_the_counter_and_django_ratelimit_count_the_same_bucket():
    request = RequestFactory().get("/api/v1/tasks/")
    bucket = str(uuid.uuid4())
    first = count_request(request, group="api-user", key=bucket, rate="5/m")
    usage = get_usage(
        request, group="api-user", key=lambda _group, _request: bucket, rate="5/m", increment=True
    )
    second = count_request(request, group="api-user", key=bucket, rate="5/m")
    assert (first.remaining, usage["count"], second.remaining) == (4, 2, 2)
    assert 1 <= second.reset <= 60 and not second.exceeded


def test_past_the_limit_the_counter_says_exceeded():
    request = RequestFactory().get("/api/v1/tasks/")
    bucket = str(uuid.uuid4())
    usages = [count_request(request, group="api-user", key=bucket, rate="2/m") for _ in range(3)]
    assert [(usage.remaining, usage.exceeded) for usage in usages] == [
        (1, False),
        (0, False),
        (0, True),
    ]


def test_with_redis_down_the_counter_fails_open_and_logs_it(dead_redis, caplog):
    request = RequestFactory().get("/api/v1/tasks/")
    with caplog.at_level(logging.WARNING):
        usage = count_request(request, group="api-user", key="someone", rate="5/m")
    assert usage is None
    assert (
        "rate-limit cache unavailable; failing open, asking it again every 5 s" in caplog.messages
    )


@pytest.mark.parametrize(
    ("prefix", "theirs"),
    [
        # Django's clear() is FLUSHDB: the tests clear before each test, and a REDIS_URL shared
        # with a running server (or another deployment) lost every key of theirs.
        ("todo-tests", "someone-elses-key"),
        # Read as a pattern, this prefix matched another's keys.
        ("odd*[x]", "oddQx:1:theirs"),
        # The keys of a cache prefixed "todo:eu" start with "todo:" too.
        ("todo", "todo:eu:1:theirs"),
    ],
)
def test_clearing_the_cache_deletes_its_own_keys_only(settings, prefix, theirs):
    ours = RedisCache(settings.CACHES["default"]["LOCATION"], {"KEY_PREFIX": prefix})
    client = ours._cache.get_client(write=True)
    client.set(theirs, "kept", ex=60)
    ours.set("ours", 1)
    try:
        ours.clear()
        assert ours.get("ours") is None
        assert client.get(theirs) == b"kept"
    finally:
        client.delete(theirs)
