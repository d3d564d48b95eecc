"""bsv-sdk's native script VM, run one way for every caller.

`verify.py` runs a lone locking/unlocking pair (the compiler's checks) and `txverify.py` runs each input of
a whole transaction; both go through `run_spend`, so the VM is configured, guarded and its failures turned
into errors in one place. The VM runs in C when the `_bsv_native` extension is loaded; the pure-Python
fallback is about 20x slower, so it is refused (`NativeVMUnavailable`) instead of silently run.

What the VM says decides the error's type, never its message text: `validate()` returning False is a spend
that evaluated to false; an exception raised by the VM is a script error (the VM reports every failed rule
that way); both are `ScriptFailed`, a `VerificationError` carrying the VM's first line as the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bsv.script.script import Script
from bsv.script.spend import Spend

from contracts.errors import NativeVMUnavailable, ScriptFailed

# A lone pair (no transaction) spends a made-up output of this txid; signatures are not checked there.
DUMMY_TXID = "00" * 32
# bsv-sdk relaxes the clean-stack, push-only and minimal-encoding rules for transaction versions above 1.
TRANSACTION_VERSION = 1


def require_native_vm() -> None:
    """Raise NativeVMUnavailable unless bsv-sdk's C script VM is loaded."""
    import bsv

    if not bsv.native_status().get("available"):
        raise NativeVMUnavailable(
            "bsv-sdk's native VM (_bsv_native) is not available; refusing the ~20x slower pure-Python VM"
        )


@lru_cache(maxsize=64)
def parsed_script(script: bytes) -> Script:
    """bsv-sdk parses script chunks in pure Python (~0.1 s for a 27 KB slot script); every slot of a bounty
    shares one locking script, so parse each once."""
    parsed = Script(script)
    _ = parsed.chunks
    return parsed


@dataclass(frozen=True)
class SpendContext:
    """The transaction around one input, as the VM needs it (signature checks read all of it)."""

    source_txid: str = DUMMY_TXID
    source_vout: int = 0
    source_satoshis: int = 1
    version: int = TRANSACTION_VERSION
    other_inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    input_index: int = 0
    sequence: int = 0xFFFFFFFF
    locktime: int = 0


def run_spend(
    locking: bytes | Script,
    unlocking: bytes | Script,
    context: SpendContext | None = None,
    *,
    input_index: int | None = None,
) -> None:
    """Run `unlocking` then `locking` through the native VM; return when the spend is valid, else raise
    ScriptFailed (with `input_index` when given) carrying the VM's reason."""
    require_native_vm()
    context = context or SpendContext()
    spend = Spend(
        {
            "sourceTXID": context.source_txid,
            "sourceOutputIndex": context.source_vout,
            "sourceSatoshis": context.source_satoshis,
            "lockingScript": _script(locking),
            "transactionVersion": context.version,
            "otherInputs": context.other_inputs,
            "outputs": context.outputs,
            "inputIndex": context.input_index,
            "unlockingScript": _script(unlocking),
            "inputSequence": context.sequence,
            "lockTime": context.locktime,
        }
    )
    try:
        accepted = validate(spend, locking)
    except Exception as error:  # the VM raises RuntimeError for a failed rule; malformed scripts raise others
        raise ScriptFailed(_first_line(error), input_index=input_index) from None
    if not accepted:
        raise ScriptFailed("the script evaluated to false", input_index=input_index)


@lru_cache(maxsize=64)
def native_chunks(script: bytes) -> tuple[tuple[int, bytes | None], ...]:
    """A locking script as the (opcode, data) pairs the native VM takes, built once per script: bsv-sdk's
    Spend builds them in Python on every validate, about 16 ms of a claim's verification for the 8,300
    opcodes of a slot script (measured by benchmarks/profile_submission.py; the VM itself takes about 5)."""
    return tuple((int.from_bytes(chunk.op, "big"), chunk.data) for chunk in parsed_script(script).chunks)


PUSH_LENGTH_BYTES = {0x4C: 1, 0x4D: 2, 0x4E: 4}  # OP_PUSHDATA1, 2, 4: how many bytes give the length
NO_DATA_PUSHES = {0x00, *range(0x4F, 0x61)}  # OP_0, OP_1NEGATE, OP_RESERVED, OP_1..OP_16


def unlocking_chunks(script: Script) -> list[tuple[int, bytes | None]]:
    """An unlocking script as the native VM's (opcode, data) pairs. A well-formed push-only script (a claim:
    a signature and about 400 pixel pushes) is read here in one pass, where bsv-sdk's parser takes about
    7 ms; anything else (another opcode, a truncated push) goes through bsv-sdk's parser, so every script
    is read exactly as bsv-sdk reads it."""
    raw, at = script.serialize(), 0
    chunks: list[tuple[int, bytes | None]] = []
    while at < len(raw):
        op, at = raw[at], at + 1
        if op in NO_DATA_PUSHES:
            chunks.append((op, None))
            continue
        if 0x01 <= op <= 0x4B:
            size = op
        elif op in PUSH_LENGTH_BYTES and at + PUSH_LENGTH_BYTES[op] <= len(raw):
            size = int.from_bytes(raw[at : at + PUSH_LENGTH_BYTES[op]], "little")
            at += PUSH_LENGTH_BYTES[op]
        else:
            return [(int.from_bytes(chunk.op, "big"), chunk.data) for chunk in script.chunks]
        if at + size > len(raw):
            return [(int.from_bytes(chunk.op, "big"), chunk.data) for chunk in script.chunks]
        chunks.append((op, raw[at : at + size]))
        at += size
    return chunks


def validate(spend: Spend, locking: bytes | Script) -> bool:
    """What Spend.validate() does in the native VM, with a locking script given as bytes converted once."""
    if not isinstance(locking, bytes):
        return bool(spend.validate())
    from bsv.native import NATIVE_MODULE

    other_inputs = [
        (
            other.source_txid,
            other.source_output_index,
            other.locking_script.serialize() if other.locking_script else b"",
            other.satoshis or 0,
            other.sequence,
            int(other.sighash),
        )
        for other in spend.other_inputs
    ]
    return bool(
        NATIVE_MODULE.spend_validate(
            unlocking_chunks(spend.unlocking_script),
            list(native_chunks(locking)),
            spend.transaction_version,
            spend.source_txid,
            spend.source_output_index,
            spend.lock_time,
            spend.input_index,
            spend.input_sequence,
            spend.source_satoshis,
            other_inputs,
            [output.serialize() for output in spend.outputs],
        )
    )


def _script(script: bytes | Script) -> Script:
    return parsed_script(script) if isinstance(script, bytes) else script


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.removeprefix("Script evaluation error: ").strip()
