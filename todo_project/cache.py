"""Django's Redis cache backend, keeping one client per connection pool, plus a counter.

Django builds a new `redis.Redis` for every cache call, and its constructor fills a table of
~170 response callbacks each time: about 0.1 ms of CPU per call. The client is thread-safe and
the pool was shared already, so one client per pool does the same work for a third of the CPU
(bench/README.md).

`count()` is the rate limit's counter in one round trip: django-ratelimit's `get_usage` asks
the cache three times per request (SET NX, then Django's `incr` is EXISTS + INCR).
"""

import re

from django.core.cache.backends import redis as django_redis

# INCR, and the window's expiry on the first count: what SET NX EX + INCR did, atomically.
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict = {}
        self._count_script = None

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._client(connection_pool=self._get_connection_pool(write))
            self._clients[index] = client
        return client

    def count(self, key: str, timeout: int) -> int:
        client = self.get_client(key, write=True)
        if self._count_script is None:
            # EVALSHA of the script (loaded on first use, again after a Redis restart).
            self._count_script = client.register_script(COUNT_SCRIPT)
        return int(self._count_script(keys=[key], args=[timeout], client=client))


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def count(self, key: str, timeout: int) -> int:
        """Adds one to the counter `key` (created at 1, living `timeout` seconds); its value."""
        return self._cache.count(self.make_and_validate_key(key), timeout)

    def clear(self) -> None:
        """Deletes this cache's keys (its KEY_PREFIX) only. Django's clear() empties the whole
        Redis database (FLUSHDB): whatever else shares it, another deployment or the server a
        developer runs beside the tests (which clear before every test), lost its keys."""
        client = self._cache.get_client(write=True)
        batch = []
        # The prefix as a literal: a * ? [ ] or \ in CACHE_KEY_PREFIX must match only itself.
        # With the version after it, as make_key() writes keys: "todo:*" would also match the
        # keys of a cache prefixed "todo:eu".
        prefix = re.sub(r"([*?\[\]\\])", r"\\\1", self.key_prefix)
        for key in client.scan_iter(match=f"{prefix}:{self.version}:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
