"""End to end through the real thing: the web form, Redis, a Celery worker subprocess, the local ledger
(fixtures in `bounty_services`)."""

from __future__ import annotations

import io
import time

import pytest
from bounty_testing import mnist_pixels
from django.test import Client
from PIL import Image

from bounty import chain
from bounty.celery import app as celery_app
from bounty.models import Bounty, Slot, Submission
from contracts.address import parse_address
from contracts.keys import Key
from contracts.txverify import parse_transaction

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


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
    # A bounty that keeps no image for a later model (pay on learn: test_pay_on_learn_end_to_end.py).
    Bounty.objects.filter(pk=live_bounty.pk).update(pending_days=0)
    submission = upload(live_bounty, png_of(mnist_pixels(3, 2)), Key.generate("testnet").address)
    wait_for_state(submission, {"rejected", "broadcast"})
    assert submission.reason == "wrong_digit"
    assert "read your image as a 3" in submission.reason_text
    assert live_bounty.slots.filter(state="free").count() == 2
