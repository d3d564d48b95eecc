"""Admin for the retraining loop: runs and their decisions, collected images and the review of flagged ones,
redeployments with their per-bounty steps (a new redeployment to an older version is a rollback)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from bounty.retraining import redeploy
from bounty.retraining.models import CollectedImage, Lease, MigrationStep, Redeployment, RetrainingRun


@admin.register(RetrainingRun)
class RetrainingRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "started", "trigger", "state", "reason", "candidate", "seconds")
    list_filter = ("state", "trigger")
    readonly_fields = tuple(f.name for f in RetrainingRun._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CollectedImage)
class CollectedImageAdmin(admin.ModelAdmin):
    list_display = ("submission", "label", "source", "role", "model_prediction", "neighbour_label", "note")
    list_filter = ("role", "source", "label")
    readonly_fields = ("submission", "pixel_sha256", "label", "source", "model_prediction", "neighbour_label",
                       "first_run", "trained_in", "created")  # fmt: skip
    actions = ("train_on", "exclude_from_training")

    @admin.action(description="Reviewed: train on the selected flagged images")
    def train_on(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        changed = queryset.filter(role=CollectedImage.Role.FLAGGED).update(
            role=CollectedImage.Role.TRAIN, note="approved for training by a reviewer"
        )
        self.message_user(request, f"{changed} image(s) will be trained on.")

    @admin.action(description="Never train on the selected images")
    def exclude_from_training(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        changed = queryset.update(role=CollectedImage.Role.EXCLUDED, note="excluded by a reviewer")
        self.message_user(request, f"{changed} image(s) excluded.")


class StepInline(admin.TabularInline):
    model = MigrationStep
    extra = 0
    can_delete = False
    readonly_fields = ("bounty", "from_version", "state", "new_slots", "fee", "bytes", "txids", "detail")
    fields = readonly_fields


@admin.register(Redeployment)
class RedeploymentAdmin(admin.ModelAdmin):
    list_display = ("pk", "created", "kind", "target", "previous", "state", "reason")
    list_filter = ("kind", "state")
    inlines = (StepInline,)
    fields = ("target", "reason")

    def get_readonly_fields(self, request: HttpRequest, obj: Redeployment | None = None) -> tuple[str, ...]:
        return ("target", "reason") if obj else ()

    def save_model(self, request: HttpRequest, obj: Redeployment, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        """Adding a redeployment by hand moves everything to the chosen version: a rollback."""
        if change:
            return
        created = redeploy.start(
            obj.target, Redeployment.Kind.ROLLBACK, obj.reason or "rolled back by an admin"
        )
        obj.pk = created.pk
        waiting = redeploy.resume()
        note = (
            " Some bounties wait for claims in flight (beat finishes them) or for the admin's signatures at"
            " /ops/sign/."
            if waiting
            else ""
        )
        self.message_user(request, f"{obj.target.name} is active again.{note}", messages.SUCCESS)


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "acquired_at", "expires_at")
    readonly_fields = ("name", "holder", "acquired_at", "expires_at")
