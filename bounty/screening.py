"""The checks a classified submission must pass before it may claim: duplicates, rate limits, and the holds
that make a payout wait for a reviewer."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from bounty.models import Bounty, Reason, Submission
from bounty.near_duplicates import near_duplicate

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
    # Neither ordered nor limited: with ORDER BY and LIMIT 1, PostgreSQL may walk the received_at index
    # backwards and filter every row (measured at a million rows: over a second per submission).
    same = earlier.filter(pixel_sha256=submission.pixel_sha256).order_by().values_list("pk", flat=True)
    exact = min(same, default=None)
    if exact is not None:
        return Reason.DUPLICATE, f"same pixels as submission {exact}"
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
