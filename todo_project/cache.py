"""Django's Redis cache backend, keeping one client per connection pool.

Django builds a new `redis.Redis` for every cache call, and its constructor fills a table of
~170 response callbacks each time: about 0.1 ms of CPU per call, and an API request makes three
(rate limit, logout denylist). The client is thread-safe and the pool was shared already, so
one client per pool does the same work for a third of the CPU (bench/README.md).
"""

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._client(connection_pool=self._get_connection_pool(write))
            self._clients[index] = client
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
