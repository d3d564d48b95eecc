"""The compiler, pass by pass, on tiny hand-made models and random sparse ones, checked on the interpreter.

Every verdict comes from bsv-sdk's native VM and is compared with the numpy reference (contracts.model).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from contracts.compiler import compile_predicate, plan_layout, plan_network
from contracts.errors import CompileError
from contracts.model import IntegerModel
from contracts.numbers import push_number
from contracts.script import parse, serialize
from contracts.unlocking import image_pushes
from contracts.verify import verify_spend


def random_model(
    rng: np.random.Generator, shape: tuple[int, int, int], sparsity: float, limit: int
) -> IntegerModel:
    inputs, hidden, classes = shape
    w1 = rng.integers(-limit, limit + 1, (inputs, hidden))
    w1[rng.random((inputs, hidden)) < sparsity] = 0
    w2 = rng.integers(-limit, limit + 1, (hidden, classes))
    bound = limit * 255 * max(1, inputs // 8)
    return IntegerModel(w1, rng.integers(-bound, bound, hidden), w2, rng.integers(-bound, bound, classes))


def accepts(model: IntegerModel, digit: int, image: np.ndarray, **options: object) -> bool:
    compiled = compile_predicate(model, digit, **options)  # type: ignore[arg-type]
    result = verify_spend(compiled.script, image_pushes(compiled, image))
    assert result.accepted or "truthy" in result.reason or "false" in result.reason, result.reason
    return result.accepted


# Tiny hand-made models: 2-4 inputs, every weight sign, a zero pixel, a dead and a constant hidden unit.
TINY = {
    "two-inputs": IntegerModel([[1, -1], [2, 3]], [0, -5], [[1, -1], [-1, 1]], [0, 0]),
    "three-classes": IntegerModel(
        [[3, 0, -2], [0, 1, 1], [-4, 2, 0]], [1, 0, -3], [[2, -1, 0], [0, 3, 1], [-1, 0, 2]], [5, 0, -5]
    ),
    "zero-pixel-and-dead-unit": IntegerModel(
        [[2, 0, 7], [0, 0, -1], [-3, 0, 0], [0, 0, 0]],
        [0, 9, 1],
        [[1, 0, -1, 2], [4, 4, 4, 4], [0, 2, 1, -1]],
        [0, 1, 2, 3],
    ),
    "constant-unit": IntegerModel([[1, 0], [-1, 0]], [0, 40], [[1, -1], [1, 2]], [0, 0]),
    "big-weights": IntegerModel(
        [[300, -1000], [-70000, 5]], [123456, -1], [[17, -200], [-129, 128]], [-99999, 99999]
    ),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_it_matches_the_reference_on_tiny_models_for_every_digit(name: str) -> None:
    model = TINY[name]
    rng = np.random.default_rng(1)
    inputs, _, classes = model.shape
    images = rng.integers(0, 256, (12, inputs))
    images[0] = 0
    images[1] = 255
    for digit in range(classes):
        compiled = compile_predicate(model, digit)
        for image in images:
            result = verify_spend(compiled.script, image_pushes(compiled, image))
            assert result.accepted == (model.predict(image) == digit), (digit, image.tolist(), result.reason)


def test_it_breaks_ties_like_argmax_the_first_index_wins() -> None:
    # Scores are (x0, x0, x1): classes 0 and 1 always tie; class 2 ties with them when x0 == x1.
    model = IntegerModel([[1, 0], [0, 1]], [0, 0], [[1, 1, 0], [0, 0, 1]], [0, 0, 0])
    for x0, x1 in [(5, 5), (0, 0), (6, 5), (5, 6), (255, 255)]:
        image = np.array([x0, x1])
        expected = model.predict(image)
        verdicts = [accepts(model, digit, image) for digit in range(3)]
        assert verdicts == [digit == expected for digit in range(3)], (x0, x1)
    assert accepts(model, 0, np.array([7, 7])) and not accepts(model, 1, np.array([7, 7]))


@pytest.mark.parametrize("shape", [(5, 3, 2), (16, 8, 4), (64, 16, 10), (30, 1, 3)])
def test_it_compiles_any_shape(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    model = random_model(rng, shape, sparsity=0.6, limit=20)
    images = rng.integers(0, 256, (6, shape[0])) * (rng.random((6, shape[0])) < 0.5)
    predictions = model.predict(images)
    for digit in range(shape[2]):
        compiled = compile_predicate(model, digit)
        for image, predicted in zip(images, predictions, strict=True):
            assert verify_spend(compiled.script, image_pushes(compiled, image)).accepted == (
                predicted == digit
            )


def test_it_agrees_with_the_reference_on_a_sparse_mnist_sized_model() -> None:
    rng = np.random.default_rng(7)
    model = random_model(rng, (784, 64, 10), sparsity=0.9, limit=31)
    images = (rng.integers(0, 256, (4, 784)) * (rng.random((4, 784)) < 0.25)).astype(np.uint8)
    for image in images:
        predicted = model.predict(image)
        for digit in (predicted, (predicted + 1) % 10):
            assert accepts(model, digit, image) == (digit == predicted)


def test_optimised_and_unoptimised_code_agree_on_the_interpreter() -> None:
    rng = np.random.default_rng(3)
    model = random_model(rng, (40, 12, 5), sparsity=0.5, limit=16)
    images = rng.integers(0, 256, (10, 40))
    for digit in range(5):
        optimised = compile_predicate(model, digit)
        plain = compile_predicate(model, digit, optimise=False)
        assert len(optimised.script) < len(plain.script) == plain.stats.unoptimised_bytes
        for image in images:
            unlocking = image_pushes(optimised, image)
            assert (
                verify_spend(optimised.script, unlocking).accepted
                == verify_spend(plain.script, unlocking).accepted
            )


def test_verify_mode_consumes_the_image_and_leaves_what_was_below() -> None:
    model = TINY["three-classes"]
    marker = push_number(777)
    for image in (np.array([10, 200, 3]), np.array([0, 0, 255]), np.array([90, 20, 180])):
        for digit in range(3):
            compiled = compile_predicate(model, digit, mode="verify")
            # The marker stands for the operator's signature below the image; it must come out untouched.
            locking = compiled.script + marker + bytes([0x9C])  # OP_NUMEQUAL
            result = verify_spend(locking, marker + image_pushes(compiled, image))
            assert result.accepted == (model.predict(image) == digit), result.reason


def test_it_pushes_only_pixels_that_can_change_the_verdict() -> None:
    model = TINY["zero-pixel-and-dead-unit"]
    # Pixel 3 has no weight; unit 1 adds the same to every class; pixel 1 only feeds unit 2.
    assert sorted(compile_predicate(model, 0).input_indices) == [0, 1, 2]
    plan = plan_network(model, 0)
    assert sorted(plan.hidden) == [0, 2]


def test_it_folds_a_constant_unit_into_the_biases() -> None:
    model = TINY["constant-unit"]
    plan = plan_network(model, 1)
    assert sorted(plan.hidden) == [0]
    # relu(40) * (w2[1,0] - w2[1,1]) = 40 * (1 - 2) folded into class 0's bias, +1 for the tie rule.
    assert plan.other_scores[0].bias == 40 * (1 - 2) + 1


def test_the_layout_is_the_same_for_every_digit() -> None:
    rng = np.random.default_rng(5)
    model = random_model(rng, (50, 10, 10), sparsity=0.7, limit=7)
    layouts = {compile_predicate(model, digit).input_indices for digit in range(10)}
    assert layouts == {plan_layout(model).input_indices}


def test_a_single_class_model_always_accepts() -> None:
    model = IntegerModel([[1], [2]], [0], [[3]], [0])
    compiled = compile_predicate(model, 0)
    assert compiled.input_indices == ()
    assert verify_spend(compiled.script, b"").accepted
    assert compile_predicate(model, 0, mode="verify").script == b""


def test_the_asm_names_layers_and_units_and_parses_back() -> None:
    compiled = compile_predicate(TINY["three-classes"], 2)
    assert "# layer 1, hidden unit 0" in compiled.asm
    assert "# layer 2, score of class 1" in compiled.asm
    assert "# argmax" in compiled.asm
    from contracts.script import from_asm

    assert serialize(from_asm(compiled.asm)) == compiled.script


def test_it_reports_statistics() -> None:
    compiled = compile_predicate(TINY["big-weights"], 1)
    stats = compiled.stats
    assert stats.bytes == len(compiled.script)
    pushed = [abs(n) for n in (i.pushed_number() for i in parse(compiled.script)) if n is not None]
    assert stats.largest_constant == max(pushed) > 99999  # the relative class biases
    assert stats.opcodes < stats.instructions
    assert stats.inputs == 2 and stats.live_hidden_units == 2


@pytest.mark.parametrize("digit", [-1, 10, 2.0, True, "3"])
def test_it_refuses_a_digit_outside_the_classes(digit: object) -> None:
    model = random_model(np.random.default_rng(0), (4, 2, 10), 0.0, 3)
    with pytest.raises(CompileError, match="digit"):
        compile_predicate(model, digit)  # type: ignore[arg-type]


def test_it_refuses_an_unknown_mode() -> None:
    with pytest.raises(CompileError, match="mode"):
        compile_predicate(TINY["two-inputs"], 0, mode="covenant")


@pytest.mark.parametrize(("x0", "x1"), list(itertools.product([0, 1, 16, 17, 127, 128, 255], repeat=2)))
def test_edge_pixel_values_on_two_inputs(x0: int, x1: int) -> None:
    model = TINY["two-inputs"]
    image = np.array([x0, x1], dtype=np.uint8)
    assert accepts(model, model.predict(image), image)
