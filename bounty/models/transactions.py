"""Transactions the service built: stored before they are broadcast, then followed to confirmation."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Transaction(models.Model):
    class Kind(models.TextChoices):
        DEPLOY = "deploy"
        CLAIM = "claim"
        REFUND = "refund"
        MIGRATE = "migrate"  # old slots through the admin branch into slots of another model

    class Status(models.TextChoices):
        STORED = "stored"  # built and verified, not yet accepted by the chain
        BROADCAST = "broadcast"  # accepted into the mempool
        CONFIRMED = "confirmed"
        FAILED = "failed"  # refused for good, or lost to a competitor; never broadcast again

    class Failure(models.TextChoices):
        """Why a transaction failed or is contested: the outcome type, never read from message text."""

        NONE = "", "-"
        DOUBLE_SPEND = "double_spend", "an input is spent by another transaction"
        REJECTED = "rejected", "refused by the network"
        UNREACHABLE = "unreachable", "the network could not be reached after every attempt"

    txid = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STORED, db_index=True)
    bounty = models.ForeignKey(
        "bounty.Bounty", null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    fee = models.PositiveBigIntegerField(default=0)
    confirmations = models.PositiveIntegerField(default=0)
    block_height = models.PositiveIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=64, blank=True)
    broadcast_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    failure = models.CharField(max_length=16, choices=Failure.choices, blank=True, default="")
    # ARC's status code or txStatus that the outcome came with ("465", "DOUBLE_SPEND_ATTEMPTED"...).
    reject_code = models.CharField(max_length=32, blank=True)
    competing_txids = models.JSONField(default=list, blank=True)
    # False for a transaction we found on the chain rather than built (a copy of one of our claims that pays
    # the same contributor): it was never "stored before broadcast".
    built_here = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # Last in the row, on purpose (migration 0013): a deploy transaction's raw hex is megabytes, and SQLite
    # reaches a column stored after it only by walking its overflow pages, so a join on a slot's deploy
    # transaction (its status, every slot reservation) cost about 9 ms per row with it in second place.
    raw_hex = models.TextField()

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"{self.kind} {self.txid[:16]}… ({self.status})"

    @property
    def size(self) -> int:
        return len(self.raw_hex) // 2
