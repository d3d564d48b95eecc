"""The chain backend misbehaving, through ArcBackend (the production client) against the local ledger's HTTP
server, with a loopback proxy as the edge of the internet: the server stopped for a while and back, ARC
answering errors, timing out after it accepted a claim, and refusing a claim it already has."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from bounty_testing import ChainTestCase, mnist_pixels, tamper_stored_claim
from fault_support import check_invariants

from bounty import chain, confirmations, payouts, pipeline, sweeper
from bounty.models import Slot, Submission, Transaction
from contracts.ledger import LocalLedger
from contracts.ledger_http import LedgerService


class FaultyProxy(ThreadingHTTPServer):
    """Forwards to the ledger's HTTP server; each POST /v1/tx takes the next scripted fault, if any."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream = upstream
        self.faults: list[str] = []
        self.broadcasts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, method: str) -> requests.Response:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {"Content-Type": self.headers.get("Content-Type", "application/octet-stream")}
        return requests.request(
            method, self.server.upstream + self.path, data=body, headers=headers, timeout=10
        )

    def relay(self, response: requests.Response) -> None:
        self.answer(response.status_code, response.content, response.headers.get("Content-Type", ""))

    def do_GET(self) -> None:
        try:
            self.relay(self.forward("GET"))
        except requests.ConnectionError:
            self.answer(502, b'{"status": 502, "title": "Bad gateway"}')

    def do_POST(self) -> None:
        fault = self.server.faults.pop(0) if self.server.faults else "pass"
        self.server.broadcasts += 1
        if fault == "503":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.answer(503, b'{"status": 503, "title": "Service unavailable"}')
            return
        try:
            response = self.forward("POST")
        except requests.ConnectionError:
            self.answer(502, b'{"status": 502, "title": "Bad gateway"}')
            return
        if fault == "lost-answer":  # accepted upstream, but the answer never arrives in time
            time.sleep(1.6)
        if fault == "known-as-error":  # some nodes answer a resubmission with an error, not a 200
            body = {"status": 461, "title": "Malformed", "detail": "257: txn-already-known"}
            self.answer(461, json.dumps(body).encode())
            return
        self.relay(response)


class ChainFaultTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()  # funds and deploys on the local ledger directly
        self.ledger_service = LedgerService(
            LocalLedger(self.settings_value("LEDGER_DIR")), port=0, dev=True
        ).start()
        self.proxy = FaultyProxy(self.ledger_service.url)
        threading.Thread(target=self.proxy.serve_forever, args=(0.05,), daemon=True).start()
        self.use_arc()

    def tearDown(self) -> None:
        self.proxy.shutdown()
        self.proxy.server_close()
        self.ledger_service.stop()
        chain.reset()
        super().tearDown()

    def settings_value(self, name: str):  # type: ignore[no-untyped-def]
        from django.conf import settings

        return getattr(settings, name)

    def use_arc(self) -> None:
        from django.conf import settings

        settings.CHAIN_BACKEND, settings.CHAIN_TIMEOUT = "arc", 1
        settings.ARC_URL, settings.WOC_URL = self.proxy.url, f"{self.proxy.url}/v1/bsv/regtest"
        chain.reset()
        chain.backend().backoff = 0.05  # type: ignore[attr-defined]

    def submit(self, nth: int = 0) -> Submission:
        return self.make_submission(mnist_pixels(7, nth), bounty=self.live)

    def finish(self) -> None:
        """Back on the local backend to read the ledger, then every invariant."""
        from django.conf import settings

        settings.CHAIN_BACKEND = "local"
        chain.reset()
        check_invariants()

    def test_it_pays_through_arc_when_nothing_goes_wrong(self) -> None:
        self.assertEqual(pipeline.process(self.submit().pk), "broadcast")
        self.assertEqual(self.proxy.broadcasts, 1)
        self.finish()

    def test_it_waits_out_a_stopped_ledger_server_and_pays_when_it_is_back(self) -> None:
        submission = self.submit()
        port = self.ledger_service.server.server_address[1]
        self.ledger_service.stop()
        with self.assertRaises(payouts.TryLater):
            pipeline.process(submission.pk)
        submission.refresh_from_db()
        self.assertEqual((submission.state, submission.claim_tx.status), ("verified", "stored"))  # type: ignore[union-attr]
        self.assertEqual(Slot.objects.get(submission=submission).state, "reserved")
        with self.assertRaises(payouts.TryLater):  # still down: nothing changes, nothing is lost
            pipeline.process(submission.pk)
        self.ledger_service = LedgerService(
            LocalLedger(self.settings_value("LEDGER_DIR")), port=port, dev=True
        ).start()
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        self.assertGreaterEqual(Transaction.objects.get(kind="claim").broadcast_attempts, 3)
        self.finish()

    def test_it_retries_through_arc_errors(self) -> None:
        self.proxy.faults = ["503", "503"]
        self.assertEqual(pipeline.process(self.submit().pk), "broadcast")
        self.assertEqual(self.proxy.broadcasts, 3)
        self.proxy.faults = ["503"] * 8  # more than one call retries: the task is retried later
        second = self.submit(1)
        with self.assertRaises(payouts.TryLater):
            pipeline.process(second.pk)
        self.proxy.faults = []
        self.assertEqual(pipeline.process(second.pk), "broadcast")
        self.finish()

    def test_a_lost_answer_is_retried_and_the_chain_keeps_one_copy(self) -> None:
        self.proxy.faults = ["lost-answer"]
        submission = self.submit()
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        self.assertEqual(self.proxy.broadcasts, 2)  # the timed-out one (accepted) and the "already known"
        self.finish()

    def test_an_already_known_claim_answered_as_an_error_counts_as_broadcast(self) -> None:
        self.proxy.faults = ["known-as-error"]
        submission = self.submit()
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        self.assertEqual(Slot.objects.get(submission=submission).state, "claimed")
        self.finish()

    def test_a_real_refusal_through_arc_is_rebuilt_and_paid_once(self) -> None:
        submission = self.submit()
        pipeline.check(submission)
        pipeline.claim(submission)
        tamper_stored_claim(submission)  # the payout redirected after signing: ARC answers 461
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        submission.refresh_from_db()
        self.assertEqual(submission.payout_attempts, 1)
        self.assertEqual(self.live.slots.filter(state="free").count(), 2)
        self.finish()

    def test_the_sweeper_resends_a_claim_the_chain_forgot(self) -> None:
        submission = self.submit()
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        tx = Transaction.objects.get(kind="claim")
        forgotten = chain.TxStatus(tx.txid, chain.TxState.UNKNOWN)
        from unittest import mock

        real = chain.status

        def forgets_the_claim(txid: str) -> chain.TxStatus:
            return forgotten if txid == tx.txid else real(txid)

        with mock.patch.object(chain, "status", autospec=True, side_effect=forgets_the_claim):
            confirmations.poll_confirmations()
        self.assertEqual(Transaction.objects.get(pk=tx.pk).status, "stored")
        before = self.proxy.broadcasts
        sweeper.sweep()
        self.assertEqual(
            (Transaction.objects.get(pk=tx.pk).status, self.proxy.broadcasts), ("broadcast", before + 1)
        )
        self.finish()
