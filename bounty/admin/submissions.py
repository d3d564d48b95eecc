"""Admin for submissions, with the 28x28 image enlarged, and the review queue (labels, held payouts).

Each action needs its own permission (bounty.retry_payout, bounty.approve_payout, bounty.label_submission;
roles in migration 0007). In the queue the label is the only thing that changes, so labelling is its change
permission too.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import path
from django.utils.html import format_html

from bounty import images, payouts, pipeline
from bounty.admin.pending import pending_grid
from bounty.models import Reason, Submission
from bounty.queue import enqueue


def thumbnail(submission: Submission, size: int) -> str:
    return format_html(
        '<img src="{}" width="{}" height="{}" style="image-rendering: pixelated; background: #000" alt="">',
        images.png_data_url(submission.pixel_bytes),
        size,
        size,
    )


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "image",
        "state",
        "claimed_digit",
        "predicted_digit",
        "true_digit",
        "bounty",
        "received_at",
    )
    list_filter = ("state", "claimed_digit", "reason", "bounty", "received_at")
    search_fields = ("payout_address", "pixel_sha256", "claim_tx__txid")
    date_hierarchy = "received_at"
    fields = (
        "large_image", "bounty", "state", "reason", "reason_detail", "claimed_digit", "predicted_digit",
        "scores", "true_digit", "payout_address", "contributor_ip", "claim_tx", "pixel_sha256", "phash",
        "original", "received_at", "checked_at", "held_at", "verified_at", "broadcast_at", "confirmed_at",
        "rejected_at", "stalled_at", "payout_attempts",
    )  # fmt: skip
    readonly_fields = tuple(f for f in fields if f != "true_digit")
    actions = ("retry_payout", "give_up_payout")

    def has_retry_payout_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bounty.retry_payout")

    @admin.action(
        description="Retry the payout of stalled submissions (the chain is asked first)",
        permissions=["retry_payout"],
    )
    def retry_payout(self, request: HttpRequest, queryset) -> None:
        retried = 0
        for submission in queryset.filter(state=Submission.State.STALLED):
            try:
                if payouts.retry_stalled(submission):
                    enqueue(submission.pk)
                    retried += 1
            except payouts.TryLater as error:
                self.message_user(request, f"The chain cannot be reached: {error}", messages.ERROR)
                return
        self.message_user(request, f"{retried} stalled payout(s) sent back to be paid.", messages.SUCCESS)

    @admin.action(
        description="Give up the payout of stalled submissions: reject them, free their slots (the chain is "
        "asked first)",
        permissions=["retry_payout"],
    )
    def give_up_payout(self, request: HttpRequest, queryset) -> None:
        given_up = 0
        for submission in queryset.filter(state=Submission.State.STALLED):
            try:
                given_up += int(payouts.give_up_stalled(submission))
            except payouts.TryLater as error:
                self.message_user(request, f"The chain cannot be reached: {error}", messages.ERROR)
                return
        self.message_user(request, f"{given_up} stalled payout(s) given up.", messages.SUCCESS)

    @admin.display(description="image")
    def image(self, obj: Submission) -> str:
        return thumbnail(obj, 56)

    @admin.display(description="what the network saw")
    def large_image(self, obj: Submission) -> str:
        return thumbnail(obj, 224)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ReviewItem(Submission):
    """The review queue: rejected, held and pending submissions, for labels and held payouts (pending ones
    are faster to decide in their grid, bounty.admin.pending)."""

    class Meta:
        proxy = True
        verbose_name = "review queue item"
        verbose_name_plural = "review queue"


@admin.register(ReviewItem)
class ReviewQueueAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "image",
        "state",
        "reason",
        "claimed_digit",
        "predicted_digit",
        "true_digit",
        "bounty",
    )
    list_editable = ("true_digit",)
    list_filter = ("state", "reason", "claimed_digit", "bounty")
    fields = SubmissionAdmin.fields
    readonly_fields = SubmissionAdmin.readonly_fields  # the true digit is the only thing to change here
    actions = ("approve_payout", "decline", "label_as_claimed", "label_as_predicted")

    def has_approve_payout_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bounty.approve_payout")

    def has_label_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bounty.label_submission")

    def has_change_permission(self, request: HttpRequest, obj: Submission | None = None) -> bool:
        return self.has_label_permission(request)

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .filter(state__in=(Submission.State.HELD, Submission.State.REJECTED, Submission.State.PENDING))
        )

    @admin.display(description="image")
    def image(self, obj: Submission) -> str:
        return thumbnail(obj, 84)

    @admin.display(description="what the network saw")
    def large_image(self, obj: Submission) -> str:
        return thumbnail(obj, 224)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list:
        # The grid of pending images (bounty.admin.pending), beside the queue's list.
        grid = self.admin_site.admin_view(lambda request: pending_grid(request, self.admin_site))
        return [path("pending/", grid, name="bounty_reviewitem_pending"), *super().get_urls()]

    @admin.action(description="Approve the held payout", permissions=["approve_payout"])
    def approve_payout(self, request: HttpRequest, queryset) -> None:
        approved = sum(pipeline.approve(s) for s in queryset.filter(state=Submission.State.HELD))
        self.message_user(request, f"Approved {approved} held payouts; they are being paid.")

    @admin.action(description="Decline (do not pay)", permissions=["approve_payout"])
    def decline(self, request: HttpRequest, queryset) -> None:
        declined = sum(s.reject(Reason.REVIEWER) for s in queryset.filter(state=Submission.State.HELD))
        self.message_user(request, f"Declined {declined} held submissions.", messages.WARNING)

    @admin.action(description="Label: the digit it was drawn as is right", permissions=["label"])
    def label_as_claimed(self, request: HttpRequest, queryset) -> None:
        for submission in queryset:
            Submission.objects.filter(pk=submission.pk).update(true_digit=submission.claimed_digit)
        self.message_user(request, "Labelled.")

    @admin.action(description="Label: the network's reading is right", permissions=["label"])
    def label_as_predicted(self, request: HttpRequest, queryset) -> None:
        for submission in queryset.exclude(predicted_digit=None):
            Submission.objects.filter(pk=submission.pk).update(true_digit=submission.predicted_digit)
        self.message_user(request, "Labelled.")
