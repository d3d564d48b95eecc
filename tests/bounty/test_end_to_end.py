"""End to end through the real thing: the web form, Redis, a Celery worker subprocess, the local ledger.

Uses Redis at BOUNTY_TEST_REDIS_URL (default redis://127.0.0.1:6379/15, a database kept for these tests and
flushed before and after) and the test database, which the worker opens through DATABASE_URL.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bounty_testing import ROOT, mnist_pixels, model_artifact
from django.db import connection
from django.test import Client
from PIL import Image

from bounty import chain
from bounty.celery import app as celery_app
from bounty.models import Bounty, ModelVersion, Slot, Submission
from contracts.address import parse_address
from contracts.keys import Key
from contracts.txverify import parse_transaction

REDIS_TEST_URL = os.environ.get("BOUNTY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user, host, port = (
        settings["USER"] or "postgres",
        settings["HOST"] or "127.0.0.1",
        settings["PORT"] or 5432,
    )
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


class Runtime:
    def __init__(self, base: Path, keys_dir: Path) -> None:
        self.base, self.keys_dir = base, keys_dir
        self.ledger, self.media = base / "ledger", base / "media"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": REDIS_TEST_URL,
            "VAR_DIR": str(self.base),
            "LEDGER_DIR": str(self.ledger),
            "MEDIA_ROOT": str(self.media),
            "KEYS_DIR": str(self.keys_dir),
            "CHAIN_BACKEND": "local",
            "NETWORK": "regtest",
            "DJANGO_SETTINGS_MODULE": "bounty.settings",
            "PYTHONPATH": str(ROOT),
        }


def start_worker(runtime: Runtime, name: str, concurrency: int = 1) -> subprocess.Popen:
    log = open(runtime.base / f"{name}.log", "ab")  # noqa: SIM115  (closed with the process)
    command = [sys.executable, "-m", "celery", "-A", "bounty", "worker", "--loglevel", "INFO"]
    command += ["--concurrency", str(concurrency), "--hostname", f"{name}-{os.getpid()}@%h"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(
        command, env=runtime.environment(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )


def wait_for_worker(process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with status {process.returncode}")
        if celery_app.control.ping(timeout=0.5):
            return
    raise RuntimeError("the worker did not answer a ping")


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def use_broker(url: str) -> None:
    """Point this process's Celery app (which the web views publish through) at `url`, dropping any
    connection an earlier test opened to the default broker."""
    celery_app.conf.broker_url = url
    celery_app.pool.force_close_all()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, keys_dir) -> Runtime:  # type: ignore[no-untyped-def]
    return Runtime(tmp_path_factory.mktemp("e2e"), keys_dir)


@pytest.fixture(scope="module")
def worker(runtime: Runtime, django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen]:  # type: ignore[no-untyped-def]
    broker = redis.Redis.from_url(REDIS_TEST_URL)
    broker.flushdb()
    use_broker(REDIS_TEST_URL)
    process = start_worker(runtime, "e2e")
    try:
        wait_for_worker(process)
        yield process
    finally:
        stop_worker(process)
        broker.flushdb()


@pytest.fixture
def live_bounty(runtime: Runtime, settings) -> Bounty:  # type: ignore[no-untyped-def]
    settings.LEDGER_DIR, settings.MEDIA_ROOT = runtime.ledger, runtime.media
    chain.reset()
    version = ModelVersion.register(model_artifact(), name="e2e", activate=True)
    chain.faucet(chain.operator_address(), 1_000_000)
    cost = chain.claim_cost(version, 7, settings.FEE_RATE)
    operator, admin = chain.public_keys()
    bounty = Bounty.objects.create(
        digit=7, reward=1000, slot_count=2, model_version=version, fee_rate=settings.FEE_RATE,
        claim_fee=cost["claim_fee"], operator_pubkey=operator, admin_pubkey=admin,
    )  # fmt: skip
    from bounty.funding import fund_and_deploy

    fund_and_deploy(bounty)
    return bounty


def png_of(pixels) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).resize((140, 140)).save(buffer, format="PNG")  # a dark digit on paper
    return buffer.getvalue()


def upload(bounty: Bounty, png: bytes, address: str) -> Submission:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = Client().post(
        f"/bounties/{bounty.pk}/",
        {"payout_address": address, "image": SimpleUploadedFile("digit.png", png, "image/png")},
    )
    assert response.status_code == 302, response.content[:500]
    return Submission.objects.get(public_id=response["Location"].split("/")[-2])


def wait_for_state(submission: Submission, states: set[str], timeout: float = 60) -> Submission:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        submission.refresh_from_db()
        if submission.state in states:
            return submission
        time.sleep(0.2)
    raise AssertionError(f"submission stayed {submission.state}, expected one of {states}")


def test_it_takes_an_mnist_upload_to_a_confirmed_paid_claim(worker, live_bounty) -> None:  # type: ignore[no-untyped-def]
    address = Key.generate("testnet").address
    submission = upload(live_bounty, png_of(mnist_pixels(7, 2)), address)
    wait_for_state(submission, {"broadcast", "rejected"})
    assert submission.state == "broadcast", submission.reason_text
    assert submission.predicted_digit == 7
    chain.mine(1)
    celery_app.send_task("bounty.tasks.poll_confirmations")
    wait_for_state(submission, {"confirmed"})
    claim = submission.claim_tx
    assert claim is not None and claim.block_height == chain.ping()
    paid = parse_transaction(chain.backend().get_transaction(claim.txid)).outputs
    assert [(o.satoshis, o.locking_script.serialize()) for o in paid] == [
        (1000, parse_address(address).locking_script())
    ]
    assert Slot.objects.get(submission=submission).state == "claimed"
    page = Client().get(f"/submissions/{submission.public_id}/status.json").json()
    assert (page["paid"], page["txid"], page["amount"]) == (True, claim.txid, 1000)


def test_it_rejects_another_digit_clearly_and_spends_no_slot(worker, live_bounty) -> None:  # type: ignore[no-untyped-def]
    submission = upload(live_bounty, png_of(mnist_pixels(3, 2)), Key.generate("testnet").address)
    wait_for_state(submission, {"rejected", "broadcast"})
    assert submission.reason == "wrong_digit"
    assert "read your image as a 3" in submission.reason_text
    assert live_bounty.slots.filter(state="free").count() == 2
