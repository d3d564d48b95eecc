"""End to end: the retrain task on a real Celery worker (Redis db 12), a short real training, the gate, the
promotion and the migration of a live bounty's slots on the local ledger; a second retrain meanwhile is
refused by the lock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from bounty_services import Runtime, start_worker, stop_worker, use_broker, wait_for_worker
from bounty_testing import mnist_test_set, model_artifact
from redis_databases import redis_url

from bounty import chain
from bounty.celery import app as celery_app
from bounty.funding import fund_and_deploy
from bounty.models import Bounty, ModelVersion, Slot, Submission, Transaction
from bounty.retraining import job
from bounty.retraining.models import Redeployment, RetrainingRun
from classifier.integer_model import IntegerModel

# Settings that make a retraining run take seconds (a short training on a MNIST subset).
SHORT_ENVIRONMENT = {
    "RETRAIN_OPTIONS": json.dumps({"epochs": 2, "prune_steps": 1, "prune_epochs": 1, "quant_epochs": 1}),
    "RETRAIN_MNIST_LIMIT": "6000",
    "RETRAIN_MIN_NEW_IMAGES": "1",
    "RETRAIN_HELDOUT_PERCENT": "0",
    "RETRAIN_GATE_DIGITS": "7",
    "RETRAIN_MAX_ACCURACY_DROP": "0.01",
    # A short training on a subset beats the weakened base but not the MNIST floor, and there are no held-out
    # images to test a gain on: this test is about the promotion and the migration, the gate has its own.
    "RETRAIN_MIN_MNIST_ACCURACY": "0",
    "RETRAIN_HELDOUT_MAX_P": "1",
}

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
REDIS_URL = redis_url("retraining")


class RetrainRuntime(Runtime):
    def environment(self) -> dict[str, str]:
        return {**super().environment(), "REDIS_URL": REDIS_URL, **SHORT_ENVIRONMENT}


@pytest.fixture(scope="module")
def retrain_worker(tmp_path_factory, keys_dir, django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    runtime = RetrainRuntime(tmp_path_factory.mktemp("retrain"), keys_dir)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    use_broker(REDIS_URL)
    process = start_worker(runtime, "retrain")
    try:
        wait_for_worker(process, timeout=120)
        yield runtime
    finally:
        stop_worker(process)
        broker.flushdb()


def weakened(directory: Path) -> Path:
    """The test model with all but 8 hidden units cut from layer 2 (about 39% accurate): a base model that a
    short retraining beats, so the gate has something to promote."""
    model = IntegerModel.load(model_artifact())
    w2 = model.w2.copy()
    w2[8:] = 0
    return IntegerModel(model.w1, model.b1, w2, model.b2, manifest={}).save(directory / "weak.npz")


def test_it_retrains_promotes_and_migrates_the_slots(retrain_worker, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LEDGER_DIR, settings.MEDIA_ROOT = retrain_worker.ledger, retrain_worker.media
    chain.reset()
    base = ModelVersion.register(weakened(retrain_worker.base), name="weak", activate=True)
    chain.faucet(chain.operator_address(), 1_000_000)
    cost = chain.claim_cost(base, 7, settings.FEE_RATE)
    operator, admin = chain.public_keys()
    bounty = Bounty.objects.create(
        digit=7, reward=1000, slot_count=2, model_version=base, fee_rate=settings.FEE_RATE,
        claim_fee=cost["claim_fee"], operator_pubkey=operator, admin_pubkey=admin,
    )  # fmt: skip
    fund_and_deploy(bounty)
    old_slots = list(bounty.slots.values_list("pk", flat=True))
    x_test, y_test = mnist_test_set()
    for i in np.flatnonzero(y_test == 7)[:5]:
        Submission.objects.create(
            bounty=bounty, pixels=x_test[i].tobytes(), pixel_sha256=f"{i:064x}", phash="0" * 64,
            claimed_digit=7, payout_address=chain.operator_address(), state=Submission.State.CONFIRMED,
        )  # fmt: skip

    started = time.monotonic()
    celery_app.send_task("bounty.retraining.tasks.retrain", kwargs={"trigger": "test", "force": True})
    deadline = time.monotonic() + 150
    second = None
    while time.monotonic() < deadline:
        run = RetrainingRun.objects.filter(trigger="test").first()
        if run is not None and second is None and run.state == RetrainingRun.State.RUNNING and run.heartbeat:
            second = job.retrain("concurrent", force=True)  # while the worker trains
        if run is not None and run.state != RetrainingRun.State.RUNNING:
            break
        time.sleep(0.5)
    assert run is not None and run.state == RetrainingRun.State.PROMOTED, run and run.reason
    assert second is not None and second.state == RetrainingRun.State.SKIPPED
    assert "another retraining is running" in second.reason
    assert run.gate["mnist_accuracy"]["new"] > run.gate["mnist_accuracy"]["old"]

    while time.monotonic() < deadline and not Redeployment.objects.filter(state="done").exists():
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    bounty.refresh_from_db()
    assert bounty.model_version == run.candidate and run.candidate.is_active
    new_slots = list(bounty.slots.filter(state=Slot.State.FREE))
    assert len(new_slots) == 2
    migration = new_slots[0].deploy_tx
    assert migration.status == Transaction.Status.BROADCAST
    assert set(Slot.objects.filter(pk__in=old_slots).values_list("spent_by", flat=True)) == {migration.pk}
    print(
        f"\nretrain+redeploy {elapsed:.1f} s (run {run.seconds} s), MNIST accuracy "
        f"{run.gate['mnist_accuracy']['old']:.4f} -> {run.gate['mnist_accuracy']['new']:.4f}, "
        f"migration 1 tx of {migration.size} bytes, fee {migration.fee}"
    )
