"""HTTP face of the LocalLedger: ARC's broadcast API plus WhatsOnChain-style lookups, on the standard library.

The paths are those of the real services, so `contracts.arc.ArcBackend` runs unchanged against the ledger
(ARC at `http://HOST:PORT`, WhatsOnChain at `http://HOST:PORT/v1/bsv/regtest`):

- ARC: `POST /v1/tx` (body: raw bytes, hex text, or JSON `{"rawTx": hex}`), `GET /v1/tx/{txid}`,
  `GET /v1/policy`. Rejections answer with ARC's status codes (461 script, 462 inputs, 463 malformed,
  465 fee, 466 double spend, 474 size, 409 not final) and an RFC 7807 JSON body.
- WhatsOnChain: `GET /v1/bsv/{net}/chain/info`, `.../address/{address}/unspent`, `.../tx/{txid}/hex`,
  `.../tx/hash/{txid}`.
- Ledger only (development): `POST /ledger/fund {"address", "satoshis"}`, `POST /ledger/mine {"blocks"}`,
  `GET /ledger/status`, `GET /ledger/dump`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from contracts.chain import TxState
from contracts.errors import AddressError, ContractsError, TransactionNotFound, TransactionRejected
from contracts.ledger import ERROR_TITLES, LocalLedger

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 32 * 1024 * 1024  # a 10 MB transaction in hex inside JSON fits comfortably
TXID = r"(?P<txid>[0-9a-fA-F]{64})"
WOC = r"/v1/bsv/(?P<net>\w+)"
ARC_STATUS = {TxState.MEMPOOL: "SEEN_ON_NETWORK", TxState.MINED: "MINED", TxState.REJECTED: "REJECTED"}


def problem(status: int, title: str, detail: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    """An RFC 7807 body as ARC sends it."""
    body: dict[str, Any] = {"type": f"https://bitcoin-sv.github.io/arc/#/errors?id=_{status}", "title": title}
    body.update({"status": status, "detail": detail, "instance": None, **extra})
    return status, body


class LedgerRequestHandler(BaseHTTPRequestHandler):
    server: LedgerHTTPServer
    protocol_version = "HTTP/1.1"
    # `_send` writes the headers and the body separately; with Nagle's algorithm on, a keep-alive client's
    # delayed ACK then stalls every response by ~40 ms (measured: 58 -> 8 ms per POST /v1/tx on a
    # requests.Session, benchmarks/ledger_load.py). TCP_NODELAY sends each write at once.
    disable_nagle_algorithm = True

    def finish(self) -> None:
        # Each connection is served by its own thread, and LocalLedger keeps one SQLite connection per
        # thread. Close it with the thread rather than whenever the garbage collector gets to it: with a
        # client that connects per request (bsv-sdk's ARC client) they piled up, 60 -> 143 open files in
        # benchmarks/ledger_load.py.
        try:
            super().finish()
        finally:
            self.server.ledger.close()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- plumbing ------------------------------------------------------------------------------------------

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError(f"request body of {length} bytes is over {MAX_BODY_BYTES}")
        return self.rfile.read(length)

    def _json_body(self) -> dict[str, Any]:
        data = json.loads(self._body() or b"{}")
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def _dispatch(self, routes: list[tuple[str, Any]]) -> None:
        path = self.path.split("?", 1)[0]
        for pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                try:
                    result = handler(**match.groupdict())
                except (ValueError, AddressError, json.JSONDecodeError) as error:
                    result = problem(400, "Bad request", str(error))
                except TransactionNotFound as error:
                    result = problem(404, "Not found", str(error))
                except ContractsError as error:
                    result = problem(409, "Generic error", str(error))
                self._send(*result)
                return
        self._send(*problem(404, "Not found", f"no route for {self.command} {path}"))

    def do_GET(self) -> None:
        self._dispatch(
            [
                (rf"/v1/tx/{TXID}", self.arc_status),
                (r"/v1/policy", lambda: (200, self.server.ledger.policy())),
                (rf"{WOC}/chain/info", self.woc_chain_info),
                (rf"{WOC}/address/(?P<address>\w+)/unspent", self.woc_unspent),
                (rf"{WOC}/tx/{TXID}/hex", self.woc_hex),
                (rf"{WOC}/tx/hash/{TXID}", self.woc_tx),
                (r"/ledger/status", lambda: (200, self.server.ledger.summary())),
                (r"/ledger/dump", lambda: (200, [e.to_json() for e in self.server.ledger.dump()])),
            ]
        )

    def do_POST(self) -> None:
        self._dispatch(
            [
                (r"/v1/tx", self.arc_broadcast),
                (r"/ledger/fund", self.ledger_fund),
                (r"/ledger/mine", self.ledger_mine),
            ]
        )

    # -- ARC -----------------------------------------------------------------------------------------------

    def _raw_from_body(self) -> bytes:
        body = self._body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == "application/json":
            data = json.loads(body)
            raw_hex = data.get("rawTx") if isinstance(data, dict) else None
            if not isinstance(raw_hex, str):
                raise ValueError('expected a JSON body {"rawTx": "<hex>"}')
            return bytes.fromhex(raw_hex)
        if content_type == "text/plain":
            return bytes.fromhex(body.decode("ascii").strip())
        return body

    def _arc_tx_info(self, txid: str) -> dict[str, Any]:
        ledger = self.server.ledger
        status = ledger.status(txid)
        return {
            "txid": txid,
            "txStatus": ARC_STATUS.get(status.state, "UNKNOWN"),
            "blockHash": ledger.block_hash(status.block_height) if status.block_height is not None else None,
            "blockHeight": status.block_height,
            "extraInfo": status.detail,
            "competingTxs": None,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def arc_broadcast(self) -> tuple[int, dict[str, Any]]:
        try:
            raw = self._raw_from_body()
        except (ValueError, UnicodeDecodeError) as error:
            return problem(463, ERROR_TITLES["463"], f"cannot read the transaction: {error}")
        try:
            txid = self.server.ledger.broadcast(raw)
        except TransactionRejected as error:
            code = int(error.code or 409)
            return problem(code, ERROR_TITLES.get(str(code), "Rejected"), str(error), txid=error.txid)
        return 200, {**self._arc_tx_info(txid), "status": 200, "title": "OK"}

    def arc_status(self, txid: str) -> tuple[int, dict[str, Any]]:
        if self.server.ledger.status(txid).state is TxState.UNKNOWN:
            return problem(404, "Not found", f"transaction {txid} is unknown", txid=txid)
        return 200, self._arc_tx_info(txid)

    # -- WhatsOnChain --------------------------------------------------------------------------------------

    def woc_chain_info(self, net: str) -> tuple[int, dict[str, Any]]:
        height = self.server.ledger.height()
        best = self.server.ledger.block_hash(height)
        return 200, {"chain": net, "blocks": height, "headers": height, "bestblockhash": best}

    def woc_unspent(self, net: str, address: str) -> tuple[int, list[dict[str, Any]]]:
        utxos = self.server.ledger.utxos(address)
        return 200, [
            {"height": utxo.height or 0, "tx_pos": utxo.vout, "tx_hash": utxo.txid, "value": utxo.satoshis}
            for utxo in utxos
        ]

    def woc_hex(self, net: str, txid: str) -> tuple[int, str, str]:
        return 200, self.server.ledger.get_transaction(txid).hex(), "text/plain"

    def woc_tx(self, net: str, txid: str) -> tuple[int, dict[str, Any]]:
        ledger = self.server.ledger
        raw = ledger.get_transaction(txid)
        status = ledger.status(txid)
        height = status.block_height
        return 200, {
            "txid": txid,
            "hash": txid,
            "size": len(raw),
            "blockhash": ledger.block_hash(height) if height is not None else None,
            "blockheight": height,
            "confirmations": status.confirmations,
        }

    # -- ledger --------------------------------------------------------------------------------------------

    def ledger_fund(self) -> tuple[int, dict[str, Any]]:
        data = self._json_body()
        txid = self.server.ledger.fund(str(data.get("address", "")), int(data.get("satoshis", 0)))
        return 200, {"txid": txid}

    def ledger_mine(self) -> tuple[int, dict[str, Any]]:
        blocks = int(self._json_body().get("blocks", 1))
        if not 1 <= blocks <= 1000:
            raise ValueError("mine 1 to 1000 blocks at a time")
        return 200, {"heights": self.server.ledger.mine(blocks)}


class LedgerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ledger: LocalLedger, host: str = "127.0.0.1", port: int = 18332) -> None:
        self.ledger = ledger
        super().__init__((host, port), LedgerRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class LedgerService:
    """The HTTP server and an optional block timer, run in background threads (tests, in-process use) or in
    the foreground (`python -m contracts ledger serve`)."""

    def __init__(
        self,
        ledger: LocalLedger,
        host: str = "127.0.0.1",
        port: int = 18332,
        block_interval: float | None = None,
    ) -> None:
        self.ledger = ledger
        self.server = LedgerHTTPServer(ledger, host, port)
        self.block_interval = block_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return self.server.url

    def _mine_on_timer(self) -> None:
        assert self.block_interval is not None
        while not self._stop.wait(self.block_interval):
            try:
                self.ledger.mine()
            except Exception:  # a failed timer block must not kill the server; the next tick retries
                log.exception("timed block failed")

    def start(self) -> LedgerService:
        """Serve in background threads; returns at once."""
        self._threads = [
            threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True, name="ledger-http")
        ]
        if self.block_interval:
            self._threads.append(
                threading.Thread(target=self._mine_on_timer, daemon=True, name="ledger-miner")
            )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LedgerService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
