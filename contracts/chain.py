"""The chain backend interface: what the builders and the service need from a blockchain, and nothing more.

Two implementations: `contracts.ledger.LocalLedger` (an embedded, persistent, strict regtest-style ledger) and
`contracts.arc.ArcBackend` (ARC for broadcast, WhatsOnChain for lookups). Outcomes are types, never message
text: `broadcast` returns the txid or raises `DoubleSpend` (an input is spent by a competitor, with the
competitors' txids when known), `TransactionRejected` (refused for good, with ARC's code) or
`ChainUnavailable` (transient: try again later); `status` returns a `TxState`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from contracts.errors import ChainError


class TxState(StrEnum):
    UNKNOWN = "unknown"  # the backend has never seen it (or forgot it)
    PENDING = "pending"  # received, not yet seen on the network (ARC: QUEUED .. ACCEPTED_BY_NETWORK)
    MEMPOOL = "mempool"  # accepted by the network, not yet in a block (ARC: SEEN_ON_NETWORK)
    MINED = "mined"  # in a block; see confirmations
    DOUBLE_SPEND = "double_spend"  # a competitor spends one of its inputs (ARC: DOUBLE_SPEND_ATTEMPTED)
    ORPHAN = "orphan"  # an input is unknown or already spent in a block (ARC: SEEN_IN_ORPHAN_MEMPOOL)
    REJECTED = "rejected"  # refused for good (ARC: REJECTED, MINED_IN_STALE_BLOCK is not this)

    @property
    def conflicted(self) -> bool:
        """Whether who spent the inputs decides what happened (a competitor may have won)."""
        return self in (TxState.DOUBLE_SPEND, TxState.ORPHAN, TxState.REJECTED)


@dataclass(frozen=True)
class TxStatus:
    txid: str
    state: TxState
    confirmations: int = 0
    block_height: int | None = None
    detail: str = ""
    competing_txids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["competing_txids"] = list(self.competing_txids)
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

    def broadcast(self, raw: bytes, parents: Mapping[str, bytes] | None = None) -> str:
        """Submit a serialized transaction; return its txid. Broadcasting a known transaction again is not
        an error (it returns the txid), so a worker can safely rebroadcast after a crash.

        `parents` (txid -> raw transaction) are the transactions its inputs spend, where the caller has
        them: ARC then receives Extended Format and need not look the parents up. Raises DoubleSpend,
        TransactionRejected or ChainUnavailable."""
        ...

    def broadcast_many(
        self, raws: Sequence[bytes], parents: Mapping[str, bytes] | None = None
    ) -> list[str | ChainError]:
        """Submit several transactions in one request (ARC's /v1/txs); per transaction its txid or the
        error `broadcast` would have raised. Raises ChainUnavailable when the request as a whole failed."""
        ...

    def spender(self, txid: str, vout: int) -> str | None:
        """The txid of the transaction (mempool or mined) that spends output `vout` of `txid`, or None
        while it is unspent."""
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
