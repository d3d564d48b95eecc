"""The reward slot: one output of a bounty, released by an image the published model accepts (plus the
operator's signature) or by the admin.

    OP_IF   <predicate for the target digit, verify mode>  <operator pubkey> OP_CHECKSIG
    OP_ELSE <admin pubkey> OP_CHECKSIG
    OP_ENDIF

Claim unlocking script: `<operator sig> <image pushes> OP_1`; refund/migrate: `<admin sig> OP_0`. Both are
push-only. The predicate consumes the image and leaves the operator's signature on top, so CHECKSIG sees it.
The slot holds `reward + claim_fee`; the claim fee is priced from the worst-case claim transaction (largest
image pushes, largest signature) at the configured rate plus a safety margin, so any image the model accepts
can be claimed at that rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from contracts.errors import CompileError
from contracts.fees import FeeRate

if TYPE_CHECKING:
    from contracts.model import IntegerModel

OP_0, OP_1, OP_IF, OP_ELSE, OP_ENDIF, OP_CHECKSIG = 0x00, 0x51, 0x63, 0x67, 0x68, 0xAC
MAX_SIGNATURE_PUSH = 1 + 73  # low-S DER <= 72 bytes + the sighash byte
P2PKH_SCRIPT_BYTES = 25
CLAIM_FEE_MARGIN = 0.05  # relative; covers a policy rounding difference or a slightly longer encoding
CLAIM_FEE_MARGIN_MIN = 10  # satoshis


def push(data: bytes) -> bytes:
    """A minimal direct push for 1..75 bytes (public keys and signatures)."""
    if not 0 < len(data) <= 75:
        raise ValueError(f"a direct push holds 1 to 75 bytes, not {len(data)}")
    return bytes([len(data)]) + data


def varint_size(value: int) -> int:
    return 1 if value < 0xFD else 3 if value <= 0xFFFF else 5 if value <= 0xFFFFFFFF else 9


ImageEncoder = Callable[[np.ndarray], bytes]


@dataclass(frozen=True)
class SlotContract:
    """The slot script for one (model, digit, operator, admin). Build it with `from_model`; tests may pass
    any verify-mode `predicate` with a matching `encode_image` and `max_image_bytes`."""

    predicate: bytes = field(repr=False)
    digit: int
    operator_pubkey: bytes
    admin_pubkey: bytes
    encode_image: ImageEncoder = field(repr=False, compare=False)
    max_image_bytes: int

    def __post_init__(self) -> None:
        for name in ("operator_pubkey", "admin_pubkey"):
            key = getattr(self, name)
            if len(key) != 33 or key[0] not in (2, 3):
                raise CompileError(f"{name} must be a 33-byte compressed public key")

    @classmethod
    def from_model(
        cls, model: IntegerModel, digit: int, operator_pubkey: bytes, admin_pubkey: bytes
    ) -> SlotContract:
        """Compile `model` (a contracts.model.IntegerModel) for `digit` in verify mode and wrap it."""
        from contracts.compiler import compile_predicate
        from contracts.unlocking import image_pushes

        compiled = compile_predicate(model, digit, mode="verify")
        # Pixel pushes cost 1 (0..16), 2 (17..127) or 3 bytes (128..255): the worst image is all >= 128.
        worst = len(image_pushes(compiled, np.full(compiled.shape[0], 255, dtype=np.int64)))
        return cls(
            predicate=compiled.script,
            digit=digit,
            operator_pubkey=operator_pubkey,
            admin_pubkey=admin_pubkey,
            encode_image=lambda pixels: image_pushes(compiled, pixels),
            max_image_bytes=worst,
        )

    @cached_property
    def locking_script(self) -> bytes:
        return (
            bytes([OP_IF])
            + self.predicate
            + push(self.operator_pubkey)
            + bytes([OP_CHECKSIG, OP_ELSE])
            + push(self.admin_pubkey)
            + bytes([OP_CHECKSIG, OP_ENDIF])
        )

    def claim_unlocking(self, operator_signature: bytes, pixels: np.ndarray) -> bytes:
        """`<operator sig> <image> OP_1`. Raises ImageError for a wrong shape or pixels outside 0..255."""
        return push(operator_signature) + self.encode_image(pixels) + bytes([OP_1])

    @staticmethod
    def refund_unlocking(admin_signature: bytes) -> bytes:
        return push(admin_signature) + bytes([OP_0])

    # -- sizes and fees ------------------------------------------------------------------------------------

    @property
    def slot_output_bytes(self) -> int:
        """Bytes one slot adds to a deploy transaction (amount, script length, script)."""
        return 8 + varint_size(len(self.locking_script)) + len(self.locking_script)

    @property
    def max_claim_unlocking_bytes(self) -> int:
        return MAX_SIGNATURE_PUSH + self.max_image_bytes + 1

    @property
    def max_claim_tx_bytes(self) -> int:
        """The largest claim transaction: one slot input, one P2PKH output."""
        unlocking = self.max_claim_unlocking_bytes
        claim_input = 32 + 4 + varint_size(unlocking) + unlocking + 4
        payout = 8 + 1 + P2PKH_SCRIPT_BYTES
        return 4 + 1 + claim_input + 1 + payout + 4

    def claim_fee(self, fee_rate: FeeRate) -> int:
        """The fee a slot reserves for its claim: worst-case size at `fee_rate` plus the safety margin."""
        exact = fee_rate.fee_for(self.max_claim_tx_bytes)
        return exact + max(CLAIM_FEE_MARGIN_MIN, int(exact * CLAIM_FEE_MARGIN))

    def slot_value(self, reward: int, fee_rate: FeeRate) -> int:
        return reward + self.claim_fee(fee_rate)
