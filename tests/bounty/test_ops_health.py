"""/healthz, /readyz and `manage.py health`."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from redis_databases import redis_url

from bounty.ops import heartbeat, probes

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_heartbeat(settings):  # type: ignore[no-untyped-def]
    url = settings.REDIS_URL = redis_url("ops")
    for kind in heartbeat.KINDS:
        heartbeat.record(kind)
    yield
    import redis

    redis.Redis.from_url(url).delete(*(heartbeat.KEY_PREFIX + k for k in heartbeat.KINDS))


def test_it_answers_healthz_without_touching_anything(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_it_is_ready_when_every_probe_passes(client, fresh_heartbeat) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert [c["name"] for c in body["checks"]] == ["database", "redis", "chain", "worker"]


def test_it_is_not_ready_with_a_stale_heartbeat(client, fresh_heartbeat, settings) -> None:  # type: ignore[no-untyped-def]
    import time

    settings.HEARTBEAT_MAX_AGE = 30
    heartbeat.record("beat", now=time.time() - 45)
    response = client.get("/readyz")
    assert response.status_code == 503
    worker = next(c for c in response.json()["checks"] if c["name"] == "worker")
    assert not worker["ok"] and "beat heartbeat" in worker["detail"]


def test_it_redacts_the_redis_password_when_redis_is_down(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://:hunter2secret@127.0.0.1:1/0"
    result = probes.run("redis")
    assert not result.ok
    assert "hunter2secret" not in result.detail


def test_the_command_prints_a_table_and_json_and_fails_when_not_ready(
    fresh_heartbeat, capsys, settings
) -> None:  # type: ignore[no-untyped-def]
    call_command("health")
    table = capsys.readouterr().out
    assert "database" in table and "worker" in table and "FAIL" not in table
    call_command("health", "--json", "--only", "database")
    assert json.loads(capsys.readouterr().out)["status"] == "ready"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="redis"):
        call_command("health", "--only", "redis")
