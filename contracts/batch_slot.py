"""The batch slot: one output holding K rewards, released by K images the model all accepts (plus the
operator's signature) or by the admin. The same branches as the single slot (contracts/slot.py):

    OP_IF   <batch predicate for the target digit, verify mode>  <operator pubkey> OP_CHECKSIG
    OP_ELSE <admin pubkey> OP_CHECKSIG
    OP_ENDIF

Claim unlocking script: `<operator sig> <K lane-packed images> OP_1`; refund/migrate: `<admin sig> OP_0`
(`SlotContract.refund_unlocking`, so `contracts.refunds.build_refund` sweeps batch slots unchanged). The
operator signs SIGHASH_ALL|FORKID, which commits to every output: each of the up to K payees, and the change
that takes the padded lanes' rewards back to the funder (contracts/batch_transactions.py).

The slot holds `K * reward + claim fee`; the claim fee is priced from the worst-case claim: the largest image
pushes (every pixel 255 in every lane), the largest signature and K P2PKH outputs (a full batch pays K
contributors; a padded one pays fewer and adds one change output, so never more than K outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from contracts.batch import CompiledBatchPredicate, compile_batch_predicate
from contracts.model import PIXEL_MAX, IntegerModel
from contracts.numbers import push_data
from contracts.opcodes import Opcode
from contracts.slot import SlotContract, SlotSizes, branch_script, check_pubkeys


@dataclass(frozen=True)
class BatchSlotContract(SlotSizes):
    """The batch slot script for one (model, digit, K, operator, admin). Build it with `from_model`."""

    compiled: CompiledBatchPredicate = field(repr=False)
    operator_pubkey: bytes
    admin_pubkey: bytes

    def __post_init__(self) -> None:
        check_pubkeys(self.operator_pubkey, self.admin_pubkey)

    @classmethod
    def from_model(
        cls, model: IntegerModel, digit: int, lanes: int, operator_pubkey: bytes, admin_pubkey: bytes
    ) -> BatchSlotContract:
        return cls(compile_batch_predicate(model, digit, lanes, mode="verify"), operator_pubkey, admin_pubkey)

    @property
    def digit(self) -> int:
        return self.compiled.digit

    @property
    def lanes(self) -> int:
        return self.compiled.lanes

    @property
    def predicate(self) -> bytes:
        return self.compiled.script

    @cached_property
    def locking_script(self) -> bytes:
        return branch_script(self.compiled.script, self.operator_pubkey, self.admin_pubkey)

    def claim_unlocking(self, operator_signature: bytes, images: np.ndarray) -> bytes:
        """`<operator sig> <K images> OP_1`. ImageError for a wrong shape or pixels outside 0..255."""
        return push_data(operator_signature) + self.compiled.pushes(images) + bytes([Opcode.OP_1])

    refund_unlocking = staticmethod(SlotContract.refund_unlocking)

    # -- sizes and fees ------------------------------------------------------------------------------------

    @cached_property
    def max_image_bytes(self) -> int:
        """The longest image pushes: every pixel 255 in every lane (3-byte lanes ff 00 00 and a sign byte)."""
        full = np.full((self.lanes, self.compiled.shape[0]), PIXEL_MAX, dtype=np.int64)
        return len(self.compiled.pushes(full))

    @property
    def payees(self) -> int:
        """One per lane: a full batch pays K contributors (a padded one fewer, and returns the rest)."""
        return self.lanes
