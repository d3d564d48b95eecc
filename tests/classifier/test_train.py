"""Training and compression: a short run on a subset yields a valid, honest artifact."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.integer_model import IntegerModel
from classifier.train import (
    TrainingOptions,
    fold_to_integers,
    magnitude_mask,
    max_level,
    random_shifts,
    train,
)


def test_the_magnitude_mask_drops_the_smallest_weights():
    kernel = np.array([[0.1, -3.0], [2.0, -0.2], [0.05, 1.0]])
    mask = magnitude_mask(kernel, 0.5)
    assert mask.tolist() == [[False, True], [True, False], [False, True]]
    assert magnitude_mask(kernel, 0.0).all()


def test_folding_keeps_the_float_networks_decisions():
    rng = np.random.default_rng(0)
    k1, b1 = rng.normal(0, 0.1, (784, 64)), rng.normal(0, 0.1, 64)
    k2, b2 = rng.normal(0, 0.3, (64, 10)), rng.normal(0, 0.1, 10)
    model = fold_to_integers(k1, b1, k2, b2, bits=8)
    assert np.abs(model.w1).max() == max_level(8) and np.abs(model.w2).max() <= max_level(8)
    x = rng.integers(0, 256, (200, 784)).astype(np.uint8)
    float_scores = np.maximum(x / 255.0 @ k1 + b1, 0) @ k2 + b2
    # 8-bit rounding can flip near-ties only; almost every decision must survive the folding.
    assert np.mean(model.predict(x) == float_scores.argmax(axis=1)) > 0.95


@pytest.mark.parametrize(("sparsity", "bits"), [(-0.1, 5), (1.0, 5), (0.5, 1), (0.5, 17)])
def test_it_refuses_impossible_options(sparsity, bits):
    with pytest.raises(ValueError):
        TrainingOptions(sparsity=sparsity, bits=bits)


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_it_refuses_an_impossible_augmentation_share(share):
    with pytest.raises(ValueError, match="augment"):
        TrainingOptions(augment=share)


@pytest.mark.parametrize("repeat", [0, 101])
def test_it_refuses_an_impossible_repeat_of_collected_images(repeat):
    with pytest.raises(ValueError, match="extra_repeat"):
        TrainingOptions(extra_repeat=repeat)


@pytest.mark.slow
def test_a_short_run_produces_a_valid_compressed_artifact(mnist, tmp_path):
    options = TrainingOptions(
        epochs=1, sparsity=0.8, bits=4, prune_steps=2, prune_epochs=1, quant_epochs=1, extra_repeat=3
    )
    extra = (mnist.x_test[:50], mnist.y_test[:50])
    result = train(
        mnist.x_train[:3000], mnist.y_train[:3000], mnist.x_test[:1000], mnist.y_test[:1000], options,
        extra=extra, progress=lambda line: None,
    )  # fmt: skip
    model = IntegerModel.load(result.model.save(tmp_path / "short.npz"))
    assert model.shape == (784, 64, 10)
    assert abs(model.sparsity() - 0.8) < 0.001
    assert np.abs(model.w1).max() <= max_level(4) and np.abs(model.w2).max() <= max_level(4)
    accuracy = float(np.mean(model.predict(mnist.x_test[:1000].reshape(-1, 784)) == mnist.y_test[:1000]))
    assert accuracy == pytest.approx(model.manifest["metrics"]["integer_test_accuracy"])
    assert model.manifest["metrics"]["network_integer_agreement"] >= 0.995
    assert accuracy > 0.75  # 3,000 images for one epoch: far from the real model, far above chance
    training = model.manifest["training"]
    assert training["mnist_examples"] == 3000 and training["extra_examples"] == 50
    assert model.manifest["bits"] == 4 and model.manifest["architecture"]["hidden"] == 64
    assert set(model.manifest["metrics"]["per_class_accuracy"]) == {str(d) for d in range(10)}
    # The drawn-style set is measured and recorded beside MNIST, with its own families.
    metrics = model.manifest["metrics"]
    assert 0.3 < metrics["drawn_accuracy"] < 1.0
    assert set(metrics["drawn_accuracy_per_family"]) == {"strokes", "fonts", "lowres"}
    training = model.manifest["training"]
    assert training["augment"] == 0.5
    assert training["extra_repeat"] == 3  # the 50 collected images counted 3 times, MNIST's once


def test_random_shifts_move_each_image_by_at_most_the_limit():
    images = np.zeros((400, 28, 28), np.uint8)
    images[:, 14, 14] = 255
    moved = random_shifts(images, np.random.default_rng(0), 2).reshape(400, 28, 28)
    positions = np.array([np.argwhere(image)[0] for image in moved])
    assert np.abs(positions - 14).max() == 2  # all offsets within the limit, and the limit is reached
    assert len({tuple(p) for p in positions}) == 25  # every offset in [-2, 2]^2 occurs
    assert np.allclose(moved.sum(axis=(1, 2)), 1.0)  # nothing lost: pixels scaled to 0..1
