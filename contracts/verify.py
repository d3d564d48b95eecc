"""Script-level verification: a locking/unlocking pair through bsv-sdk's native VM, plus policy limits.

The VM runs through `contracts.vm` (shared with whole-transaction verification in `txverify.py`). bsv-sdk
enforces no miner policy, so script sizes, number sizes and (for compiled predicates, whose worst case is
known statically) stack memory are checked here before the VM runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from contracts.compiler import CompiledPredicate
from contracts.errors import PolicyError, ScriptFailed
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.script import parse
from contracts.vm import TRANSACTION_VERSION, require_native_vm, run_spend

__all__ = ["TRANSACTION_VERSION", "SpendResult", "check_policy", "check_spend", "require_native_vm"]
__all__ += ["run_vm", "verify_spend"]


@dataclass(frozen=True)
class SpendResult:
    accepted: bool
    reason: str  # empty when accepted
    seconds: float  # VM time only


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
    """Run the pair through the native VM; raise ScriptFailed with the VM's reason on failure."""
    run_spend(locking, unlocking)


def verify_spend(
    locking: bytes,
    unlocking: bytes,
    *,
    policy: Policy = DEFAULT_POLICY,
    predicate: CompiledPredicate | None = None,
) -> SpendResult:
    """Policy checks, then the VM; accepted or rejected with the reason (never raises for a failed script;
    raises NativeVMUnavailable when there is no native VM to ask)."""
    try:
        check_policy(locking, unlocking, policy=policy, predicate=predicate)
    except PolicyError as error:
        return SpendResult(False, f"policy: {error.reason}", 0.0)
    started = time.perf_counter()
    try:
        run_spend(locking, unlocking)
    except ScriptFailed as error:
        return SpendResult(False, error.reason, time.perf_counter() - started)
    return SpendResult(True, "", time.perf_counter() - started)


def check_spend(
    locking: bytes,
    unlocking: bytes,
    *,
    policy: Policy = DEFAULT_POLICY,
    predicate: CompiledPredicate | None = None,
) -> None:
    """Like `verify_spend` but raise ScriptFailed (PolicyError for limits) when the spend fails."""
    check_policy(locking, unlocking, policy=policy, predicate=predicate)
    run_spend(locking, unlocking)
