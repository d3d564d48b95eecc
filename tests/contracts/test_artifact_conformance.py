"""One integer-model artifact, two independent readers: `classifier.integer_model` (which trains and writes
models) and `contracts.model` (which compiles them). Neither package imports the other, so this test holds
them to the same format (docs/model-artifact.md): each loads what the other saves, both write the same
manifest and JSON sidecar, and both refuse the same malformed files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier.errors import ModelFormatError as ClassifierFormatError
from classifier.integer_model import IntegerModel as ClassifierModel
from contracts.errors import ModelFormatError as ContractsFormatError
from contracts.model import IntegerModel as ContractsModel

RNG = np.random.default_rng(14)
W1, B1 = RNG.integers(-7, 8, (784, 4)), RNG.integers(-50, 50, 4)
W2, B2 = RNG.integers(-7, 8, (4, 10)), RNG.integers(-50, 50, 10)
MANIFEST = {"bits": 4, "training": {"seed": 14}}
SIDES: dict[str, tuple[Any, type[Exception]]] = {
    "classifier": (ClassifierModel, ClassifierFormatError),
    "contracts": (ContractsModel, ContractsFormatError),
}


def build(side: str) -> Any:
    model_type, _ = SIDES[side]
    return model_type(W1, B1, W2, B2, manifest=dict(MANIFEST))


@pytest.mark.parametrize(("writer", "reader"), [("classifier", "contracts"), ("contracts", "classifier")])
def test_each_side_loads_what_the_other_saves(tmp_path: Path, writer: str, reader: str) -> None:
    path = build(writer).save(tmp_path / "model.npz")
    loaded = SIDES[reader][0].load(path)
    for name in ("w1", "b1", "w2", "b2"):
        assert np.array_equal(getattr(loaded, name), getattr(build(reader), name))
    assert loaded.manifest == json.loads(path.with_suffix(".json").read_text())
    images = RNG.integers(0, 256, (16, 784), dtype=np.uint8)
    assert np.array_equal(loaded.predict(images), build(writer).predict(images))


def test_both_sides_write_the_same_manifest(tmp_path: Path) -> None:
    manifests = {}
    for side in SIDES:
        path = build(side).save(tmp_path / f"{side}.npz")
        with np.load(path, allow_pickle=False) as archive:
            inside = json.loads(str(archive["manifest"][()]))
        assert inside == json.loads(path.with_suffix(".json").read_text()), "the sidecar is the manifest"
        manifests[side] = inside
    assert manifests["classifier"] == manifests["contracts"]
    assert manifests["contracts"]["format_version"] == 1
    assert manifests["contracts"]["architecture"] == {
        "inputs": 784, "hidden": 4, "classes": 10, "activation": "relu"
    }  # fmt: skip
    assert manifests["contracts"]["bits"] == 4


def valid() -> dict[str, Any]:
    manifest = {"format_version": 1, "weights_sha256": build("contracts").weights_sha256()}
    return {"w1": W1, "b1": B1, "w2": W2, "b2": B2, "manifest": json.dumps(manifest)}


def manifest(**fields: object) -> str:
    return json.dumps({**json.loads(valid()["manifest"]), **fields})


MALFORMED: dict[str, Callable[[Path], None]] = {
    "no file": lambda path: None,
    "not an npz": lambda path: path.write_text("hello"),
    "a truncated npz": lambda path: path.write_bytes(b"PK\x03\x04" + b"\0" * 40),
}
CHANGED: dict[str, dict[str, Any]] = {
    "no manifest": {"manifest": None},
    "no w2": {"w2": None},
    "float weights": {"w1": W1.astype(np.float64)},
    "int32 biases": {"b2": B2.astype(np.int32)},
    "manifest not JSON": {"manifest": "{not json"},
    "manifest not an object": {"manifest": "[1, 2]"},
    "no format_version": {"manifest": json.dumps({"weights_sha256": "0" * 64})},
    "a newer format_version": {"manifest": manifest(format_version=2)},
    "no weights_sha256": {"manifest": json.dumps({"format_version": 1})},
    "weights changed after hashing": {"w1": W1 + 1},
    "inconsistent shapes": {"b1": np.zeros(5, np.int64)},
    "w1 not 2-D": {"w1": W1.reshape(-1)},
    "weights that overflow int64": {"w2": np.full((4, 10), 2**60, np.int64)},
}


def write_changed(path: Path, change: dict[str, Any]) -> None:
    arrays = {name: value for name, value in (valid() | change).items() if value is not None}
    arrays = {name: np.array(value) if name == "manifest" else value for name, value in arrays.items()}
    np.savez(path, **arrays)


CASES: dict[str, Callable[[Path], None]] = {
    **MALFORMED,
    **{name: (lambda path, change=change: write_changed(path, change)) for name, change in CHANGED.items()},
}


def test_the_valid_file_of_the_table_loads_on_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    write_changed(path, {})
    for model_type, _ in SIDES.values():
        assert model_type.load(path).shape == (784, 4, 10)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("side", SIDES.keys())
def test_both_sides_refuse_the_same_malformed_files(
    tmp_path: Path, side: str, case: Callable[[Path], None]
) -> None:
    path = tmp_path / "model.npz"
    case(path)
    model_type, error = SIDES[side]
    with pytest.raises(error) as raised:
        model_type.load(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
