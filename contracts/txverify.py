"""Whole-transaction verification: every input through the interpreter, miner policy, and the fee.

One function, `verify_transaction`, used by the transaction builders (before a transaction leaves them) and
by the local ledger (before it accepts one), so both apply identical checks. A failure raises
VerificationError or PolicyError naming the input and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bsv import Transaction, TransactionOutput
from bsv.script.script import Script

from contracts.errors import FeeTooLowError, PolicyError, ScriptFailed, VerificationError
from contracts.fees import FeeRate
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.verify import check_policy as check_script_policy
from contracts.vm import SpendContext, require_native_vm, run_spend


@dataclass(frozen=True)
class SpentOutput:
    """What an input spends: needed to evaluate its script and to compute the fee."""

    satoshis: int
    script: bytes


@dataclass(frozen=True)
class TxCheck:
    """The facts verification established about a transaction."""

    txid: str
    size: int
    fee: int
    inputs: int
    outputs: int


def parse_transaction(raw: bytes) -> Transaction:
    """Deserialize exactly `raw` (no trailing bytes); VerificationError if malformed."""
    try:
        tx = Transaction.from_hex(raw)
    except Exception as error:  # the SDK raises assorted types for truncated input
        raise VerificationError(f"malformed transaction: {error}") from None
    if tx is None or tx.serialize() != raw:
        raise VerificationError("malformed transaction: it does not re-serialize to the same bytes")
    return tx


def run_input(tx: Transaction, index: int, spent: SpentOutput) -> None:
    """Evaluate input `index` against the output it spends with bsv-sdk's native VM."""
    tx_input = tx.inputs[index]
    if tx_input.unlocking_script is None:
        raise VerificationError("the input has no unlocking script", input_index=index)
    context = SpendContext(
        source_txid=tx_input.source_txid,
        source_vout=tx_input.source_output_index,
        source_satoshis=spent.satoshis,
        version=tx.version,
        other_inputs=[other for position, other in enumerate(tx.inputs) if position != index],
        outputs=tx.outputs,
        input_index=index,
        sequence=tx_input.sequence,
        locktime=tx.locktime,
    )
    try:
        run_spend(spent.script, tx_input.unlocking_script, context, input_index=index)
    except ScriptFailed as error:
        raise ScriptFailed(f"script failed: {error.reason}", input_index=index) from None


def check_policy(tx: Transaction, raw: bytes, spent: Sequence[SpentOutput], policy: Policy) -> None:
    policy.check_transaction_size(len(raw))
    if not tx.inputs:
        raise VerificationError("transaction has no inputs")
    if not tx.outputs:
        raise VerificationError("transaction has no outputs")
    for index, tx_output in enumerate(tx.outputs):
        if tx_output.satoshis is None or tx_output.satoshis < 0:
            raise VerificationError(f"output {index} has a negative amount")
    for index, (tx_input, source) in enumerate(zip(tx.inputs, spent, strict=True)):
        unlocking = tx_input.unlocking_script.serialize() if tx_input.unlocking_script else b""
        try:
            # The compiler's script-level policy: script sizes and the size of every pushed number.
            check_script_policy(source.script, unlocking, policy=policy)
        except PolicyError as error:  # the same type (which limit), now naming the input
            raise type(error)(error.reason, input_index=index) from None
    outpoints = [(tx_input.source_txid, tx_input.source_output_index) for tx_input in tx.inputs]
    if len(set(outpoints)) != len(outpoints):
        raise VerificationError("transaction spends the same output twice")


def verify_transaction(
    tx: Transaction | bytes,
    spent: Sequence[SpentOutput],
    *,
    fee_rate: FeeRate,
    policy: Policy = DEFAULT_POLICY,
) -> TxCheck:
    """Check policy, run every input, check that the fee covers `fee_rate`. Raises on the first failure."""
    if isinstance(tx, bytes | bytearray):
        raw = bytes(tx)
        tx = parse_transaction(raw)
    else:
        raw = tx.serialize()
    if len(spent) != len(tx.inputs):
        raise VerificationError(f"{len(tx.inputs)} inputs but {len(spent)} spent outputs were given")
    require_native_vm()
    check_policy(tx, raw, spent, policy)
    for index, source in enumerate(spent):
        run_input(tx, index, source)
    fee = sum(source.satoshis for source in spent) - sum(output.satoshis for output in tx.outputs)
    if fee < 0:
        raise VerificationError(f"outputs exceed inputs by {-fee} sat")
    if not fee_rate.covers(fee, len(raw)):
        raise FeeTooLowError(
            f"fee {fee} sat for {len(raw)} bytes is below {fee_rate.satoshis_per_kb} sat/kB "
            f"(needs {fee_rate.fee_for(len(raw))} sat)"
        )
    return TxCheck(txid=tx.txid(), size=len(raw), fee=fee, inputs=len(tx.inputs), outputs=len(tx.outputs))


def output(script: bytes, satoshis: int) -> TransactionOutput:
    return TransactionOutput(Script(script), satoshis)
