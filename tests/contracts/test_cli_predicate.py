"""`python -m contracts compile | unlock | verify`: outputs, JSON, and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts.cli import main
from contracts.model import IntegerModel
from contracts.script import parse

MODEL = IntegerModel(
    [[3, 0, -2], [0, 1, 1], [-4, 2, 0], [1, 1, 1]],
    [1, 0, -3],
    [[2, -1, 0], [0, 3, 1], [-1, 0, 2]],
    [5, 0, -5],
)
IMAGES = np.array([[10, 200, 3, 0], [0, 0, 255, 17], [90, 20, 180, 255]], dtype=np.uint8)


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    MODEL.save(tmp_path / "model.npz")
    return tmp_path / "model.npz"


@pytest.fixture
def pixels_path(tmp_path: Path) -> Path:
    np.save(tmp_path / "images.npy", IMAGES)
    return tmp_path / "images.npy"


def test_compile_writes_hex_and_asm(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "compile",
                "--model",
                str(model_path),
                "--digit",
                "1",
                "--out",
                str(tmp_path / "s.hex"),
                "--asm",
                str(tmp_path / "s.asm"),
            ]
        )
        == 0
    )
    script = bytes.fromhex((tmp_path / "s.hex").read_text().strip())
    assert parse(script)
    assert "# layer 1, hidden unit" in (tmp_path / "s.asm").read_text()
    out = capsys.readouterr().out
    assert f"{len(script):,} bytes" in out and "sha256" in out


def test_compile_prints_json(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "--model", str(model_path), "--digit", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["digit"] == 2 and summary["bytes"] > 0 and len(summary["sha256"]) == 64
    assert {"opcodes", "largest_constant", "inputs"} <= summary.keys()


def test_unlock_writes_one_script_per_image(model_path: Path, pixels_path: Path, tmp_path: Path) -> None:
    assert (
        main(
            ["unlock", "--model", str(model_path), "--pixels", str(pixels_path), "--out", str(tmp_path / "u")]
        )
        == 0
    )
    lines = (tmp_path / "u").read_text().splitlines()
    assert len(lines) == len(IMAGES)
    assert all(i.pushed_number() is not None for i in parse(bytes.fromhex(lines[0])))


def test_verify_reports_each_image(
    model_path: Path, pixels_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digit = int(MODEL.predict(IMAGES[0]))
    assert (
        main(
            [
                "verify",
                "--model",
                str(model_path),
                "--digit",
                str(digit),
                "--pixels",
                str(pixels_path),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["agree_with_reference"] == len(IMAGES)
    assert [r["accepted"] for r in report["results"]] == [int(p) == digit for p in MODEL.predict(IMAGES)]
    assert all(r["reason"] for r in report["results"] if not r["accepted"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["compile", "--model", "{missing}", "--digit", "1"], "no such model file"),
        (["compile", "--model", "{model}", "--digit", "10"], "digit must be an integer in 0..2"),
        (["compile", "--model", "{model}", "--digit", "-1"], "digit must be"),
        (["unlock", "--model", "{model}", "--pixels", "{wide}"], "shape"),
        (["unlock", "--model", "{model}", "--pixels", "{float}"], "integers"),
        (["verify", "--model", "{model}", "--digit", "0", "--pixels", "{big}"], "0..255"),
        (["verify", "--model", "{model}", "--digit", "0", "--pixels", "{missing}"], "no such file"),
    ],
    ids=["no model", "digit 10", "digit -1", "wrong shape", "floats", "out of range", "no pixels"],
)
def test_bad_input_exits_non_zero_with_one_line(
    arguments: list[str], message: str, model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "wide.npy", np.zeros((2, 5), dtype=np.uint8))
    np.save(tmp_path / "float.npy", np.zeros(4, dtype=np.float32))
    np.save(tmp_path / "big.npy", np.array([0, 300, 0, 0]))
    paths = {
        "model": model_path,
        "missing": tmp_path / "absent",
        **{n: tmp_path / f"{n}.npy" for n in ("wide", "float", "big")},
    }
    assert main([a.format(**paths) for a in arguments]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
