"""The operator wallet box on the admin index."""

from django import template

from bounty import chain

register = template.Library()


@register.inclusion_tag("admin/bounty_wallet.html")
def operator_wallet() -> dict:
    try:
        address = chain.operator_address()
        balance: int | None = chain.wallet_balance(address)
        error = ""
    except Exception as problem:  # the admin must open even when the chain is down
        address, balance, error = "", None, str(problem)
    return {"address": address, "balance": balance, "error": error}
