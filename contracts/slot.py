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
from typing import TYPE_CHECKING, Protocol

import numpy as np

from contracts.errors import CompileError
from contracts.fees import FeeRate
from contracts.numbers import push_data
from contracts.opcodes import Opcode
from contracts.wire import MAX_SIGNATURE_PUSH, P2PKH_SCRIPT_BYTES, output_bytes, tx_bytes

if TYPE_CHECKING:
    from contracts.model import IntegerModel

CLAIM_FEE_MARGIN = 0.05  # relative; covers a policy rounding difference or a slightly longer encoding
CLAIM_FEE_MARGIN_MIN = 10  # satoshis


ImageEncoder = Callable[[np.ndarray], bytes]


class DeployableSlot(Protocol):
    """What a deploy needs of a slot contract (single-image `SlotContract` or `BatchSlotContract`)."""

    @property
    def locking_script(self) -> bytes: ...

    @property
    def slot_output_bytes(self) -> int: ...

    def slot_value(self, reward: int, fee_rate: FeeRate) -> int: ...


def check_pubkeys(operator_pubkey: bytes, admin_pubkey: bytes) -> None:
    for name, key in (("operator_pubkey", operator_pubkey), ("admin_pubkey", admin_pubkey)):
        if len(key) != 33 or key[0] not in (2, 3):
            raise CompileError(f"{name} must be a 33-byte compressed public key")


def branch_script(predicate: bytes, operator_pubkey: bytes, admin_pubkey: bytes) -> bytes:
    """`IF <predicate> <operator> CHECKSIG ELSE <admin> CHECKSIG ENDIF`: the layout every slot shares, so
    refunds and migrations (`OP_0` selects the admin branch) work the same on single and batch slots."""
    return (
        bytes([Opcode.OP_IF])
        + predicate
        + push_data(operator_pubkey)
        + bytes([Opcode.OP_CHECKSIG, Opcode.OP_ELSE])
        + push_data(admin_pubkey)
        + bytes([Opcode.OP_CHECKSIG, Opcode.OP_ENDIF])
    )


def reserved_claim_fee(max_claim_tx_bytes: int, fee_rate: FeeRate) -> int:
    """The fee a slot reserves for its claim: the worst-case size at `fee_rate` plus the safety margin."""
    exact = fee_rate.fee_for(max_claim_tx_bytes)
    return exact + max(CLAIM_FEE_MARGIN_MIN, int(exact * CLAIM_FEE_MARGIN))


class SizedSlot(Protocol):
    """What the sizes of a slot follow from: its locking script, its longest image pushes, and how many
    P2PKH outputs its claim pays."""

    @property
    def locking_script(self) -> bytes: ...

    @property
    def max_image_bytes(self) -> int: ...

    @property
    def payees(self) -> int: ...


def max_claim_unlocking_bytes(slot: SizedSlot) -> int:
    """`<operator sig> <image pushes> OP_1` at its longest."""
    return MAX_SIGNATURE_PUSH + slot.max_image_bytes + 1


def max_claim_tx_bytes(slot: SizedSlot) -> int:
    """The largest claim transaction: one slot input, one P2PKH output per payee."""
    return tx_bytes([max_claim_unlocking_bytes(slot)], [P2PKH_SCRIPT_BYTES] * slot.payees)


class SlotSizes:
    """Sizes and fees of a slot, shared by the single-image slot and the batch slot (see `SizedSlot`)."""

    @property
    def slot_output_bytes(self: SizedSlot) -> int:
        """Bytes one slot adds to a deploy transaction (amount, script length, script)."""
        return output_bytes(len(self.locking_script))

    @property
    def max_claim_unlocking_bytes(self: SizedSlot) -> int:
        return max_claim_unlocking_bytes(self)

    @property
    def max_claim_tx_bytes(self: SizedSlot) -> int:
        return max_claim_tx_bytes(self)

    def claim_fee(self: SizedSlot, fee_rate: FeeRate) -> int:
        """The fee a slot reserves for its claim: worst-case size at `fee_rate` plus the safety margin."""
        return reserved_claim_fee(max_claim_tx_bytes(self), fee_rate)

    def slot_value(self: SizedSlot, reward: int, fee_rate: FeeRate) -> int:
        """A reward per payee and the claim fee."""
        return self.payees * reward + reserved_claim_fee(max_claim_tx_bytes(self), fee_rate)


@dataclass(frozen=True)
class SlotContract(SlotSizes):
    """The slot script for one (model, digit, operator, admin). Build it with `from_model`; tests may pass
    any verify-mode `predicate` with a matching `encode_image` and `max_image_bytes`."""

    predicate: bytes = field(repr=False)
    digit: int
    operator_pubkey: bytes
    admin_pubkey: bytes
    encode_image: ImageEncoder = field(repr=False, compare=False)
    max_image_bytes: int

    def __post_init__(self) -> None:
        check_pubkeys(self.operator_pubkey, self.admin_pubkey)

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
        return branch_script(self.predicate, self.operator_pubkey, self.admin_pubkey)

    def claim_unlocking(self, operator_signature: bytes, pixels: np.ndarray) -> bytes:
        """`<operator sig> <image> OP_1`. Raises ImageError for a wrong shape or pixels outside 0..255."""
        return push_data(operator_signature) + self.encode_image(pixels) + bytes([Opcode.OP_1])

    @staticmethod
    def refund_unlocking(admin_signature: bytes) -> bytes:
        return push_data(admin_signature) + bytes([Opcode.OP_0])

    payees = 1  # one image, one contributor
