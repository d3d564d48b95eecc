"""The compiled predicate of a tiny model, compared with a committed ASM file, so any change in what the
compiler emits (a pass, the peephole table, the stack layout) shows up as a readable diff in review.

The fixture is tests/contracts/fixtures/tiny_model_digit1.asm (with the compiler's `#` comments naming the
layer and unit each block computes), for the model in tiny_model.npz. When a compiler change is intended,
regenerate it with the command below, read the diff and commit it with the change:

    .venv/bin/python -m contracts compile --model tests/contracts/fixtures/tiny_model.npz --digit 1 \\
        --asm tests/contracts/fixtures/tiny_model_digit1.asm
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from contracts.cli import main
from contracts.compiler import compile_predicate
from contracts.model import IntegerModel
from contracts.unlocking import image_pushes
from contracts.verify import verify_spend

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = IntegerModel.load(FIXTURES / "tiny_model.npz")
GOLDEN = FIXTURES / "tiny_model_digit1.asm"
REGENERATE = (
    "python -m contracts compile --model tests/contracts/fixtures/tiny_model.npz --digit 1 "
    "--asm tests/contracts/fixtures/tiny_model_digit1.asm"
)


def test_the_compiler_emits_the_committed_asm() -> None:
    emitted = compile_predicate(MODEL, 1).asm
    expected = GOLDEN.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), emitted.splitlines(keepends=True), "committed", "emitted"
        )
    )
    assert emitted == expected, f"the compiler's output changed; if intended, run {REGENERATE}\n{diff}"


def test_the_regeneration_command_writes_what_the_test_compares(tmp_path: Path) -> None:
    out = tmp_path / "tiny.asm"
    args = ["compile", "--model", str(FIXTURES / "tiny_model.npz"), "--digit", "1", "--asm", str(out)]
    assert main(args) == 0
    assert out.read_text() == compile_predicate(MODEL, 1).asm


def test_the_committed_script_decides_as_the_model_does() -> None:
    compiled = compile_predicate(MODEL, 1)
    images = np.random.default_rng(1).integers(0, 256, (24, 4), dtype=np.uint8)
    predicted = np.asarray(MODEL.predict(images))
    assert 0 < (predicted == 1).sum() < len(images), "the sample has images of the digit and of others"
    for image, digit in zip(images, predicted, strict=True):
        assert verify_spend(compiled.script, image_pushes(compiled, image)).accepted == (digit == 1)
