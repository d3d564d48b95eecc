"""The slot script: its shape, push-only unlocking scripts, and a claim fee that covers every image."""

from __future__ import annotations

import numpy as np
import pytest
from ledger_helpers import ADMIN, OPERATOR, sample_images, small_model

from contracts.errors import CompileError, ImageError
from contracts.fees import FeeRate
from contracts.script import parse
from contracts.slot import SlotContract

MODEL = small_model()
DIGIT, ACCEPTED, REJECTED = sample_images(MODEL)
CONTRACT = SlotContract.from_model(MODEL, DIGIT, OPERATOR.public_key, ADMIN.public_key)


def test_the_locking_script_wraps_the_predicate_in_two_branches() -> None:
    script = CONTRACT.locking_script
    assert script[0] == 0x63 and script[-1] == 0x68  # OP_IF ... OP_ENDIF
    operator_part = bytes([33]) + OPERATOR.public_key + b"\xac\x67"  # <operator> CHECKSIG ELSE
    admin_part = bytes([33]) + ADMIN.public_key + b"\xac\x68"  # <admin> CHECKSIG ENDIF
    assert script == b"\x63" + CONTRACT.predicate + operator_part + admin_part


def test_unlocking_scripts_are_push_only() -> None:
    signature = bytes(71) + b"\x41"
    for unlocking in (
        CONTRACT.claim_unlocking(signature, ACCEPTED[0]),
        SlotContract.refund_unlocking(signature),
    ):
        assert all(instruction.op <= 0x60 for instruction in parse(unlocking))
    assert CONTRACT.claim_unlocking(signature, ACCEPTED[0]).endswith(b"\x51")  # OP_1 selects the claim branch
    assert SlotContract.refund_unlocking(signature).endswith(b"\x00")


def test_the_worst_case_image_bounds_every_image() -> None:
    signature = bytes(72) + b"\x41"  # the longest low-S DER signature
    longest = max(
        len(CONTRACT.claim_unlocking(signature, image)) for image in np.vstack([ACCEPTED, REJECTED])
    )
    assert longest <= CONTRACT.max_claim_unlocking_bytes
    all_high = np.full(MODEL.shape[0], 200)
    assert len(CONTRACT.claim_unlocking(signature, all_high)) == CONTRACT.max_claim_unlocking_bytes


@pytest.mark.parametrize("rate", [1, 100, 500, 5000])
def test_the_claim_fee_covers_the_largest_claim_with_a_margin(rate: int) -> None:
    fee_rate = FeeRate(rate)
    fee = CONTRACT.claim_fee(fee_rate)
    assert fee_rate.covers(fee, CONTRACT.max_claim_tx_bytes)
    assert fee >= fee_rate.fee_for(CONTRACT.max_claim_tx_bytes) + 10
    assert CONTRACT.slot_value(1_000, fee_rate) == 1_000 + fee


def test_it_refuses_pixels_outside_0_255() -> None:
    image = ACCEPTED[0].copy()
    image[0] = 256
    with pytest.raises(ImageError, match=r"0\.\.255"):
        CONTRACT.claim_unlocking(bytes(72), image)
    image[0] = -1
    with pytest.raises(ImageError):
        CONTRACT.claim_unlocking(bytes(72), image)


def test_it_refuses_uncompressed_or_malformed_keys() -> None:
    with pytest.raises(CompileError, match="operator_pubkey"):
        SlotContract.from_model(MODEL, DIGIT, b"\x04" + bytes(64), ADMIN.public_key)
