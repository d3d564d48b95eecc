"""HTTP face of the LocalLedger: ARC's API and WhatsOnChain-style lookups, on the standard library.

The paths, status codes and bodies are those of the real services (bitcoin-sv/arc `pkg/api/arc.yaml`,
`pkg/api/status.go`, `internal/api/handler`), so `contracts.arc.ArcBackend` and bsv-sdk's own ARC broadcaster
run unchanged against the ledger (ARC at `http://HOST:PORT`, WhatsOnChain at `http://HOST:PORT/v1/bsv/NET`):

- ARC: `POST /v1/tx` and `POST /v1/txs` (JSON `{"rawTx": hex}` / a list of them, `text/plain` hex, or
  `application/octet-stream` bytes; raw, Extended Format or BEEF), `GET /v1/tx/{txid}`, `GET /v1/policy`,
  `GET /v1/health`. Headers `X-WaitFor`, `X-MaxTimeout` (at most 30), `X-SkipFeeValidation`,
  `X-CallbackUrl`, `X-CallbackToken`, `X-FullStatusUpdates` are honoured. A submission answers HTTP 200
  with a `txStatus` (a double spend is 200 DOUBLE_SPEND_ATTEMPTED with `competingTxs`) or ARC's error body
  (`type`, `title`, `status`, `detail`, `instance`, `txid`, `extraInfo`) with the error's status code.
- WhatsOnChain: `GET /v1/bsv/{net}/chain/info`, `.../address/{address}/unspent/all` (and the legacy
  `/unspent`), `.../tx/{txid}/hex`, `.../tx/hash/{txid}`, `.../tx/{txid}/{vout}/spent`.
- Ledger: `GET /ledger/status`, `GET /ledger/dump`; with `dev=True` only (the `--dev` flag), the faucet
  `POST /ledger/fund {"address", "satoshis"}`, `POST /ledger/mine {"blocks"}` and the chaos plan
  `POST /ledger/chaos {...}` / `DELETE /ledger/chaos`.

The server is bounded: a socket timeout per connection, a request body cap derived from the policy's largest
transaction, a cap on concurrent connections, and a 400 for a missing or malformed Content-Length.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from contracts.chain import TxState
from contracts.errors import AddressError, ChainUnavailable, ContractsError, TransactionNotFound
from contracts.errors import TransactionRejected as Rejected
from contracts.ledger import ERRORS, LocalLedger

log = logging.getLogger(__name__)
TXID = r"(?P<txid>[0-9a-fA-F]{64})"
WOC = r"/v1/bsv/(?P<net>\w+)"
MAX_TIMEOUT = 30  # ARC's limit on X-MaxTimeout, seconds
DEFAULT_TIMEOUT = 5
# ARC's txStatus order (metamorph_api.proto): X-WaitFor waits for a status at or past the one named.
STATUS_ORDER = {
    "UNKNOWN": 0, "QUEUED": 10, "RECEIVED": 20, "STORED": 30, "ANNOUNCED_TO_NETWORK": 40,
    "REQUESTED_BY_NETWORK": 50, "SENT_TO_NETWORK": 60, "ACCEPTED_BY_NETWORK": 70,
    "SEEN_IN_ORPHAN_MEMPOOL": 80, "SEEN_ON_NETWORK": 90, "DOUBLE_SPEND_ATTEMPTED": 100, "REJECTED": 110,
    "MINED_IN_STALE_BLOCK": 115, "MINED": 120,
}  # fmt: skip
VERSION = "digit-bounty-ledger"


class BadRequest(ValueError):
    """A request ARC answers with 400."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def problem(status: int, extra_info: str, txid: str | None = None) -> tuple[int, dict[str, Any]]:
    """ARC's error body (`ErrorFields`): all seven keys, always."""
    title, detail = ERRORS.get(str(status), ERRORS["409"])
    return status, {
        "detail": detail,
        "extraInfo": extra_info,
        "instance": None,
        "status": status,
        "title": title,
        "txid": txid,
        "type": f"https://bitcoin-sv.github.io/arc/#/errors?id=_{status}",
    }


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


class LedgerRequestHandler(BaseHTTPRequestHandler):
    server: LedgerHTTPServer
    protocol_version = "HTTP/1.1"
    # `_send` writes the headers and the body separately; with Nagle's algorithm on, a keep-alive client's
    # delayed ACK then stalls every response by ~40 ms (measured: 58 -> 8 ms per POST /v1/tx on a
    # requests.Session, benchmarks/ledger_load.py). TCP_NODELAY sends each write at once.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        # A socket timeout: a client that opens a connection and sends nothing (or half a request) is
        # dropped instead of holding a thread forever.
        self.connection.settimeout(self.server.request_timeout)

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
        text = self.headers.get("Content-Length")
        if text is None:
            if self.command == "POST":
                self.close_connection = True
                raise BadRequest("a request body needs a Content-Length")
            return b""
        if not text.strip().isdigit():
            self.close_connection = True  # the rest of the stream cannot be framed
            raise BadRequest(f"bad Content-Length {text!r}")
        length = int(text)
        if length > self.server.max_body_bytes:
            self.close_connection = True
            raise BadRequest(f"request body of {length} bytes is over {self.server.max_body_bytes}")
        return self.rfile.read(length)

    def _json_body(self) -> dict[str, Any]:
        data = json.loads(self._body() or b"{}")
        if not isinstance(data, dict):
            raise BadRequest("expected a JSON object")
        return data

    def _dispatch(self, routes: list[tuple[str, Any]]) -> None:
        path = self.path.split("?", 1)[0]
        for pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                try:
                    result = handler(**match.groupdict())
                except (ValueError, AddressError) as error:  # BadRequest and JSONDecodeError included
                    result = problem(400, str(error))
                except TransactionNotFound as error:
                    result = problem(404, str(error))
                except ContractsError as error:
                    result = problem(409, str(error))
                self._send(*result)
                return
        self._send(*problem(404, f"no route for {self.command} {path}"))

    def do_GET(self) -> None:
        ledger = self.server.ledger
        self._dispatch(
            [
                (rf"/v1/tx/{TXID}", self.arc_status),
                (r"/v1/policy", lambda: (200, ledger.policy())),
                (r"/v1/health", lambda: (200, {"healthy": True, "reason": None, "version": VERSION})),
                (rf"{WOC}/chain/info", self.woc_chain_info),
                (rf"{WOC}/address/(?P<address>\w+)/unspent/all", self.woc_unspent_all),
                (rf"{WOC}/address/(?P<address>\w+)/unspent", self.woc_unspent),
                (rf"{WOC}/tx/{TXID}/hex", self.woc_hex),
                (rf"{WOC}/tx/hash/{TXID}", self.woc_tx),
                (rf"{WOC}/tx/{TXID}/(?P<vout>\d+)/spent", self.woc_spent),
                (r"/ledger/status", lambda: (200, ledger.summary())),
                (r"/ledger/dump", lambda: (200, [e.to_json() for e in ledger.dump()])),
            ]
        )

    def do_POST(self) -> None:
        routes: list[tuple[str, Any]] = [
            (r"/v1/tx", self.arc_broadcast),
            (r"/v1/txs", self.arc_broadcast_many),
        ]
        if self.server.dev:
            routes += [
                (r"/ledger/fund", self.ledger_fund),
                (r"/ledger/mine", self.ledger_mine),
                (r"/ledger/chaos", self.ledger_chaos),
            ]
        self._dispatch(routes)

    def do_DELETE(self) -> None:
        self._dispatch([(r"/ledger/chaos", self.ledger_chaos_off)] if self.server.dev else [])

    # -- ARC -----------------------------------------------------------------------------------------------

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").lower()

    def _submissions(self, many: bool) -> list[bytes]:
        """The transactions in the body, as ARC's parsers read them (internal/api/handler/parsers.go)."""
        body = self._body()
        content_type = self._content_type()
        try:
            if "application/json" in content_type:
                data = json.loads(body or b"null")
                items = data if many and isinstance(data, list) else [data]
                readable = all(isinstance(i, dict) and isinstance(i.get("rawTx"), str) for i in items)
                if not items or not readable:
                    raise BadRequest("no transaction found - empty request body")
                return [bytes.fromhex(item["rawTx"]) for item in items]
            if "text/plain" in content_type:
                lines = body.decode("ascii").split("\n") if many else [body.decode("ascii")]
                found = [bytes.fromhex(line) for line in lines if line or not many]
                if not found or not found[0]:
                    raise BadRequest("no transaction found - empty request body")
                return found
            if "application/octet-stream" in content_type:
                if not body:
                    raise BadRequest("no transaction found - empty request body")
                return [body]  # several back to back are not split: send JSON for /v1/txs
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadRequest(f"error parsing transactions from request: {error}") from None
        except ValueError as error:
            if isinstance(error, BadRequest):
                raise
            raise BadRequest(f"error parsing transactions from request: {error}") from None
        raise BadRequest(
            f"error parsing transactions from request: given content-type {content_type} does not match "
            "any of the allowed content-types"
        )

    def _options(self) -> tuple[str, int, bool, tuple[str, str, bool] | None]:
        wait_for = self.headers.get("X-WaitFor") or "SEEN_ON_NETWORK"
        if wait_for not in STATUS_ORDER:
            raise BadRequest(f"status not supported\nstatus: {wait_for}")
        text = self.headers.get("X-MaxTimeout")
        if text is not None and not text.strip().isdigit():
            raise BadRequest(f"invalid X-MaxTimeout {text!r}")
        max_timeout = int(text) if text is not None else DEFAULT_TIMEOUT
        if max_timeout > MAX_TIMEOUT:
            raise BadRequest(f"max timeout can not be higher than {MAX_TIMEOUT} ")
        callback = None
        url = self.headers.get("X-CallbackUrl")
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise BadRequest(f"invalid callback URL [{url}]")
            token = self.headers.get("X-CallbackToken") or ""
            callback = (url, token, truthy(self.headers.get("X-FullStatusUpdates")))
        return wait_for, max_timeout, truthy(self.headers.get("X-SkipFeeValidation")), callback

    def _submit_one(self, raw: bytes, options: tuple[str, int, bool, Any]) -> tuple[int, dict[str, Any]]:
        wait_for, max_timeout, skip_fee, callback = options
        ledger = self.server.ledger
        try:
            status = ledger.submit(raw, skip_fee=skip_fee, callback=callback)
        except Rejected as error:
            return problem(int(error.code or 409), str(error), error.txid)
        except ChainUnavailable as error:
            return problem(409, str(error))
        # Only mining moves a status further; wait for it when asked, as ARC waits up to X-MaxTimeout.
        deadline = time.monotonic() + max_timeout
        while STATUS_ORDER[wait_for] > STATUS_ORDER["REJECTED"] and time.monotonic() < deadline:
            if ledger.status(status.txid).state is TxState.MINED:
                break
            time.sleep(0.05)
        return 200, {**ledger.arc_json(status.txid), "status": 200, "title": "OK"}

    def arc_broadcast(self) -> tuple[int, dict[str, Any]]:
        options = self._options()
        return self._submit_one(self._submissions(many=False)[0], options)

    def arc_broadcast_many(self) -> tuple[int, list[dict[str, Any]]]:
        options = self._options()
        answers = [self._submit_one(raw, options) for raw in self._submissions(many=True)]
        # ARC lists the successes first, then the failures (internal/api/handler/default.go).
        return 200, [body for code, body in answers if code == 200] + [
            body for code, body in answers if code != 200
        ]

    def arc_status(self, txid: str) -> tuple[int, dict[str, Any]]:
        ledger = self.server.ledger
        if ledger.status(txid).state is TxState.UNKNOWN:
            return problem(404, "transaction not found", txid)
        return 200, ledger.arc_json(txid)

    # -- WhatsOnChain --------------------------------------------------------------------------------------

    def woc_chain_info(self, net: str) -> tuple[int, dict[str, Any]]:
        height = self.server.ledger.height()
        best = self.server.ledger.block_hash(height)
        return 200, {"chain": net, "blocks": height, "headers": height, "bestblockhash": best}

    def _unspent_rows(self, address: str) -> list[dict[str, Any]]:
        return [
            {
                "height": utxo.height or 0,
                "tx_pos": utxo.vout,
                "tx_hash": utxo.txid,
                "value": utxo.satoshis,
                "isSpentInMempoolTx": False,
                "status": "confirmed" if utxo.height else "unconfirmed",
            }
            for utxo in self.server.ledger.utxos(address)
        ]

    def woc_unspent_all(self, net: str, address: str) -> tuple[int, dict[str, Any]]:
        return 200, {"address": address, "script": "", "result": self._unspent_rows(address), "error": ""}

    def woc_unspent(self, net: str, address: str) -> tuple[int, list[dict[str, Any]]]:
        return 200, self._unspent_rows(address)

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

    def woc_spent(self, net: str, txid: str, vout: str) -> tuple[Any, ...]:
        ledger = self.server.ledger
        spender = ledger.spender(txid, int(vout))
        if spender is None:
            return 404, "Not Found", "text/plain"
        mined = ledger.status(spender).state is TxState.MINED
        return 200, {"txid": spender, "vin": 0, "status": "confirmed" if mined else "unconfirmed"}

    # -- ledger (development) ------------------------------------------------------------------------------

    def ledger_fund(self) -> tuple[int, dict[str, Any]]:
        data = self._json_body()
        txid = self.server.ledger.fund(str(data.get("address", "")), int(data.get("satoshis", 0)))
        return 200, {"txid": txid}

    def ledger_mine(self) -> tuple[int, dict[str, Any]]:
        blocks = int(self._json_body().get("blocks", 1))
        if not 1 <= blocks <= 1000:
            raise BadRequest("mine 1 to 1000 blocks at a time")
        return 200, {"heights": self.server.ledger.mine(blocks)}

    def ledger_chaos(self) -> tuple[int, dict[str, Any]]:
        data = self._json_body()
        plan = self.server.ledger.chaos.configure(
            queue=list(data.get("queue") or ()),
            rates=dict(data.get("rates") or {}),
            callback_delay=float(data.get("callback_delay") or 0),
            callback_twice=bool(data.get("callback_twice")),
            seed=data.get("seed"),
        )
        return 200, plan

    def ledger_chaos_off(self) -> tuple[int, dict[str, Any]]:
        self.server.ledger.chaos.clear()
        return 200, {}


class LedgerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    max_connections = 64

    def __init__(
        self,
        ledger: LocalLedger,
        host: str = "127.0.0.1",
        port: int = 18332,
        *,
        dev: bool = False,
        request_timeout: float = 15.0,
    ) -> None:
        self.ledger = ledger
        self.dev = dev
        self.request_timeout = request_timeout
        # A transaction as hex inside JSON is twice its size plus a little; a batch may hold a few.
        self.max_body_bytes = 4 * ledger.limits.max_transaction_bytes + 4096
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().__init__((host, port), LedgerRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Refuse at once rather than start an unbounded number of threads for idle connections.
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

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
        *,
        dev: bool = False,
    ) -> None:
        self.ledger = ledger
        self.server = LedgerHTTPServer(ledger, host, port, dev=dev)
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
