"""The unlocking layout: minimal pushes of exactly the pixels the predicate reads, in its order."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.compiler import compile_predicate
from contracts.errors import ImageError
from contracts.model import IntegerModel
from contracts.script import parse
from contracts.unlocking import image_pushes

# Pixel 2 has no weight anywhere, so it is never pushed.
MODEL = IntegerModel([[1, 0], [0, 2], [0, 0], [3, -1]], [0, 0], [[1, -1], [-1, 1]], [0, 0])


@pytest.mark.parametrize(("value", "size"), [(0, 1), (1, 1), (16, 1), (17, 2), (127, 2), (128, 3), (255, 3)])
def test_a_pixel_costs_the_minimal_push(value: int, size: int) -> None:
    image = np.array([value, 0, 0, 0], dtype=np.uint8)
    assert len(image_pushes(MODEL, image)) == size + 2  # two more pixels pushed as OP_0


def test_it_pushes_the_predicate_inputs_in_order() -> None:
    compiled = compile_predicate(MODEL, 1)
    image = np.array([200, 17, 99, 5], dtype=np.uint8)
    pushed = [i.pushed_number() for i in parse(image_pushes(compiled, image))]
    assert pushed == [int(image[i]) for i in compiled.input_indices]
    assert 2 not in compiled.input_indices


def test_a_model_and_its_compiled_predicate_give_the_same_pushes() -> None:
    image = np.array([3, 140, 0, 77], dtype=np.uint8)
    assert image_pushes(MODEL, image) == image_pushes(compile_predicate(MODEL, 0), image)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros(3, dtype=np.uint8), "shape"),
        (np.zeros((1, 4), dtype=np.uint8), "shape"),
        (np.zeros(4, dtype=np.float32), "integers"),
        (np.array([0, 256, 0, 0]), "0..255"),
        (np.array([0, -1, 0, 0]), "0..255"),
    ],
    ids=["short", "batch", "float", "256", "negative"],
)
def test_it_refuses_a_bad_image(image: np.ndarray, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        image_pushes(MODEL, image)
