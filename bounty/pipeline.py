"""The pipeline that takes a submission from "received" to a paid claim, as plain functions.

`process(submission_id)` moves a submission as far as it can go from whatever state it is in, so running
it twice, or again after a worker died anywhere, is safe: each step ends in one conditional state change, a
slot is reserved by a conditional update, and a claim is stored in the database before it is broadcast.
Celery tasks (`bounty.tasks`) only call these functions.

    received --classify, duplicates, rate limits--> checked --(review)--> held --approve--> checked
    checked --reserve slot, build and verify claim, store it--> verified --broadcast--> broadcast
    broadcast --block--> confirmed;  any step may end in rejected, with a reason
    verified/broadcast --the slot lost to a payment elsewhere, or refused--> checked (another slot)
    verified/broadcast --unreachable or refused too often--> stalled --admin retries--> checked

How a contested or refused claim is settled, exactly once, is `bounty.payouts`.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bounty import chain, images
from bounty.faults import FAULT_ENV, fault_point
from bounty.funding import publish_deploys
from bounty.models import Bounty, ModelVersion, Reason, Slot, Submission, Transaction
from bounty.payouts import TryLater, give_up_broadcasting, send, send_many, settle_claim
from classifier import second_opinion

log = logging.getLogger(__name__)
__all__ = ["FAULT_ENV", "TryLater", "fault_point", "send"]


def enqueue(submission_id: int) -> None:
    """Queue processing; if the broker is down the sweeper picks the submission up later."""
    from bounty import tasks

    try:
        tasks.process_submission.delay(submission_id)
    except Exception as error:  # the submission is committed; nothing is lost
        log.warning("could not queue submission %s: %s", submission_id, error)


@functools.lru_cache(maxsize=8)
def reference_model(artifact: str):  # type: ignore[no-untyped-def]
    from classifier.integer_model import IntegerModel

    return IntegerModel.load(artifact)


def classify(version: ModelVersion, pixels: bytes) -> tuple[int, list[int]]:
    model = reference_model(version.artifact)
    array = np.frombuffer(bytes(pixels), dtype=np.uint8).reshape(784)
    scores = [int(s) for s in np.asarray(model.scores(array)).reshape(-1)]
    return int(np.argmax(scores)), scores


def process(submission_id: int) -> str:
    """Advance one submission as far as it can go now; returns its state.

    Steps run until one leaves the state unchanged; a step may also send a submission back (a claim whose
    slot was spent elsewhere returns to "checked" and the next round reserves another slot).
    """
    submission = Submission.objects.select_related("bounty__model_version").get(pk=submission_id)
    steps = {
        Submission.State.RECEIVED: check,
        Submission.State.CHECKED: claim,
        Submission.State.VERIFIED: broadcast_claim,
    }
    while (step := steps.get(submission.state)) is not None:
        before = submission.state
        step(submission)
        if submission.state == before:
            break
    return submission.state


def refresh(submission: Submission) -> Submission:
    submission.refresh_from_db()
    return submission


def check(submission: Submission) -> None:
    """received -> checked, or rejected: the network's verdict, duplicates, rate limits."""
    bounty = submission.bounty
    predicted, scores = classify(bounty.model_version, submission.pixels)
    submission.predicted_digit, submission.scores = predicted, scores
    Submission.objects.filter(pk=submission.pk).update(predicted_digit=predicted, scores=scores)
    if predicted != submission.claimed_digit:
        reason, detail = Reason.WRONG_DIGIT, f"classified as {predicted}"
    else:
        reason, detail = screen(submission)
    if reason:
        submission.reject(reason, detail) or refresh(submission)
        return
    if settings.SECOND_OPINION:
        # Asked and recorded before the state moves: a crash here leaves it "received", asked again.
        ask_second_opinion(submission)
    if not submission.advance(Submission.State.CHECKED):
        refresh(submission)  # another worker did this step
        return
    hold = hold_reason(submission, submission.bounty)
    if hold in SECOND_OPINION_HOLDS:
        submission.advance(Submission.State.HELD, hold=hold) or refresh(submission)


def ask_second_opinion(submission: Submission) -> str:
    """An unpublished model must also read the digit (an image optimised against the public weights
    rarely fools it). Any error (a missing or corrupt model, memory) is recorded as FAILED, never as
    agreement: the claim step holds the payout for a reviewer unless the answer is AGREES."""
    pixels = np.frombuffer(submission.pixel_bytes, dtype=np.uint8).reshape(28, 28)
    try:
        agreed = second_opinion.agrees(pixels, submission.claimed_digit, path=settings.SECOND_OPINION_MODEL)
        verdict = Submission.SecondOpinion.AGREES if agreed else Submission.SecondOpinion.DISAGREES
    except Exception:  # fail closed, whatever went wrong
        log.exception("second opinion on submission %s failed; holding it for review", submission.pk)
        verdict = Submission.SecondOpinion.FAILED
    Submission.objects.filter(pk=submission.pk).update(second_opinion=verdict)
    submission.second_opinion = verdict
    return verdict


SECOND_OPINION_HOLDS = (
    Submission.Hold.SECOND_OPINION,
    Submission.Hold.SECOND_OPINION_FAILED,
    Submission.Hold.SECOND_OPINION_MISSING,
)


def hold_reason(submission: Submission, bounty: Bounty) -> str | None:
    """Why the claim must wait for a reviewer, or None. Checked by the claim step itself, so a payout
    that skipped the check (a crash, a requeue, a setting switched on later) is held, not paid."""
    if submission.review_approved:
        return None
    if settings.SECOND_OPINION and submission.second_opinion != Submission.SecondOpinion.AGREES:
        if submission.second_opinion == Submission.SecondOpinion.FAILED:
            return Submission.Hold.SECOND_OPINION_FAILED
        if submission.second_opinion == Submission.SecondOpinion.DISAGREES:
            return Submission.Hold.SECOND_OPINION
        return Submission.Hold.SECOND_OPINION_MISSING
    if bounty.review_window is not None:
        return Submission.Hold.REVIEW_WINDOW
    return None


def screen(submission: Submission) -> tuple[Reason | None, str]:
    """Duplicates (across all bounties) and rate limits; only earlier submissions count against this one."""
    earlier = Submission.objects.filter(pk__lt=submission.pk).exclude(state=Submission.State.REJECTED)
    exact = earlier.filter(pixel_sha256=submission.pixel_sha256).first()
    if exact is not None:
        return Reason.DUPLICATE, f"same pixels as submission {exact.pk}"
    near = near_duplicate(submission, earlier)
    if near is not None:
        return Reason.DUPLICATE, f"near duplicate of submission {near}"
    window = timezone.now() - timedelta(seconds=settings.RATE_LIMIT_WINDOW)
    recent = Submission.objects.filter(pk__lt=submission.pk, received_at__gte=window).exclude(
        reason=Reason.RATE_LIMITED
    )
    limit = settings.RATE_LIMIT_PER_ADDRESS
    if limit and recent.filter(payout_address=submission.payout_address).count() >= limit:
        return Reason.RATE_LIMITED, f"more than {limit} submissions for this address"
    limit = settings.RATE_LIMIT_PER_IP
    net = submission.client_net
    if limit and net and recent.filter(client_net=net).count() >= limit:
        return Reason.RATE_LIMITED, f"more than {limit} submissions from this network"
    return None, ""


def near_duplicate(submission: Submission, earlier) -> int | None:  # type: ignore[no-untyped-def]
    """An earlier submission whose perceptual hash is within NEAR_DUPLICATE_BITS and whose pixels differ by
    less than NEAR_DUPLICATE_GREY grey levels on average."""
    bits = settings.NEAR_DUPLICATE_BITS
    if bits <= 0:
        return None
    mine = int(submission.phash, 16)
    candidates = [
        pk
        for pk, phash in earlier.values_list("pk", "phash").iterator(chunk_size=5000)
        if (int(phash, 16) ^ mine).bit_count() <= bits
    ]
    for pk, pixels in Submission.objects.filter(pk__in=candidates[:200]).values_list("pk", "pixels"):
        if images.mean_abs_difference(pixels, submission.pixel_bytes) < settings.NEAR_DUPLICATE_GREY:
            return pk
    return None


def claim(submission: Submission) -> None:
    """checked -> verified: reserve a slot, build and verify the claim, store it (not yet broadcast)."""
    bounty = Bounty.objects.get(pk=submission.bounty_id)
    hold = hold_reason(submission, bounty)
    if hold is not None:
        if not submission.advance(Submission.State.HELD, hold=hold):
            refresh(submission)
        return
    has_slot = Slot.objects.filter(submission=submission).exists()
    if not has_slot and not bounty.is_open():
        reason = Reason.EXHAUSTED if bounty.state == Bounty.State.EXHAUSTED else Reason.CLOSED
        submission.reject(reason) or refresh(submission)
        return
    slot = Slot.reserve(bounty, submission.pk)
    if slot is None:
        bounty.mark_exhausted_if_spent()
        submission.reject(Reason.EXHAUSTED) or refresh(submission)
        return
    fault_point("slot_reserved")
    try:
        built = chain.build_claim(bounty, slot, submission.payout_address, submission.pixel_bytes)
    except chain.ChainError as error:
        if not error.permanent:
            raise TryLater(str(error)) from error
        fail_claim(submission, slot, str(error))
        return
    with transaction.atomic():
        tx, _ = Transaction.objects.get_or_create(
            txid=built.txid,
            defaults={
                "raw_hex": built.raw_hex,
                "kind": Transaction.Kind.CLAIM,
                "bounty": bounty,
                "fee": built.fee,
            },
        )
        retryable = (Transaction.Failure.REJECTED, Transaction.Failure.UNREACHABLE)
        if tx.status == Transaction.Status.FAILED and tx.failure in retryable:
            # The same bytes again (same slot, same image): refused or never delivered before, with the slot
            # left unspent, so they are sent and judged again rather than taken as failed.
            Transaction.objects.filter(pk=tx.pk).update(
                status=Transaction.Status.STORED, failure="", broadcast_attempts=0, raw_hex=built.raw_hex
            )
        if not submission.advance(Submission.State.VERIFIED, claim_tx=tx):
            transaction.set_rollback(True)
    if submission.state != Submission.State.VERIFIED:
        refresh(submission)
        return
    fault_point("claim_stored")


def fail_claim(submission: Submission, slot: Slot | None, detail: str) -> None:
    """The claim can never succeed: reject the submission and give its slot back."""
    log.warning("claim for submission %s failed for good: %s", submission.pk, detail)
    if (submission.reject(Reason.CHAIN_REJECTED, detail) and slot is not None) or (
        slot is not None and refresh(submission).state == Submission.State.REJECTED
    ):
        slot.release()


def broadcast_claim(submission: Submission) -> None:
    """verified -> broadcast, or settled from what the chain says when the claim is contested or refused."""
    tx = Transaction.objects.get(pk=submission.claim_tx_id)
    if tx.status == Transaction.Status.STORED and tx.broadcast_attempts >= settings.BROADCAST_MAX_ATTEMPTS:
        give_up_broadcasting(submission, tx)
        refresh(submission)
        return
    if not send(tx):
        settle_claim(submission, tx)
        refresh(submission)
        return
    Slot.objects.filter(submission=submission, state=Slot.State.RESERVED).update(
        state=Slot.State.CLAIMED, spent_by=tx, updated=timezone.now()
    )
    if not submission.advance(Submission.State.BROADCAST):
        refresh(submission)
    if tx.failure == Transaction.Failure.DOUBLE_SPEND and settle_claim(submission, tx):
        refresh(submission)  # lost for good already (a spend in a block): back to "checked"
    submission.bounty.mark_exhausted_if_spent()


def apply_status(tx: Transaction, status: chain.TxStatus) -> None:
    """Move a transaction (and the submissions it pays) along with what the chain reports, from a poll or
    an ARC callback. Idempotent, and never backwards: a late or repeated report changes nothing."""
    if status.state is chain.TxState.MINED:
        Transaction.objects.filter(pk=tx.pk).update(
            confirmations=status.confirmations, block_height=status.block_height
        )
        if status.confirmations >= settings.CONFIRMATIONS_REQUIRED:
            moved = Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.BROADCAST).update(
                status=Transaction.Status.CONFIRMED, confirmed_at=timezone.now()
            )
            if moved and tx.kind == Transaction.Kind.CLAIM:
                for submission in Submission.objects.filter(claim_tx=tx, state=Submission.State.BROADCAST):
                    submission.advance(Submission.State.CONFIRMED)
        return
    if status.state is chain.TxState.UNKNOWN and tx.status == Transaction.Status.BROADCAST:
        Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.BROADCAST).update(
            status=Transaction.Status.STORED
        )  # the backend forgot it: the sweeper sends it again
        return
    if not status.state.conflicted or tx.status != Transaction.Status.BROADCAST:
        return
    Transaction.objects.filter(pk=tx.pk).update(
        reject_code=status.state.value,
        competing_txids=list(status.competing_txids),
    )
    tx.refresh_from_db()
    if tx.kind != Transaction.Kind.CLAIM:
        if status.state is chain.TxState.REJECTED:
            Transaction.objects.filter(pk=tx.pk).update(
                status=Transaction.Status.FAILED, failure=Transaction.Failure.REJECTED
            )
        return
    for submission in Submission.objects.filter(claim_tx=tx).select_related("bounty"):
        if settle_claim(submission, tx, status):
            transaction.on_commit(lambda pk=submission.pk: enqueue(pk))


def poll_confirmations() -> int:
    """Follow broadcast transactions into blocks, and settle the contested and rejected ones; returns how
    many were confirmed now."""
    confirmed = 0
    for tx in Transaction.objects.filter(status=Transaction.Status.BROADCAST):
        status = chain.status(tx.txid)
        apply_status(tx, status)
        confirmed += int(Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.CONFIRMED).exists())
    for tx in Transaction.objects.filter(status=Transaction.Status.CONFIRMED, confirmations__lt=6)[:200]:
        status = chain.status(tx.txid)
        if status.state == chain.TxState.MINED:
            Transaction.objects.filter(pk=tx.pk).update(confirmations=status.confirmations)
    return confirmed


def stuck(state: str):  # type: ignore[no-untyped-def]
    cutoff = timezone.now() - timedelta(seconds=settings.STUCK_AFTER)
    return Submission.objects.filter(state=state, updated__lt=cutoff)


def sweep() -> dict[str, int]:
    """Find work that a dead worker, a lost message or an outage left behind, and finish or undo it."""
    counts = {"requeued": 0, "released": 0, "deploys": 0, "held_released": 0, "closed": 0, "resent": 0}
    for state in (Submission.State.RECEIVED, Submission.State.CHECKED, Submission.State.VERIFIED):
        for pk in stuck(state).values_list("pk", flat=True)[:500]:
            enqueue(pk)
            counts["requeued"] += 1
    # Review windows release their holds; a second-opinion hold waits for a person.
    holds = Submission.objects.filter(state=Submission.State.HELD, hold=Submission.Hold.REVIEW_WINDOW)
    for submission in holds.select_related("bounty"):
        window = submission.bounty.review_window
        if window is not None and submission.held_at and submission.held_at + window <= timezone.now():
            approve(submission)
            counts["held_released"] += 1
    orphaned = Slot.objects.filter(state=Slot.State.RESERVED).filter(
        Q(submission__isnull=True) | Q(submission__state=Submission.State.REJECTED)
    )
    for slot in orphaned:
        counts["released"] += int(slot.release())
    # Deploys waiting for the chain: a funded bounty's, and one rebuilt for a live bounty (resume_deploy).
    waiting = Transaction.objects.filter(kind=Transaction.Kind.DEPLOY, status=Transaction.Status.STORED)
    live_with_waiting = Q(state=Bounty.State.ACTIVE, transactions__in=waiting)
    for bounty in Bounty.objects.filter(Q(state=Bounty.State.FUNDED) | live_with_waiting).distinct():
        publish_deploys(bounty)
        counts["deploys"] += 1
    counts["closed"] = Bounty.objects.filter(
        state=Bounty.State.ACTIVE, expires_at__isnull=False, expires_at__lte=timezone.now()
    ).update(state=Bounty.State.CLOSED)
    # Refunds, and claims of broadcast submissions that the chain forgot (poll_confirmations set them back
    # to stored): no task follows those, so the sweeper sends them again.
    forgotten = Q(kind=Transaction.Kind.CLAIM, claimed__state=Submission.State.BROADCAST)
    resend = Transaction.objects.filter(Q(kind=Transaction.Kind.REFUND) | forgotten).distinct()
    try:
        counts["resent"] = send_many(list(resend.filter(status=Transaction.Status.STORED)[:100]))
    except TryLater:
        counts["resent"] = 0  # the chain is down: the next sweep tries again
    return counts


def approve(submission: Submission) -> bool:
    """A reviewer (or an elapsed review window) lets a held submission be paid."""
    Submission.objects.filter(pk=submission.pk).update(review_approved=True)
    submission.refresh_from_db()
    if submission.state == Submission.State.HELD and submission.advance(Submission.State.CHECKED):
        transaction.on_commit(lambda: enqueue(submission.pk))
        return True
    return False
