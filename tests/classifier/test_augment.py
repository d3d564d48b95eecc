"""Train-time augmentation: each change does what it says, within its range, and the same seed repeats."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.augment import AugmentOptions, augment, augment_share

NONE = AugmentOptions(
    share=1.0, rotation=0, slant=0, scale=(1, 1), aspect=0, translate=0, elastic=0, thicken=0, thin=0,
    blur=0, gamma=0,
)  # fmt: skip


def ink(images: np.ndarray) -> np.ndarray:
    return (images > 64).reshape(len(images), -1).sum(axis=1)


def test_with_every_range_at_zero_the_images_come_back_unchanged(mnist):
    images = mnist.x_train[:200]
    out = augment(images, np.random.default_rng(0), NONE)
    assert out.dtype == np.float32 and out.shape == images.shape
    # Only the peak is brought to 255 (a few MNIST digits peak at 253 or 254), as the preprocessing does.
    peaks = images.reshape(200, -1).max(axis=1)[:, None, None].astype(np.float32)
    assert (peaks < 255).any()
    assert np.allclose(out, images * (255.0 / peaks), atol=1e-3)


def test_dilation_thickens_and_erosion_thins_strokes(mnist):
    images = mnist.x_train[:300]
    thick = augment(images, np.random.default_rng(1), AugmentOptions(**{**NONE.__dict__, "thicken": 1.0}))
    thin = augment(images, np.random.default_rng(1), AugmentOptions(**{**NONE.__dict__, "thin": 1.0}))
    assert (ink(thick) > ink(images)).mean() > 0.95
    assert (ink(thin) < ink(images)).mean() > 0.95


def test_a_second_dilation_step_thickens_further(mnist):
    images = mnist.x_train[:300]
    one = AugmentOptions(**{**NONE.__dict__, "thicken": 1.0})
    two = AugmentOptions(**{**NONE.__dict__, "thicken": 1.0, "thicken_steps": 2})
    once = augment(images, np.random.default_rng(4), one)
    up_to_twice = augment(images, np.random.default_rng(4), two)
    # About half the images take the second step, each then inkier than any single step made it.
    assert 0.3 < (ink(up_to_twice) > ink(once)).mean() < 0.7
    assert (ink(up_to_twice) >= ink(images)).all()


def test_rotation_turns_a_bar_by_at_most_the_range():
    bar = np.zeros((500, 28, 28), np.uint8)
    bar[:, 4:24, 13:15] = 255  # a vertical stroke through the centre
    options = AugmentOptions(**{**NONE.__dict__, "rotation": 20.0})
    out = augment(bar, np.random.default_rng(2), options)
    angles = []
    for image in out:
        rows, cols = np.nonzero(image > 128)
        slope = np.polyfit(rows - rows.mean(), cols - cols.mean(), 1)[0]
        angles.append(np.degrees(np.arctan(slope)))
    angles = np.abs(angles)
    assert angles.max() <= 21.0 and angles.max() > 15.0  # the range is reached and not exceeded
    assert angles.min() < 5.0


def test_blur_softens_and_contrast_keeps_the_peak_at_255(mnist):
    images = mnist.x_train[:100]
    blurred = augment(images, np.random.default_rng(3), AugmentOptions(**{**NONE.__dict__, "blur": 1.0}))
    grey = lambda x: ((x > 20) & (x < 235)).sum()  # noqa: E731
    assert grey(blurred) > 1.3 * grey(images)
    faded = augment(images, np.random.default_rng(3), AugmentOptions(**{**NONE.__dict__, "gamma": 0.5}))
    assert np.allclose(faded.reshape(100, -1).max(axis=1), 255.0)


def test_the_share_is_respected_and_the_same_seed_gives_the_same_epoch(mnist):
    images = mnist.x_train[:2000]
    options = AugmentOptions(share=0.3)
    first = augment_share(images, np.random.default_rng(7), options)
    again = augment_share(images, np.random.default_rng(7), options)
    assert np.array_equal(first, again)
    changed = np.any(np.abs(first - images) > 0.5, axis=(1, 2)).mean()
    assert changed == pytest.approx(0.3, abs=0.04)


@pytest.mark.parametrize(
    "bad",
    [
        {"share": 1.5},
        {"thicken": 0.8, "thin": 0.4},
        {"scale": (0.0, 1.0)},
        {"scale": (1.2, 1.0)},
        {"thicken_steps": 0},
    ],
)
def test_it_refuses_impossible_ranges(bad):
    with pytest.raises(ValueError):
        AugmentOptions(**bad)
