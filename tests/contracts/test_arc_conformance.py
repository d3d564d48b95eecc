"""The local ledger answers as ARC does, and both ARC clients (ours and bsv-sdk's) read it correctly.

Expected bodies and codes come from ARC's spec and source (bitcoin-sv/arc): `pkg/api/arc.yaml` (schemas of
TransactionResponse, TransactionStatus, ErrorFields, PolicyResponse, Health), `pkg/api/status.go` (codes,
titles, details, the `type` URL), `internal/api/handler/default.go` (/v1/txs lists successes first),
`internal/api/handler/parsers.go` (body formats), `test/submit_03_double_spending_test.go` (a double spend
is HTTP 200 DOUBLE_SPEND_ATTEMPTED naming the first-seen transaction, which flips too; after a block the
winner is MINED "previously double spend attempted" and the loser REJECTED "double spend attempted"; a spend
of a mined output is SEEN_IN_ORPHAN_MEMPOOL) and `internal/callbacker/sender.go` (callbacks carry the
token as a bearer credential).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from bsv.broadcasters.arc import ARC, ARCConfig
from bsv.broadcasters.broadcaster import BroadcastFailure, BroadcastResponse
from bsv.http_client import SyncHttpClient
from bsv.merkle_path import MerklePath
from ledger_helpers import ALICE, BOB, MALLORY

from contracts.arc import ArcBackend
from contracts.chain import TxState
from contracts.errors import DoubleSpend, TransactionRejected
from contracts.fees import FeeRate
from contracts.formats import read_submission, to_extended_format
from contracts.ledger import LocalLedger
from contracts.ledger_http import LedgerService
from contracts.transactions import build_payment
from contracts.txverify import parse_transaction

RATE = FeeRate(100)
ERROR_KEYS = {"detail", "extraInfo", "instance", "status", "title", "txid", "type"}
RESPONSE_KEYS = {
    "blockHash", "blockHeight", "competingTxs", "extraInfo", "merklePath", "status", "timestamp", "title",
    "txStatus", "txid",
}  # fmt: skip


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LedgerService]:
    with LedgerService(LocalLedger(tmp_path / "ledger", fee_rate=RATE), port=0, dev=True) as running:
        running.ledger.fund(ALICE.address, 100_000)
        yield running


def pay(ledger: LocalLedger, to: str = BOB.address, amount: int = 10_000, fee: FeeRate = RATE) -> bytes:
    return build_payment(ledger.utxos(ALICE.address), ALICE, to, amount, fee_rate=fee).raw


def parents_of(ledger: LocalLedger, raw: bytes) -> dict[str, bytes]:
    tx = parse_transaction(raw)
    return {i.source_txid: ledger.get_transaction(i.source_txid) for i in tx.inputs}


def post(url: str, raw: bytes, **headers: str) -> requests.Response:
    return requests.post(f"{url}/v1/tx", json={"rawTx": raw.hex()}, headers=headers, timeout=10)


# -- bodies and codes ----------------------------------------------------------------------------------------


def test_it_answers_a_new_transaction_with_arcs_transaction_response(served: LedgerService) -> None:
    answer = post(served.url, pay(served.ledger))
    body = answer.json()
    assert answer.status_code == 200 and set(body) == RESPONSE_KEYS
    assert (body["status"], body["title"], body["txStatus"], body["competingTxs"]) == (
        200,
        "OK",
        "SEEN_ON_NETWORK",
        None,
    )
    status = requests.get(f"{served.url}/v1/tx/{body['txid']}", timeout=5).json()
    assert set(status) == RESPONSE_KEYS - {"status", "title"}, "GET has no status/title"


@pytest.mark.parametrize(
    ("case", "code", "title"),
    [
        ("low fee", 465, "Fee too low"),
        ("dust", 464, "Invalid outputs"),
        ("unknown parent", 460, "Not extended format"),
        ("redirected output", 461, "Malformed transaction"),
    ],
)
def test_it_refuses_with_arcs_error_body_and_stores_nothing(
    served: LedgerService, case: str, code: int, title: str
) -> None:
    ledger = served.ledger
    if case == "low fee":
        raw = pay(ledger, fee=FeeRate(5))
    elif case == "dust":
        tx = parse_transaction(pay(ledger))
        tx.outputs[0].satoshis = 0  # signature now fails too; ARC checks outputs (464) before scripts
        raw = tx.serialize()
    elif case == "unknown parent":
        tx = parse_transaction(pay(ledger))
        tx.inputs[0].source_txid = "ab" * 32
        raw = tx.serialize()
    else:
        tx = parse_transaction(pay(ledger))
        tx.outputs[0].locking_script = (
            parse_transaction(pay(ledger, MALLORY.address)).outputs[0].locking_script
        )
        raw = tx.serialize()
    answer = post(served.url, raw)
    body = answer.json()
    assert answer.status_code == code and set(body) == ERROR_KEYS
    assert (body["status"], body["title"], body["instance"]) == (code, title, None)
    assert body["type"] == f"https://bitcoin-sv.github.io/arc/#/errors?id=_{code}"
    assert body["extraInfo"].startswith(f"arc error {code}: ")
    assert body["txid"] == parse_transaction(raw).txid()
    assert requests.get(f"{served.url}/v1/tx/{body['txid']}", timeout=5).status_code == 404, "never stored"


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/json", b'{"transaction": "00"}'),
        ("application/json", b"not json"),
        ("text/plain", b"zz"),
        ("application/beef", b"\x01\x00\xbe\xef"),
        ("application/octet-stream", b""),
    ],
)
def test_it_answers_unreadable_requests_with_400(
    served: LedgerService, content_type: str, data: bytes
) -> None:
    answer = requests.post(
        f"{served.url}/v1/tx", data=data, headers={"Content-Type": content_type}, timeout=5
    )
    assert answer.status_code == 400 and set(answer.json()) == ERROR_KEYS


@pytest.mark.parametrize(
    ("header", "value"),
    [("X-MaxTimeout", "31"), ("X-MaxTimeout", "soon"), ("X-WaitFor", "PAID"), ("X-CallbackUrl", "not a url")],
)
def test_it_checks_arcs_headers(served: LedgerService, header: str, value: str) -> None:
    raw = pay(served.ledger)
    answer = post(served.url, raw, **{header: value})
    assert answer.status_code == 400
    assert served.ledger.status(parse_transaction(raw).txid()).state is TxState.UNKNOWN, "nothing stored"


def test_it_skips_the_fee_check_when_asked(served: LedgerService) -> None:
    cheap = pay(served.ledger, fee=FeeRate(5))
    assert post(served.url, cheap).status_code == 465
    assert post(served.url, cheap, **{"X-SkipFeeValidation": "true"}).json()["txStatus"] == "SEEN_ON_NETWORK"


def test_it_waits_for_mined_when_asked(tmp_path: Path) -> None:
    ledger = LocalLedger(tmp_path / "timed", fee_rate=RATE)
    ledger.fund(ALICE.address, 100_000)
    with LedgerService(ledger, port=0, block_interval=0.2) as running:
        body = post(running.url, pay(ledger), **{"X-WaitFor": "MINED", "X-MaxTimeout": "5"}).json()
    assert body["txStatus"] == "MINED" and body["blockHeight"] >= 1


def test_it_answers_a_repeat_with_the_current_status(served: LedgerService) -> None:
    raw = pay(served.ledger)
    post(served.url, raw)
    served.ledger.mine()
    again = post(served.url, raw)
    assert (again.status_code, again.json()["txStatus"]) == (200, "MINED")
    proof = MerklePath.from_hex(again.json()["merklePath"])  # a BUMP, as ARC sends for a mined one
    assert proof.block_height == 1 and proof.compute_root(again.json()["txid"])


def test_it_takes_extended_format_and_beef(served: LedgerService) -> None:
    ledger = served.ledger
    raw = pay(ledger)
    extended = to_extended_format(raw, parents_of(ledger, raw))
    assert read_submission(extended).raw == raw and read_submission(extended).format == "ef"
    assert post_hex(served.url, extended)["txid"] == parse_transaction(raw).txid()
    # BEEF: a child of an unconfirmed payment, sent with that parent, which the ledger has not seen; the
    # parent spends the mined faucet coin, proven by a merkle path as BEEF carries it.
    ledger.mine()
    parent = parse_transaction(pay(ledger, BOB.address, 20_000))
    faucet = parse_transaction(ledger.get_transaction(parent.inputs[0].source_txid))
    faucet.merkle_path = MerklePath(
        1, [[{"offset": 0, "hash_str": faucet.txid(), "txid": True}, {"offset": 1, "hash_str": "cd" * 32}]]
    )
    parent.inputs[0].source_transaction = faucet
    child = build_payment([_utxo_of(parent, 1)], ALICE, MALLORY.address, 5_000, fee_rate=RATE)
    child_tx = parse_transaction(child.raw)
    child_tx.inputs[0].source_transaction = parent
    answer = post_hex(served.url, child_tx.to_beef())
    assert answer["txStatus"] == "SEEN_ON_NETWORK" and answer["txid"] == child.txid
    assert ledger.status(parent.txid()).state is TxState.MEMPOOL, "the ancestor was accepted first"


def test_it_refuses_extended_format_that_lies_about_the_spent_output(served: LedgerService) -> None:
    raw = pay(served.ledger)
    parents = parents_of(served.ledger, raw)
    [(txid, parent)] = parents.items()
    forged = parse_transaction(parent)
    forged.outputs[0].satoshis += 1_000_000
    answer = post_hex(served.url, to_extended_format(raw, {txid: forged.serialize()}))
    assert answer["status"] == 463


def post_hex(url: str, data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = requests.post(f"{url}/v1/tx", json={"rawTx": data.hex()}, timeout=10).json()
    return result


def _utxo_of(tx: Any, vout: int) -> Any:
    from contracts.chain import Utxo

    out = tx.outputs[vout]
    return Utxo(tx.txid(), vout, out.satoshis, out.locking_script.serialize())


def test_it_serves_txs_health_and_policy_as_the_spec(served: LedgerService) -> None:
    ledger = served.ledger
    good = pay(ledger)
    bad = pay(ledger, fee=FeeRate(1))  # spends the same coin, but fails the fee check first
    answer = requests.post(
        f"{served.url}/v1/txs", json=[{"rawTx": bad.hex()}, {"rawTx": good.hex()}], timeout=10
    )
    bodies = answer.json()
    assert answer.status_code == 200 and isinstance(bodies, list)
    assert [body["status"] for body in bodies] == [200, 465], "successes first, then failures"
    health = requests.get(f"{served.url}/v1/health", timeout=5).json()
    assert health == {"healthy": True, "reason": None, "version": health["version"]}
    policy = requests.get(f"{served.url}/v1/policy", timeout=5).json()
    assert set(policy) == {"policy", "timestamp"}
    for key in ("maxscriptsizepolicy", "maxtxsigopscountspolicy", "maxtxsizepolicy", "miningFee"):
        assert key in policy["policy"]
    assert policy["policy"]["miningFee"] == {"satoshis": 100, "bytes": 1000}


def test_the_faucet_and_mining_need_dev_mode(tmp_path: Path) -> None:
    with LedgerService(LocalLedger(tmp_path / "prod"), port=0) as running:
        fund = requests.post(
            f"{running.url}/ledger/fund", json={"address": ALICE.address, "satoshis": 10**15}, timeout=5
        )
        mine = requests.post(f"{running.url}/ledger/mine", json={"blocks": 1}, timeout=5)
        chaos = requests.post(f"{running.url}/ledger/chaos", json={"queue": ["busy"]}, timeout=5)
        assert (fund.status_code, mine.status_code, chaos.status_code) == (404, 404, 404)
        assert running.ledger.utxos(ALICE.address) == [] and running.ledger.height() == 0


# -- the clients ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sdk_format", ["json", "raw"])
def test_bsv_sdks_own_arc_broadcaster_reads_every_answer(served: LedgerService, sdk_format: str) -> None:
    """bsv-sdk's ARC (EF in JSON by default; octet-stream with format="raw") against `ledger serve`."""
    ledger = served.ledger
    arc = ARC(served.url, ARCConfig(sync_http_client=SyncHttpClient(10), format=sdk_format))
    coins = ledger.utxos(ALICE.address)
    first = parse_transaction(build_payment(coins, ALICE, BOB.address, 10_000, fee_rate=RATE).raw)
    for tx_input in first.inputs:
        tx_input.source_transaction = parse_transaction(ledger.get_transaction(tx_input.source_txid))
    accepted = arc.sync_broadcast(first)
    assert isinstance(accepted, BroadcastResponse) and accepted.txid == first.txid()
    assert "SEEN_ON_NETWORK" in accepted.message
    again = arc.sync_broadcast(first)
    assert isinstance(again, BroadcastResponse) and again.txid == first.txid(), "already known is success"
    double = parse_transaction(build_payment(coins, ALICE, MALLORY.address, 10_000, fee_rate=RATE).raw)
    for tx_input in double.inputs:
        tx_input.source_transaction = first.inputs[0].source_transaction
    conflict = arc.sync_broadcast(double)
    # The SDK calls a 200 a success; the double spend is in the message and the ARC JSON it keeps.
    assert isinstance(conflict, BroadcastResponse)
    assert conflict.message.startswith("DOUBLE_SPEND_ATTEMPTED")
    assert conflict.extra["arc_json"]["data"]["competingTxs"] == [first.txid()]
    broken = parse_transaction(double.serialize())
    broken.outputs[0].satoshis = 0
    for tx_input in broken.inputs:
        tx_input.source_transaction = first.inputs[0].source_transaction
    refused = arc.sync_broadcast(broken)
    assert isinstance(refused, BroadcastFailure) and refused.code == "464"


def test_our_client_sends_extended_format_and_arcs_headers(served: LedgerService) -> None:
    seen: list[tuple[dict[str, str], dict[str, Any]]] = []

    class Spy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((dict(self.headers), body))
            answer = requests.post(
                f"{served.url}/v1/tx", json=body, headers={"X-SkipFeeValidation": "false"}, timeout=10
            )
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *args: object) -> None:
            pass

    spy = ThreadingHTTPServer(("127.0.0.1", 0), Spy)
    threading.Thread(target=spy.serve_forever, args=(0.05,), daemon=True).start()
    try:
        arc = ArcBackend(
            f"http://127.0.0.1:{spy.server_address[1]}",
            f"{served.url}/v1/bsv/regtest",
            api_key="k3y",
            timeout=4,
            callback_url="https://bounty.example/arc/callback",
            callback_token="t0ken",
        )
        raw = pay(served.ledger)
        assert arc.broadcast(raw) == parse_transaction(raw).txid()
    finally:
        spy.shutdown()
        spy.server_close()
    [(headers, body)] = seen
    assert read_submission(bytes.fromhex(body["rawTx"])).format == "ef"
    assert headers["Authorization"] == "Bearer k3y"
    assert (headers["X-WaitFor"], headers["X-MaxTimeout"]) == ("SEEN_ON_NETWORK", "3")
    assert (headers["X-CallbackUrl"], headers["X-CallbackToken"]) == (
        "https://bounty.example/arc/callback",
        "t0ken",
    )


def test_our_client_reads_every_answer_from_the_ledger(served: LedgerService) -> None:
    ledger = served.ledger
    arc = ArcBackend(served.url, f"{served.url}/v1/bsv/regtest", timeout=4, sleep=lambda _: None)
    coins = ledger.utxos(ALICE.address)
    first = build_payment(coins, ALICE, BOB.address, 10_000, fee_rate=RATE)
    assert arc.broadcast(first.raw) == first.txid
    assert arc.broadcast(first.raw) == first.txid
    double = build_payment(coins, ALICE, MALLORY.address, 10_000, fee_rate=RATE)
    with pytest.raises(DoubleSpend) as caught:
        arc.broadcast(double.raw)
    assert caught.value.competing_txids == (first.txid,)
    fresh = build_payment(ledger.utxos(BOB.address), BOB, ALICE.address, 5_000, fee_rate=RATE)
    results = arc.broadcast_many([fresh.raw, double.raw, pay(ledger, fee=FeeRate(1))])
    assert results[0] == fresh.txid
    # ARC flips the first-seen transaction to DOUBLE_SPEND_ATTEMPTED too: both now name each other.
    assert isinstance(results[1], DoubleSpend) and results[1].competing_txids == (first.txid,)
    assert arc.status(first.txid).competing_txids == (double.txid,)
    assert isinstance(results[2], TransactionRejected) and results[2].code == "465"
    assert arc.spender(coins[0].txid, coins[0].vout) == first.txid
    assert arc.spender(first.txid, 0) == fresh.txid
    assert arc.spender(fresh.txid, 0) is None


def test_a_callback_reaches_us_with_the_token(served: LedgerService) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    arrived = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("Authorization"), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if len(received) >= 2:
                arrived.set()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True).start()
    try:
        served.ledger.chaos.configure(callback_twice=True)
        raw = pay(served.ledger)
        post(
            served.url,
            raw,
            **{"X-CallbackUrl": f"http://127.0.0.1:{receiver.server_address[1]}/cb", "X-CallbackToken": "s3"},
        )
        served.ledger.mine()
        assert arrived.wait(10)
    finally:
        receiver.shutdown()
        receiver.server_close()
    # Without X-FullStatusUpdates ARC calls back for final states only: MINED here, delivered twice.
    assert [(auth, body["txStatus"]) for auth, body in received] == [("Bearer s3", "MINED")] * 2
