"""What the retraining job records: its lock, each run and its decision, the collected images it used, and
the redeployments that move live bounties to another model version.

These live in their own app beside `bounty`, linked to its rows by foreign keys, so the retraining loop adds
tables without changing the pipeline's.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Lease(models.Model):
    """A named lock with an expiry: held while the holder heartbeats, free again once it stops (a crash)."""

    name = models.CharField(max_length=50, unique=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'}"


class RetrainingRun(models.Model):
    class State(models.TextChoices):
        RUNNING = "running"
        SKIPPED = "skipped"  # not trained: another run held the lock, or too few new images
        REJECTED = "rejected"  # trained, refused by the evaluation gate
        PROMOTED = "promoted"  # trained, passed the gate, now the active version
        FAILED = "failed"  # an error; see `reason`

    trigger = models.CharField(max_length=20, default="schedule")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    reason = models.TextField(blank=True, help_text="why the run ended the way it did")
    base_version = models.ForeignKey(
        "bounty.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    candidate = models.ForeignKey(
        "bounty.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="retraining_runs"
    )
    counts = models.JSONField(default=dict, blank=True, help_text="collected, trained on, held out, ...")
    gate = models.JSONField(default=dict, blank=True, help_text="each criterion: old, new, limit, passed")
    seconds = models.FloatField(null=True, blank=True)
    started = models.DateTimeField(default=timezone.now, db_index=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-started",)

    def __str__(self) -> str:
        return f"run #{self.pk} ({self.state})"

    def finish(self, state: str, reason: str, **fields: object) -> None:
        fields.update(state=state, reason=reason, finished=timezone.now())
        RetrainingRun.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)


class CollectedImage(models.Model):
    """A labelled submission as the retraining job sees it; its role is decided once, when first seen."""

    class Role(models.TextChoices):
        TRAIN = "train"
        HELDOUT = "heldout"  # never trained on: the gate measures collected-image accuracy on these
        DUPLICATE = "duplicate"  # same pixels as an earlier collected image
        FLAGGED = "flagged"  # label disagrees with the old model and the nearest MNIST neighbours: review
        EXCLUDED = "excluded"  # a reviewer decided it must not be trained on

    submission = models.OneToOneField("bounty.Submission", on_delete=models.CASCADE, related_name="collected")
    pixel_sha256 = models.CharField(max_length=64, db_index=True)
    label = models.PositiveSmallIntegerField()
    source = models.CharField(max_length=10, help_text="paid (the bounty's digit) or reviewer (labelled)")
    role = models.CharField(max_length=10, choices=Role.choices, db_index=True)
    note = models.CharField(max_length=300, blank=True)
    model_prediction = models.PositiveSmallIntegerField(null=True, blank=True)
    neighbour_label = models.PositiveSmallIntegerField(null=True, blank=True)
    first_run = models.ForeignKey(RetrainingRun, null=True, on_delete=models.SET_NULL, related_name="+")
    trained_in = models.ForeignKey(
        RetrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="trained_images"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"submission #{self.submission_id} as {self.label} ({self.role})"


class Redeployment(models.Model):
    """Moving every active bounty's free slots to `target` (a promotion or a rollback)."""

    class Kind(models.TextChoices):
        PROMOTION = "promotion"
        ROLLBACK = "rollback"

    class State(models.TextChoices):
        RUNNING = "running"
        DONE = "done"

    target = models.ForeignKey("bounty.ModelVersion", on_delete=models.PROTECT, related_name="+")
    previous = models.ForeignKey(
        "bounty.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    reason = models.TextField(blank=True)
    run = models.ForeignKey(RetrainingRun, null=True, blank=True, on_delete=models.SET_NULL)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    created = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} to {self.target.name} ({self.state})"


class MigrationStep(models.Model):
    """One bounty's part of a redeployment. Every state is written before the work it enables:

    pending -> draining (bounty paused; waits while claims hold reserved slots) -> taken (its free slots are
    marked spent by this step) -> stored (migration transactions built, verified and stored) -> broadcast
    (the chain has them) -> done (new slots recorded, the bounty switched to the target model).
    With the admin key off the server, taken -> signing (unsigned migrations prepared, waiting for an admin
    to sign them at /ops/sign/) -> stored once the pasted signatures verify.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        DRAINING = "draining"
        TAKEN = "taken"
        SIGNING = "signing"  # waiting for the admin's signatures (admin key off the server)
        STORED = "stored"
        BROADCAST = "broadcast"
        DONE = "done"
        FAILED = "failed"  # nothing was spent: the slots are free again on the old model

    redeployment = models.ForeignKey(Redeployment, on_delete=models.CASCADE, related_name="steps")
    bounty = models.ForeignKey("bounty.Bounty", on_delete=models.PROTECT, related_name="+")
    from_version = models.ForeignKey("bounty.ModelVersion", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    was_paused = models.BooleanField(default=False)
    slot_ids = models.JSONField(default=list, blank=True, help_text="old slots this step spends")
    txids = models.JSONField(default=list, blank=True, help_text="migration transactions, in broadcast order")
    unsigned = models.JSONField(
        default=list, blank=True, help_text="migrations prepared for an admin to sign offline"
    )
    new_slots = models.PositiveIntegerField(default=0)
    fee = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    detail = models.TextField(blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("redeployment", "id")
        constraints = (
            models.UniqueConstraint(fields=["redeployment", "bounty"], name="one_step_per_bounty"),
        )

    def __str__(self) -> str:
        return f"bounty #{self.bounty_id}: {self.state}"

    def advance(self, frm: str, to: str, **fields: object) -> bool:
        """Conditional update: False if another process moved this step first, and the object then holds
        the row as that process left it."""
        fields.update(state=to, updated=timezone.now())
        moved = MigrationStep.objects.filter(pk=self.pk, state=frm).update(**fields)
        if not moved:
            self.refresh_from_db()
            return False
        for name, value in fields.items():
            setattr(self, name, value)
        return True
