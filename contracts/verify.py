"""Script-level verification: a locking/unlocking pair through bsv-sdk's native VM, plus policy limits.

The VM (`bsv.script.spend.Spend(...).validate()`) runs in C when the `_bsv_native` extension is loaded; the
pure-Python fallback is about 20x slower, so we refuse it instead of silently running it. Transactions are
version 1: bsv-sdk relaxes the clean-stack, push-only and minimal-encoding rules for version > 1. bsv-sdk
enforces no miner policy, so script sizes, number sizes and (for compiled predicates, whose worst case is
known statically) stack memory are checked here before the VM runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from contracts.compiler import CompiledPredicate
from contracts.errors import PolicyError, VerificationError
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.script import parse

TRANSACTION_VERSION = 1
_DUMMY_TXID = "00" * 32


@dataclass(frozen=True)
class SpendResult:
    accepted: bool
    reason: str  # empty when accepted
    seconds: float  # VM time only


def require_native_vm() -> None:
    """Raise VerificationError unless bsv-sdk's C script VM is loaded."""
    import bsv

    status = bsv.native_status()
    if not status.get("available"):
        raise VerificationError(
            "bsv-sdk's native VM (_bsv_native) is not available; refusing the ~20x slower pure-Python VM"
        )


@lru_cache(maxsize=32)
def _bsv_script(script: bytes) -> Any:
    # Parsing chunks is pure Python in bsv-sdk; a locking script is shared by many spends, parse it once.
    from bsv.script.script import Script

    parsed = Script(script)
    _ = parsed.chunks
    return parsed


def check_policy(
    locking: bytes,
    unlocking: bytes,
    *,
    policy: Policy = DEFAULT_POLICY,
    predicate: CompiledPredicate | None = None,
) -> None:
    """Raise PolicyError when a limit is exceeded (statically: sizes of scripts and pushed numbers, and the
    compiled predicate's worst-case intermediate numbers and stack memory)."""
    policy.check_script(locking, "locking script")
    policy.check_script(unlocking, "unlocking script")
    for position, instruction in enumerate(parse(unlocking)):
        if instruction.data is not None:
            policy.check_number_bytes(len(instruction.data), f"push {position} of the unlocking script")
    if predicate is not None:
        policy.check_number_bytes(predicate.stats.largest_intermediate_bytes, "the predicate's largest value")
        policy.check_stack_memory(predicate.stats.stack_memory_bound)


def run_vm(locking: bytes, unlocking: bytes) -> None:
    """Run the pair through the native VM; raise VerificationError with the VM's reason on failure."""
    require_native_vm()
    from bsv.script.spend import Spend

    spend = Spend(
        {
            "sourceTXID": _DUMMY_TXID,
            "sourceOutputIndex": 0,
            "sourceSatoshis": 1,
            "lockingScript": _bsv_script(locking),
            "transactionVersion": TRANSACTION_VERSION,
            "otherInputs": [],
            "outputs": [],
            "inputIndex": 0,
            "unlockingScript": _bsv_script(unlocking),
            "inputSequence": 0xFFFFFFFF,
            "lockTime": 0,
        }
    )
    try:
        accepted = spend.validate()
    except Exception as error:  # the VM reports every script failure as an exception with a message
        raise VerificationError(_first_line(str(error))) from None
    if not accepted:
        raise VerificationError("the script evaluated to false")


def verify_spend(
    locking: bytes,
    unlocking: bytes,
    *,
    policy: Policy = DEFAULT_POLICY,
    predicate: CompiledPredicate | None = None,
) -> SpendResult:
    """Policy checks, then the VM; accepted or rejected with the reason (never raises for a failed script)."""
    try:
        check_policy(locking, unlocking, policy=policy, predicate=predicate)
    except PolicyError as error:
        return SpendResult(False, f"policy: {error.reason}", 0.0)
    started = time.perf_counter()
    try:
        run_vm(locking, unlocking)
    except VerificationError as error:
        if "not available" in error.reason:
            raise
        return SpendResult(False, error.reason, time.perf_counter() - started)
    return SpendResult(True, "", time.perf_counter() - started)


def check_spend(
    locking: bytes,
    unlocking: bytes,
    *,
    policy: Policy = DEFAULT_POLICY,
    predicate: CompiledPredicate | None = None,
) -> None:
    """Like `verify_spend` but raise VerificationError (PolicyError for limits) when the spend fails."""
    check_policy(locking, unlocking, policy=policy, predicate=predicate)
    run_vm(locking, unlocking)


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "script evaluation failed"
    return line.removeprefix("Script evaluation error: ").strip()
