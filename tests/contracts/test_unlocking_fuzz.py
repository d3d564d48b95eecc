"""Fuzzing the claim path: for any pixel array, `build_claim` either returns a transaction that the script
accepts exactly when the integer reference says the target digit, or raises one of the package's errors.

Valid images (shape (n,), integer dtype, 0..255) must give a claim that verifies iff `model.predict(image)`
is the slot's digit (ties included: the first index wins); bitcoinx, an independent interpreter, must agree.
Anything else must raise ImageError before a transaction exists."""

from __future__ import annotations

import bitcoinx
import numpy as np
from bitcoinx import InterpreterLimits, TxInputContext, TxOutput
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from ledger_helpers import ADMIN, BOB, OPERATOR, POLICY, sample_images, small_model

from contracts.chain import Utxo
from contracts.errors import CompileError, ContractsError, ImageError, VerificationError
from contracts.fees import FeeRate
from contracts.model import IntegerModel
from contracts.slot import SlotContract
from contracts.transactions import assemble_claim, build_claim

RATE = FeeRate(100)
REWARD = 1_000
MODEL = small_model()
DIGIT, _, _ = sample_images(MODEL)
CONTRACT = SlotContract.from_model(MODEL, DIGIT, OPERATOR.public_key, ADMIN.public_key)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INTEGER_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64, np.uint32, np.uint64]


def slot_for(contract: SlotContract, seed: int = 0) -> Utxo:
    """A slot outpoint that exists only for this test: build_claim verifies against the script it holds."""
    txid = bytes([seed % 256]) * 32
    return Utxo(txid.hex(), 0, contract.slot_value(REWARD, RATE), contract.locking_script)


def claim_outcome(contract: SlotContract, model: IntegerModel, image: np.ndarray) -> bool:
    """True if build_claim produced a verified claim; False if verification refused it. Checks that the
    reference, the builder and bitcoinx tell the same story."""
    slot = slot_for(contract)
    scores = model.scores(image.astype(np.int64))
    expected = model.predict(image.astype(np.int64)) == contract.digit
    event("paid" if expected else "refused")  # shares shown by --hypothesis-show-statistics
    if np.count_nonzero(scores == scores.max()) > 1:
        event("tie for the top score")
    try:
        claim = build_claim(slot, contract, image, BOB.address, OPERATOR, fee_rate=RATE)
    except VerificationError as error:
        assert not expected, f"the script refused an image the reference classifies as the digit: {error}"
        raw = assemble_claim(slot, contract, image, BOB.address, OPERATOR, payout=REWARD).serialize()
        assert not bitcoinx_accepts(raw, slot), "bitcoinx accepted what bsv-sdk refused"
        return False
    assert expected, "the script paid for an image the reference does not classify as the digit"
    assert bitcoinx_accepts(claim.raw, slot), "bitcoinx refused what bsv-sdk accepted"
    return True


def bitcoinx_accepts(raw: bytes, slot: Utxo) -> bool:
    tx = bitcoinx.Tx.from_bytes(raw)
    context = TxInputContext(tx, 0, TxOutput(slot.satoshis, bitcoinx.Script(slot.script)))
    try:
        return bool(context.verify_input(InterpreterLimits(POLICY, True, False), True))
    except bitcoinx.ScriptError:
        return False


valid_images = st.sampled_from(INTEGER_DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, (MODEL.shape[0],), elements=st.integers(0, min(255, np.iinfo(dtype).max)))
)


@FUZZ
@given(valid_images)
def test_a_valid_image_is_paid_iff_the_reference_says_the_digit(image: np.ndarray) -> None:
    claim_outcome(CONTRACT, MODEL, image)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.sampled_from(["accepted", "rejected"]))
def test_both_verdicts_on_images_near_the_reference(seed: int, wanted: str) -> None:
    """Random uint8 images rarely land on the digit; start from ones that do (or not) and nudge them."""
    _, accepted, rejected = sample_images(MODEL, count=60, seed=seed % 1000)
    pool = accepted if wanted == "accepted" else rejected
    if not len(pool):
        return
    rng = np.random.default_rng(seed)
    image = np.clip(pool[rng.integers(len(pool))] + rng.integers(-3, 4, MODEL.shape[0]), 0, 255)
    claim_outcome(CONTRACT, MODEL, image.astype(np.uint8))


@st.composite
def tiny_models(draw: st.DrawFn) -> tuple[IntegerModel, int]:
    """3-class models with weights in -2..2: small scores, so ties between classes are common."""
    inputs, hidden = draw(st.integers(2, 6)), draw(st.integers(1, 4))
    weights = st.integers(-2, 2)
    w1 = draw(hnp.arrays(np.int64, (inputs, hidden), elements=weights))
    b1 = draw(hnp.arrays(np.int64, (hidden,), elements=st.integers(-3, 3)))
    w2 = draw(hnp.arrays(np.int64, (hidden, 3), elements=weights))
    b2 = draw(hnp.arrays(np.int64, (3,), elements=st.integers(-3, 3)))
    return IntegerModel(w1, b1, w2, b2), draw(st.integers(0, 2))


@FUZZ
@given(tiny_models(), st.data())
def test_tiny_models_with_ties_follow_the_first_index_rule(model_and_digit, data: st.DataObject) -> None:
    model, digit = model_and_digit
    try:
        contract = SlotContract.from_model(model, digit, OPERATOR.public_key, ADMIN.public_key)
    except CompileError as error:
        raise AssertionError(f"a valid tiny model must compile: {error}") from None
    image = data.draw(hnp.arrays(np.uint8, (model.shape[0],), elements=st.sampled_from([0, 1, 2, 3, 255])))
    claim_outcome(contract, model, image)


bad_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=70).filter(
    lambda shape: shape != (MODEL.shape[0],)
)
bad_images = st.one_of(
    # the wrong shape, right dtype
    bad_shapes.flatmap(lambda shape: hnp.arrays(np.uint8, shape)),
    # the right shape, a non-integer dtype
    st.sampled_from([np.float32, np.float64, np.bool_, np.complex64]).flatmap(
        lambda dtype: hnp.arrays(dtype, (MODEL.shape[0],))
    ),
    # the right shape and dtype, some value outside 0..255
    st.sampled_from([np.int16, np.int32, np.int64, np.uint16]).flatmap(
        lambda dtype: hnp.arrays(dtype, (MODEL.shape[0],), elements=st.integers(0, 255)).flatmap(
            lambda image: st.tuples(
                st.just(image),
                st.integers(0, MODEL.shape[0] - 1),
                st.integers(256, int(np.iinfo(dtype).max)) | st.integers(int(np.iinfo(dtype).min), -1)
                if np.iinfo(dtype).min < 0
                else st.integers(256, int(np.iinfo(dtype).max)),
            )
        )
    ),
)


@FUZZ
@given(bad_images)
def test_an_invalid_image_raises_image_error_before_any_transaction(case) -> None:
    if isinstance(case, tuple):
        image, position, value = case
        image = image.copy()
        image[position] = value
    else:
        image = case
    try:
        build_claim(slot_for(CONTRACT), CONTRACT, image, BOB.address, OPERATOR, fee_rate=RATE)
    except ImageError as error:
        assert isinstance(error, ContractsError)
        return
    raise AssertionError(f"an invalid image {image.dtype} {image.shape} was accepted")
