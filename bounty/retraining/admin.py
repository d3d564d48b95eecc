"""Admin for the retraining loop: runs and their decisions, collected images and the review of flagged ones,
redeployments with their per-bounty steps (a new redeployment to an older version is a rollback).

The review actions on collected images change them, so they need the change permission; a rollback makes
another version active, so adding a redeployment also needs bounty.activate_modelversion. A rollback is
shown first (each bounty's free slots by outpoint and satoshis, the new slots and their model, the fee, the
operator wallet's part and change) and starts only when that page is confirmed for what it showed."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from bounty import chain
from bounty.models import Bounty, ModelVersion, Slot
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

    @admin.action(description="Reviewed: train on the selected flagged images", permissions=["change"])
    def train_on(self, request: HttpRequest, queryset) -> None:
        changed = queryset.filter(role=CollectedImage.Role.FLAGGED).update(
            role=CollectedImage.Role.TRAIN, note="approved for training by a reviewer"
        )
        self.message_user(request, f"{changed} image(s) will be trained on.")

    @admin.action(description="Never train on the selected images", permissions=["change"])
    def exclude_from_training(self, request: HttpRequest, queryset) -> None:
        changed = queryset.update(role=CollectedImage.Role.EXCLUDED, note="excluded by a reviewer")
        self.message_user(request, f"{changed} image(s) excluded.")


def migration_plan(target: ModelVersion) -> list[dict]:
    """What moving every active bounty to `target` would spend and create now, bounty by bounty: the
    migrations a redeployment builds (each old slot becomes one new slot, as many per transaction as fit, the
    operator wallet topping up), unsigned, so nothing is signed or broadcast. Slots reserved by a claim in
    flight are not in it: the redeployment waits for their claims."""
    wallet = chain.operator_address()
    funding = None
    rows = []
    bounties = Bounty.objects.filter(state=Bounty.State.ACTIVE).exclude(model_version=target)
    for bounty in bounties.select_related("model_version").order_by("pk"):
        free = list(Slot.objects.free().filter(bounty=bounty).with_txids())
        free.sort(key=lambda slot: slot.pk)
        row: dict = {"bounty": bounty, "slot_ids": [slot.pk for slot in free], "transactions": []}
        row["reserved"] = Slot.objects.filter(bounty=bounty, state=Slot.State.RESERVED).count()
        locked_to = (bounty.digit, bounty.operator_pubkey, bounty.admin_pubkey)
        try:
            if funding is None:
                funding = chain.backend().utxos(wallet)
            old = chain.slot_contract(bounty.model_version.artifact, *locked_to)
            new = chain.slot_contract(target.artifact, *locked_to)
            for _, utxos in chain.migration_groups(free, old, new):
                unsigned = chain.prepare_migration(bounty, utxos, new, funding)
                used = {(u.txid, u.vout) for u in unsigned.spent}
                funding = [coin for coin in funding if (coin.txid, coin.vout) not in used]
                row["transactions"].append(migration_summary(unsigned, wallet))
        except (chain.ChainError, chain.ContractsError, ValueError) as error:
            row["problem"] = str(error)
        rows.append(row)
    return rows


def migration_summary(unsigned: chain.UnsignedMigration, wallet: str) -> dict:
    slots = unsigned.spent[: unsigned.admin_inputs]
    coins = unsigned.spent[unsigned.admin_inputs :]
    change = sum(value for _, value in unsigned.outputs[unsigned.slots :])
    outputs = sum(value for _, value in unsigned.outputs)
    return {
        "slots": [(f"{u.txid}:{u.vout}", u.satoshis) for u in slots],
        "new_slots": unsigned.slots,
        "slot_value": unsigned.outputs[0][1],
        "from_wallet": sum(u.satoshis for u in coins) - change,
        "change": change,
        "change_address": wallet,
        "fee": sum(u.satoshis for u in unsigned.spent) - outputs,
    }


def plan_key(rows: list[dict]) -> str:
    """The slots a plan spends, as the confirmation page carries them back."""
    return ";".join(f"{row['bounty'].pk}:{','.join(map(str, row['slot_ids']))}" for row in rows)


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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and request.user.has_perm("bounty.activate_modelversion")

    def get_inlines(self, request: HttpRequest, obj: Redeployment | None) -> tuple:
        # The steps are made by the redeployment itself: the add form (and its confirmation) has none.
        return self.inlines if obj else ()

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """A rollback is saved (and starts moving money) only from the confirmation page, and only while
        what it would spend is still what that page showed."""
        if request.method == "POST":
            if not self.has_add_permission(request):
                raise PermissionDenied
            form = self.get_form(request)(request.POST)
            if form.is_valid():
                rows = migration_plan(form.cleaned_data["target"])
                if request.POST.get("_confirmed") != plan_key(rows):
                    return self.rollback_confirmation(request, form, rows)
        return super().add_view(request, form_url, extra_context)

    def rollback_confirmation(self, request: HttpRequest, form, rows: list[dict]) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Roll back to this model?",
            "opts": self.model._meta,
            "target": form.cleaned_data["target"],
            "reason": form.cleaned_data.get("reason", ""),
            "rows": rows,
            "plan": plan_key(rows),
            "changed": "_confirmed" in request.POST,
            "active": ModelVersion.active(),
            "network": settings.NETWORK,
        }
        return TemplateResponse(request, "admin/retraining/rollback_confirmation.html", context)

    def get_readonly_fields(self, request: HttpRequest, obj: Redeployment | None = None) -> tuple[str, ...]:
        return ("target", "reason") if obj else ()

    def save_model(self, request: HttpRequest, obj: Redeployment, form, change: bool) -> None:
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
