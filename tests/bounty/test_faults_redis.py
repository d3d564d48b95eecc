"""Redis restarted (a private redis-server on a free loopback port, no persistence, so a restart loses every
queued message): while tasks are queued, while the broker is down at submit time, and while a worker runs
tasks. The form still accepts submissions, the worker reconnects, the sweeper requeues what was lost."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis
from bounty_services import stop_worker
from bounty_testing import NOT_ON_POSTGRES_RERUN, mnist_pixels
from fault_support import (
    FAULT_QUEUE,
    SETTLED,
    check_invariants,
    default_routes,
    deploy_bounty,
    png_of,
    route_tasks_to,
    settled,
    start_fault_worker,
    upload,
    wait_until,
)

from bounty.celery import app as celery_app
from bounty.models import Submission
from contracts.keys import Key

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True), NOT_ON_POSTGRES_RERUN]


class PrivateRedis:
    def __init__(self, workdir) -> None:  # type: ignore[no-untyped-def]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.answers, timeout=10, what="redis-server to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def queued(self) -> int:
        return int(redis.Redis.from_url(self.url).llen(FAULT_QUEUE))


@pytest.fixture
def private_redis(tmp_path):  # type: ignore[no-untyped-def]
    assert shutil.which("redis-server"), "redis-server is needed for this test"
    server = PrivateRedis(tmp_path)
    server.start()
    route_tasks_to(FAULT_QUEUE, server.url)
    yield server
    server.stop()
    default_routes()


def sweep_until_settled(timeout: float = 120) -> None:
    """What beat does every minute, faster: ask the worker to sweep until nothing is left."""
    deadline = time.monotonic() + timeout
    while not settled():
        assert time.monotonic() < deadline, list(Submission.objects.exclude(state__in=SETTLED))
        celery_app.send_task("bounty.tasks.sweep", queue=FAULT_QUEUE)
        time.sleep(1.5)


def test_nothing_is_lost_when_redis_restarts(runtime, settings, private_redis) -> None:  # type: ignore[no-untyped-def]
    bounty = deploy_bounty(runtime, settings, slots=6)

    def submit(nth: int) -> Submission:
        return upload(bounty, png_of(mnist_pixels(7, nth)), Key.generate("testnet").address)

    # Queued with no worker, then the restart drops the queue.
    submit(0), submit(1)
    assert private_redis.queued() == 2
    private_redis.restart()
    assert private_redis.queued() == 0

    # The broker down at submit time: the form still takes the image; the task is published later.
    private_redis.stop()
    submit(2)
    private_redis.start()

    worker = start_fault_worker(runtime, private_redis.url, FAULT_QUEUE, "redis-restart")
    try:
        # Restarted while the worker runs tasks: it reconnects, and what was in flight is swept up.
        running = [submit(3), submit(4), submit(5)]
        wait_until(
            lambda: (
                Submission.objects.filter(pk__in=[s.pk for s in running]).exclude(state="received").exists()
            ),
            what="the worker to start on the burst",
        )
        private_redis.restart()
        sweep_until_settled()
        assert worker.poll() is None, "the worker died with the broker"
    finally:
        stop_worker(worker)
    assert set(Submission.objects.values_list("state", flat=True)) == {"broadcast"}
    assert check_invariants(runtime.ledger)["paid"] == 6
