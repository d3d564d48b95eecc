"""The bytes of original uploads kept, as one tally in Redis that every web process reads and adds to.

The cap on stored originals (MAX_STORED_ORIGINALS_BYTES) needs this total before each upload is stored.
Summing it from the submissions costs a scan of the whole table (0.24 s of three PostgreSQL processes at a
million rows), which each web process used to do at its first request and every minute after: at a million
rows that alone took the scale benchmark from 40 to 33 paid/s. Now:

- a request reads the tally with one Redis GET, and a stored upload adds its size (only to a tally that
  exists, so an expired one is never restarted from a partial sum);
- the tally is counted from the database when it is missing: by a worker as it starts (bounty.warmup), by the
  daily expiry of rejected originals (which changes it), and, if neither has, by the first request that
  needs it, one thread per process at a time. It expires after a day, so any drift (an upload stored but not
  added, a submission deleted by hand) lasts a day at most;
- if Redis cannot be reached, each process counts from the database, at most once a minute (Django's cache).

The key names the database, so deployments (or test runs) sharing one Redis never share a tally.
"""

from __future__ import annotations

import contextlib
import threading

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Sum

from bounty import redis_client
from bounty.models import Submission

TALLY_SECONDS = 24 * 3600
LOCAL_SECONDS = 60  # when Redis cannot be reached
_COUNTING = threading.Lock()
# INCRBY only a tally that exists: a missing one is counted again from the database, never from one upload.
_ADD_IF_PRESENT = (
    "if redis.call('exists', KEYS[1]) == 1 then return redis.call('incrby', KEYS[1], ARGV[1]) end"
)


def key() -> str:
    return f"bounty:stored-original-bytes:{connection.settings_dict['NAME']}"


def _client() -> redis.Redis:
    return redis_client.shared(settings.REDIS_URL)


def counted() -> int:
    """The sum over every submission: a scan of the table."""
    return int(Submission.objects.aggregate(total=Sum("original_bytes"))["total"] or 0)


def total() -> int:
    """The bytes kept: the tally, counted first if it is missing."""
    try:
        kept = _client().get(key())
    except redis.RedisError:
        return _local_total()
    if kept is not None:
        return int(kept)
    with _COUNTING:  # the other threads of this process wait for this count rather than scan again
        return recount(only_if_missing=True)


def recount(*, only_if_missing: bool = False) -> int:
    """Count from the database and store it as the tally (unless `only_if_missing` and one exists)."""
    if only_if_missing:
        with contextlib.suppress(redis.RedisError):
            kept = _client().get(key())
            if kept is not None:
                return int(kept)
    value = counted()
    with contextlib.suppress(redis.RedisError):
        _client().set(key(), value, ex=TALLY_SECONDS)
    cache.set(key(), value, LOCAL_SECONDS)
    return value


def add(size: int) -> None:
    """An upload of `size` bytes was stored: add it, so a flood is counted before the next recount."""
    with contextlib.suppress(redis.RedisError):
        _client().eval(_ADD_IF_PRESENT, 1, key(), size)
    with contextlib.suppress(ValueError):  # no local count yet: the next one includes this upload
        cache.incr(key(), size)


def forget() -> None:
    """Drop the tally and this process's local count (the next reader counts again)."""
    with contextlib.suppress(redis.RedisError):
        _client().delete(key())
    cache.delete(key())


def _local_total() -> int:
    kept = cache.get(key())
    if kept is not None:
        return int(kept)
    with _COUNTING:
        kept = cache.get(key())
        if kept is None:
            kept = counted()
            cache.set(key(), kept, LOCAL_SECONDS)
    return int(kept)
