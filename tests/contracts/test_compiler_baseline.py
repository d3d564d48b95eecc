"""The seed-style baseline compile: dense, x10^8 constants, a division per product, still bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.baseline import SCALE, compile_baseline
from contracts.compiler import compile_predicate
from contracts.model import IntegerModel
from contracts.numbers import push_number
from contracts.opcodes import Opcode
from contracts.verify import verify_spend

RNG = np.random.default_rng(4)
W1, B1 = RNG.integers(-5, 6, (6, 4)), RNG.integers(-50, 50, 4)
MODEL = IntegerModel(W1, B1, RNG.integers(-5, 6, (4, 3)), RNG.integers(-50, 50, 3))


@pytest.mark.parametrize("digit", range(3))
def test_the_baseline_matches_the_reference(digit: int) -> None:
    compiled = compile_baseline(MODEL, digit)
    for image in RNG.integers(0, 256, (15, 6)):
        unlocking = b"".join(push_number(int(v)) for v in image)
        assert verify_spend(compiled.script, unlocking).accepted == (MODEL.predict(image) == digit)


def test_the_baseline_divides_after_every_product_and_is_dense() -> None:
    compiled = compile_baseline(MODEL, 0)
    ops = [i.op for i in compiled.instructions]
    inputs, hidden, classes = MODEL.shape
    products = inputs * hidden + hidden * classes
    assert ops.count(Opcode.OP_MUL) == products
    assert ops.count(Opcode.OP_DIV) == products + hidden + classes  # and one per scaled bias
    assert any(i.pushed_number() == SCALE for i in compiled.instructions)


def test_the_compiler_is_much_smaller_than_the_baseline() -> None:
    assert compile_predicate(MODEL, 1).stats.bytes * 5 < compile_baseline(MODEL, 1).stats.bytes
