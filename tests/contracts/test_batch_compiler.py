"""The batch predicate: K lane-packed images, accepted only when every lane is the target digit.

Every verdict comes from bsv-sdk's native VM and is cross-checked with bitcoinx; the per-lane values the
script computes (packed hidden values, packed score differences) are read back from bitcoinx's stacks and
compared, lane by lane, with the integer reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bitcoinx import InterpreterLimits, InterpreterState
from bitcoinx import Script as BxScript
from ledger_helpers import POLICY, sample_images, small_model
from test_verify import bitcoinx_accepts

from contracts.batch import CompiledBatchPredicate, compile_batch_predicate, plan_batch_network
from contracts.compiler import compile_predicate
from contracts.errors import CompileError, ImageError
from contracts.model import IntegerModel
from contracts.numbers import decode_number
from contracts.opcodes import Opcode
from contracts.policy import Policy
from contracts.script import Instruction, serialize
from contracts.verify import verify_spend

SMALL = small_model()
SMALL_DIGIT, SMALL_ACCEPTED, SMALL_REJECTED = sample_images(SMALL)


@pytest.fixture(scope="module")
def model(default_model_path: Path) -> IntegerModel:
    return IntegerModel.load(default_model_path)


@pytest.fixture(scope="module")
def mnist_images(mnist: Any) -> np.ndarray:
    return np.asarray(mnist.x_test).reshape(-1, 784)[:3000]


def accepts(compiled: CompiledBatchPredicate, images: np.ndarray) -> bool:
    """The native VM's verdict, which bitcoinx must share."""
    unlocking = compiled.pushes(images)
    ours = verify_spend(compiled.script, unlocking, predicate=compiled)
    assert bitcoinx_accepts(compiled.script, unlocking) == ours.accepted, ours.reason
    return ours.accepted


def test_a_batch_is_accepted_only_when_every_lane_is_the_target() -> None:
    for lanes in (1, 2, 5):
        compiled = compile_batch_predicate(SMALL, SMALL_DIGIT, lanes)
        assert accepts(compiled, SMALL_ACCEPTED[:lanes])
        for wrong_lane in range(lanes):
            batch = SMALL_ACCEPTED[:lanes].copy()
            batch[wrong_lane] = SMALL_REJECTED[wrong_lane]
            assert not accepts(compiled, batch), f"lane {wrong_lane} of {lanes} is not the target"


@pytest.mark.parametrize("lanes", [4, 16])
def test_the_default_model_agrees_with_the_reference_on_mixed_batches(
    model: IntegerModel, mnist_images: np.ndarray, lanes: int
) -> None:
    predictions = np.asarray(model.predict(mnist_images))
    digit = 3
    targets = mnist_images[predictions == digit]
    others = mnist_images[predictions != digit]
    compiled = compile_batch_predicate(model, digit, lanes)
    rng = np.random.default_rng(lanes)
    for trial in range(6):
        batch = targets[rng.choice(len(targets), lanes, replace=False)].copy()
        if trial % 2:
            batch[rng.integers(lanes)] = others[rng.integers(len(others))]
        expected = bool(np.all(np.asarray(model.predict(batch)) == digit))
        assert expected == (trial % 2 == 0)
        assert accepts(compiled, batch) == expected


def _stacks_after(compiled: CompiledBatchPredicate, images: np.ndarray, stop: int) -> tuple[list, list]:
    """bitcoinx's main and alt stacks after the pushes and the first `stop` instructions of the script."""
    state = InterpreterState(InterpreterLimits(POLICY, is_genesis_enabled=True, is_consensus=False))
    state.evaluate_script(BxScript(compiled.pushes(images)))
    state.evaluate_script(BxScript(serialize(compiled.instructions[:stop])))
    return list(state.stack), list(state.alt_stack)


def _lanes_of(number: int, compiled: CompiledBatchPredicate) -> list[int]:
    layout = compiled.layout
    return [(number >> (8 * layout.lane_bytes * k)) & (layout.base - 1) for k in range(layout.lanes)]


def test_every_lane_holds_the_references_hidden_values_and_score_differences(
    model: IntegerModel, mnist_images: np.ndarray
) -> None:
    digit, lanes = 5, 6
    compiled = compile_batch_predicate(model, digit, lanes, optimise=False)
    plan = plan_batch_network(model, digit)
    batch = mnist_images[[0, 7, 100, 2222, 17, 999]]
    code = compiled.instructions
    first_back = next(i for i, ins in enumerate(code) if ins.op == Opcode.OP_FROMALTSTACK)
    _main, alt = _stacks_after(compiled, batch, first_back)
    hidden = model.hidden(batch)  # (lanes, units)
    units = sorted(plan.hidden)
    assert len(alt) == len(units)
    for unit, packed in zip(units, alt, strict=True):
        assert _lanes_of(decode_number(packed), compiled) == [int(v) for v in hidden[:, unit]], unit

    # Each score difference D_c ends with OP_SUB just before `<K*L+1> OP_NUM2BIN OP_AND`.
    size = Instruction.number(compiled.layout.packed_bytes)
    ends = [
        i + 1
        for i in range(first_back, len(code) - 3)
        if code[i].op == Opcode.OP_SUB and code[i + 1] == size and code[i + 2].op == Opcode.OP_NUM2BIN
    ]
    scores = model.scores(batch)
    others = [c for c in range(10) if c != digit]
    assert len(ends) == len(others)
    for cls, stop in zip(others, ends, strict=True):
        main, _alt = _stacks_after(compiled, batch, stop)
        tie = 1 if cls < digit else 0
        expected = [int(s[digit] - s[cls] - tie) + compiled.layout.half for s in scores]
        assert _lanes_of(decode_number(main[-1]), compiled) == expected, cls


def test_one_lane_matches_the_single_image_predicate(model: IntegerModel, mnist_images: np.ndarray) -> None:
    single = compile_predicate(model, 7)
    batch = compile_batch_predicate(model, 7, 1)
    predictions = np.asarray(model.predict(mnist_images[:60]))
    for image, predicted in zip(mnist_images[:60], predictions, strict=True):
        assert accepts(batch, image[np.newaxis, :]) == (predicted == 7)
    # The batch machinery (constants, per-unit ReLU by masks, verdict by AND) costs under 10%.
    assert batch.stats.bytes < 1.1 * single.stats.bytes


def test_the_predicate_grows_little_with_the_lanes(model: IntegerModel) -> None:
    sizes = {lanes: compile_batch_predicate(model, 7, lanes).stats.bytes for lanes in (1, 8, 16)}
    assert sizes[16] - sizes[1] < 600, sizes
    assert sizes[16] < 20_000, sizes


def test_verify_mode_leaves_the_stack_below_the_images_untouched() -> None:
    compiled = compile_batch_predicate(SMALL, SMALL_DIGIT, 3, mode="verify")
    below = Instruction.push(b"kept").to_bytes()
    unlocking = below + compiled.pushes(SMALL_ACCEPTED[:3])
    locking = compiled.script + Instruction.push(b"kept").to_bytes() + bytes([Opcode.OP_EQUAL])
    assert verify_spend(locking, unlocking).accepted
    assert bitcoinx_accepts(locking, unlocking)
    batch = SMALL_ACCEPTED[:3].copy()
    batch[1] = SMALL_REJECTED[0]
    bad = below + compiled.pushes(batch)
    assert not verify_spend(locking, bad).accepted
    assert not bitcoinx_accepts(locking, bad)


def test_bad_arguments_are_refused_with_a_clear_error() -> None:
    with pytest.raises(CompileError, match="digit"):
        compile_batch_predicate(SMALL, 10, 4)
    with pytest.raises(CompileError, match="batch holds"):
        compile_batch_predicate(SMALL, SMALL_DIGIT, 0)
    with pytest.raises(CompileError, match="batch holds"):
        compile_batch_predicate(SMALL, SMALL_DIGIT, 1000)
    with pytest.raises(CompileError, match="mode"):
        compile_batch_predicate(SMALL, SMALL_DIGIT, 2, mode="fast")
    compiled = compile_batch_predicate(SMALL, SMALL_DIGIT, 3)
    with pytest.raises(ImageError, match="shape"):
        compiled.pushes(SMALL_ACCEPTED[:2])
    wrong = SMALL_ACCEPTED[:3].copy()
    wrong[0, 0] = 256
    with pytest.raises(ImageError, match=r"0\.\.255"):
        compiled.pushes(wrong)


def test_policy_limits_are_checked_when_compiling() -> None:
    compiled = compile_batch_predicate(SMALL, SMALL_DIGIT, 8)
    assert compiled.stats.largest_intermediate_bytes >= compiled.layout.packed_bytes
    with pytest.raises(CompileError, match="largest value"):
        compile_batch_predicate(SMALL, SMALL_DIGIT, 8, policy=Policy(max_number_bytes=20))
    with pytest.raises(CompileError, match="stack memory"):
        compile_batch_predicate(SMALL, SMALL_DIGIT, 8, policy=Policy(max_stack_memory_bytes=1_000))
    with pytest.raises(CompileError, match="batch predicate is"):
        compile_batch_predicate(SMALL, SMALL_DIGIT, 8, policy=Policy(max_script_bytes=1_000))


def test_the_command_line_compiles_unlocks_and_verifies_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from contracts.cli import main

    SMALL.save(tmp_path / "model.npz")
    images = np.concatenate([SMALL_ACCEPTED[:4], SMALL_ACCEPTED[4:7], SMALL_REJECTED[:1]]).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    model, digit = str(tmp_path / "model.npz"), str(SMALL_DIGIT)
    script_file = tmp_path / "batch.hex"
    compile_args = ["compile", "--model", model, "--digit", digit, "--batch", "4", "--out", str(script_file)]
    assert main(compile_args) == 0
    assert "4 lanes" in capsys.readouterr().out
    script = bytes.fromhex(script_file.read_text().strip())
    assert script == compile_batch_predicate(SMALL, SMALL_DIGIT, 4).script

    assert main(["unlock", "--model", model, "--pixels", str(tmp_path / "images.npy"), "--batch", "4"]) == 0
    lines = capsys.readouterr().out.split()
    assert len(lines) == 2
    verdicts = [verify_spend(script, bytes.fromhex(line)).accepted for line in lines]
    assert verdicts == [True, False], "the second batch holds one image of another class"

    args = ["verify", "--model", model, "--digit", digit, "--pixels", str(tmp_path / "images.npy")]
    assert main([*args, "--batch", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["accepted"] for r in report["results"]] == [True, False]
    assert report["agree_with_reference"] == report["batches"] == 2

    assert main([*args, "--batch", "3"]) == 2
    assert "do not fill batches of 3" in capsys.readouterr().err
    assert main([*args, "--batch", "0"]) == 2
    assert "batch holds" in capsys.readouterr().err


def test_random_batches_of_random_sizes_follow_the_reference() -> None:
    rng = np.random.default_rng(17)
    compiled_by_lanes = {}
    outcomes = set()
    pool = np.concatenate([SMALL_ACCEPTED, SMALL_REJECTED])
    for _ in range(40):
        lanes = int(rng.integers(1, 9))
        compiled = compiled_by_lanes.setdefault(lanes, compile_batch_predicate(SMALL, SMALL_DIGIT, lanes))
        # Mostly accepted images, so that whole batches of the target occur as often as refused ones.
        accepted = rng.random(lanes) < 0.9
        batch = np.stack(
            [
                SMALL_ACCEPTED[rng.integers(len(SMALL_ACCEPTED))] if ok else pool[rng.integers(len(pool))]
                for ok in accepted
            ]
        )
        expected = bool(np.all(np.asarray(SMALL.predict(batch)) == SMALL_DIGIT))
        assert accepts(compiled, batch) == expected
        outcomes.add(expected)
    assert outcomes == {True, False}


def test_wider_lanes_compute_the_same_verdicts() -> None:
    # Hidden values x300, scores x300^2: the same argmax with numbers two bytes wider.
    louder = IntegerModel(SMALL.w1 * 300, SMALL.b1 * 300, SMALL.w2 * 300, SMALL.b2 * 300 * 300)
    compiled = compile_batch_predicate(louder, SMALL_DIGIT, 3)
    assert compiled.layout.lane_bytes >= 5
    predictions = np.asarray(louder.predict(SMALL_ACCEPTED))
    assert np.array_equal(predictions, np.asarray(SMALL.predict(SMALL_ACCEPTED)))
    assert accepts(compiled, SMALL_ACCEPTED[:3])
    batch = SMALL_ACCEPTED[:3].copy()
    batch[2] = SMALL_REJECTED[4]
    assert not accepts(compiled, batch)
