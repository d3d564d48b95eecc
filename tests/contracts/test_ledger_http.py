"""The ledger's HTTP server: ARC's POST /v1/tx in all three body forms, its error answers, lookups."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from ledger_helpers import ALICE, BOB, MALLORY

from contracts.fees import FeeRate
from contracts.ledger import LocalLedger
from contracts.ledger_http import LedgerService
from contracts.transactions import build_payment
from contracts.txverify import parse_transaction

RATE = FeeRate(100)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LedgerService]:
    ledger = LocalLedger(tmp_path / "ledger", fee_rate=RATE)
    with LedgerService(ledger, port=0, dev=True) as running:
        yield running


def payment(service: LedgerService, to: str = BOB.address) -> bytes:
    coins = service.ledger.utxos(ALICE.address)
    return build_payment(coins, ALICE, to, 10_000, fee_rate=RATE).raw


@pytest.fixture
def funded(service: LedgerService) -> LedgerService:
    answer = requests.post(f"{service.url}/ledger/fund", json={"address": ALICE.address, "satoshis": 50_000})
    assert answer.status_code == 200
    return service


@pytest.mark.parametrize("form", ["octet-stream", "hex", "json"])
def test_it_accepts_a_transaction_in_every_body_form(funded: LedgerService, form: str) -> None:
    raw = payment(funded)
    if form == "octet-stream":
        answer = requests.post(
            f"{funded.url}/v1/tx", data=raw, headers={"Content-Type": "application/octet-stream"}
        )
    elif form == "hex":
        answer = requests.post(f"{funded.url}/v1/tx", data=raw.hex(), headers={"Content-Type": "text/plain"})
    else:
        answer = requests.post(f"{funded.url}/v1/tx", json={"rawTx": raw.hex()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["txStatus"] == "SEEN_ON_NETWORK"
    assert funded.ledger.get_transaction(body["txid"]) == raw


def test_it_answers_a_double_spend_with_200_double_spend_attempted(funded: LedgerService) -> None:
    first, second = payment(funded, BOB.address), payment(funded, MALLORY.address)
    requests.post(f"{funded.url}/v1/tx", data=first, headers={"Content-Type": "application/octet-stream"})
    answer = requests.post(
        f"{funded.url}/v1/tx", data=second, headers={"Content-Type": "application/octet-stream"}
    )
    # ARC: HTTP 200, status 200, title OK, the conflict in txStatus (test/submit_03_double_spending_test.go)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["title"], body["txStatus"]) == (200, "OK", "DOUBLE_SPEND_ATTEMPTED")
    assert body["competingTxs"] == [parse_transaction(first).txid()]


def test_it_answers_unreadable_hex_with_400(service: LedgerService) -> None:
    answer = requests.post(f"{service.url}/v1/tx", json={"rawTx": "zz"})
    assert answer.status_code == 400
    assert answer.json()["txid"] is None


def test_it_reports_status_through_mining(funded: LedgerService) -> None:
    txid = requests.post(f"{funded.url}/v1/tx", json={"rawTx": payment(funded).hex()}).json()["txid"]
    assert requests.get(f"{funded.url}/v1/tx/{txid}").json()["txStatus"] == "SEEN_ON_NETWORK"
    assert requests.post(f"{funded.url}/ledger/mine", json={"blocks": 2}).json() == {"heights": [1, 2]}
    mined = requests.get(f"{funded.url}/v1/tx/{txid}").json()
    assert (mined["txStatus"], mined["blockHeight"]) == ("MINED", 1)
    woc = requests.get(f"{funded.url}/v1/bsv/regtest/tx/hash/{txid}").json()
    assert woc["confirmations"] == 2
    assert requests.get(f"{funded.url}/v1/tx/{'00' * 32}").status_code == 404


def test_it_serves_policy_and_lookups(funded: LedgerService) -> None:
    policy = requests.get(f"{funded.url}/v1/policy").json()["policy"]
    assert policy["miningFee"] == {"satoshis": 100, "bytes": 1000}
    unspent = requests.get(f"{funded.url}/v1/bsv/regtest/address/{ALICE.address}/unspent").json()
    assert [row["value"] for row in unspent] == [50_000] and unspent[0]["height"] == 0
    assert requests.get(f"{funded.url}/v1/bsv/regtest/chain/info").json()["blocks"] == 0
    bad = requests.get(f"{funded.url}/v1/bsv/regtest/address/1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3/unspent")
    assert bad.status_code == 400 and "checksum" in bad.json()["extraInfo"]
    assert requests.get(f"{funded.url}/nowhere").status_code == 404


def test_it_mines_on_a_timer(tmp_path: Path) -> None:
    ledger = LocalLedger(tmp_path / "timed", fee_rate=RATE)
    with LedgerService(ledger, port=0, block_interval=0.05, dev=True):
        deadline = time.monotonic() + 5
        while ledger.height() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert ledger.height() >= 2
