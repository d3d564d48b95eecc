"""The demo flow and the `ledger`/`demo` command line, including the ledger served as its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from ledger_helpers import ALICE, reverify_ledger_with_bitcoinx, sample_images, small_model

from contracts.cli import main
from contracts.demo import run_demo
from contracts.ledger import LocalLedger


def test_the_demo_pays_matching_images_refuses_the_others_and_refunds(tmp_path: Path) -> None:
    model = small_model()
    digit, accepted, rejected = sample_images(model)
    images = np.vstack([rejected[:3], accepted[:5]])
    labels = np.array([int(model.predict(image)) for image in images])
    ledger = LocalLedger(tmp_path / "demo")
    lines: list[str] = []
    report = run_demo(ledger, model, images, labels, digit=digit, slots=4, say=lines.append).to_json()
    assert (report["paid"], report["refused"]) == (3, 2)
    refused = [step for step in report["steps"] if step["step"] == "claim" and not step["accepted"]]
    assert all(step["ledger"].startswith("461") for step in refused)
    assert [step["paid"] for step in report["steps"] if step.get("accepted")] == [1_000] * 3
    assert report["steps"][-1]["contributor_balance"] == 3_000
    assert any(line.startswith("refund") for line in lines)
    assert ledger.mempool() == []
    assert reverify_ledger_with_bitcoinx(ledger) == 5  # deploy, 3 claims, refund


def test_the_ledger_commands_fund_mine_and_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "cli")
    assert main(["ledger", "fund", ALICE.address, "5000", "--data", data, "--json"]) == 0
    txid = json.loads(capsys.readouterr().out)["txid"]
    assert main(["ledger", "mine", "3", "--data", data]) == 0
    assert "height 3" in capsys.readouterr().out
    assert main(["ledger", "dump", "--data", data, "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["txid"], entry["block_height"], entry["kind"]) == (txid, 1, "faucet")
    assert main(["ledger", "status", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["utxo_satoshis"] == 5000


def test_a_bad_address_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "fund", "not-an-address", "5", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid address") and err.count("\n") == 1


def test_the_ledger_serves_as_its_own_process(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "contracts",
        "ledger",
        "serve",
        "--data",
        str(tmp_path),
        "--port",
        "0",
        "--json",
        "--dev",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        header = "".join(server.stdout.readline() for _ in range(4))
        url = json.loads(header)["url"]
        answer = requests.post(
            f"{url}/ledger/fund", json={"address": ALICE.address, "satoshis": 777}, timeout=5
        )
        assert answer.status_code == 200
        assert requests.get(f"{url}/ledger/status", timeout=5).json()["utxo_satoshis"] == 777
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0
    assert LocalLedger(tmp_path).summary()["utxo_satoshis"] == 777, "what the server accepted is on disk"
