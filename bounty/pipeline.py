"""The pipeline that takes a submission from "received" to a paid claim, as plain functions.

`process(submission_id)` moves a submission as far as it can go from whatever state it is in, so running
it twice, or again after a worker died anywhere, is safe: each step ends in one conditional state change, a
slot is reserved by a conditional update, and a claim is stored in the database before it is broadcast.
Celery tasks (`bounty.tasks`) only call these functions.

    received --classify, duplicates, rate limits--> checked --(review)--> held --approve--> checked
    received --another digit, kept--> pending --a promoted model reads the digit--> checked (pay on learn)
    checked --reserve slot, build and verify claim, store it--> verified --broadcast--> broadcast
    broadcast --block--> confirmed;  any step may end in rejected, with a reason
    verified/broadcast --the slot lost to a payment elsewhere--> checked (another slot)
    verified/broadcast --refused, the slot unspent--> checked (the same slot, a new claim: bounty.claims)
    verified/broadcast --unreachable or refused too often--> stalled --admin retries--> checked
                                                                     --admin gives up--> rejected

Around it: `bounty.classify` (what the models say), `bounty.screening` (duplicates, rate limits, holds),
`bounty.payouts` (how a contested or refused claim is settled, exactly once), `bounty.confirmations` (blocks
and callbacks) and `bounty.sweeper` (work left behind). A step whose conditional update loses to another
worker finds the submission as that worker left it (`Submission.advance`) and the loop carries on from there.
"""

from __future__ import annotations

import logging
from enum import Enum

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bounty import batches, chain
from bounty.claims import store_claim
from bounty.classify import ask_second_opinion, classify, second_opinion_of
from bounty.faults import fault_point
from bounty.models import Bounty, Reason, Slot, Submission, Transaction
from bounty.payouts import TryLater, give_up_broadcasting, send, settle_claim
from bounty.queue import enqueue
from bounty.retraining import pending
from bounty.screening import SECOND_OPINION_HOLDS, hold_reason, screen

log = logging.getLogger(__name__)


class Stage(Enum):
    """The steps each queue's workers run when verification and broadcast have queues of their own
    (CELERY_VERIFY_QUEUE, CELERY_BROADCAST_QUEUE; bounty.tasks): the states each stage moves on from."""

    VERIFY = (Submission.State.RECEIVED, Submission.State.CHECKED)
    BROADCAST = (Submission.State.VERIFIED,)


def process(submission_id: int, stage: Stage | None = None) -> str:
    """Advance one submission as far as it can go now (or, given a stage, as far as that stage's steps
    take it); returns its state.

    Steps run until one leaves the state unchanged; a step may also send a submission back (a claim whose
    slot was spent elsewhere returns to "checked" and the next round reserves another slot).
    """
    submission = Submission.objects.select_related("bounty__model_version").get(pk=submission_id)
    steps = STEPS if stage is None else {state: STEPS[state] for state in stage.value}
    while (step := steps.get(Submission.State(submission.state))) is not None:
        before = submission.state
        step(submission)
        if submission.state == before:
            break
    return submission.state


def check(submission: Submission) -> None:
    """received -> checked, or rejected: the network's verdict, duplicates, rate limits. What the models
    said is stored with the state it leads to, in one update; a crash before that leaves the submission
    "received", to be read again."""
    bounty = submission.bounty
    predicted, scores = classify(bounty.model_version, submission.pixel_bytes)
    submission.predicted_digit, submission.scores = predicted, scores
    verdict: dict[str, object] = {"predicted_digit": predicted, "scores": scores}
    reason: Reason | None
    if predicted != submission.claimed_digit:
        if keep_pending(submission):
            return
        reason, detail = Reason.WRONG_DIGIT, f"classified as {predicted}"
    else:
        reason, detail = screen(submission)
    if reason:
        submission.reject(reason, detail, **verdict)
        return
    if settings.SECOND_OPINION:
        verdict["second_opinion"] = second_opinion_of(submission)
    if not submission.advance(Submission.State.CHECKED, **verdict):
        return  # another worker did this step
    hold = hold_reason(submission, submission.bounty)
    if hold in SECOND_OPINION_HOLDS:
        submission.advance(Submission.State.HELD, hold=hold)


def keep_pending(submission: Submission) -> bool:
    """Another digit, when the bounty keeps such images: kept pending for a later model
    (bounty.retraining.pending) if it passes the other screening, with the second opinion recorded first as
    a training signal, else rejected as the wrong digit with the screening's finding in its detail. True
    when handled here; False when the bounty keeps nothing (the caller rejects it as before)."""
    if not pending.keeps(submission.bounty):
        return False
    Submission.objects.filter(pk=submission.pk).update(
        predicted_digit=submission.predicted_digit, scores=submission.scores
    )
    reason, detail = screen(submission)
    if reason is not None:
        submission.reject(Reason.WRONG_DIGIT, f"classified as {submission.predicted_digit}; {detail}")
        return True
    if settings.SECOND_OPINION:
        ask_second_opinion(submission)
    pending.keep(submission)
    return True


def claim(submission: Submission) -> None:
    """checked -> verified: reserve a slot, build and verify the claim, store it (not yet broadcast)."""
    bounty = Bounty.objects.select_related("model_version").get(pk=submission.bounty_id)
    hold = hold_reason(submission, bounty)
    if hold is not None:
        if submission.advance(Submission.State.HELD, hold=hold):
            # It waits for a person, so, like a stalled payout, it keeps no slot meanwhile (one it holds when
            # its refused claim was to be tried again, or its task ran before a hold was switched on).
            Slot.release_reserved_by(submission.pk)
        return
    if bounty.is_batch:
        claim_in_batch(submission, bounty)
        return
    slot = Slot.held_by(submission.pk)  # the task ran before, or its refused claim is tried again
    if slot is None:
        if not bounty.is_open():
            submission.reject(Reason.EXHAUSTED if bounty.state == Bounty.State.EXHAUSTED else Reason.CLOSED)
            return
        slot = Slot.take_free(bounty, submission.pk)
    if slot is None:
        bounty.mark_exhausted_if_spent()
        submission.reject(Reason.EXHAUSTED)
        return
    fault_point("slot_reserved")

    def build(lock_time: int = 0) -> chain.Built:
        return chain.build_claim(bounty, slot, submission.payout_address, submission.pixel_bytes, lock_time)

    try:
        built = build()
    except chain.ChainError as error:
        if not error.permanent:
            raise TryLater(str(error)) from error
        fail_claim(submission, slot, str(error))
        return
    with transaction.atomic():
        tx = store_claim(bounty, built, build)
        if not submission.advance(Submission.State.VERIFIED, claim_tx=tx):
            transaction.set_rollback(True)
            return
    fault_point("claim_stored")


def claim_in_batch(submission: Submission, bounty: Bounty) -> None:
    """checked -> verified for a batch bounty: claim the batches that are due (bounty.batches), the
    submission's own among them or not. One member of each stored batch broadcasts it and moves the others
    with it (`broadcast_claim`): this submission for its own batch, the first member, queued, for another.
    A submission left waiting is looked at again once its batch's maximum wait has passed (the sweeper
    claims due batches too, so a lost message strands nobody)."""
    stored = batches.claim_ready(bounty)
    others = [batch[0] for batch in stored if submission.pk not in batch]

    def queue_others() -> None:
        for pk in others:
            enqueue(pk)

    transaction.on_commit(queue_others)
    submission.refresh_from_db()
    if submission.state == Submission.State.CHECKED and submission.batch_slot_id is None:
        wait = batches.decision_for(bounty).wait_seconds + 1
        transaction.on_commit(lambda: enqueue(submission.pk, countdown=wait))


def fail_claim(submission: Submission, slot: Slot | None, detail: str) -> None:
    """The claim can never succeed: reject the submission and give its slot back."""
    log.warning("claim for submission %s failed for good: %s", submission.pk, detail)
    submission.reject(Reason.CHAIN_REJECTED, detail)
    if slot is not None and submission.state == Submission.State.REJECTED:
        slot.release()


def broadcast_claim(submission: Submission) -> None:
    """verified -> broadcast, or settled from what the chain says when the claim is contested or refused."""
    if submission.claim_tx_id is None:  # as a lookup by pk=None would: a verified submission has its claim
        raise Transaction.DoesNotExist("a verified submission without a stored claim")
    tx = submission.claim_tx  # as the claim step just stored it, or read now
    assert tx is not None
    if tx.status == Transaction.Status.STORED and tx.broadcast_attempts >= settings.BROADCAST_MAX_ATTEMPTS:
        give_up_broadcasting(submission, tx)
        submission.refresh_from_db()
        return
    if not send(tx):
        settle_claim(submission, tx)
        submission.refresh_from_db()
        return
    held = Q(submission=submission)
    if submission.batch_slot_id is not None:
        held |= Q(pk=submission.batch_slot_id)  # a batch member: the slot its batch is claimed from
    Slot.objects.filter(held, state=Slot.State.RESERVED).update(
        state=Slot.State.CLAIMED, spent_by=tx, updated=timezone.now()
    )
    submission.advance(Submission.State.BROADCAST)
    if submission.batch_slot_id is not None:
        # The other members of its batch are paid by the same transaction: they move with it.
        for member in Submission.objects.filter(claim_tx=tx, state=Submission.State.VERIFIED):
            member.advance(Submission.State.BROADCAST)
    if tx.failure == Transaction.Failure.DOUBLE_SPEND and settle_claim(submission, tx):
        submission.refresh_from_db()  # lost for good already (a spend in a block): back to "checked"
    submission.bounty.mark_exhausted_if_spent()


def approve(submission: Submission) -> bool:
    """A reviewer (or an elapsed review window) lets a held submission be paid."""
    Submission.objects.filter(pk=submission.pk).update(review_approved=True)
    submission.refresh_from_db()
    if submission.state == Submission.State.HELD and submission.advance(Submission.State.CHECKED):
        transaction.on_commit(lambda: enqueue(submission.pk))
        return True
    return False


STEPS = {
    Submission.State.RECEIVED: check,
    Submission.State.CHECKED: claim,
    Submission.State.VERIFIED: broadcast_claim,
}
