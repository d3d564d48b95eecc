"""One Redis client per process and URL for the service's own keys (the worker heartbeat, the tally of stored
originals): its connection pool is reused from call to call, and redis-py opens a new one in a forked child.
Celery keeps its own connections to the broker."""

from __future__ import annotations

import functools

import redis


@functools.lru_cache(maxsize=4)
def shared(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
