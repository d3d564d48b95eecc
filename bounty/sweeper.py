"""The sweeper: finds work that a dead worker, a lost message or an outage left behind, and finishes or undoes
it. Runs on a schedule (`bounty.tasks.sweep`); every job here is safe to run twice."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from bounty.batches import claim_ready
from bounty.funding import publish_deploys
from bounty.models import Bounty, Slot, SlotKind, Submission, Transaction
from bounty.payouts import TryLater, send_many
from bounty.pipeline import approve
from bounty.queue import enqueue


def stuck(state: str) -> QuerySet[Submission]:
    """Submissions left in `state` for longer than STUCK_AFTER seconds."""
    cutoff = timezone.now() - timedelta(seconds=settings.STUCK_AFTER)
    return Submission.objects.filter(state=state, updated__lt=cutoff)


def sweep() -> dict[str, int]:
    """Run every job once; returns how many items each one moved."""
    return {
        "requeued": requeue_stuck(),
        "held_released": release_elapsed_holds(),
        "released": release_orphaned_slots(),
        "deploys": publish_waiting_deploys(),
        "closed": close_expired_bounties(),
        "resent": resend_stored(),
        "batches": claim_due_batches(),
    }


def requeue_stuck() -> int:
    """Submissions a worker should have moved on: queued again."""
    count = 0
    for state in (Submission.State.RECEIVED, Submission.State.CHECKED, Submission.State.VERIFIED):
        for pk in stuck(state).values_list("pk", flat=True)[:500]:
            enqueue(pk)
            count += 1
    return count


def release_elapsed_holds() -> int:
    """Review windows release their holds; a second-opinion hold waits for a person."""
    count = 0
    holds = Submission.objects.filter(state=Submission.State.HELD, hold=Submission.Hold.REVIEW_WINDOW)
    for submission in holds.select_related("bounty"):
        window = submission.bounty.review_window
        if window is not None and submission.held_at and submission.held_at + window <= timezone.now():
            approve(submission)
            count += 1
    return count


def claim_due_batches() -> int:
    """Batch bounties' waiting images whose maximum wait has passed (or whose batch a dead worker took and
    left) are claimed and queued for broadcast, so a lone image is never stranded; returns how many."""
    waiting = Submission.objects.filter(state=Submission.State.CHECKED)
    count = 0
    for bounty in Bounty.objects.filter(slot_kind=SlotKind.BATCH, submissions__in=waiting).distinct():
        try:
            stored = claim_ready(bounty)
        except TryLater:
            continue  # the chain is down: the next sweep tries again
        for batch in stored:
            enqueue(batch[0])  # its broadcast moves the other members with it
        count += sum(len(batch) for batch in stored)
    return count


def release_orphaned_slots() -> int:
    """Slots reserved for a submission that is gone or rejected go back to the free pool."""
    orphaned = Slot.objects.filter(state=Slot.State.RESERVED).filter(
        Q(submission__isnull=True) | Q(submission__state=Submission.State.REJECTED)
    )
    return sum(int(slot.release()) for slot in orphaned)


def publish_waiting_deploys() -> int:
    """Deploys waiting for the chain: a funded bounty's, and one rebuilt for a live bounty (resume_deploy)."""
    waiting = Transaction.objects.filter(kind=Transaction.Kind.DEPLOY, status=Transaction.Status.STORED)
    live_with_waiting = Q(state=Bounty.State.ACTIVE, transactions__in=waiting)
    count = 0
    for bounty in Bounty.objects.filter(Q(state=Bounty.State.FUNDED) | live_with_waiting).distinct():
        publish_deploys(bounty)
        count += 1
    return count


def close_expired_bounties() -> int:
    return Bounty.objects.filter(
        state=Bounty.State.ACTIVE, expires_at__isnull=False, expires_at__lte=timezone.now()
    ).update(state=Bounty.State.CLOSED)


def resend_stored() -> int:
    """Refunds, and claims of broadcast submissions that the chain forgot (the poller set them back to
    stored): no task follows those, so the sweeper sends them again."""
    forgotten = Q(kind=Transaction.Kind.CLAIM, claimed__state=Submission.State.BROADCAST)
    resend = Transaction.objects.filter(Q(kind=Transaction.Kind.REFUND) | forgotten).distinct()
    try:
        return send_many(list(resend.filter(status=Transaction.Status.STORED)[:100]))
    except TryLater:
        return 0  # the chain is down: the next sweep tries again
