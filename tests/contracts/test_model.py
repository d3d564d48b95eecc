"""Loading and validating the model artifact, and the numpy reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts.errors import ImageError, ModelFormatError
from contracts.model import IntegerModel

MODEL = IntegerModel([[1, -2], [3, 0], [0, 4]], [1, -1], [[2, 0, -1], [0, 1, 1]], [0, 3, -2])


def write(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def good_arrays() -> dict[str, object]:
    return {
        "w1": MODEL.w1,
        "b1": MODEL.b1,
        "w2": MODEL.w2,
        "b2": MODEL.b2,
        "manifest": np.array(json.dumps({"format_version": 1, "weights_sha256": MODEL.weights_sha256()})),
    }


def test_it_loads_what_it_saves(tmp_path: Path) -> None:
    MODEL.save(tmp_path / "m.npz")
    loaded = IntegerModel.load(tmp_path / "m.npz")
    assert loaded == MODEL
    assert loaded.shape == (3, 2, 3)
    assert loaded.manifest["architecture"] == {"inputs": 3, "hidden": 2, "classes": 3, "activation": "relu"}


def test_it_loads_a_hand_written_artifact(tmp_path: Path) -> None:
    assert IntegerModel.load(write(tmp_path / "m.npz", **good_arrays())) == MODEL


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"w1": None}, "missing array"),
        ({"manifest": None}, "missing array"),
        ({"w1": MODEL.w1.astype(np.float64)}, "w1 must be int64"),
        ({"b1": np.zeros(3, dtype=np.int64)}, "inconsistent shapes"),
        ({"w2": np.zeros((2,), dtype=np.int64)}, "2-D"),
        ({"manifest": np.array("not json")}, "not JSON"),
        ({"manifest": np.array("[1]")}, "JSON object"),
        ({"manifest": np.array(json.dumps({"format_version": 2}))}, "format_version"),
        ({"manifest": np.array(json.dumps({"format_version": 1, "weights_sha256": "00"}))}, "weights_sha256"),
    ],
)
def test_it_refuses_a_malformed_artifact(tmp_path: Path, change: dict[str, object], message: str) -> None:
    arrays = {k: v for k, v in (good_arrays() | change).items() if v is not None}
    with pytest.raises(ModelFormatError, match=message) as raised:
        IntegerModel.load(write(tmp_path / "m.npz", **arrays))
    assert "\n" not in str(raised.value)


def test_it_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no such model file"):
        IntegerModel.load(tmp_path / "absent.npz")


def test_it_refuses_a_file_that_is_not_npz(tmp_path: Path) -> None:
    (tmp_path / "m.npz").write_text("hello")
    with pytest.raises(ModelFormatError, match="not a readable"):
        IntegerModel.load(tmp_path / "m.npz")


def test_it_computes_scores_and_predictions_for_one_image_and_a_batch() -> None:
    image = np.array([10, 0, 5], dtype=np.uint8)
    hidden = np.maximum(np.array([10 - 0 + 1, -20 + 20 - 1]), 0)
    assert MODEL.scores(image).tolist() == (hidden @ MODEL.w2 + MODEL.b2).tolist()
    batch = np.stack([image, np.zeros(3, dtype=np.uint8)])
    assert MODEL.predict(batch).tolist() == [MODEL.predict(image), MODEL.predict(batch[1])]


def test_ties_go_to_the_first_index() -> None:
    model = IntegerModel([[1]], [0], [[1, 1, 1]], [0, 0, 0])
    assert model.predict(np.array([9], dtype=np.uint8)) == 0


def test_arithmetic_is_uint8_safe() -> None:
    # uint8 pixels must not wrap: 255 * 255 overflows uint8 but not the int64 reference.
    model = IntegerModel([[255]], [0], [[1, -1]], [0, 0])
    assert model.scores(np.array([255], dtype=np.uint8)).tolist() == [65025, -65025]


@pytest.mark.parametrize("pixels", [np.array([1, 2]), np.array([0, 0, 300]), np.array([0.5, 0, 0])])
def test_it_refuses_bad_pixels(pixels: np.ndarray) -> None:
    with pytest.raises(ImageError):
        MODEL.predict(pixels)


def test_it_refuses_weights_that_could_overflow_int64() -> None:
    with pytest.raises(ModelFormatError, match="overflow"):
        IntegerModel([[2**60]], [0], [[2**10, 0]], [0, 0])
