"""Workers keep their PostgreSQL connection from task to task, as DB_CONN_MAX_AGE says, instead of Celery's
Django fixup closing it around every task (a new server process per task: 43 against 56 paid/s under
benchmarks/load_http.py); a broken or expired connection is still closed after its task.

Each case runs in a fresh interpreter on the real PostgreSQL server, with Celery's fixup installed as a
worker installs it, and sends the signals a worker sends around each task."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from bounty_testing import ROOT

pytestmark = pytest.mark.services

POSTGRES_URL = os.environ.get("BOUNTY_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")

TASKS = r"""
import json, sys
import django
django.setup()
import psycopg
from celery import signals
from celery.fixups.django import DjangoWorkerFixup
from django.db import OperationalError, connection
from bounty.celery import app
import bounty.tasks

fixup = DjangoWorkerFixup(app).install()  # kept, as a worker keeps it: its receivers are weak
task = app.tasks["bounty.tasks.sweep"]
seen = []
for number in range(6):
    signals.task_prerun.send(sender=task, task_id=str(number), task=task, args=(), kwargs={})
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            seen.append(cursor.fetchone()[0])
    except OperationalError:
        seen.append("error")
    signals.task_postrun.send(
        sender=task, task_id=str(number), task=task, args=(), kwargs={}, retval=None, state="SUCCESS"
    )
    if number == 2 and sys.argv[1] == "terminate":  # the server drops the connection between two tasks
        with psycopg.connect(sys.argv[2], autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (seen[-1],))
print(json.dumps(seen))
"""


def backend_pids(max_age: str, terminate: bool = False) -> list[object]:
    environment = {
        **os.environ,
        "DATABASE_URL": POSTGRES_URL,
        "DB_CONN_MAX_AGE": max_age,
        "DJANGO_SETTINGS_MODULE": "bounty.settings",
        "PYTHONPATH": str(ROOT),
    }
    dsn = POSTGRES_URL.replace("postgres://", "postgresql://", 1)
    command = [sys.executable, "-c", TASKS, "terminate" if terminate else "keep", dsn]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_a_worker_keeps_its_connection_from_task_to_task() -> None:
    pids = backend_pids("60")
    assert len(set(pids)) == 1, pids


def test_a_dropped_connection_fails_one_task_and_the_next_connects_again() -> None:
    pids = backend_pids("60", terminate=True)
    assert pids[0] == pids[1] == pids[2], pids
    assert pids[3] == "error", pids  # the task retries (bounty.tasks.TRANSIENT); its connection is closed
    assert pids[4] == pids[5] != pids[0], pids


def test_without_a_maximum_age_each_task_has_its_own_connection() -> None:
    # DB_CONN_MAX_AGE=0: what deploy/compose.yaml sets behind PgBouncer, whose pool keeps the server's.
    pids = backend_pids("0")
    assert len(set(pids)) == len(pids), pids
