"""Verification through bsv-sdk's native VM, policy limits, tampering, and a bitcoinx cross-check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bitcoinx import InterpreterLimits, MinerPolicy, Tx, TxInput, TxInputContext, TxOutput
from bitcoinx import Script as BxScript

from contracts.compiler import compile_predicate
from contracts.errors import (
    NativeVMUnavailable,
    PolicyError,
    ScriptFailed,
    TransactionTooLargeError,
    VerificationError,
)
from contracts.fees import FeeRate
from contracts.model import IntegerModel
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.unlocking import image_pushes
from contracts.verify import check_spend, require_native_vm, verify_spend

BX_POLICY = MinerPolicy(
    max_script_size=DEFAULT_POLICY.max_script_bytes,
    max_script_num_length=DEFAULT_POLICY.max_number_bytes,
    max_stack_memory_usage=DEFAULT_POLICY.max_stack_memory_bytes,
    max_ops_per_script=100_000_000,
    max_pubkeys_per_multisig=64,
)


def bitcoinx_accepts(locking: bytes, unlocking: bytes) -> bool:
    """The second, independent interpreter: standard (relay) flags, post-Genesis UTXO, version 1."""
    utxo = TxOutput(1000, BxScript(locking))
    tx = Tx(1, [TxInput(bytes(32), 0, BxScript(unlocking), 0xFFFFFFFF)], [TxOutput(0, BxScript(b"\x6a"))], 0)
    limits = InterpreterLimits(BX_POLICY, is_genesis_enabled=True, is_consensus=False)
    try:
        return bool(TxInputContext(tx, 0, utxo).verify_input(limits, True))
    except Exception:
        return False


def sparse_model(seed: int = 11) -> IntegerModel:
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-15, 16, (784, 32))
    w1[rng.random(w1.shape) < 0.92] = 0
    return IntegerModel(
        w1, rng.integers(-3000, 3000, 32), rng.integers(-15, 16, (32, 10)), rng.integers(-900, 900, 10)
    )


@pytest.fixture(scope="module")
def model(default_model_path: Path) -> IntegerModel:
    """The committed default model once it exists, otherwise a random model of the same shape and sparsity."""
    return IntegerModel.load(default_model_path) if default_model_path.exists() else sparse_model()


@pytest.fixture(scope="module")
def images(mnist: Any) -> np.ndarray:
    """Twelve real MNIST test images, spread over the test set."""
    return np.asarray(mnist.x_test).reshape(-1, 784)[::833][:12]


def test_the_native_vm_is_loaded() -> None:
    require_native_vm()


def test_it_refuses_the_pure_python_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import bsv

    monkeypatch.setattr(bsv, "native_status", lambda: {"available": False})
    with pytest.raises(NativeVMUnavailable, match="native VM"):
        verify_spend(b"\x51", b"")


def test_bsv_sdk_and_bitcoinx_agree_on_accept_and_reject(model: IntegerModel, images: np.ndarray) -> None:
    predictions = model.predict(images)
    for image, predicted in zip(images[:3], predictions[:3], strict=True):
        for digit in (int(predicted), (int(predicted) + 3) % 10):
            compiled = compile_predicate(model, digit)
            unlocking = image_pushes(compiled, image)
            ours = verify_spend(compiled.script, unlocking, predicate=compiled).accepted
            assert ours == (digit == predicted)
            assert bitcoinx_accepts(compiled.script, unlocking) == ours


def test_a_tampered_image_is_rejected(model: IntegerModel, images: np.ndarray) -> None:
    image = images[0]
    compiled = compile_predicate(model, int(model.predict(image)))
    assert verify_spend(compiled.script, image_pushes(compiled, image)).accepted
    # Invert pushed pixels one at a time until the reference changes its mind; the script must too.
    tampered = image.copy()
    for index in compiled.input_indices:
        tampered[index] = 255 - tampered[index]
        if model.predict(tampered) != compiled.digit:
            break
    assert model.predict(tampered) != compiled.digit
    result = verify_spend(compiled.script, image_pushes(compiled, tampered))
    assert not result.accepted and result.reason


def test_a_tampered_script_is_rejected(model: IntegerModel, images: np.ndarray) -> None:
    image = images[0]
    compiled = compile_predicate(model, int(model.predict(image)))
    script = bytearray(compiled.script)
    assert script[-1] == 0xA2  # the verdict: OP_GREATERTHANOREQUAL
    script[-1] = 0xA1  # OP_LESSTHANOREQUAL inverts it
    result = verify_spend(bytes(script), image_pushes(compiled, image))
    assert not result.accepted
    assert "truthy" in result.reason or "false" in result.reason


def test_it_reports_why_a_spend_failed() -> None:
    result = verify_spend(bytes([0x51, 0x51]), b"")  # two items left: clean stack rule
    assert not result.accepted and "clean stack" in result.reason
    with pytest.raises(VerificationError, match="clean stack"):
        check_spend(bytes([0x51, 0x51]), b"")


def test_unlocking_scripts_must_be_push_only() -> None:
    result = verify_spend(bytes([0x87]), bytes([0x52, 0x52, 0x76]))  # OP_DUP in the unlocking script
    assert not result.accepted and "push" in result.reason


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy(max_script_bytes=10), "over the policy limit of 10"),
        (Policy(max_number_bytes=1), "over the policy limit of 1"),
        (Policy(max_stack_memory_bytes=100), "stack memory"),
    ],
    ids=["script size", "number size", "stack memory"],
)
def test_it_enforces_policy_limits(
    model: IntegerModel, images: np.ndarray, policy: Policy, message: str
) -> None:
    image = images[0]
    compiled = compile_predicate(model, int(model.predict(image)))
    unlocking = image_pushes(compiled, image)
    result = verify_spend(compiled.script, unlocking, policy=policy, predicate=compiled)
    assert not result.accepted and result.reason.startswith("policy:") and message in result.reason
    with pytest.raises(PolicyError):
        check_spend(compiled.script, unlocking, policy=policy, predicate=compiled)


def test_the_fee_rate_rounds_up_and_covers_what_it_computes() -> None:
    assert FeeRate().satoshis_per_kb == 100
    assert FeeRate().fee_for(20_000) == 2_000
    assert FeeRate().fee_for(1) == 1
    assert FeeRate(50).fee_for(1_500) == 75
    assert FeeRate(50).covers(75, 1_500) and not FeeRate(50).covers(74, 1_500)
    with pytest.raises(ValueError, match="negative"):
        FeeRate(-1)


def test_a_script_over_the_size_limit_is_too_large_not_a_script_failure() -> None:
    with pytest.raises(TransactionTooLargeError, match="locking script is 11 bytes"):
        check_spend(bytes([0x51] * 11), b"", policy=Policy(max_script_bytes=10))
    with pytest.raises(TransactionTooLargeError, match="transaction is 11 bytes"):
        Policy(max_transaction_bytes=10).check_transaction_size(11)


def test_a_false_result_and_a_failed_rule_are_both_script_failures() -> None:
    with pytest.raises(ScriptFailed, match=r"evaluated to false|truthy"):
        check_spend(bytes([0x00]), b"")
    with pytest.raises(ScriptFailed, match="clean stack"):
        check_spend(bytes([0x51, 0x51]), b"")
