"""ArcBackend: the real network. ARC broadcasts (bsv-sdk's ARC broadcaster, raw format), WhatsOnChain answers
lookups (UTXOs, transactions, height), both over HTTP with timeouts and retries.

Errors carry `permanent`: a transaction ARC rejected (bad script, double spend, low fee: HTTP 4xx and ARC's
46x codes, or a REJECTED txStatus) raises TransactionRejected, never retried; a timeout, a refused connection,
HTTP 429 or 5xx is retried with exponential backoff and finally raises ChainUnavailable (try again later).
Both services take a base URL, so the same code runs against the local ledger's HTTP server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from bsv import Transaction
from bsv.broadcasters.arc import ARC, ARCConfig
from bsv.broadcasters.broadcaster import BroadcastFailure
from bsv.http_client import SyncHttpClient

from contracts.address import parse_address
from contracts.chain import TxState, TxStatus, Utxo
from contracts.errors import ChainError, ChainUnavailable, TransactionNotFound, TransactionRejected

T = TypeVar("T")
TRANSIENT_HTTP = {0, 408, 425, 429, 500, 502, 503, 504}
ARC_REJECTED_STATES = {"REJECTED", "ERROR", "INVALID", "MALFORMED"}
ARC_MINED_STATES = {"MINED", "IMMUTABLE"}
ARC_DEFAULT_URLS = {"mainnet": "https://arc.taal.com", "testnet": "https://arc-test.taal.com"}
WOC_DEFAULT_URLS = {
    "mainnet": "https://api.whatsonchain.com/v1/bsv/main",
    "testnet": "https://api.whatsonchain.com/v1/bsv/test",
}


class _Transient(Exception):
    """Internal: a failure worth retrying."""


class ArcBackend:
    """Chain backend for mainnet/testnet (or the local ledger's HTTP server, for tests)."""

    def __init__(
        self,
        arc_url: str,
        woc_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.arc_url = arc_url.rstrip("/")
        self.woc_url = woc_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._session = requests.Session()
        self._arc_headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # An explicit broadcaster with its own client: bsv-sdk's defaults would pick a public endpoint.
        self._arc = ARC(
            self.arc_url,
            ARCConfig(api_key=api_key, sync_http_client=SyncHttpClient(int(timeout) or 1), format="raw"),
        )

    @classmethod
    def for_network(cls, network: str, *, api_key: str | None = None, **options: Any) -> ArcBackend:
        return cls(ARC_DEFAULT_URLS[network], WOC_DEFAULT_URLS[network], api_key=api_key, **options)

    def __repr__(self) -> str:  # no API key in logs
        return f"ArcBackend(arc_url={self.arc_url!r}, woc_url={self.woc_url!r})"

    # -- retry ---------------------------------------------------------------------------------------------

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

    # -- ARC -----------------------------------------------------------------------------------------------

    def broadcast(self, raw: bytes) -> str:
        tx = Transaction.from_hex(raw)
        if tx is None:
            raise TransactionRejected("malformed transaction: bsv-sdk cannot parse it", code="463")
        txid = tx.txid()

        def attempt() -> str:
            result = self._arc.sync_broadcast(tx, timeout=int(self.timeout) or 1)
            if not isinstance(result, BroadcastFailure):
                return str(result.txid or txid)
            http_status = (result.more or {}).get("http_status")
            code = str(result.code)
            if code == "ARC_TX_STATUS":
                raise TransactionRejected(f"ARC rejected {txid}: {result.description}", code=code, txid=txid)
            status = int(http_status) if http_status is not None else int(code) if code.isdigit() else 0
            if status in TRANSIENT_HTTP:
                raise _Transient(f"HTTP {status}: {result.description}")
            raise TransactionRejected(
                f"ARC rejected {txid} ({status}): {result.description}", code=str(status), txid=txid
            )

        return self._with_retries(f"broadcast {txid}", attempt)

    def status(self, txid: str) -> TxStatus:
        def attempt() -> dict[str, Any]:
            answer = self._arc.check_transaction_status(txid, timeout=int(self.timeout) or 1)
            if answer.get("status") == "failure":
                code = int(answer.get("code") or 0) if str(answer.get("code") or "0").isdigit() else 0
                if code in TRANSIENT_HTTP:
                    raise _Transient(f"HTTP {code}: {answer.get('detail')}")
            return answer

        answer = self._with_retries(f"status of {txid}", attempt)
        if answer.get("status") == "failure":
            if str(answer.get("code")) == "404":
                return TxStatus(txid, TxState.UNKNOWN)
            raise ChainError(f"ARC status of {txid}: {answer.get('detail')}", permanent=True)
        tx_status = str(answer.get("txStatus") or "UNKNOWN")
        detail = str(answer.get("extraInfo") or "")
        if tx_status in ARC_MINED_STATES and answer.get("blockHeight") is not None:
            block_height = int(answer["blockHeight"])
            return TxStatus(txid, TxState.MINED, self.height() - block_height + 1, block_height, detail)
        if tx_status in ARC_REJECTED_STATES:
            return TxStatus(txid, TxState.REJECTED, detail=f"{tx_status}: {detail}".strip(": "))
        if tx_status == "UNKNOWN":
            return TxStatus(txid, TxState.UNKNOWN, detail=detail)
        return TxStatus(txid, TxState.MEMPOOL, detail=f"{tx_status} {detail}".strip())

    # -- WhatsOnChain --------------------------------------------------------------------------------------

    def _woc_get(self, path: str) -> requests.Response:
        url = f"{self.woc_url}{path}"

        def attempt() -> requests.Response:
            try:
                response = self._session.get(url, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                raise _Transient(f"{type(error).__name__}: {error}") from None
            if response.status_code in TRANSIENT_HTTP:
                raise _Transient(f"HTTP {response.status_code} from {url}")
            return response

        response = self._with_retries(f"GET {path}", attempt)
        if response.status_code == 404:
            raise TransactionNotFound(f"WhatsOnChain has no {path}")
        if not response.ok:
            raise ChainError(f"WhatsOnChain GET {path}: HTTP {response.status_code}", permanent=True)
        return response

    def utxos(self, address: str) -> list[Utxo]:
        parsed = parse_address(address)
        rows = self._woc_get(f"/address/{address}/unspent").json()
        return [
            Utxo(
                txid=str(row["tx_hash"]),
                vout=int(row["tx_pos"]),
                satoshis=int(row["value"]),
                script=parsed.locking_script(),
                height=int(row["height"]) or None,
            )
            for row in rows
        ]

    def get_transaction(self, txid: str) -> bytes:
        try:
            return bytes.fromhex(self._woc_get(f"/tx/{txid}/hex").text.strip())
        except TransactionNotFound:
            raise TransactionNotFound(f"transaction {txid} not found", txid=txid) from None

    def height(self) -> int:
        return int(self._woc_get("/chain/info").json()["blocks"])

    def policy(self) -> dict[str, Any]:
        """ARC's `GET /v1/policy` (fee rate and limits) to configure the builders on a real network."""
        response = self._with_retries("GET /v1/policy", lambda: self._get_arc("/v1/policy"))
        result: dict[str, Any] = response.json()
        return result

    def _get_arc(self, path: str) -> requests.Response:
        try:
            url = f"{self.arc_url}{path}"
            response = self._session.get(url, headers=self._arc_headers, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise _Transient(str(error)) from None
        if response.status_code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {response.status_code}")
        if not response.ok:
            raise ChainError(f"ARC GET {path}: HTTP {response.status_code}", permanent=True)
        return response
