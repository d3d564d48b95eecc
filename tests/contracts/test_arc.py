"""ArcBackend: end to end against the ledger's HTTP server, its retry/permanence rules, and the response
formats of the real services (fixtures served from a local HTTP server)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ledger_helpers import ALICE, BOB, MALLORY

from contracts.arc import ArcBackend
from contracts.chain import ChainBackend, TxState
from contracts.errors import ChainUnavailable, DoubleSpend, TransactionNotFound, TransactionRejected
from contracts.fees import FeeRate
from contracts.ledger import LocalLedger
from contracts.ledger_http import LedgerService
from contracts.transactions import build_payment

FIXTURES = Path(__file__).parent / "fixtures"
RATE = FeeRate(100)
GENESIS_TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LedgerService]:
    with LedgerService(LocalLedger(tmp_path / "ledger", fee_rate=RATE), port=0) as running:
        running.ledger.fund(ALICE.address, 100_000)
        yield running


def backend_for(url: str, sleeps: Sleeps | None = None) -> ArcBackend:
    return ArcBackend(
        url,
        f"{url}/v1/bsv/regtest",
        timeout=2,
        retries=3,
        backoff=0.5,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def test_it_broadcasts_and_follows_a_transaction_on_the_ledger(service: LedgerService) -> None:
    arc = backend_for(service.url)
    assert isinstance(arc, ChainBackend)
    coins = arc.utxos(ALICE.address)
    assert [(c.satoshis, c.height) for c in coins] == [(100_000, None)]
    built = build_payment(coins, ALICE, BOB.address, 10_000, fee_rate=RATE)
    assert arc.broadcast(built.raw) == built.txid
    assert arc.broadcast(built.raw) == built.txid, "a rebroadcast is accepted, not an error"
    assert arc.status(built.txid).state is TxState.MEMPOOL
    service.ledger.mine(3)
    status = arc.status(built.txid)
    assert (status.state, status.block_height, status.confirmations) == (TxState.MINED, 1, 3)
    assert arc.height() == 3
    assert arc.get_transaction(built.txid) == built.raw
    assert [c.satoshis for c in arc.utxos(BOB.address)] == [10_000]
    assert arc.status("ef" * 32).state is TxState.UNKNOWN
    with pytest.raises(TransactionNotFound):
        arc.get_transaction("ef" * 32)
    assert arc.policy()["policy"]["miningFee"]["satoshis"] == 100


def test_it_reports_a_double_spend_as_arc_does_without_retrying(service: LedgerService) -> None:
    """ARC answers a conflicting spend with HTTP 200 DOUBLE_SPEND_ATTEMPTED naming the first-seen
    transaction, flips that one too, and after a block reports the loser REJECTED
    (bitcoin-sv/arc test/submit_03_double_spending_test.go)."""
    sleeps = Sleeps()
    arc = backend_for(service.url, sleeps)
    coins = arc.utxos(ALICE.address)
    first = build_payment(coins, ALICE, BOB.address, 10_000, fee_rate=RATE)
    arc.broadcast(first.raw)
    double = build_payment(coins, ALICE, MALLORY.address, 10_000, fee_rate=RATE)
    with pytest.raises(DoubleSpend) as caught:
        arc.broadcast(double.raw)
    assert caught.value.permanent and caught.value.txid == double.txid
    assert (caught.value.code, caught.value.competing_txids) == ("DOUBLE_SPEND_ATTEMPTED", (first.txid,))
    assert sleeps == []
    assert arc.status(double.txid).state is TxState.DOUBLE_SPEND
    flipped = arc.status(first.txid)
    assert (flipped.state, flipped.competing_txids) == (TxState.DOUBLE_SPEND, (double.txid,))
    assert arc.spender(coins[0].txid, coins[0].vout) == first.txid
    service.ledger.mine()
    assert arc.status(first.txid).state is TxState.MINED
    assert arc.status(double.txid).state is TxState.REJECTED
    late = build_payment(coins, ALICE, MALLORY.address, 9_000, fee_rate=RATE)
    with pytest.raises(DoubleSpend) as orphan:
        arc.broadcast(late.raw)
    assert (orphan.value.code, orphan.value.competing_txids) == ("SEEN_IN_ORPHAN_MEMPOOL", ())


def test_it_reports_a_low_fee_as_arc_465(service: LedgerService) -> None:
    arc = backend_for(service.url)
    cheap = build_payment(arc.utxos(ALICE.address), ALICE, BOB.address, 10_000, fee_rate=FeeRate(5))
    with pytest.raises(TransactionRejected) as caught:
        arc.broadcast(cheap.raw)
    assert caught.value.code == "465"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_it_retries_with_backoff_then_reports_unreachable(service: LedgerService) -> None:
    raw = build_payment(service.ledger.utxos(ALICE.address), ALICE, BOB.address, 1_000, fee_rate=RATE).raw
    sleeps = Sleeps()
    arc = backend_for(f"http://127.0.0.1:{closed_port()}", sleeps)
    with pytest.raises(ChainUnavailable, match="unreachable after 4 attempts") as caught:
        arc.broadcast(raw)
    assert caught.value.permanent is False
    assert sleeps == [0.5, 1.0, 2.0]
    with pytest.raises(ChainUnavailable):
        arc.height()


class FixtureServer(ThreadingHTTPServer):
    """Answers from recorded bodies; the first `failures` requests get HTTP 503 (a flaky gateway)."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, str, str]], failures: int = 0) -> None:
        self.routes = routes
        self.failures = failures
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), FixtureHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FixtureHandler(BaseHTTPRequestHandler):
    server: FixtureServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(f"{self.command} {self.path} {self.headers.get('Authorization')}")
        if self.server.failures > 0:
            self.server.failures -= 1
            status, body, content_type = 503, "<html>bad gateway</html>", "text/html"
        else:
            status, body, content_type = self.server.routes.get(
                (self.command, self.path), (404, "Not Found", "text/plain")
            )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer


@pytest.fixture
def recorded() -> Iterator[FixtureServer]:
    def fixture(name: str, content_type: str = "application/json", status: int = 200) -> tuple[int, str, str]:
        return status, (FIXTURES / name).read_text(), content_type

    routes = {
        ("GET", "/v1/bsv/main/chain/info"): fixture("woc_chain_info.json"),
        ("GET", "/v1/bsv/main/address/1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2/unspent/all"): fixture(
            "woc_address_unspent_all.json"
        ),
        ("GET", f"/v1/bsv/main/tx/{GENESIS_TXID}/hex"): fixture("woc_tx_hex.txt", "text/plain"),
        ("GET", f"/v1/tx/{GENESIS_TXID}"): fixture("arc_get_tx_mined.json"),
        ("POST", "/v1/tx"): fixture("arc_post_tx_ok.json"),
    }
    server = FixtureServer(routes)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def recorded_backend(server: FixtureServer, sleeps: Sleeps | None = None) -> ArcBackend:
    return ArcBackend(
        server.url,
        f"{server.url}/v1/bsv/main",
        api_key="test-key",
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def test_it_reads_whatsonchain_answers(recorded: FixtureServer) -> None:
    woc = recorded_backend(recorded)
    assert woc.height() == 905312
    coins = woc.utxos("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2")
    assert [(c.txid[:8], c.vout, c.satoshis, c.height) for c in coins] == [
        ("4a5e1e4b", 1, 125000, 905290),
        ("9b0fc922", 0, 3100, None),
    ]
    assert coins[0].script.hex().startswith("76a914")
    raw = woc.get_transaction(GENESIS_TXID)
    assert raw.startswith(bytes.fromhex("01000000")) and len(raw) == 204
    status = woc.status(GENESIS_TXID)
    assert (status.state, status.block_height, status.confirmations) == (TxState.MINED, 905300, 13)


def test_it_sends_the_api_key_to_arc_only(recorded: FixtureServer) -> None:
    arc = recorded_backend(recorded)
    arc.broadcast(bytes.fromhex((FIXTURES / "woc_tx_hex.txt").read_text().strip()))
    arc.height()
    posts = [line for line in recorded.requests if line.startswith("POST")]
    gets = [line for line in recorded.requests if "chain/info" in line]
    assert posts == ["POST /v1/tx Bearer test-key"]
    assert gets == ["GET /v1/bsv/main/chain/info None"]


def test_it_retries_a_flaky_gateway_and_then_succeeds(recorded: FixtureServer) -> None:
    recorded.failures = 2
    sleeps = Sleeps()
    arc = recorded_backend(recorded, sleeps)
    assert arc.broadcast(bytes.fromhex((FIXTURES / "woc_tx_hex.txt").read_text().strip())) == GENESIS_TXID
    assert sleeps == [0.5, 1.0]


def test_it_maps_arc_fee_rejection(recorded: FixtureServer) -> None:
    recorded.routes[("POST", "/v1/tx")] = (
        465,
        (FIXTURES / "arc_post_tx_465.json").read_text(),
        "application/json",
    )
    with pytest.raises(TransactionRejected, match="Fees are insufficient") as caught:
        recorded_backend(recorded).broadcast(bytes.fromhex((FIXTURES / "woc_tx_hex.txt").read_text().strip()))
    assert caught.value.code == "465" and caught.value.permanent


def arc_answer(tx_status: str, competing: list[str] | None = None, extra: str = "") -> str:
    """A POST /v1/tx 200 body as ARC sends it (pkg/api/arc.go TransactionResponse; status and title are
    200/OK whatever the txStatus: internal/api/handler/default.go)."""
    return json.dumps(
        {
            "blockHash": "", "blockHeight": 0, "competingTxs": competing, "extraInfo": extra,
            "merklePath": "", "status": 200, "timestamp": "2026-04-01T10:00:00.123456789Z", "title": "OK",
            "txStatus": tx_status, "txid": GENESIS_TXID,
        }
    )  # fmt: skip


COMPETITOR = "c0" * 32


@pytest.mark.parametrize(
    ("status", "body", "expected", "code", "competing"),
    [
        # test/submit_03_double_spending_test.go: the second spend of a mempool output
        (200, arc_answer("DOUBLE_SPEND_ATTEMPTED", [COMPETITOR]), DoubleSpend, "DOUBLE_SPEND_ATTEMPTED",
         (COMPETITOR,)),
        # the same test: a spend of an output already mined
        (200, arc_answer("SEEN_IN_ORPHAN_MEMPOOL"), DoubleSpend, "SEEN_IN_ORPHAN_MEMPOOL", ()),
        # internal/metamorph/server.go: a resubmitted loser answers REJECTED with its reason at once
        (200, arc_answer("REJECTED", [COMPETITOR], "double spend attempted"), DoubleSpend, "REJECTED",
         (COMPETITOR,)),
        (200, arc_answer("REJECTED", None, "invalid transaction: non-final"), TransactionRejected, "REJECTED",
         None),
        # pkg/api/status.go: 466 is defined (not sent today)
        (466, '{"status": 466, "title": "Conflicting tx found"}', DoubleSpend, "466", ()),
        (461, '{"status": 461, "title": "Malformed transaction"}', TransactionRejected, "461", None),
    ],
)  # fmt: skip
def test_it_reads_each_of_arcs_answers_as_its_type(
    recorded: FixtureServer,
    status: int,
    body: str,
    expected: type[Exception],
    code: str,
    competing: tuple[str, ...] | None,
) -> None:
    recorded.routes[("POST", "/v1/tx")] = (status, body, "application/json")
    sleeps = Sleeps()
    with pytest.raises(expected) as caught:
        recorded_backend(recorded, sleeps).broadcast(bytes.fromhex((FIXTURES / "woc_tx_hex.txt").read_text()))
    assert isinstance(caught.value, TransactionRejected) and caught.value.permanent
    assert caught.value.code == code and sleeps == []
    if competing is not None:
        assert isinstance(caught.value, DoubleSpend) and caught.value.competing_txids == competing


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (409, '{"status": 409, "extraInfo": "context deadline exceeded"}', "application/json"),
        (
            460,
            '{"status": 460, "extraInfo": "arc error 460: parent transaction not found"}',
            "application/json",
        ),
        (429, "Too Many Requests", "text/plain"),
        (502, "<html>bad gateway</html>", "text/html"),
        (200, "<html>captive portal</html>", "text/html"),
        (200, "[]", "application/json"),  # a batch answer emptied by a deadline
    ],
)
def test_it_retries_arcs_transient_answers_then_reports_unavailable(
    recorded: FixtureServer, status: int, body: str, content_type: str
) -> None:
    recorded.routes[("POST", "/v1/tx")] = (status, body, content_type)
    sleeps = Sleeps()
    with pytest.raises(ChainUnavailable):
        recorded_backend(recorded, sleeps).broadcast(bytes.fromhex((FIXTURES / "woc_tx_hex.txt").read_text()))
    assert sleeps == [0.5, 1.0, 2.0]


def test_it_reads_every_page_of_unspent_outputs_and_caches_the_height(recorded: FixtureServer) -> None:
    base = "/v1/bsv/main/address/1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2/unspent/all"
    first = json.loads((FIXTURES / "woc_address_unspent_all.json").read_text())
    recorded.routes[("GET", base)] = (200, json.dumps({**first, "nextPageToken": "p2"}), "application/json")
    second = {"result": [{"height": 7, "tx_pos": 3, "tx_hash": "ab" * 32, "value": 5}], "nextPageToken": ""}
    recorded.routes[("GET", f"{base}?token=p2")] = (200, json.dumps(second), "application/json")
    woc = recorded_backend(recorded)
    assert [c.satoshis for c in woc.utxos("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2")] == [125000, 3100, 5]
    woc.height()
    woc.height()
    assert sum("chain/info" in line for line in recorded.requests) == 1, "one /chain/info per 30 s"
