"""`python -m classifier`: real runs of evaluate and predict, and one clear line for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from classifier.cli import main
from classifier.integer_model import IntegerModel
from classifier.preprocess import to_png


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "classifier", *args], capture_output=True, text=True)


@pytest.fixture
def small_model(tmp_path):
    rng = np.random.default_rng(5)
    w1, w2 = rng.integers(-3, 4, (784, 8)), rng.integers(-3, 4, (8, 10))
    model = IntegerModel(w1=w1, b1=np.zeros(8, int), w2=w2, b2=np.zeros(10, int), manifest={"bits": 3})
    return model, model.save(tmp_path / "small.npz")


def test_evaluate_reports_accuracy_and_the_confusion_matrix(small_model, mnist, capsys):
    model, path = small_model
    assert main(["evaluate", "--model", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = float(np.mean(model.predict(mnist.x_test.reshape(-1, 784)) == mnist.y_test))
    assert report["integer_test_accuracy"] == pytest.approx(expected)
    assert np.array(report["confusion_matrix"]).sum() == 10_000
    assert np.trace(report["confusion_matrix"]) == round(expected * 10_000)
    assert report["nonzero_weights"] == model.nonzero_weights()


def test_predict_classifies_image_files(small_model, mnist, tmp_path, capsys):
    _, path = small_model
    image = tmp_path / "digit.png"
    image.write_bytes(to_png(mnist.x_test[0], scale=3))
    assert main(["predict", "--model", str(path), str(image), "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["digit"] == int(np.argmax(result["scores"]))
    assert len(result["scores"]) == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--model", "missing.npz"], "no model file"),
        (["evaluate", "--model", "NOTAMODEL"], "not a readable model artifact"),
        (["predict", "--model", "MODEL", "missing.png"], "No such file"),
        (["predict", "--model", "MODEL", "NOTANIMAGE"], "not an image"),
    ],
)
def test_bad_input_ends_with_one_clear_line(small_model, tmp_path, args, message):
    _, path = small_model
    (tmp_path / "notes.txt").write_text("hello")
    replacements = {
        "MODEL": str(path),
        "NOTAMODEL": str(tmp_path / "notes.txt"),
        "NOTANIMAGE": str(tmp_path / "notes.txt"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "classifier", *[replacements.get(a, a) for a in args]],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
