"""The unlocking-script layout of an image: minimal pushes of the pixels the predicate reads.

Only pixels with a nonzero first-layer weight into a hidden unit that can change the verdict are pushed, in
the order `plan_layout` chose (the predicate's `input_indices`; the last one ends on top of the stack). A
pixel costs 1 byte for 0..16 (OP_0, OP_1..OP_16), 2 bytes for 17..127 and 3 bytes for 128..255 (a script
number needs a sign byte above 127). See contracts/DESIGN-NOTES.md for the packed layouts we measured and
rejected, and for why the script does not re-check 0..255.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from contracts.compiler import CompiledPredicate, plan_layout
from contracts.errors import ImageError
from contracts.model import IntegerModel
from contracts.numbers import push_number

# A push for every byte value, built once: unlocking scripts are assembled per image in hot loops.
_PIXEL_PUSHES = tuple(push_number(value) for value in range(256))


def input_indices_of(compiled_or_model: CompiledPredicate | IntegerModel) -> tuple[int, ...]:
    if isinstance(compiled_or_model, CompiledPredicate):
        return compiled_or_model.input_indices
    return _layout_of(compiled_or_model)


@lru_cache(maxsize=8)
def _layout_of(model: IntegerModel) -> tuple[int, ...]:
    # Planning walks the whole model; images of one model are encoded in loops, so plan once per model.
    return plan_layout(model).input_indices


def image_pushes(compiled_or_model: CompiledPredicate | IntegerModel, pixels: np.ndarray) -> bytes:
    """The unlocking-script fragment pushing one image (shape (n,), integers 0..255)."""
    indices = input_indices_of(compiled_or_model)
    inputs = compiled_or_model.shape[0]
    array = _check_image(pixels, inputs)
    return b"".join(_PIXEL_PUSHES[value] for value in array[list(indices)].tolist())


def _check_image(pixels: np.ndarray, inputs: int) -> np.ndarray:
    array = np.asarray(pixels)
    if array.shape != (inputs,):
        raise ImageError(f"an image must have shape ({inputs},), got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ImageError(f"pixels must be integers 0..255, got dtype {array.dtype}")
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
        raise ImageError(f"pixel values must lie in 0..255, got {int(array.min())}..{int(array.max())}")
    return array.astype(np.int64)
