"""The admin's template helpers: the operator wallet box on the admin index, satoshis and bytes in figures
with thousands separators."""

from django import template
from django.conf import settings

from bounty import chain

register = template.Library()

# What the wallet box suggests to send from the local ledger's faucet (the development bootstrap's amount).
FAUCET_SATS = 50_000_000


@register.filter
def sat(value: int | None) -> str:
    """12345678 -> "12,345,678 sat"; None (unknown) -> "-"."""
    return "-" if value is None else f"{value:,} sat"


@register.filter
def figure(value: int | None) -> str:
    """12345678 -> "12,345,678"."""
    return "-" if value is None else f"{value:,}"


@register.inclusion_tag("admin/bounty_wallet.html")
def operator_wallet() -> dict:
    """The operator wallet's address and balance, how to top it up, and the links to the public pages."""
    try:
        address = chain.operator_address()
        balance: int | None = chain.wallet_balance(address)
        error = ""
    except Exception as problem:  # the admin must open even when the chain is down
        address, balance, error = "", None, str(problem)
    return {
        "address": address,
        "balance": balance,
        "error": error,
        "network": settings.NETWORK,
        "local": settings.CHAIN_BACKEND == "local",
        "ledger_dir": settings.LEDGER_DIR,
        "faucet_sats": FAUCET_SATS,
    }
