"""Admin for model versions and bounties: create, fund and deploy, pause, refund, export.

Every action needs a permission of its own (`has_<name>_permission`, declared on the models and given to the
roles in migration 0007): Django leaves an action out of the list, and ignores a forged POST of it, for a
user without it. A deploy and a refund are shown first and run only when that page is confirmed for exactly
what it showed: a deploy's whole bill (rewards, claim fees, the deploy fee of the transaction built but not
stored or broadcast, the total, the share that reaches contributors, the wallet before and after), a
refund's slots, address, total and fee. A deployed bounty's page says what it cost and by which transactions.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta
from typing import Any

import numpy as np
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from bounty import chain, exports, keys
from bounty.funding import FundingError, fund_and_deploy, price_and_lock, refund_unused
from bounty.models import Bounty, ModelVersion, SlotKind, Transaction
from bounty.ops import signing


def may(request: HttpRequest, permission: str) -> bool:
    return request.user.has_perm(f"bounty.{permission}")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "short_sha", "accuracy_percent", "is_active", "created")
    # is_active changes only through the action: the form would let a plain change permission activate a
    # version (and leave two active).
    readonly_fields = ("sha256", "metrics", "script_sizes", "is_active", "created")
    actions = ("activate",)

    def has_activate_permission(self, request: HttpRequest) -> bool:
        return may(request, "activate_modelversion")

    @admin.display(description="sha256")
    def short_sha(self, obj: ModelVersion) -> str:
        return obj.sha256[:16]

    @admin.display(description="accuracy")
    def accuracy_percent(self, obj: ModelVersion) -> str:
        return f"{obj.accuracy:.2%}" if obj.accuracy is not None else "-"

    @admin.action(description="Make the selected version the active one", permissions=["activate"])
    def activate(self, request: HttpRequest, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        queryset.get().activate()
        self.message_user(request, "Activated.")


SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
UNIT = r"(\d+)\s*(weeks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)"
IN_WORDS = re.compile(rf"{UNIT}(?:\s*(?:,|and)?\s*{UNIT})*")


def duration_in_words(text: str) -> timedelta | None:
    """ "1 hour", "30 minutes", "2 days", "1h 30m": what people type where Django wants "01:00:00"."""
    text = text.strip().lower()
    if not IN_WORDS.fullmatch(text):
        return None
    parts = re.findall(UNIT, text)
    return timedelta(seconds=sum(int(amount) * SECONDS[unit[0]] for amount, unit in parts))


class ReviewWindowField(forms.DurationField):
    default_error_messages = {  # noqa: RUF012  (Django's own pattern: merged with the parents' messages)
        "invalid": "Enter a duration as HH:MM:SS (01:00:00 is one hour), a number of seconds, or in words: "
        '"1 hour", "30 minutes", "2 days".',
    }

    def to_python(self, value: object) -> timedelta | None:
        if isinstance(value, str) and (words := duration_in_words(value)) is not None:
            return words
        return super().to_python(value)


class BountyForm(forms.ModelForm):
    review_window = ReviewWindowField(
        required=False,
        help_text="Hold each payout this long for review before paying it (empty: pay at once). HH:MM:SS, "
        'or a number of seconds, or words; e.g. 01:00:00, 3600 or "1 hour" for one hour, "30 minutes", '
        '"2 days".',
    )

    class Meta:
        model = Bounty
        fields = (
            "digit", "reward", "slot_count", "model_version", "review_window", "expires_at", "pending_days",
            "pay_on_learn", "slot_kind", "batch_lanes",
        )  # fmt: skip

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if "model_version" in self.fields and not self.instance.pk:
            self.fields["model_version"].initial = ModelVersion.active()
        if "pending_days" in self.fields:
            self.fields["pending_days"].required = False  # left empty: the default window
        for name in ("slot_kind", "batch_lanes"):  # left out: single slots, as before batch slots existed
            if name in self.fields:
                self.fields[name].required = False

    def clean_slot_kind(self) -> str:
        return str(self.cleaned_data.get("slot_kind") or SlotKind.SINGLE)

    def clean_batch_lanes(self) -> int:
        lanes = self.cleaned_data.get("batch_lanes")
        return int(Bounty._meta.get_field("batch_lanes").default if lanes is None else lanes)

    def clean_pending_days(self) -> int:
        days = self.cleaned_data.get("pending_days")
        if days is None:
            return int(Bounty._meta.get_field("pending_days").default)
        return int(days)

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        version, digit, reward = cleaned.get("model_version"), cleaned.get("digit"), cleaned.get("reward")
        if version is None or digit is None or reward is None:
            return cleaned
        # A batch slot's claim fee is shared by its K images: each reward must cover one image's share.
        lanes = (cleaned.get("batch_lanes") or 0) if cleaned.get("slot_kind") == SlotKind.BATCH else 0
        try:
            cost = chain.claim_cost(version, int(digit), settings.FEE_RATE, lanes)
        except chain.ContractsError as error:
            raise forms.ValidationError(f"the model cannot be compiled for this digit: {error}") from error
        self.cost = cost
        fee = -(-cost["claim_fee"] // max(lanes, 1))
        if reward < fee:
            self.add_error(
                "reward",
                f"The reward ({reward} sat) is below the claim fee ({fee} sat per image): contributors "
                "would be paid less than the miners. Raise the reward.",
            )
        return cleaned


def fee_at(size: int, rate: int) -> int:
    """Satoshis for `size` bytes at `rate` sat/kB, as the builders price them."""
    return chain.fee_rate(rate).fee_for(size)


def cost_table() -> str:
    """Claim fee and bytes per paid image of the active model for each digit, shown on the add form."""
    version = ModelVersion.active()
    if version is None:
        return "No active model version: register one first."
    rows = []
    for digit in range(10):
        try:
            cost = chain.claim_cost(version, digit, settings.FEE_RATE)
        except Exception as error:  # shown, not raised: the form must still open
            return f"cannot compute costs: {error}"
        per_image = cost["bytes_per_paid_image"]
        rows.append((digit, cost["claim_fee"], f"{per_image:,}", f"{fee_at(per_image, settings.FEE_RATE):,}"))
    body = format_html_join("", "<tr><td>{}</td><td>{} sat</td><td>{} bytes</td><td>{} sat</td></tr>", rows)
    return format_html(
        "<p>At {} sat/kB with model {}:</p><table><tr><th>digit</th><th>claim fee per slot</th>"
        "<th>bytes per paid image</th><th>= in fees</th></tr>{}</table>"
        "<p>Bytes per paid image: the slot's output in the deploy (paid by the deploy fee) and its claim "
        "(paid by the claim fee locked in the slot). The deploy action shows the whole bill before anything "
        "is spent.</p>",
        settings.FEE_RATE,
        version.name,
        body,
    )


def per_image_in_words(bounty: Bounty) -> str:
    """ "18,849 bytes per paid image = 1,885 sat at 100 sat/kB", and where those bytes are paid."""
    try:
        lanes = bounty.batch_lanes if bounty.is_batch else 0
        cost = chain.claim_cost(bounty.model_version, bounty.digit, bounty.fee_rate, lanes)
    except Exception as error:  # shown, not raised: the page must still open
        return f"cannot compute costs: {error}"
    rate, total, claim = bounty.fee_rate, cost["bytes_per_paid_image"], cost["claim_bytes"]
    if lanes:
        return (
            f"{total:,} bytes per paid image in a full batch of {lanes} = {fee_at(total, rate):,} sat at "
            f"{rate} sat/kB: the batch slot's output and its claim ({claim:,} bytes at most, paid by the "
            f"claim fee of {cost['claim_fee']:,} sat locked in the slot), shared by {lanes} images; a batch "
            "claimed part-full costs more per image (docs/batch.md)."
        )
    slot = total - claim
    return (
        f"{total:,} bytes per paid image = {fee_at(total, rate):,} sat at {rate} sat/kB: the slot's output "
        f"({slot:,} bytes, {fee_at(slot, rate):,} sat of the deploy fee) and its claim ({claim:,} bytes, "
        f"paid by the claim fee of {cost['claim_fee']:,} sat locked in the slot)."
    )


def bill(bounty: Bounty, slots: list[int], deploys: list[tuple[int, int]]) -> dict:
    """The whole bill of `bounty` from its slots' satoshis and its deploys' (fee, size): rewards, claim fees
    (what the slots lock beyond the rewards), deploy fees, the total and the share paid to contributors."""
    rewards = bounty.reward * bounty.lanes * len(slots)  # a batch slot holds K rewards
    fee = sum(f for f, _ in deploys)
    total = sum(slots) + fee
    return {
        "slots": len(slots),
        "reward": bounty.reward,
        "rewards": rewards,
        "claim_fee": bounty.claim_fee,
        "claim_fees": sum(slots) - rewards,
        "transactions": len(deploys),
        "size": sum(size for _, size in deploys),
        "fee": fee,
        "total": total,
        "share": f"{rewards / total:.1%}" if total else "-",
        "per_image": -(-total // len(slots)) if slots else 0,
    }


def deploy_plan(bounty: Bounty) -> dict:
    """What deploying `bounty` now costs. The deploy is built exactly as the action builds it, from the
    wallet's coins, and thrown away (neither stored nor broadcast): its fee is the one that will be paid
    (fees are computed for the largest signatures; the size may still differ by a byte per signature).
    `terms` is what the confirmation page carries back: the deploy runs only if they are still the same."""
    row: dict = {"bounty": bounty, "problem": "", "bill": None, "terms": ""}
    if bounty.state != Bounty.State.DRAFT:
        row["problem"] = f"it is {bounty.state}: only a draft can be deployed"
        return row
    try:
        built = chain.build_deploy(bounty)
    except chain.ContractsError as error:
        row["problem"] = f"its deploy cannot be built: {error}"
        return row
    slots = [satoshis for deploy in built for _, satoshis in deploy.slots]
    row["bill"] = bill(bounty, slots, [(deploy.fee, deploy.size) for deploy in built])
    row["terms"] = (
        f"{bounty.digit}:{bounty.model_version_id}:{bounty.slot_count}x{bounty.reward}+{bounty.claim_fee}"
        f"@{bounty.fee_rate}:{row['bill']['fee']}"
    )
    return row


def what_it_cost(bounty: Bounty) -> dict:
    """What a deployed bounty spent and by which transactions: its deploys (the bill counts those the chain
    took or may still take; a refused one created no slot and cost nothing) and its migrations' fees."""
    kinds = (Transaction.Kind.DEPLOY, Transaction.Kind.MIGRATE)
    deploys, migrations, slots, paid = [], [], [], []
    for tx in bounty.transactions.filter(kind__in=kinds).order_by("pk"):
        held = list(tx.slots.values_list("satoshis", flat=True))
        row = {"tx": tx, "size": tx.size, "fee": tx.fee, "locked": sum(held)}
        row["counted"] = tx.status != Transaction.Status.FAILED
        if tx.kind == Transaction.Kind.MIGRATE:
            migrations.append(row)
            continue
        deploys.append(row)
        if row["counted"]:
            slots += held
            paid.append((tx.fee, tx.size))
    return {"deploys": deploys, "migrations": migrations, "bill": bill(bounty, slots, paid)}


def wallet_now() -> dict:
    """The operator wallet's address and balance, or why they cannot be read."""
    try:
        address = chain.operator_address()
        return {"address": address, "balance": chain.wallet_balance(address), "error": ""}
    except Exception as problem:  # shown on the page, which must still open
        return {"address": "", "balance": None, "error": str(problem)}


def bounties_in_words(n: int) -> str:
    return f"{n} bounty" if n == 1 else f"{n} bounties"


def export_name(bounties: list[Bounty]) -> str:
    """bounty-3-images, or bounties-3-5-8-images when several are exported together."""
    if len(bounties) == 1:
        return f"bounty-{bounties[0].pk}-images"
    return f"bounties-{'-'.join(str(bounty.pk) for bounty in bounties)}-images"


def merged_zip(bounties: list[Bounty]) -> bytes:
    """One archive for several bounties: each one's export (PNGs and manifests) in a folder of its own."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as merged:
        for bounty in bounties:
            with zipfile.ZipFile(io.BytesIO(exports.export_zip(bounty))) as one:
                for name in one.namelist():
                    merged.writestr(f"bounty-{bounty.pk}/{name}", one.read(name))
    return buffer.getvalue()


def merged_npz(bounties: list[Bounty]) -> bytes:
    """One training file for several bounties: their arrays one after the other, and `bounty` per image."""
    parts = [np.load(io.BytesIO(exports.export_npz(bounty))) for bounty in bounties]
    arrays: dict[str, Any] = {  # Any: numpy's stubs would read an array-valued dict as allow_pickle
        name: np.concatenate([part[name] for part in parts]) for name in ("images", "labels", "submission")
    }
    which = [
        np.full(len(part["labels"]), bounty.pk, dtype=np.int64)
        for bounty, part in zip(bounties, parts, strict=True)
    ]
    arrays["bounty"] = np.concatenate(which)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def free_slot_ids(bounty: Bounty) -> str:
    """The bounty's free slots as the confirmation page carries them: what a refund would spend now."""
    return ",".join(str(slot.pk) for slot in signing.free_slots(bounty))


def refund_plan(bounty: Bounty, to_address: str) -> dict:
    """What refunding `bounty` now spends (each slot's outpoint and satoshis) and pays (address, total,
    fee): the same transaction as the refund action builds, before anyone signs or broadcasts it."""
    row: dict = {"bounty": bounty, "slot_ids": free_slot_ids(bounty), "refund": None, "problem": ""}
    if row["slot_ids"]:
        try:
            row["refund"] = signing.prepare_refund(bounty, to_address)
        except signing.SigningError as error:
            row["problem"] = str(error)
    return row


TERMS = ["digit", "reward", "slot_count", "model_version", "slot_kind", "batch_lanes"]
# Pay on learn's window and choice are not in any script: the funder may change them at any time.
EDITABLE = [*TERMS, "review_window", "expires_at", "pending_days", "pay_on_learn"]


@admin.register(Bounty)
class BountyAdmin(admin.ModelAdmin):
    form = BountyForm
    list_display = (
        "id",
        "digit",
        "reward",
        "claim_fee",
        "slot_count",
        "left",
        "state",
        "paused",
        "model_version",
    )
    list_filter = ("state", "digit", "paused", "model_version")
    actions = ("deploy", "pause", "resume", "refund", "export_zip", "export_npz")

    def get_readonly_fields(self, request: HttpRequest, obj: Bounty | None = None) -> list[str]:
        if obj is None:
            return ["costs"]
        # The terms are in the slots' scripts and amounts once deployed: shown, no longer editable.
        fixed = TERMS if obj.state != Bounty.State.DRAFT else []
        return [
            *fixed,
            "claim_fee",
            "fee_rate",
            "cost_per_image",
            "spent",
            "state",
            "left",
            "paused",
            "second_opinion",
            "operator_pubkey",
            "admin_pubkey",
        ]

    def get_fieldsets(self, request: HttpRequest, obj: Bounty | None = None) -> list:
        if obj is None:
            return [(None, {"fields": [*EDITABLE, "costs"]})]
        return [
            (None, {"fields": EDITABLE}),
            ("Costs", {"fields": ["claim_fee", "fee_rate", "cost_per_image", "spent"]}),
            ("State", {"fields": ["state", "left", "paused", "second_opinion"]}),
            ("Keys the slots are locked to", {"fields": ["operator_pubkey", "admin_pubkey"]}),
        ]

    @admin.display(description="costs")
    def costs(self, obj: Bounty | None = None) -> str:
        return cost_table()

    @admin.display(description="per paid image")
    def cost_per_image(self, obj: Bounty) -> str:
        return per_image_in_words(obj)

    @admin.display(description="what it cost")
    def spent(self, obj: Bounty) -> str:
        if obj.state == Bounty.State.DRAFT:
            return "Nothing yet: the deploy action shows the whole bill before anything is spent."
        return render_to_string("admin/bounty/what_it_cost.html", what_it_cost(obj))

    @admin.display(description="second opinion")
    def second_opinion(self, obj: Bounty) -> str:
        if settings.SECOND_OPINION:
            return "Payouts also need the second model's agreement (on)."
        return "Off: only the published model decides."

    @admin.display(description="slots left")
    def left(self, obj: Bounty) -> int | str:
        return "not deployed" if obj.state == Bounty.State.DRAFT else obj.slots_left()

    def save_model(self, request: HttpRequest, obj: Bounty, form: BountyForm, change: bool) -> None:
        if obj.state == Bounty.State.DRAFT:
            price_and_lock(obj)
        super().save_model(request, obj, form, change)

    def has_fund_permission(self, request: HttpRequest) -> bool:
        return may(request, "fund_bounty")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return may(request, "pause_bounty")

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return may(request, "refund_bounty")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return may(request, "export_bounty")

    @admin.action(description="Fund and deploy the selected draft bounties", permissions=["fund"])
    def deploy(self, request: HttpRequest, queryset) -> TemplateResponse | None:
        if request.POST.get("post") != "yes":
            return self.deploy_confirmation(request, queryset)
        # Every bill is checked before anything is deployed: a deploy changes the wallet the others read.
        plans = [deploy_plan(bounty) for bounty in queryset]
        for row in plans:
            bounty = row["bounty"]
            if row["problem"] or request.POST.get(f"terms-{bounty.pk}") != row["terms"]:
                why = row["problem"] or "what it costs changed since the confirmation page"
                self.message_user(
                    request,
                    f"Bounty #{bounty.pk}: {why}; nothing was deployed. Deploy it again to see its bill now.",
                    messages.ERROR,
                )
                continue
            try:
                txs = fund_and_deploy(bounty)
            except FundingError as error:
                self.message_user(request, f"Bounty #{bounty.pk}: {error}", messages.ERROR)
                continue
            paid = what_it_cost(bounty)["bill"]
            txids = ", ".join(tx.txid for tx in txs)
            self.message_user(
                request,
                f"Bounty #{bounty.pk} is {bounty.state}: it spent {paid['total']:,} sat ({paid['rewards']:,} "
                f"sat of rewards, {paid['claim_fees']:,} sat of claim fees, {paid['fee']:,} sat of deploy "
                f"fee); deploy transactions: {txids}",
            )
        return None

    def deploy_confirmation(self, request: HttpRequest, queryset) -> TemplateResponse:
        rows = [deploy_plan(bounty) for bounty in queryset]
        wallet = wallet_now()
        needed = sum(row["bill"]["total"] for row in rows if row["bill"])
        after = wallet["balance"] - needed if wallet["balance"] is not None else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Fund and deploy?",
            "opts": self.model._meta,
            "queryset": queryset,
            "rows": rows,
            "wallet": wallet,
            "needed": needed,
            "after": after,
            "network": settings.NETWORK,
            "can_deploy": needed > 0 and after is not None and after >= 0,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/bounty/deploy_confirmation.html", context)

    @admin.action(description="Pause the selected bounties", permissions=["pause"])
    def pause(self, request: HttpRequest, queryset) -> None:
        self.message_user(request, f"Paused {bounties_in_words(queryset.update(paused=True))}.")

    @admin.action(description="Resume the selected bounties", permissions=["pause"])
    def resume(self, request: HttpRequest, queryset) -> None:
        self.message_user(request, f"Resumed {bounties_in_words(queryset.update(paused=False))}.")

    @admin.action(description="Refund the unused slots of the selected bounties", permissions=["refund"])
    def refund(self, request: HttpRequest, queryset) -> TemplateResponse | None:
        to_address = signing.refund_address()
        if request.POST.get("post") != "yes":
            return self.refund_confirmation(request, queryset, to_address)
        for bounty in queryset:
            # Spend exactly what the page showed: a slot freed or taken since then means another look.
            if request.POST.get(f"slots-{bounty.pk}") != free_slot_ids(bounty):
                self.message_user(
                    request,
                    f"Bounty #{bounty.pk}: its free slots changed since the confirmation page; nothing was "
                    "refunded. Refund it again to see what it would spend now.",
                    messages.ERROR,
                )
                continue
            try:
                tx = refund_unused(bounty, to_address)
            except FundingError as error:
                self.message_user(request, f"Bounty #{bounty.pk}: {error}", messages.ERROR)
                continue
            done = f"refund transaction {tx.txid}" if tx else "no unused slots"
            self.message_user(request, f"Bounty #{bounty.pk}: {done}")
        return None

    def refund_confirmation(self, request: HttpRequest, queryset, to_address: str) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Refund the unused slots?",
            "opts": self.model._meta,
            "queryset": queryset,
            "rows": [refund_plan(bounty, to_address) for bounty in queryset],
            "to_address": to_address,
            "key_on_server": keys.admin_key_on_server(),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/bounty/refund_confirmation.html", context)

    @admin.action(description="Export collected images (zip of PNG + manifest)", permissions=["export"])
    def export_zip(self, request: HttpRequest, queryset) -> HttpResponse:
        bounties = list(queryset.order_by("pk"))
        content = exports.export_zip(bounties[0]) if len(bounties) == 1 else merged_zip(bounties)
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{export_name(bounties)}.zip"'
        return response

    @admin.action(description="Export collected images (npz for training)", permissions=["export"])
    def export_npz(self, request: HttpRequest, queryset) -> HttpResponse:
        bounties = list(queryset.order_by("pk"))
        content = exports.export_npz(bounties[0]) if len(bounties) == 1 else merged_npz(bounties)
        response = HttpResponse(content, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{export_name(bounties)}.npz"'
        return response
