"""ArcBackend: the real network. ARC broadcasts and reports transaction status, WhatsOnChain answers lookups
(UTXOs, transactions, who spent an output, height), both over HTTP with timeouts and retries.

ARC answers as its spec and source say (bitcoin-sv/arc: `pkg/api/arc.yaml`, `pkg/api/status.go`,
`test/submit_03_double_spending_test.go`), and the outcome is read from the status code and `txStatus`, never
from message text:

- HTTP 200 with `txStatus` DOUBLE_SPEND_ATTEMPTED (a competitor in the mempool, named in `competingTxs`) or
  SEEN_IN_ORPHAN_MEMPOOL (an input already spent in a block) is a double spend: `DoubleSpend`. So is 466,
  which the spec defines but ARC does not send today, and a REJECTED that names competitors.
- Other 200 answers mean the network has the transaction (an already known one included): the txid.
- 409 (deadline exceeded, block height not yet known), 429, 5xx, 460 (a parent not found yet), 401/403 (a
  key problem is ours, not the transaction's), a timeout, a refused connection and a 200 whose body is not
  ARC's JSON are transient: retried with exponential backoff, then `ChainUnavailable`.
- Any other 4xx (461 script, 463 malformed, 464 outputs, 465 fee, 474 size...) is `TransactionRejected` with
  ARC's code.

Transactions go out in Extended Format when the parents are known (the caller's records, else WhatsOnChain),
so ARC can validate them without its own lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import requests

from contracts.address import parse_address
from contracts.chain import TxState, TxStatus, Utxo
from contracts.errors import (
    ChainError,
    ChainUnavailable,
    DoubleSpend,
    TransactionNotFound,
    TransactionRejected,
    VerificationError,
)
from contracts.formats import to_extended_format
from contracts.txverify import parse_transaction

T = TypeVar("T")
ARC_DEFAULT_URLS = {"mainnet": "https://arc.taal.com", "testnet": "https://arc-test.taal.com"}
WOC_DEFAULT_URLS = {
    "mainnet": "https://api.whatsonchain.com/v1/bsv/main",
    "testnet": "https://api.whatsonchain.com/v1/bsv/test",
}

# HTTP answers that say nothing about the transaction itself: try again later.
TRANSIENT_HTTP = frozenset({0, 401, 403, 404, 408, 409, 425, 429, 460, 500, 502, 503, 504})

# ARC's txStatus values (pkg/api/arc.yaml, TransactionStatus) and what each means to us.
ARC_STATES: dict[str, TxState] = {
    "UNKNOWN": TxState.UNKNOWN,
    "QUEUED": TxState.PENDING,
    "RECEIVED": TxState.PENDING,
    "STORED": TxState.PENDING,
    "ANNOUNCED_TO_NETWORK": TxState.PENDING,
    "REQUESTED_BY_NETWORK": TxState.PENDING,
    "SENT_TO_NETWORK": TxState.PENDING,
    "ACCEPTED_BY_NETWORK": TxState.PENDING,
    "SEEN_IN_ORPHAN_MEMPOOL": TxState.ORPHAN,
    "SEEN_ON_NETWORK": TxState.MEMPOOL,
    "DOUBLE_SPEND_ATTEMPTED": TxState.DOUBLE_SPEND,
    "REJECTED": TxState.REJECTED,
    "MINED_IN_STALE_BLOCK": TxState.MEMPOOL,  # a reorg put it back; it will be mined again
    "MINED": TxState.MINED,
    "IMMUTABLE": TxState.MINED,
}


class _Transient(Exception):
    """Internal: a failure worth retrying."""


def parse_tx_status(body: Any, best_height: Callable[[], int] | None = None) -> TxStatus:
    """A TxStatus from ARC's transaction JSON (a GET /v1/tx answer, a POST answer or a callback).

    ValueError when `body` is not ARC's JSON. `best_height` gives confirmations for a mined transaction."""
    if not isinstance(body, dict) or not isinstance(body.get("txid"), str) or "txStatus" not in body:
        raise ValueError("not an ARC transaction status")
    arc_status = str(body["txStatus"])
    state = ARC_STATES.get(arc_status)
    if state is None:
        raise ValueError(f"unknown ARC txStatus {arc_status!r}")
    competing = tuple(str(txid) for txid in (body.get("competingTxs") or ()))
    detail = " ".join(part for part in (arc_status, str(body.get("extraInfo") or "")) if part)
    block_height = body.get("blockHeight") or None
    if state is TxState.MINED and block_height is not None:
        confirmations = 1
        if best_height is not None:
            confirmations = max(1, best_height() - int(block_height) + 1)
        return TxStatus(body["txid"], state, confirmations, int(block_height), detail, competing)
    if state is TxState.MINED:
        state = TxState.MEMPOOL  # mined without a height is not something we can count confirmations on
    return TxStatus(body["txid"], state, detail=detail, competing_txids=competing)


def outcome_of(status_code: int, body: Any, txid: str) -> str:
    """The txid if ARC's answer to a submission means the network has it; else raise the typed outcome
    (`DoubleSpend`, `TransactionRejected`), or `_Transient` for an answer worth retrying."""
    if status_code == 200:
        try:
            status = parse_tx_status(body)
        except ValueError as error:
            raise _Transient(f"HTTP 200 that is not ARC's answer: {error}") from None
        if status.state in (TxState.DOUBLE_SPEND, TxState.ORPHAN) or (
            status.state is TxState.REJECTED and status.competing_txids
        ):
            raise DoubleSpend(
                f"ARC: {txid} conflicts with {', '.join(status.competing_txids) or 'a spent output'}"
                f" ({status.detail})",
                competing_txids=status.competing_txids,
                code=str(body["txStatus"]),
                txid=txid,
            )
        if status.state is TxState.REJECTED:
            raise TransactionRejected(f"ARC rejected {txid}: {status.detail}", code="REJECTED", txid=txid)
        return status.txid
    detail = ""
    if isinstance(body, dict):
        detail = " ".join(str(body.get(key) or "") for key in ("title", "detail", "extraInfo")).strip()
    if status_code == 466:
        raise DoubleSpend(f"ARC 466 for {txid}: {detail}", code="466", txid=txid)
    if status_code in TRANSIENT_HTTP or status_code >= 500:
        raise _Transient(f"HTTP {status_code}: {detail}")
    raise TransactionRejected(
        f"ARC rejected {txid} ({status_code}): {detail}", code=str(status_code), txid=txid
    )


class ArcBackend:
    """Chain backend for mainnet/testnet (or the local ledger's HTTP server, which answers alike)."""

    def __init__(
        self,
        arc_url: str,
        woc_url: str,
        *,
        api_key: str | None = None,
        woc_api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        callback_url: str | None = None,
        callback_token: str | None = None,
        wait_for: str = "SEEN_ON_NETWORK",
        height_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.arc_url = arc_url.rstrip("/")
        self.woc_url = woc_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self.height_ttl = height_ttl
        self._height: tuple[float, int] | None = None
        self._session = requests.Session()
        self._arc_headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._woc_headers = {"Authorization": woc_api_key} if woc_api_key else {}
        # ARC holds the request until the transaction reaches `wait_for` or X-MaxTimeout passes; our own
        # timeout must outlast it.
        self._submit_headers = {
            **self._arc_headers,
            "Content-Type": "application/json",
            "X-WaitFor": wait_for,
            "X-MaxTimeout": str(max(1, int(timeout) - 1)),
        }
        if callback_url:
            self._submit_headers["X-CallbackUrl"] = callback_url
            if callback_token:
                self._submit_headers["X-CallbackToken"] = callback_token

    def __repr__(self) -> str:  # no API key in logs
        return f"ArcBackend(arc_url={self.arc_url!r}, woc_url={self.woc_url!r})"

    # -- HTTP and retries ------------------------------------------------------------------------------------

    def _with_retries(self, what: str, attempt: Callable[[], T]) -> T:
        last = ""
        for number in range(self.retries + 1):
            try:
                return attempt()
            except _Transient as error:
                last = str(error)
                if number < self.retries:
                    self._sleep(self.backoff * 2**number)
        raise ChainUnavailable(f"{what}: unreachable after {self.retries + 1} attempts: {last}")

    def _request(self, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise _Transient(f"{type(error).__name__}: {error}") from None

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    # -- ARC -----------------------------------------------------------------------------------------------

    def _payload(self, raw: bytes, parents: Mapping[str, bytes] | None) -> tuple[str, str]:
        try:
            tx = parse_transaction(raw)
        except VerificationError as error:
            raise TransactionRejected(str(error), code="463") from None
        txid = tx.txid()
        known = dict(parents or {})
        if any(tx_input.source_txid == "00" * 32 for tx_input in tx.inputs):
            return txid, raw.hex()  # a coinbase has no parent to extend with
        for tx_input in tx.inputs:
            if tx_input.source_txid not in known:
                parent = self._fetch_parent(tx_input.source_txid)
                if parent is None:
                    return txid, raw.hex()  # ARC may know the parent; raw is the fallback
                known[tx_input.source_txid] = parent
        return txid, to_extended_format(raw, known).hex()

    def _fetch_parent(self, txid: str) -> bytes | None:
        """A parent the caller did not have, from WhatsOnChain: one attempt, since raw is a fallback."""
        try:
            response = self._request("GET", f"{self.woc_url}/tx/{txid}/hex", self._woc_headers)
            return bytes.fromhex(response.text.strip()) if response.status_code == 200 else None
        except (_Transient, ValueError):
            return None

    def broadcast(self, raw: bytes, parents: Mapping[str, bytes] | None = None) -> str:
        txid, payload = self._payload(bytes(raw), parents)

        def attempt() -> str:
            response = self._request(
                "POST", f"{self.arc_url}/v1/tx", self._submit_headers, json={"rawTx": payload}
            )
            return outcome_of(response.status_code, self._json(response), txid)

        return self._with_retries(f"broadcast {txid}", attempt)

    def broadcast_many(
        self, raws: Sequence[bytes], parents: Mapping[str, bytes] | None = None
    ) -> list[str | ChainError]:
        """POST /v1/txs: one request for several transactions; per transaction its txid or its error."""
        payloads = [self._payload(bytes(raw), parents) for raw in raws]

        def attempt() -> list[Any]:
            response = self._request(
                "POST",
                f"{self.arc_url}/v1/txs",
                self._submit_headers,
                json=[{"rawTx": payload} for _, payload in payloads],
            )
            answers = self._json(response)
            if response.status_code != 200 or not isinstance(answers, list) or len(answers) != len(payloads):
                outcome_of(response.status_code, answers, "batch")  # raises the batch's own error
                raise _Transient(f"HTTP {response.status_code}: not a list of {len(payloads)} answers")
            return answers

        answers = self._with_retries(f"broadcast {len(payloads)} transactions", attempt)
        # ARC lists successes first, then failures: match answers to transactions by txid.
        by_txid = {answer.get("txid"): answer for answer in answers if isinstance(answer, dict)}
        results: list[str | ChainError] = []
        for txid, _ in payloads:
            answer = by_txid.get(txid)
            try:
                if answer is None:
                    raise _Transient(f"ARC's batch answer does not mention {txid}")
                results.append(outcome_of(int(answer.get("status") or 200), answer, txid))
            except ChainError as error:
                results.append(error)
            except _Transient as error:
                results.append(ChainUnavailable(str(error), txid=txid))
        return results

    def status(self, txid: str) -> TxStatus:
        def attempt() -> TxStatus | None:
            response = self._request("GET", f"{self.arc_url}/v1/tx/{txid}", self._arc_headers)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise _Transient(f"HTTP {response.status_code}")
            try:
                return parse_tx_status(self._json(response), self.height)
            except ValueError as error:
                raise _Transient(f"HTTP 200 that is not ARC's answer: {error}") from None

        return self._with_retries(f"status of {txid}", attempt) or TxStatus(txid, TxState.UNKNOWN)

    def policy(self) -> dict[str, Any]:
        """ARC's `GET /v1/policy` (fee rate and limits) to configure the builders on a real network."""

        def attempt() -> dict[str, Any]:
            response = self._request("GET", f"{self.arc_url}/v1/policy", self._arc_headers)
            body = self._json(response)
            if response.status_code != 200 or not isinstance(body, dict):
                raise _Transient(f"HTTP {response.status_code}")
            return body

        return self._with_retries("GET /v1/policy", attempt)

    # -- WhatsOnChain --------------------------------------------------------------------------------------

    def _woc_get(self, path: str) -> requests.Response | None:
        """The answer to GET `path`, or None for 404; transient failures retried."""
        url = f"{self.woc_url}{path}"

        def attempt() -> requests.Response | None:
            response = self._request("GET", url, self._woc_headers)
            if response.status_code == 404:
                return None
            if response.status_code in TRANSIENT_HTTP or response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code} from {url}")
            if not response.ok:
                raise ChainError(f"WhatsOnChain GET {path}: HTTP {response.status_code}", permanent=True)
            return response

        return self._with_retries(f"GET {path}", attempt)

    def utxos(self, address: str) -> list[Utxo]:
        """Unspent outputs of `address` from WhatsOnChain's /unspent/all, every page of it, without the ones
        a mempool transaction already spends."""
        parsed = parse_address(address)
        rows: list[dict[str, Any]] = []
        token = ""
        for _ in range(1000):  # pages; a wallet with more outputs than that is not this service's
            query = f"?token={token}" if token else ""
            response = self._woc_get(f"/address/{address}/unspent/all{query}")
            body = self._json(response) if response is not None else {"result": []}
            page = body.get("result") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise ChainUnavailable(f"WhatsOnChain's unspent outputs of {address} are not a result list")
            rows += page
            token = str(body.get("nextPageToken") or "")
            if not token:
                break
        return [
            Utxo(
                txid=str(row["tx_hash"]),
                vout=int(row["tx_pos"]),
                satoshis=int(row["value"]),
                script=parsed.locking_script(),
                height=int(row.get("height") or 0) or None,
            )
            for row in rows
            if not row.get("isSpentInMempoolTx")
        ]

    def get_transaction(self, txid: str) -> bytes:
        response = self._woc_get(f"/tx/{txid}/hex")
        if response is None:
            raise TransactionNotFound(f"transaction {txid} not found", txid=txid)
        return bytes.fromhex(response.text.strip())

    def spender(self, txid: str, vout: int) -> str | None:
        response = self._woc_get(f"/tx/{txid}/{vout}/spent")
        body = self._json(response) if response is not None else None
        return str(body["txid"]) if isinstance(body, dict) and body.get("txid") else None

    def height(self) -> int:
        """The best height, asked of WhatsOnChain at most once per `height_ttl` seconds."""
        now = self._clock()
        if self._height is not None and now - self._height[0] < self.height_ttl:
            return self._height[1]
        response = self._woc_get("/chain/info")
        if response is None:
            raise ChainUnavailable("WhatsOnChain has no /chain/info")
        height = int(self._json(response)["blocks"])
        self._height = (now, height)
        return height
