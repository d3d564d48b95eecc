"""Model versions, bounties and the reward slots that hold a bounty's money."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils import timezone

from bounty.models.transactions import Transaction

# A slot exists once the chain has the transaction that creates it (a deploy or a migration). A slot whose
# transaction is stored but not yet accepted, or was refused, holds no money and is never offered.
ON_CHAIN = (Transaction.Status.BROADCAST, Transaction.Status.CONFIRMED)


class ModelVersion(models.Model):
    """One integer model artifact the service can compile into slot contracts."""

    name = models.CharField(max_length=100, unique=True)
    artifact = models.CharField(max_length=500, help_text="path of the .npz model artifact")
    sha256 = models.CharField(max_length=64, help_text="weights_sha256 from the manifest")
    metrics = models.JSONField(default=dict, blank=True)
    script_sizes = models.JSONField(
        default=dict, blank=True, help_text="per digit: locking script bytes, claim bytes, claim fee"
    )
    is_active = models.BooleanField(default=False)
    # What pay on learn measured of this version when its bounties moved to it (bounty.retraining.pending):
    # pending images re-read, paid, and the ids of those it still reads as another digit.
    learning = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created",)
        # The admin action that switches the model new bounties are priced and locked to (see bounty.admin).
        permissions = (("activate_modelversion", "Can make a model version the active one"),)

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"

    @property
    def accuracy(self) -> float | None:
        value = self.metrics.get("integer_test_accuracy")
        return float(value) if value is not None else None

    @classmethod
    def active(cls) -> ModelVersion | None:
        return cls.objects.filter(is_active=True).first()

    @classmethod
    def register(cls, artifact: Path, name: str | None = None, activate: bool = False) -> ModelVersion:
        """Record an artifact by its manifest; the same weights registered twice give the same row."""
        manifest = read_manifest(artifact)
        sha = manifest.get("weights_sha256", "")
        version = cls.objects.filter(sha256=sha).first()
        if version is None:
            version = cls.objects.create(
                name=name or f"{artifact.stem}-{sha[:8]}",
                artifact=str(artifact),
                sha256=sha,
                metrics=manifest.get("metrics", {}),
            )
        if activate:
            version.activate()
        return version

    def activate(self) -> None:
        with transaction.atomic():
            ModelVersion.objects.exclude(pk=self.pk).update(is_active=False)
            ModelVersion.objects.filter(pk=self.pk).update(is_active=True)
        self.is_active = True


def read_manifest(artifact: Path) -> dict:
    sidecar = artifact.with_suffix(".json")
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    import numpy as np

    with np.load(artifact, allow_pickle=False) as data:
        return json.loads(str(data["manifest"]))


# A batch of one costs more bytes than a single slot (docs/batch.md), and batches beyond 16 were not measured.
MIN_BATCH_LANES, MAX_BATCH_LANES = 2, 16


class SlotKind(models.TextChoices):
    SINGLE = "single", "single (one image per slot)"
    BATCH = "batch", "batch (K images per slot)"


class Bounty(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft"
        FUNDED = "funded"  # deploy transactions stored, not yet all accepted by the chain
        ACTIVE = "active"
        EXHAUSTED = "exhausted"
        CLOSED = "closed"
        REFUNDED = "refunded"

    digit = models.PositiveSmallIntegerField(choices=[(d, str(d)) for d in range(10)])
    reward = models.PositiveBigIntegerField(help_text="satoshis paid to the contributor per accepted image")
    slot_count = models.PositiveIntegerField(help_text="how many images this bounty pays for")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="bounties")
    fee_rate = models.PositiveIntegerField(help_text="satoshis per 1,000 bytes")
    claim_fee = models.PositiveBigIntegerField(default=0, help_text="satoshis per slot for the claim fee")
    operator_pubkey = models.CharField(max_length=66, blank=True)
    admin_pubkey = models.CharField(max_length=66, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    paused = models.BooleanField(default=False)
    review_window = models.DurationField(
        null=True,
        blank=True,
        help_text="hold payouts this long for review before paying (empty: pay at once)",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # Pay on learn: an image the model reads as another digit is kept this many days (0: rejected at once);
    # reviewers confirm or discard it, and a promoted model that reads it as the digit has it paid, if
    # `pay_on_learn` (bounty.retraining.pending).
    pending_days = models.PositiveSmallIntegerField(
        default=30, help_text="days an image the model reads as another digit is kept for a later model"
    )
    pay_on_learn = models.BooleanField(
        default=True, help_text="pay a kept image when a later model reads it as the digit, while slots last"
    )
    created = models.DateTimeField(default=timezone.now)
    funded_at = models.DateTimeField(null=True, blank=True)
    # Batch slots (docs/batch.md): one slot checks `batch_lanes` images in one spend and pays each of them,
    # so the ~17.5 KB predicate is shared; accepted images wait until K are there or BATCH_MAX_WAIT passed.
    slot_kind = models.CharField(
        max_length=6, choices=SlotKind.choices, default=SlotKind.SINGLE,
        help_text="single: one image per slot, paid at once; batch: K images per slot, fewer bytes per image",
    )  # fmt: skip
    batch_lanes = models.PositiveSmallIntegerField(
        default=8,
        validators=[MinValueValidator(MIN_BATCH_LANES), MaxValueValidator(MAX_BATCH_LANES)],
        help_text="K, the images one batch slot pays (batch slots only; 8 recommended, 16 for busy bounties)",
    )

    class Meta:
        ordering = ("-created",)
        verbose_name_plural = "bounties"
        # One per admin action and ops page that moves or reveals a bounty's money or images, so a
        # staff user who may only look cannot act (bounty.admin, bounty.ops.views; groups in migration 0007).
        permissions = (
            ("fund_bounty", "Can fund and deploy a bounty"),
            ("refund_bounty", "Can refund a bounty's unused slots"),
            ("pause_bounty", "Can pause and resume a bounty"),
            ("export_bounty", "Can export a bounty's collected images"),
            ("sign_offline", "Can prepare and submit refunds and migrations signed offline"),
        )

    def __str__(self) -> str:
        return f"#{self.pk} digit {self.digit}, {self.reward} sat x {self.slot_count}"

    @property
    def is_batch(self) -> bool:
        return self.slot_kind == SlotKind.BATCH

    @property
    def lanes(self) -> int:
        """Images one slot pays: 1 for single slots, K for batch slots."""
        return self.batch_lanes if self.is_batch else 1

    @property
    def slot_value(self) -> int:
        return self.lanes * self.reward + self.claim_fee

    def is_open(self) -> bool:
        """Whether a new submission may be paid from this bounty now."""
        if self.state != Bounty.State.ACTIVE or self.paused:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    def slots_left(self) -> int:
        """Free slots the chain has: a deploy still waiting for the chain, or refused, adds none."""
        return self.slots.free().count()

    def rewards_left(self) -> int:
        """Images the free slots can still pay (a batch slot pays one per lane): what contributors read."""
        return self.slots_left() * self.lanes

    @property
    def reward_count(self) -> int:
        """Images the bounty pays for when every slot is claimed."""
        return self.slot_count * self.lanes

    def mark_exhausted_if_spent(self) -> None:
        busy = self.slots.on_chain().filter(state__in=[Slot.State.FREE, Slot.State.RESERVED]).exists()
        if not busy:
            Bounty.objects.filter(pk=self.pk, state=Bounty.State.ACTIVE).update(state=Bounty.State.EXHAUSTED)


class SlotQuerySet(models.QuerySet):
    def on_chain(self) -> SlotQuerySet:
        """Slots whose creating transaction the chain has accepted: the only ones that hold money."""
        return self.filter(deploy_tx__status__in=ON_CHAIN)

    def free(self) -> SlotQuerySet:
        """Slots that may be reserved, refunded or migrated now."""
        return self.on_chain().filter(state=Slot.State.FREE)

    def with_txids(self) -> SlotQuerySet:
        """Each slot with its deploy transaction joined, all but the raw bytes: one deploy transaction holds
        up to a few hundred slots of 17.5 KB each, so its raw hex is megabytes, read again for every row."""
        return self.select_related("deploy_tx").defer("deploy_tx__raw_hex")


class Slot(models.Model):
    """One output of a deploy transaction holding reward + claim fee, spendable by one claim."""

    class State(models.TextChoices):
        FREE = "free"
        RESERVED = "reserved"
        CLAIMED = "claimed"
        REFUNDED = "refunded"
        # Taken by a redeployment: spent (or about to be) by a migration that moves its money into a new slot
        # of the same bounty on another model. Not refunded: the money stays in the bounty.
        MIGRATED = "migrated"
        # The chain says another transaction spent the slot's output (a double spend we did not make here):
        # never offered again, shown to the admin.
        SPENT_ELSEWHERE = "spent_elsewhere"

    bounty = models.ForeignKey(Bounty, on_delete=models.PROTECT, related_name="slots")
    deploy_tx = models.ForeignKey("bounty.Transaction", on_delete=models.PROTECT, related_name="slots")
    vout = models.PositiveIntegerField()
    satoshis = models.PositiveBigIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.FREE, db_index=True)
    submission = models.OneToOneField(
        "bounty.Submission", null=True, blank=True, on_delete=models.PROTECT, related_name="slot"
    )
    spent_by = models.ForeignKey(
        "bounty.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="spent_slots"
    )
    # 1 for a single slot; K for a batch slot, whose `submission` is the batch's first member and whose
    # other members point at it by `Submission.batch_slot`.
    lanes = models.PositiveSmallIntegerField(default=1)
    updated = models.DateTimeField(default=timezone.now)

    objects = SlotQuerySet.as_manager()

    class Meta:
        ordering = ("bounty", "id")
        constraints = (models.UniqueConstraint(fields=["deploy_tx", "vout"], name="unique_outpoint"),)

    def __str__(self) -> str:
        return f"{self.outpoint} ({self.state})"

    @property
    def deploy_txid(self) -> str:
        """The txid of the transaction that created the slot, read without its raw bytes (`with_txids`)."""
        if not Slot.deploy_tx.is_cached(self):
            self.deploy_tx = Transaction.objects.defer("raw_hex").get(pk=self.deploy_tx_id)
        return self.deploy_tx.txid

    @property
    def outpoint(self) -> str:
        return f"{self.deploy_txid}:{self.vout}"

    @classmethod
    def reserve(cls, bounty: Bounty, submission_id: int) -> Slot | None:
        """Reserve a free slot of `bounty` for a submission (which keeps the one it holds already); two
        workers never get the same slot."""
        return cls.held_by(submission_id) or cls.take_free(bounty, submission_id)

    @classmethod
    def held_by(cls, submission_id: int) -> Slot | None:
        """The slot a submission holds already (its task ran before), deploy txid joined; None if none."""
        return cls.objects.filter(submission_id=submission_id).with_txids().first()

    @classmethod
    def take_free(cls, bounty: Bounty, submission_id: int) -> Slot | None:
        """Reserve a free slot of `bounty` for a submission that holds none; None when none is free.

        Each attempt is one conditional update whose row count says whether this process won the slot or
        another one got there first, in which case the next free slot is tried.
        """
        for _ in range(20):
            candidates = list(cls.objects.free().filter(bounty=bounty).with_txids()[:8])
            if not candidates:
                return None
            for slot in candidates:
                # The condition stays on the slot's own row (no join, which Django would turn into a
                # subquery read before the row lock), so exactly one worker wins it.
                now = timezone.now()
                won = cls.objects.filter(pk=slot.pk, state=cls.State.FREE, submission__isnull=True).update(
                    state=cls.State.RESERVED, submission_id=submission_id, updated=now
                )
                if won == 1:
                    slot.state, slot.submission_id, slot.updated = cls.State.RESERVED, submission_id, now
                    return slot
        return None

    def mark_spent_elsewhere(self) -> bool:
        """A slot whose output the chain says a transaction we did not make spent: retire it (from reserved,
        or claimed by a claim that lost); False if it was neither."""
        retired = Slot.objects.filter(pk=self.pk, state__in=(Slot.State.RESERVED, Slot.State.CLAIMED)).update(
            state=Slot.State.SPENT_ELSEWHERE, submission=None, spent_by=None, updated=timezone.now()
        )
        return retired == 1

    def hold_for_another_claim(self) -> bool:
        """The slot's claim was refused with its output unspent: reserved again for the same submission,
        whose next claim spends it (bounty.payouts); False if it was neither reserved nor claimed."""
        held = Slot.objects.filter(pk=self.pk, state__in=(Slot.State.RESERVED, Slot.State.CLAIMED)).update(
            state=Slot.State.RESERVED, spent_by=None, updated=timezone.now()
        )
        return held == 1

    @classmethod
    def release_reserved_by(cls, submission_id: int) -> int:
        """Give back the slots a submission has reserved (it waits for a person now); returns how many."""
        return sum(
            int(slot.release())
            for slot in cls.objects.filter(submission_id=submission_id, state=cls.State.RESERVED)
        )

    def release(self) -> bool:
        """Give a slot back (its claim failed for good and the chain says the output is unspent); False if it
        was neither reserved nor claimed."""
        released = Slot.objects.filter(
            pk=self.pk, state__in=(Slot.State.RESERVED, Slot.State.CLAIMED)
        ).update(state=Slot.State.FREE, submission=None, spent_by=None, updated=timezone.now())
        return released == 1
