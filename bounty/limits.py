"""Limits that apply in the web request, before an upload is decoded or stored: submissions per network
(an IPv4 address, or an IPv6 /64, which one household or one attacker usually holds) in a short burst
window and an hourly one, submissions per payout address, and the total size of stored original uploads.

Counts come from the submissions already stored, through indexes on (client_net, received_at) and
(payout_address, received_at), so the check costs the same with a million earlier submissions as with ten.
A refusal says in plain words when to come back; the view answers 429 with Retry-After.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from bounty import storage_tally
from bounty.models import Submission


@dataclass(frozen=True)
class Refusal:
    message: str
    retry_after: int  # seconds
    status: int = 429


def wait_words(seconds: int) -> str:
    if seconds < 90:
        return f"{max(1, seconds)} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def _over(queryset, limit: int, window: int) -> int | None:
    """Seconds until the oldest counted submission leaves the window, when `limit` is reached."""
    if limit <= 0:
        return None
    now = timezone.now()
    recent = queryset.filter(received_at__gte=now - timedelta(seconds=window))
    times = list(recent.order_by("-received_at").values_list("received_at", flat=True)[:limit])
    if len(times) < limit:
        return None
    oldest_counted = times[-1]
    return max(1, math.ceil((oldest_counted + timedelta(seconds=window) - now).total_seconds()))


def rate_refusal(net: str, address: str) -> Refusal | None:
    """A refusal when this network or this payout address has sent too many images lately."""
    if net:
        from_net = Submission.objects.filter(client_net=net)
        for limit, window in (
            (settings.BURST_LIMIT_PER_IP, settings.BURST_WINDOW),
            (settings.RATE_LIMIT_PER_IP, settings.RATE_LIMIT_WINDOW),
        ):
            wait = _over(from_net, limit, window)
            if wait is not None:
                return Refusal(
                    f"Too many images from your network in a short time. Please wait {wait_words(wait)} "
                    "and send it again; your drawing is kept on this page.",
                    wait,
                )
    if address:
        wait = _over(
            Submission.objects.filter(payout_address=address),
            settings.RATE_LIMIT_PER_ADDRESS,
            settings.RATE_LIMIT_WINDOW,
        )
        if wait is not None:
            return Refusal(
                f"This address has sent {settings.RATE_LIMIT_PER_ADDRESS} images in the last hour, the most "
                f"one address may. Please come back in {wait_words(wait)}.",
                wait,
            )
    return None


def stored_original_bytes() -> int:
    """The bytes of original uploads kept (bounty.storage_tally: one Redis read, no table scan)."""
    return storage_tally.total()


def storage_refusal(incoming: int) -> Refusal | None:
    """A refusal when keeping one more upload would pass MAX_STORED_ORIGINALS_BYTES."""
    cap = settings.MAX_STORED_ORIGINALS_BYTES
    if cap and stored_original_bytes() + incoming > cap:
        return Refusal(
            "We cannot take new images right now: the space for uploads is full. Please try again "
            "tomorrow; nothing was stored and nothing was charged.",
            3600,
            status=503,
        )
    return None


def note_stored(size: int) -> None:
    """Count a stored upload at once, so a flood still meets the cap before the next recount."""
    storage_tally.add(size)


def expire_originals() -> int:
    """Delete the original uploads of rejected submissions older than ORIGINALS_RETENTION_DAYS (the 28x28
    image the network saw stays); returns how many files were deleted."""
    cutoff = timezone.now() - timedelta(days=settings.ORIGINALS_RETENTION_DAYS)
    expired = Submission.objects.filter(
        state=Submission.State.REJECTED, rejected_at__lt=cutoff, original_bytes__gt=0
    ).exclude(original="")
    deleted = 0
    for submission in expired.iterator(chunk_size=500):
        submission.original.delete(save=False)
        Submission.objects.filter(pk=submission.pk).update(original="", original_bytes=0)
        deleted += 1
    if deleted:
        storage_tally.recount()
    return deleted
