"""Sizes of the transaction wire format, in one place: varints, inputs, outputs, whole transactions.

The builders size transactions before they exist (to price fees and split deploys); the slot contract sizes
its worst-case claim. Pushes are `contracts.numbers.push_data`; double SHA-256 is `contracts.address.sha256d`.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_SIGNATURE_PUSH = 1 + 73  # low-S DER <= 72 bytes + the sighash byte, after a 1-byte push opcode
P2PKH_SCRIPT_BYTES = 25
P2PKH_UNLOCKING_MAX = MAX_SIGNATURE_PUSH + 1 + 33
P2PKH_OUTPUT_BYTES = 8 + 1 + P2PKH_SCRIPT_BYTES


def varint_size(value: int) -> int:
    return 1 if value < 0xFD else 3 if value <= 0xFFFF else 5 if value <= 0xFFFFFFFF else 9


def input_bytes(unlocking_size: int) -> int:
    """Outpoint, script length, unlocking script, sequence."""
    return 32 + 4 + varint_size(unlocking_size) + unlocking_size + 4


def output_bytes(script_size: int) -> int:
    """Amount, script length, locking script."""
    return 8 + varint_size(script_size) + script_size


def tx_bytes(input_sizes: Sequence[int], output_sizes: Sequence[int]) -> int:
    """Serialized size of a transaction with unlocking scripts and locking scripts of these sizes."""
    return (
        4
        + varint_size(len(input_sizes))
        + sum(input_bytes(size) for size in input_sizes)
        + varint_size(len(output_sizes))
        + sum(output_bytes(size) for size in output_sizes)
        + 4
    )
