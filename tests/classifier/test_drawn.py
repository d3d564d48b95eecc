"""The drawn-style evaluation set: the same from the same seed, MNIST-style pixels, none of MNIST's training
images, and a CLI that writes it or says in one line what is wrong."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from classifier import drawn
from classifier.cli import main
from classifier.errors import DataError


def digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    first = drawn.build(strokes=40, fonts=20, lowres=20, seed=3)
    again = drawn.build(strokes=40, fonts=20, lowres=20, seed=3)
    other = drawn.build(strokes=40, fonts=20, lowres=20, seed=4)
    assert digest(first.x) == digest(again.x)
    assert np.array_equal(first.y, again.y) and np.array_equal(first.family, again.family)
    assert digest(first.x) != digest(other.x)


def test_images_are_mnist_style_and_every_digit_is_in_every_family(mnist):
    images = drawn.build(strokes=100, fonts=50, lowres=60, seed=1)
    assert images.x.shape == (210, 28, 28) and images.x.dtype == np.uint8
    assert np.bincount(images.family, minlength=3).tolist() == [100, 50, 60]
    for family in (0, 1):
        assert set(images.y[images.family == family].tolist()) == set(range(10))
    # White digit on black with its peak at 255, as the preprocessing leaves every submission.
    assert (images.x.reshape(210, -1).max(axis=1) == 255).all()
    assert np.median(images.x[:, 0, :]) == 0
    # Nothing is a copy of an MNIST training image.
    train = {image.tobytes() for image in mnist.x_train}
    assert not any(image.tobytes() in train for image in images.x)


def test_the_stroke_digits_are_readable_by_the_committed_model_most_of_the_time(default_model_path):
    """A sanity check of the skeletons (a wrong one would read as another digit every time): the committed
    model, which never saw these images, reads most of each digit right."""
    from classifier.integer_model import IntegerModel

    images = drawn.build(strokes=300, fonts=0, lowres=0, seed=2)
    predictions = np.asarray(IntegerModel.load(default_model_path).predict(images.x.reshape(-1, 784)))
    per_digit = [float(np.mean(predictions[images.y == d] == d)) for d in range(10)]
    assert min(per_digit) >= 0.5, per_digit


def test_the_command_writes_the_set_and_loads_back(tmp_path, default_model_path, capsys):
    out = tmp_path / "drawn.npz"
    args = ["drawn", "--out", str(out), "--strokes", "30", "--fonts", "10", "--lowres", "10"]
    assert main([*args, "--model", str(default_model_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    x, y = drawn.load(out)
    assert x.shape == (50, 28, 28) and y.shape == (50,)
    assert report["images"] == 50 and report["families"] == {"strokes": 30, "fonts": 10, "lowres": 10}
    assert set(report["accuracy"]) == {"all", "strokes", "fonts", "lowres"}
    assert 0.0 <= report["accuracy"]["all"] <= 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strokes", "-1"], "must not be negative"),
        (["--strokes", "0", "--fonts", "0", "--lowres", "0"], "at least one"),
    ],
)
def test_bad_counts_end_with_one_clear_line(tmp_path, capsys, args, message):
    assert main(["drawn", "--out", str(tmp_path / "x.npz"), *args]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "x.npz").exists()


def test_load_says_which_array_is_missing(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8), labels=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="`x` and `y`"):
        drawn.load(path)
