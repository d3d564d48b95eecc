"""The integer reference model: hand-computed cases, ties, bounds and the artifact round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.errors import ModelFormatError
from classifier.integer_model import IntegerModel, weights_sha256


def tiny_model() -> IntegerModel:
    # 2 inputs, 2 hidden units, 3 classes.
    return IntegerModel(
        w1=np.array([[1, -2], [3, 1]]),
        b1=np.array([-10, 5]),
        w2=np.array([[2, 0, -1], [0, 1, 1]]),
        b2=np.array([0, 3, -4]),
    )


@pytest.mark.parametrize(
    ("pixels", "hidden", "scores"),
    [
        # x=(0,0): h = relu(-10, 5) = (0, 5); scores = (0, 5+3, 5-4) = (0, 8, 1)
        ((0, 0), (0, 5), (0, 8, 1)),
        # x=(10,2): h = relu(10+6-10, -20+2+5) = (6, 0); scores = (12, 3, -10)
        ((10, 2), (6, 0), (12, 3, -10)),
        # x=(255,255): h = relu(255+765-10, -510+255+5) = (1010, 0); scores = (2020, 3, -1014)
        ((255, 255), (1010, 0), (2020, 3, -1014)),
    ],
)
def test_it_matches_hand_computed_values(pixels, hidden, scores):
    model = tiny_model()
    x = np.array(pixels, dtype=np.uint8)
    assert model.hidden(x).tolist() == list(hidden)
    assert model.scores(x).tolist() == list(scores)
    assert model.predict(x) == int(np.argmax(scores))


def test_it_breaks_ties_by_the_first_index():
    model = IntegerModel(
        w1=np.zeros((2, 1), int), b1=np.zeros(1, int), w2=np.zeros((1, 3), int), b2=np.array([4, 7, 7])
    )
    assert model.predict(np.array([9, 9], dtype=np.uint8)) == 1


def test_it_predicts_batches_like_single_images():
    model = tiny_model()
    batch = np.array([[0, 0], [10, 2], [255, 255], [3, 200]], dtype=np.uint8)
    assert model.predict(batch).tolist() == [model.predict(row) for row in batch]


def test_it_refuses_pixels_that_are_not_uint8():
    with pytest.raises(ValueError, match="uint8"):
        tiny_model().predict(np.array([1, 2], dtype=np.int64))


def test_it_refuses_pixels_of_the_wrong_length():
    with pytest.raises(ValueError, match="shape"):
        tiny_model().predict(np.zeros(3, dtype=np.uint8))


def test_its_worst_case_bound_holds_for_extreme_inputs():
    rng = np.random.default_rng(3)
    model = IntegerModel(
        w1=rng.integers(-15, 16, (784, 64)),
        b1=rng.integers(-5000, 5000, 64),
        w2=rng.integers(-15, 16, (64, 10)),
        b2=rng.integers(-5000, 5000, 10),
    )
    bound = model.worst_case_magnitude()
    for x in (
        np.zeros(784, np.uint8),
        np.full(784, 255, np.uint8),
        rng.integers(0, 256, 784).astype(np.uint8),
    ):
        assert np.abs(model.hidden(x)).max() <= bound
        assert np.abs(model.scores(x)).max() <= bound
    assert bound < 2**62


def test_it_refuses_weights_that_could_overflow_int64():
    with pytest.raises(ModelFormatError, match="overflow"):
        IntegerModel(
            w1=np.full((784, 1), 2**40), b1=np.zeros(1, int), w2=np.full((1, 10), 2**20), b2=np.zeros(10, int)
        )


def arrays(w1=(2, 2), b1=(2,), w2=(2, 3), b2=(3,), dtype=int):
    return {
        "w1": np.zeros(w1, dtype),
        "b1": np.zeros(b1, int),
        "w2": np.zeros(w2, int),
        "b2": np.zeros(b2, int),
    }


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (arrays(b1=(3,)), "inconsistent shapes"),
        (arrays(b2=(4,)), "inconsistent shapes"),
        (arrays(w2=(3, 3)), "inconsistent shapes"),
        (arrays(w1=(4,)), "2-D"),
        (arrays(dtype=float), "integers"),
    ],
)
def test_it_refuses_inconsistent_arrays(arrays, message):
    with pytest.raises(ModelFormatError, match=message):
        IntegerModel(**arrays)


def test_its_artifact_round_trips_with_its_manifest(tmp_path):
    model = IntegerModel(
        **{k: getattr(tiny_model(), k) for k in ("w1", "b1", "w2", "b2")}, manifest={"bits": 3}
    )
    path = model.save(tmp_path / "tiny.npz")
    loaded = IntegerModel.load(path)
    for name in ("w1", "b1", "w2", "b2"):
        assert np.array_equal(getattr(loaded, name), getattr(model, name))
        assert getattr(loaded, name).dtype == np.int64
    assert loaded.manifest["bits"] == 3
    assert loaded.manifest["format_version"] == 1
    assert loaded.manifest["weights_sha256"] == weights_sha256(model.w1, model.b1, model.w2, model.b2)
    assert json.loads((tmp_path / "tiny.json").read_text()) == loaded.manifest


def test_it_refuses_an_artifact_whose_weights_were_changed(tmp_path):
    path = tiny_model().save(tmp_path / "tiny.npz")
    with np.load(path) as arrays:
        contents = dict(arrays)
    contents["w1"] = contents["w1"] + 1
    np.savez(path, **contents)
    with pytest.raises(ModelFormatError, match="sha256"):
        IntegerModel.load(path)


def test_it_refuses_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(ModelFormatError, match="not a readable model"):
        IntegerModel.load(path)
    np.savez(path, w1=np.zeros((2, 2), int))
    with pytest.raises(ModelFormatError, match="missing b1"):
        IntegerModel.load(path)
    with pytest.raises(ModelFormatError, match="no model file"):
        IntegerModel.load(tmp_path / "absent.npz")
