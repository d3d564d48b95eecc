"""The service's one door to `contracts`' chain code: backends, addresses, wallet, transaction builders.

Everything the service asks of a blockchain goes through here, so a change in `contracts` is a change in
this module only. Errors from the chain are `contracts.errors.ChainError`, whose `permanent` flag the
pipeline uses to choose between retrying and giving up.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings

from bounty import keys
from contracts.address import address_from_hash160, hash160_of_p2pkh_script, parse_address
from contracts.chain import ChainBackend, TxState, TxStatus
from contracts.errors import AddressError, ChainError, ContractsError
from contracts.fees import FeeRate
from contracts.txverify import parse_transaction

log = logging.getLogger(__name__)

__all__ = ["ChainError", "ContractsError", "TxState", "TxStatus"]


def address_problem(text: str) -> str | None:
    """None when `text` is a P2PKH address of the configured network, else what is wrong, in plain words."""
    if not text:
        return "Enter the BSV address the reward should be paid to."
    try:
        parse_address(text, settings.NETWORK)
    except AddressError as error:
        return f"Not a valid address: {error.reason}."
    return None


def fee_rate() -> FeeRate:
    return FeeRate(settings.FEE_RATE)


@functools.cache
def backend() -> ChainBackend:
    if settings.CHAIN_BACKEND == "local":
        from contracts.ledger import LocalLedger

        return LocalLedger(settings.LEDGER_DIR, fee_rate=fee_rate(), network=settings.NETWORK)
    from contracts.arc import ArcBackend  # type: ignore[import-not-found]

    return ArcBackend(settings.ARC_URL, api_key=settings.ARC_API_KEY, network=settings.NETWORK)


def reset() -> None:
    backend.cache_clear()


def ping() -> int:
    """The best block height; raises when the backend cannot be reached."""
    return backend().height()


def broadcast(raw_hex: str) -> str:
    return backend().broadcast(bytes.fromhex(raw_hex))


def status(txid: str) -> TxStatus:
    return backend().status(txid)


def wallet_balance(address: str) -> int:
    return sum(utxo.satoshis for utxo in backend().utxos(address))


def faucet(address: str, satoshis: int) -> str:
    """Fund an address on the local ledger (development only)."""
    ledger = backend()
    if not hasattr(ledger, "fund"):
        raise ChainError("the faucet exists only on the local ledger", permanent=True)
    return ledger.fund(address, satoshis)


def mine(blocks: int = 1) -> list[int]:
    """Mine blocks on the local ledger (tests and the demo)."""
    ledger = backend()
    if not hasattr(ledger, "mine"):
        raise ChainError("only the local ledger mines on demand", permanent=True)
    return ledger.mine(blocks)


# -- keys and wallet --------------------------------------------------------------------------------------


def operator_address() -> str:
    return keys.operator_key().address


def public_keys() -> tuple[str, str]:
    """The operator's and the admin's public keys (hex) that a new bounty's slots are locked to."""
    return keys.operator_key().public_key.hex(), keys.admin_key().public_key.hex()


def describe(raw_hex: str) -> tuple[list[tuple[str, int, int]], list[tuple[int, int, str]]]:
    """Inputs (txid, vout, unlocking bytes) and outputs (index, satoshis, kind), for the admin's explorer."""
    tx = parse_transaction(bytes.fromhex(raw_hex))
    inputs = [
        (
            i.source_txid,
            i.source_output_index,
            len(i.unlocking_script.serialize()) if i.unlocking_script else 0,
        )
        for i in tx.inputs
    ]
    outputs = []
    for index, out in enumerate(tx.outputs):
        script = out.locking_script.serialize()
        hash160 = hash160_of_p2pkh_script(script)
        kind = (
            f"pays {address_from_hash160(hash160, settings.NETWORK)}"
            if hash160
            else f"contract, {len(script):,} bytes"
        )
        outputs.append((index, out.satoshis, kind))
    return inputs, outputs
