"""Admin for slots and transactions (with an explorer-style decoding), and the operator wallet."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from bounty import chain
from bounty.models import Slot, Transaction


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ("id", "outpoint", "bounty", "satoshis", "state", "submission", "updated")
    list_filter = ("state", "bounty")
    readonly_fields = (
        "bounty",
        "deploy_tx",
        "vout",
        "satoshis",
        "state",
        "submission",
        "spent_by",
        "updated",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = (
        "short_txid",
        "kind",
        "status",
        "bounty",
        "size",
        "fee",
        "confirmations",
        "block_height",
        "created",
    )
    list_filter = ("kind", "status", "failure", "bounty")
    search_fields = ("txid",)
    fields = (
        "txid", "kind", "status", "bounty", "size", "fee", "confirmations", "block_height",
        "broadcast_attempts", "failure", "reject_code", "competing_txids", "last_error", "created",
        "broadcast_at", "confirmed_at", "decoded", "raw_hex",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="txid")
    def short_txid(self, obj: Transaction) -> str:
        return obj.txid[:16] + "…"

    @admin.display(description="inputs and outputs")
    def decoded(self, obj: Transaction) -> str:
        try:
            inputs, outputs = chain.describe(obj.raw_hex)
        except Exception as error:
            return f"cannot decode: {error}"
        ins = format_html_join(
            "", "<li>{}:{} · unlocking script {} bytes</li>", ((t, v, f"{n:,}") for t, v, n in inputs)
        )
        outs = format_html_join("", "<li>#{} · {} sat · {}</li>", ((i, f"{s:,}", k) for i, s, k in outputs))
        return format_html("<p>Inputs</p><ol>{}</ol><p>Outputs</p><ol start='0'>{}</ol>", ins, outs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Transaction | None = None) -> bool:
        return False
