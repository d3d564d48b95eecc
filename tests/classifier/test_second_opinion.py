"""The second opinion as a package: its artifact refuses what it cannot read, the service's entry point is
where the pipeline calls it, and its commands run through `python -m classifier`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier import second_opinion
from classifier.cli import main
from classifier.errors import ModelFormatError
from classifier.second_opinion import DEFAULT_PATH, FORMAT_VERSION, SecondOpinion


@pytest.fixture(scope="module")
def second() -> SecondOpinion:
    return SecondOpinion.load(DEFAULT_PATH)


def rewrite(path: Path, **changes: object) -> None:
    """Rewrite the npz at `path` with arrays (or the manifest, as a dict) replaced or, with None, removed."""
    data = dict(np.load(path, allow_pickle=False))
    for name, value in changes.items():
        if value is None:
            data.pop(name)
        elif isinstance(value, dict):
            data[name] = np.array(json.dumps(value))
        else:
            data[name] = np.asarray(value)
    np.savez(path, **data)


def test_a_saved_model_loads_back_with_its_manifest_beside_it(tmp_path: Path, second: SecondOpinion) -> None:
    path = second.save(tmp_path / "copy.npz")
    loaded = SecondOpinion.load(path)
    assert loaded.weights_sha256() == second.weights_sha256()
    assert json.loads(path.with_suffix(".json").read_text()) == loaded.manifest
    assert loaded.manifest["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dense2_b": None}, "missing dense2_b"),
        ({"manifest": {"format_version": FORMAT_VERSION + 1}}, "format_version 2"),
        ({"manifest": {"weights_sha256": "0" * 64}}, "format_version None"),
        ({"conv1_w": np.zeros((3, 3, 2, 16), np.float32)}, "conv kernels"),
    ],
    ids=["missing array", "newer format", "no format version", "wrong shape"],
)
def test_it_refuses_a_malformed_artifact(
    tmp_path: Path, second: SecondOpinion, change: dict, message: str
) -> None:
    path = second.save(tmp_path / "broken.npz")
    rewrite(path, **change)
    with pytest.raises(ModelFormatError, match=message):
        SecondOpinion.load(path)


def test_it_refuses_a_file_that_is_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "text.npz"
    path.write_text("not a model")
    with pytest.raises(ModelFormatError, match="not a readable npz"):
        SecondOpinion.load(path)
    with pytest.raises(ModelFormatError, match="no second-opinion model"):
        SecondOpinion.load(tmp_path / "absent.npz")


def test_the_service_entry_point_is_the_package_attribute(second: SecondOpinion) -> None:
    """The pipeline calls `second_opinion.agrees(...)` on the package; it answers as the model does."""
    blank = np.zeros((28, 28), np.uint8)
    digit = int(second.predict(blank)[0])
    assert second_opinion.agrees(blank, digit, min_confidence=0.0)
    assert not second_opinion.agrees(blank, (digit + 1) % 10, min_confidence=0.0)


def test_evaluate_runs_from_the_classifier_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["second-opinion", "evaluate", "--attacks", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_only"]["attacks"] == result["through_preprocessing"]["attacks"] == 2
    assert result["genuine"]["test_examples"] == 10_000
    assert 0.0 <= result["genuine"]["false_rejection_rate"] <= 1.0


def test_a_bad_model_path_ends_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["second-opinion", "evaluate", "--model", str(tmp_path / "absent.npz")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no second-opinion model")
