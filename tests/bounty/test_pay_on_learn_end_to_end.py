"""Pay on learn end to end on the real thing: the web form, Redis, a Celery worker subprocess, the local
ledger. A 7 the bounty's model misreads is kept pending (the status page says so); a better model is
promoted, the worker moves the bounty's slots to it, re-reads the pending image and pays it from a migrated
slot; the status page names the version that paid it."""

from __future__ import annotations

from pathlib import Path

import pytest
from bounty_testing import deployed_bounty, mnist_test_set
from django.test import Client
from test_end_to_end import png_of, upload, wait_for_state
from test_pay_on_learn import sevens, weakened

from bounty import chain
from bounty.celery import app as celery_app
from bounty.models import ModelVersion, Slot
from bounty.retraining import redeploy
from bounty.retraining.models import Redeployment
from contracts.address import parse_address
from contracts.keys import Key
from contracts.txverify import parse_transaction

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_kept_image_is_paid_when_the_promoted_model_reads_it(worker, live_bounty, runtime) -> None:  # type: ignore[no-untyped-def]
    learned = live_bounty.model_version  # the test model: it reads the chosen 7 correctly
    artifact = weakened(str(Path(runtime.media)))
    weak = ModelVersion.register(artifact, name="weak-e2e", activate=True)
    bounty = deployed_bounty(weak, 7, slots=3)
    x_test, _ = mnist_test_set()
    learnable, _ = sevens(artifact)
    address = Key.generate("testnet").address
    # The upload goes through the form's preprocessing: pick the first 7 that still reads as another digit
    # to the weak model and as a 7 to the test model once it is a 28x28 submission.
    submission = None
    for index in learnable[:10]:
        candidate = upload(bounty, png_of(x_test[index]), address)
        candidate = wait_for_state(candidate, {"pending", "broadcast", "rejected"})
        if candidate.state == "pending":
            submission = candidate
            break
    assert submission is not None, "no upload of a misread 7 was kept pending"
    assert bounty.slots.free().exists(), "a slot is left for it"
    status = Client().get(f"/submissions/{submission.public_id}/status.json").json()
    assert status["pending"] and status["final"] and not status["paid"]
    assert "will be paid automatically" in status["pending_note"]
    assert "Keep this link" in status["pending_note"]

    redeploy.start(learned, Redeployment.Kind.PROMOTION, "end-to-end promotion")
    celery_app.send_task("bounty.retraining.tasks.resume_redeployments")
    submission = wait_for_state(submission, {"broadcast", "rejected"}, timeout=180)
    assert submission.state == "broadcast", submission.reason_text
    assert submission.paid_by_version == learned
    slot = Slot.objects.get(submission=submission)
    assert slot.bounty_id == bounty.pk and slot.deploy_tx.kind == "migrate"
    claim = submission.claim_tx
    assert claim is not None
    paid = parse_transaction(chain.backend().get_transaction(claim.txid)).outputs
    assert [(o.satoshis, o.locking_script.serialize()) for o in paid] == [
        (bounty.reward, parse_address(address).locking_script())
    ]
    page = Client().get(f"/submissions/{submission.public_id}/").content.decode()
    assert f"model version {learned.name}" in page
