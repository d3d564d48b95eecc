"""A lock that survives a worker crash: a row with a holder and an expiry, taken by one conditional update.

The holder renews the expiry while it works (`heartbeat`); if it dies, the lease simply runs out and the next
caller takes it. Two callers never both get it: each acquisition is an UPDATE whose row count says who won.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from bounty.retraining.models import Lease


def acquire(name: str, seconds: int, holder: str | None = None) -> str | None:
    """Take the lease for `seconds`; the holder token, or None if someone else holds it."""
    Lease.objects.get_or_create(name=name)
    token = holder or uuid.uuid4().hex
    now = timezone.now()
    won = (
        Lease.objects.filter(name=name)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__lte=now))
        .update(holder=token, expires_at=now + timedelta(seconds=seconds), acquired_at=now)
    )
    return token if won == 1 else None


def heartbeat(name: str, token: str, seconds: int) -> bool:
    """Extend the lease; False if it was lost (expired and taken by another)."""
    renewed = Lease.objects.filter(name=name, holder=token).update(
        expires_at=timezone.now() + timedelta(seconds=seconds)
    )
    return renewed == 1


def release(name: str, token: str) -> None:
    Lease.objects.filter(name=name, holder=token).update(holder="", expires_at=None)


def holder(name: str) -> Lease | None:
    """The lease if it is held now."""
    return Lease.objects.filter(name=name, expires_at__gt=timezone.now()).first()
