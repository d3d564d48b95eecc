"""The chain backend interface: what the builders and the service need from a blockchain, and nothing more.

Two implementations: `contracts.ledger.LocalLedger` (an embedded, persistent, strict regtest-style ledger) and
`contracts.arc.ArcBackend` (ARC for broadcast, WhatsOnChain for lookups). Failures raise `ChainError`
subclasses whose `permanent` flag tells a worker whether to retry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class TxState(StrEnum):
    UNKNOWN = "unknown"  # the backend has never seen it (or forgot it)
    MEMPOOL = "mempool"  # accepted, not yet in a block
    MINED = "mined"  # in a block; see confirmations
    REJECTED = "rejected"  # the backend refused it


@dataclass(frozen=True)
class TxStatus:
    txid: str
    state: TxState
    confirmations: int = 0
    block_height: int | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


@dataclass(frozen=True)
class Utxo:
    """An unspent output. `height` is None while its transaction is in the mempool."""

    txid: str
    vout: int
    satoshis: int
    script: bytes
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "vout": self.vout,
            "satoshis": self.satoshis,
            "script": self.script.hex(),
            "height": self.height,
        }


@runtime_checkable
class ChainBackend(Protocol):
    """What every backend offers. Methods raise ChainError (with `permanent`) on failure."""

    def broadcast(self, raw: bytes) -> str:
        """Submit a serialized transaction; return its txid. Broadcasting a known transaction again is not
        an error (it returns the txid), so a worker can safely rebroadcast after a crash."""
        ...

    def status(self, txid: str) -> TxStatus: ...

    def utxos(self, address: str) -> list[Utxo]:
        """Unspent P2PKH outputs paying `address`, mempool ones included, minus those a mempool tx spends."""
        ...

    def get_transaction(self, txid: str) -> bytes:
        """The serialized transaction; TransactionNotFound if unknown."""
        ...

    def height(self) -> int:
        """The height of the best block."""
        ...
