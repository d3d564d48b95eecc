"""Lane width and packing: the width holds the model's worst case, checked on extreme and adversarial images
(through the script, lane by lane), and the packed pushes decode back to the exact images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ledger_helpers import small_model
from test_verify import bitcoinx_accepts

from contracts.batch import compile_batch_predicate
from contracts.batch_lanes import LaneLayout, lane_bounds, lane_bytes, lane_layout
from contracts.errors import ImageError
from contracts.model import IntegerModel
from contracts.verify import verify_spend


@pytest.fixture(scope="module")
def model(default_model_path: Path) -> IntegerModel:
    return IntegerModel.load(default_model_path)


def extreme_images(model: IntegerModel) -> np.ndarray:
    """All 0, all 255, and per hidden unit the two sign patterns that drive its pre-activation to its lowest
    and highest values (255 where the weight is negative, resp. positive, 0 elsewhere); per pair of classes
    the pattern that pushes the first unit most in favour of one class over the other."""
    inputs, hidden, classes = model.shape
    images = [np.zeros(inputs, dtype=np.int64), np.full(inputs, 255, dtype=np.int64)]
    for unit in range(hidden):
        column = model.w1[:, unit]
        images.append(np.where(column < 0, 255, 0))
        images.append(np.where(column > 0, 255, 0))
    for target in range(classes):
        for other in range(classes):
            if other == target:
                continue
            # Excite the hidden units that favour `target` over `other`, silence the others.
            favour = model.w2[:, target] - model.w2[:, other]
            drive = model.w1 @ np.sign(favour)
            images.append(np.where(drive > 0, 255, 0))
    return np.asarray(images, dtype=np.int64)


def reached(model: IntegerModel, images: np.ndarray) -> int:
    """The largest |lane value| the predicate reads (pre-activations, score differences) on `images`."""
    pre = images @ model.w1 + model.b1
    scores = model.scores(images)
    worst = int(np.max(np.abs(pre)))
    for target in range(model.shape[2]):
        for other in range(model.shape[2]):
            if other != target:
                tie = 1 if other < target else 0
                worst = max(worst, int(np.max(np.abs(scores[:, target] - scores[:, other] - tie))))
    return worst


def test_the_lane_width_holds_every_extreme_image(model: IntegerModel) -> None:
    width = lane_bytes(model)
    half = 1 << (8 * width - 1)
    bounds = lane_bounds(model)
    images = extreme_images(model)
    assert reached(model, images) < half
    # The static bound is a true bound, and not a loose one: the extremes reach a good part of it.
    assert reached(model, images) <= bounds.magnitude
    assert bounds.magnitude < half
    assert width == 3, "the default model's values stay within 23 bits and a sign"


def test_extreme_images_run_through_the_script_lane_by_lane(model: IntegerModel) -> None:
    images = extreme_images(model)
    predictions = np.asarray(model.predict(images))
    lanes = 8
    counts = np.bincount(predictions, minlength=10)
    # The two digits the extreme images are classified as most often, so both branches are exercised.
    for digit in (int(d) for d in np.argsort(counts)[-2:]):
        compiled = compile_batch_predicate(model, digit, lanes)
        chosen = images[predictions == digit]
        assert len(chosen) > 0
        # Every extreme image classified as the digit, in every lane position: accepted.
        batch = np.resize(chosen, (lanes, images.shape[1]))
        unlocking = compiled.pushes(batch)
        assert verify_spend(compiled.script, unlocking, predicate=compiled).accepted
        assert bitcoinx_accepts(compiled.script, unlocking)
        # One extreme image of another class in any lane: refused.
        wrong = images[predictions != digit]
        for lane in (0, lanes - 1):
            bad = batch.copy()
            bad[lane] = wrong[lane % len(wrong)]
            unlocking = compiled.pushes(bad)
            assert not verify_spend(compiled.script, unlocking, predicate=compiled).accepted
            assert not bitcoinx_accepts(compiled.script, unlocking)


def test_a_model_with_larger_weights_gets_wider_lanes() -> None:
    small = small_model()
    louder = IntegerModel(small.w1 * 300, small.b1 * 300, small.w2 * 300, small.b2 * 300)
    assert lane_bytes(louder) > lane_bytes(small)
    half = 1 << (8 * lane_bytes(louder) - 1)
    assert reached(louder, extreme_images(louder)) < half


def test_packed_pushes_decode_to_the_exact_images(model: IntegerModel) -> None:
    layout = lane_layout(model, 5)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (5, 784))
    images[2] = 0
    images[4] = 255  # the top lane full: its pushes need a sign byte
    decoded = layout.unpack_pushes(layout.pushes(images))
    used = list(layout.input_indices)
    assert np.array_equal(decoded[:, used], images[:, used])


def test_unpacking_refuses_what_is_not_a_batch_of_images() -> None:
    layout = LaneLayout(lanes=2, lane_bytes=2, input_indices=(0, 1), inputs=2)
    assert np.array_equal(layout.unpack([255 + (3 << 16), 0]), [[255, 0], [3, 0]])
    with pytest.raises(ImageError, match=r"outside 0\.\.255"):
        layout.unpack([256, 0])
    with pytest.raises(ImageError, match="not a packed batch"):
        layout.unpack([-1, 0])
    with pytest.raises(ImageError, match="expected 2"):
        layout.unpack([1])
