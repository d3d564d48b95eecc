"""Pay on learn: images the model read as another digit, kept pending, paid when a later model learns them.

A submission to a digit-D bounty that the model reads as another digit, and that passes the other screening
(no duplicate, no rate limit), is kept "pending, claimed D" for the bounty's `pending_days` (`keep`, called by
the check step), with its screening signals: the second opinion and the majority label of its nearest MNIST
training images. Reviewers confirm or discard pending images (`confirm`, `discard`; the grid in
bounty.admin.submissions). Pending images enter training only when a reviewer confirmed them or when both
independent signals read D (bounty.retraining.dataset), so a flood of wrong digits claimed as D teaches
nothing.

When a promoted model's redeployment has moved a bounty's slots (bounty.retraining.redeploy calls
`after_migration`), a task re-reads every still-pending image of that bounty with the bounty's new model
(`pay_pending`): those it reads as D go back to "checked" and through the ordinary claim path (hold rules,
slot reservation, on-chain predicate, operator signature), oldest first, while slots last, with the version
that read them recorded. Pending images whose window ended are rejected by a periodic task (`expire`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

import numpy as np
from celery import current_app
from django.db import transaction
from django.utils import timezone

from bounty.classify import classify
from bounty.models import Bounty, ModelVersion, Reason, Submission
from bounty.queue import enqueue
from bounty.retraining import conf, dataset
from bounty.retraining.models import CollectedImage

log = logging.getLogger(__name__)

PAY_PENDING = "bounty.retraining.tasks.pay_pending"
PAID = (Submission.State.BROADCAST, Submission.State.CONFIRMED)
# How many of the pending images a version still reads as another digit its record keeps (the /models/
# page shows them).
STILL_WRONG_KEPT = 24


def keeps(bounty: Bounty) -> bool:
    """Whether the bounty keeps images its model reads as another digit."""
    return bounty.pending_days > 0


def keep(submission: Submission) -> bool:
    """received -> pending, with the nearest MNIST neighbours' label recorded (the caller has asked and
    recorded the second opinion); False if the bounty keeps no such images or another worker moved it."""
    bounty = submission.bounty
    if not keeps(bounty):
        return False
    pixels = np.frombuffer(submission.pixel_bytes, dtype=np.uint8).reshape(1, 28, 28)
    label = int(dataset.neighbour_labels(pixels, conf.neighbours())[0])
    until = timezone.now() + timedelta(days=bounty.pending_days)
    return submission.advance(Submission.State.PENDING, pending_until=until, neighbour_label=label)


def signals_agree(submission: Submission) -> bool:
    """Both independent signals read the claimed digit: enough to train on a pending image unreviewed."""
    return (
        submission.second_opinion == Submission.SecondOpinion.AGREES
        and submission.neighbour_label == submission.claimed_digit
    )


def confirm(submission: Submission) -> bool:
    """A reviewer says the pending image really is the claimed digit: it is labelled so (and so trained on)
    and its payout needs no further review when a later model reads it as the digit. False if not pending."""
    return (
        Submission.objects.filter(pk=submission.pk, state=Submission.State.PENDING).update(
            true_digit=submission.claimed_digit, review_approved=True, updated=timezone.now()
        )
        == 1
    )


def discard(submission: Submission) -> bool:
    """A reviewer says the pending image is not the claimed digit: rejected (never paid, never trained on as
    the claimed digit); it stays in the collection as every rejected image does."""
    if submission.state != Submission.State.PENDING:
        return False
    if not submission.reject(Reason.REVIEWER, "discarded by a reviewer while pending"):
        return False
    # Collected already (both signals agreed): a person's "no" outranks them, so it is never trained on.
    CollectedImage.objects.filter(submission=submission).update(
        role=CollectedImage.Role.EXCLUDED, note="discarded by a reviewer while pending"
    )
    return True


def expire(now: datetime | None = None) -> int:
    """Reject the pending images whose window has ended (by `now`); returns how many."""
    moment = now or timezone.now()
    expired = 0
    for submission in Submission.objects.filter(state=Submission.State.PENDING, pending_until__lte=moment):
        expired += int(submission.reject(Reason.PENDING_EXPIRED, "no promoted model read it as the digit"))
    return expired


def after_migration(bounty_id: int) -> None:
    """Called when a redeployment has moved a bounty's slots to a new model: re-read its pending images in
    the worker, once this change is committed (never on the caller's path)."""

    def queue() -> None:
        try:
            current_app.send_task(PAY_PENDING, args=(bounty_id,))
        except Exception as error:  # nothing is lost: the images stay pending for the next promotion
            log.warning("could not queue re-reading the pending images of bounty %s: %s", bounty_id, error)

    transaction.on_commit(queue)


def pay_pending(bounty_id: int) -> dict[str, int]:
    """Re-read the bounty's pending images with its model, oldest first, and send those read as its digit to
    be paid while free slots last; record on the version what it read. Returns the counts."""
    bounty = Bounty.objects.select_related("model_version").get(pk=bounty_id)
    version = bounty.model_version
    counts = {"reread": 0, "converted": 0, "still_wrong": 0, "waiting_for_slots": 0}
    if not bounty.pay_on_learn:
        return counts
    now = timezone.now()
    pending = Submission.objects.filter(bounty=bounty, state=Submission.State.PENDING, pending_until__gt=now)
    # Slots are offered only while the bounty takes claims; a paused or closed bounty's images stay pending.
    # One image per free slot, for batch slots too (which pay K): a batch's partly filled slots are not
    # counted here, and an image sent on without a slot would be rejected, while one left pending is not lost.
    free = bounty.slots_left() if bounty.is_open() else 0
    still_wrong: list[int] = []
    for submission in pending.order_by("received_at", "pk"):
        predicted, scores = classify(version, submission.pixel_bytes)
        counts["reread"] += 1
        if predicted != bounty.digit:
            counts["still_wrong"] += 1
            still_wrong.append(submission.pk)
            Submission.objects.filter(pk=submission.pk).update(predicted_digit=predicted, scores=scores)
            continue
        if counts["converted"] >= free:
            counts["waiting_for_slots"] += 1  # read as the digit, but no slot is left: it stays pending
            continue
        moved = submission.advance(
            Submission.State.CHECKED, predicted_digit=predicted, scores=scores, paid_by_version=version
        )
        if moved:
            counts["converted"] += 1
            transaction.on_commit(partial(enqueue, submission.pk))
    record(version, bounty, counts, still_wrong)
    log.info("pay on learn, bounty %s on %s: %s", bounty.pk, version.name, counts)
    return counts


def record(version: ModelVersion, bounty: Bounty, counts: dict[str, int], still_wrong: list[int]) -> None:
    """Add what this bounty's re-reading found to the version's record (tasks of several bounties may run
    at once: the row is read and written inside one transaction, locked where the database can)."""
    with transaction.atomic():
        row = ModelVersion.objects.select_for_update().get(pk=version.pk)
        learning = dict(row.learning or {})
        bounties = dict(learning.get("bounties", {}))
        bounties[str(bounty.pk)] = counts
        wrong = [pk for pk in learning.get("still_wrong", []) if pk not in still_wrong] + still_wrong
        learning.update(bounties=bounties, still_wrong=wrong[-STILL_WRONG_KEPT:])
        learning["reread"] = sum(c["reread"] for c in bounties.values())
        learning["read_as_claimed"] = sum(c["converted"] + c["waiting_for_slots"] for c in bounties.values())
        ModelVersion.objects.filter(pk=version.pk).update(learning=learning)


def converted(version: ModelVersion) -> int:
    """Pending images this version had paid (their claim is on chain)."""
    return Submission.objects.filter(paid_by_version=version, state__in=PAID).count()
