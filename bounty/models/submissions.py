"""Submissions: one image from one contributor, and the states it moves through on its way to a payout."""

from __future__ import annotations

import ipaddress
import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone

from bounty import images


def network_of(ip: str | None) -> str:
    """What a rate limit counts: the address for IPv4, its /64 for IPv6 (one household, or one attacker,
    usually holds a whole /64); '' when unknown."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Reason(models.TextChoices):
    """Why a submission was rejected, each with the sentence a contributor reads."""

    WRONG_DIGIT = "wrong_digit", "The network read your image as a different digit."
    DUPLICATE = "duplicate", "This image (or one almost identical to it) was already submitted."
    EXHAUSTED = "exhausted", "The bounty has no reward slots left."
    CLOSED = "closed", "The bounty is not accepting images right now."
    RATE_LIMITED = "rate_limited", "Too many submissions from this address or network; try again later."
    CHAIN_REJECTED = "chain_rejected", "The network refused the payment transaction."
    REVIEWER = "reviewer", "A reviewer declined this image."
    # A pending image (kept because the model read another digit) whose window ended before a promoted model
    # read it as the bounty's digit.
    PENDING_EXPIRED = "pending_expired", "It was kept for a later model; none read it as the digit in time."


class Submission(models.Model):
    class State(models.TextChoices):
        RECEIVED = "received"
        CHECKED = "checked"  # classified by the integer reference, passed duplicate and rate checks
        HELD = "held"  # waiting for review before a slot is reserved
        VERIFIED = "verified"  # claim transaction built, verified and stored
        BROADCAST = "broadcast"
        CONFIRMED = "confirmed"
        REJECTED = "rejected"
        # The payout could not be completed (the network unreachable after every attempt, or a claim
        # refused too often): an admin retries it; its slot was reconciled from the chain.
        STALLED = "stalled"
        # The model read another digit, but the image passed every other check: kept until `pending_until`,
        # re-read by each promoted model (bounty.retraining.pending) and paid if one reads the claimed digit.
        PENDING = "pending"

    class SecondOpinion(models.TextChoices):
        """What the unpublished second model said (bounty.classify.ask_second_opinion)."""

        NOT_ASKED = "", "not asked"
        AGREES = "agrees", "reads the claimed digit"
        DISAGREES = "disagrees", "does not read the claimed digit"
        FAILED = "failed", "could not be asked (an error): held, never taken as agreement"

    class Hold(models.TextChoices):
        """Why a held submission waits: a type, so no decision reads `reason_detail`."""

        NONE = "", "-"
        REVIEW_WINDOW = "review_window", "the bounty's review window (released when it ends)"
        SECOND_OPINION = "second_opinion", "the second model does not read the digit (a reviewer decides)"
        SECOND_OPINION_FAILED = "second_opinion_failed", "the second model could not be asked (a reviewer)"
        SECOND_OPINION_MISSING = "second_opinion_missing", "the second model was never asked (a reviewer)"

    # Which state may follow which: every change goes through `advance`, a conditional update.
    TRANSITIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        State.RECEIVED: (State.CHECKED, State.REJECTED, State.PENDING),
        # pending -> checked: a promoted model reads the claimed digit (then the ordinary claim path);
        # pending -> rejected: a reviewer discarded it, or its window ended.
        State.PENDING: (State.CHECKED, State.REJECTED),
        State.CHECKED: (State.HELD, State.VERIFIED, State.REJECTED),
        State.HELD: (State.CHECKED, State.REJECTED),
        # verified/broadcast -> checked: the claim lost its slot to a transaction that pays someone else, or
        # the network refused it with the slot unspent; try again from another slot.
        State.VERIFIED: (State.BROADCAST, State.CHECKED, State.REJECTED, State.STALLED),
        State.BROADCAST: (State.CONFIRMED, State.REJECTED, State.CHECKED, State.STALLED),
        State.CONFIRMED: (),
        State.REJECTED: (),
        State.STALLED: (State.CHECKED, State.BROADCAST, State.REJECTED),
    }
    TIMESTAMPS: ClassVar[dict[str, str]] = {
        State.CHECKED: "checked_at",
        State.HELD: "held_at",
        State.VERIFIED: "verified_at",
        State.BROADCAST: "broadcast_at",
        State.CONFIRMED: "confirmed_at",
        State.REJECTED: "rejected_at",
        State.STALLED: "stalled_at",
        State.PENDING: "pending_at",
    }

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    bounty = models.ForeignKey("bounty.Bounty", on_delete=models.PROTECT, related_name="submissions")
    original = models.FileField(upload_to="originals/%Y/%m/%d/")
    pixels = models.BinaryField(help_text="the 28x28 image the network sees, 784 bytes row-major")
    pixel_sha256 = models.CharField(max_length=64, db_index=True)
    phash = models.CharField(max_length=64, help_text="256-bit perceptual hash, hex")
    claimed_digit = models.PositiveSmallIntegerField()
    predicted_digit = models.PositiveSmallIntegerField(null=True, blank=True)
    scores = models.JSONField(null=True, blank=True)
    true_digit = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=[(d, str(d)) for d in range(10)], help_text="set by a reviewer"
    )
    payout_address = models.CharField(max_length=64, db_index=True)
    contributor_ip = models.GenericIPAddressField(null=True, blank=True)
    # What the web form's rate limit counts: the IPv4 address, or the IPv6 /64 (bounty.limits.client_net).
    client_net = models.CharField(max_length=50, blank=True, default="")
    original_bytes = models.PositiveIntegerField(default=0, help_text="size of the stored original upload")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RECEIVED, db_index=True)
    reason = models.CharField(max_length=20, choices=Reason.choices, blank=True)
    reason_detail = models.CharField(max_length=300, blank=True)
    claim_tx = models.ForeignKey(
        "bounty.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="claimed"
    )
    # A batch bounty's submission: the batch slot it is claimed from (set, with the other members', when the
    # batch is taken, before the claim is built), and which output of the claim pays it (None for a single
    # claim, whose only output pays it).
    batch_slot = models.ForeignKey(
        "bounty.Slot", null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_members"
    )
    claim_output = models.PositiveSmallIntegerField(null=True, blank=True)
    review_approved = models.BooleanField(default=False)
    second_opinion = models.CharField(max_length=12, choices=SecondOpinion.choices, blank=True, default="")
    hold = models.CharField(max_length=24, choices=Hold.choices, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    held_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    stalled_at = models.DateTimeField(null=True, blank=True)
    pending_at = models.DateTimeField(null=True, blank=True)
    pending_until = models.DateTimeField(null=True, blank=True, help_text="kept pending until then")
    # The screening signal of a pending image beside the second opinion: the majority label of its nearest
    # MNIST training images. With both reading the claimed digit it may be trained on unreviewed.
    neighbour_label = models.PositiveSmallIntegerField(null=True, blank=True)
    paid_by_version = models.ForeignKey(
        "bounty.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="paid_on_learn",
        help_text="the promoted model that read this pending image as the digit and so had it paid",
    )  # fmt: skip
    payout_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="claims the network refused with the slot unspent"
    )
    updated = models.DateTimeField(default=timezone.now, db_index=True)
    # The near-duplicate index (bounty.near_duplicates): the 64-bit near hash and its four 16-bit bands, each
    # band indexed, so the rows sharing a band with a new image are found without reading the others. Set
    # from the pixels when the row is saved.
    near_hash = models.CharField(max_length=16, blank=True, default="", help_text="64-bit near hash, hex")
    near_band_0 = models.PositiveIntegerField(null=True, blank=True, editable=False)
    near_band_1 = models.PositiveIntegerField(null=True, blank=True, editable=False)
    near_band_2 = models.PositiveIntegerField(null=True, blank=True, editable=False)
    near_band_3 = models.PositiveIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("-received_at",)
        # The review queue's and the submission admin's actions (bounty.admin.submissions).
        permissions = (
            ("approve_payout", "Can approve or decline a held payout"),
            ("retry_payout", "Can retry a stalled payout"),
            ("label_submission", "Can label the digit a submission really shows"),
        )
        # The web form's rate limits count recent submissions per network and per payout address.
        indexes = (
            models.Index(fields=["client_net", "received_at"], name="submission_net_recent"),
            models.Index(fields=["payout_address", "received_at"], name="submission_address_recent"),
            # The near-duplicate lookup matches any of the four bands exactly (bounty.near_duplicates).
            *(
                models.Index(fields=[f"near_band_{band}"], name=f"submission_near_band_{band}")
                for band in range(4)
            ),
        )

    def __str__(self) -> str:
        return f"submission #{self.pk} ({self.state})"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.contributor_ip and not self.client_net:
            self.client_net = network_of(self.contributor_ip)
        if self.pixels and not self.near_hash:
            self.set_near_hash(images.near_hash(self.pixel_bytes))
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def set_near_hash(self, value: int) -> None:
        self.near_hash = f"{value:016x}"
        self.near_band_0, self.near_band_1, self.near_band_2, self.near_band_3 = images.near_hash_bands(value)

    def advance(self, to: str, **fields: object) -> bool:
        """Move to state `to` if the row is still in the state this object holds; False if it was not, and
        the object then holds the row as it is now.

        A second worker running the same step finds the row already moved, does nothing, and carries on from
        the state that worker left.
        """
        if to not in self.TRANSITIONS[self.state]:
            raise ValueError(f"a {self.state} submission cannot become {to}")
        now = timezone.now()
        changes: dict[str, object] = {"state": to, "updated": now, **fields}
        changes[self.TIMESTAMPS[to]] = now
        moved = Submission.objects.filter(pk=self.pk, state=self.state).update(**changes)
        if not moved:
            self.refresh_from_db()
            return False
        for name, value in changes.items():
            setattr(self, name, value)
        return True

    def reject(self, reason: Reason, detail: str = "", **fields: object) -> bool:
        return self.advance(Submission.State.REJECTED, reason=reason, reason_detail=detail[:300], **fields)

    @property
    def is_final(self) -> bool:
        return self.state in (Submission.State.CONFIRMED, Submission.State.REJECTED)

    @property
    def reason_text(self) -> str:
        if not self.reason:
            return ""
        if self.reason == Reason.WRONG_DIGIT and self.predicted_digit is not None:
            return (
                f"The network read your image as a {self.predicted_digit}, "
                f"not a {self.claimed_digit}, so no payment was made."
            )
        return str(Reason(self.reason).label)

    @property
    def pixel_bytes(self) -> bytes:
        return bytes(self.pixels)
