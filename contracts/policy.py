"""Miner policy limits as one explicit object (bsv-sdk enforces none of them, so we do).

Defaults are the network's relay policy as we plan for it: scripts up to 500,000 bytes, script numbers up to
10,000 bytes (older nodes' default), stack memory up to 100 MB, transactions up to 10 MB. On a real network
read the live values from ARC's `/v1/policy` and build a `Policy`. The relay fee is not a limit: it is a
`contracts.fees.FeeRate`, the one fee model.

Each check raises the error type that says which limit it is: a script or a transaction over its size
limit is a `TransactionTooLargeError` (ARC's 474), the others a `PolicyError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.errors import PolicyError, TransactionTooLargeError


@dataclass(frozen=True)
class Policy:
    max_script_bytes: int = 500_000
    max_number_bytes: int = 10_000
    max_stack_memory_bytes: int = 100_000_000
    max_transaction_bytes: int = 10_000_000

    def check_script(self, script: bytes, what: str = "script") -> None:
        if len(script) > self.max_script_bytes:
            raise TransactionTooLargeError(
                f"{what} is {len(script):,} bytes, over the policy limit of {self.max_script_bytes:,}"
            )

    def check_transaction_size(self, size: int) -> None:
        if size > self.max_transaction_bytes:
            raise TransactionTooLargeError(
                f"transaction is {size} bytes, over the {self.max_transaction_bytes}-byte policy limit"
            )

    def check_number_bytes(self, size: int, what: str = "a script number") -> None:
        if size > self.max_number_bytes:
            raise PolicyError(
                f"{what} takes {size:,} bytes, over the policy limit of {self.max_number_bytes:,}"
            )

    def check_stack_memory(self, size: int) -> None:
        if size > self.max_stack_memory_bytes:
            raise PolicyError(
                f"stack memory may reach {size:,} bytes, "
                f"over the policy limit of {self.max_stack_memory_bytes:,}"
            )


DEFAULT_POLICY = Policy()
