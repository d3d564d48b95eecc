"""Shared helpers of the chain tests: actors' keys, a funded ledger, and the bitcoinx cross-check."""

from __future__ import annotations

import bitcoinx
from bitcoinx import InterpreterLimits, MinerPolicy, TxInputContext, TxOutput

from contracts.keys import Key
from contracts.ledger import NULL_TXID, LocalLedger
from contracts.txverify import parse_transaction

# Fixed test keys (testnet, never funded anywhere real) so failures are reproducible.
ALICE = Key(bytes.fromhex("a1" * 32), "testnet")  # the funder / wallet owner
BOB = Key(bytes.fromhex("b0" * 32), "testnet")  # a contributor
OPERATOR = Key(bytes.fromhex("0e" * 32), "testnet")
ADMIN = Key(bytes.fromhex("ad" * 32), "testnet")
MALLORY = Key(bytes.fromhex("66" * 32), "testnet")  # someone who should never get paid

POLICY = MinerPolicy(
    max_script_size=500_000,
    max_script_num_length=10_000,
    max_stack_memory_usage=100_000_000,
    max_ops_per_script=4_294_967_295,
    max_pubkeys_per_multisig=64,
)


def bitcoinx_verify(raw: bytes, spent: list[tuple[int, bytes]]) -> None:
    """Run every input of `raw` through bitcoinx's interpreter (a second, independent implementation);
    raise if any input fails."""
    tx = bitcoinx.Tx.from_bytes(raw)
    for index, (satoshis, script) in enumerate(spent):
        limits = InterpreterLimits(POLICY, is_genesis_enabled=True, is_consensus=False)
        context = TxInputContext(tx, index, TxOutput(satoshis, bitcoinx.Script(script)))
        assert context.verify_input(limits, True), f"bitcoinx: input {index} of {tx.hex_hash()} left false"


def reverify_ledger_with_bitcoinx(ledger: LocalLedger) -> int:
    """Re-verify every transaction the ledger accepted with bitcoinx; return how many were checked."""
    outputs: dict[tuple[str, int], tuple[int, bytes]] = {}
    checked = 0
    for entry in ledger.dump():
        tx = parse_transaction(entry.raw)
        if entry.kind != "faucet":
            spent = [outputs[(tx_input.source_txid, tx_input.source_output_index)] for tx_input in tx.inputs]
            assert all(tx_input.source_txid != NULL_TXID for tx_input in tx.inputs)
            bitcoinx_verify(entry.raw, spent)
            checked += 1
        for vout, out in enumerate(tx.outputs):
            outputs[(entry.txid, vout)] = (out.satoshis, out.locking_script.serialize())
    return checked
