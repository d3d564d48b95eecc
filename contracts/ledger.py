"""LocalLedger: a persistent, strict, regtest-style blockchain in one SQLite file, that answers as ARC does.

It is the embedded default chain backend and the test double of the real network, so it is strict where the
network is and answers what ARC answers (bitcoin-sv/arc `pkg/api/arc.yaml`, `pkg/api/status.go`,
`test/submit_03_double_spending_test.go`):

- every input runs through the interpreter with the same checks as the transaction builders
  (`contracts.txverify`); a refusal raises `TransactionRejected` with ARC's status code (460 parent not
  found, 461 script, 462 inputs, 463 malformed, 464 outputs (dust), 465 fee, 474 size) and is not stored;
- a valid transaction that spends an output already spent is stored as ARC stores it: DOUBLE_SPEND_ATTEMPTED
  with the competitors when they are in the mempool, SEEN_IN_ORPHAN_MEMPOOL when the output is spent in a
  block, and REJECTED once a competitor is mined. `broadcast` raises `DoubleSpend` for both;
- accepted transactions wait in a mempool until `mine()` puts them in a block.

A faucet creates coinbase-like outputs to fund a development wallet. `chaos` (see `contracts.ledger_chaos`)
makes it answer as ARC does under stress. Everything lives in SQLite (WAL mode), so a restart loses nothing
and several processes (the HTTP server, the CLI, workers, tests) can share one data folder.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsv import Transaction, TransactionInput
from bsv.merkle_path import MerklePath
from bsv.script.script import Script

from contracts.address import hash160_of_p2pkh_script, parse_address, sha256d
from contracts.chain import TxState, TxStatus, Utxo
from contracts.errors import (
    ChainError,
    ChainUnavailable,
    DoubleSpend,
    FeeTooLowError,
    TransactionNotFound,
    TransactionRejected,
    TransactionTooLargeError,
    VerificationError,
)
from contracts.fees import FeeRate
from contracts.formats import BEEF_V1, read_submission
from contracts.ledger_chaos import Chaos, Fault, malleate
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.txverify import SpentOutput, parse_transaction, verify_transaction
from contracts.txverify import output as tx_output

DB_NAME = "ledger.sqlite3"
NULL_TXID = "00" * 32
COINBASE_INDEX = 0xFFFFFFFF
SEQUENCE_FINAL = 0xFFFFFFFF
LOCKTIME_THRESHOLD = 500_000_000  # below: a block height; at or above: a unix time
DUST_LIMIT = 1  # ARC's dust limit in satoshis; a data output (OP_FALSE OP_RETURN) may carry 0

# ARC's status codes with their titles and details (pkg/api/status.go).
ERRORS = {
    "400": ("Bad request", "The request seems to be malformed and cannot be processed"),
    "404": ("Not found", "The requested resource could not be found"),
    "409": ("Generic error", "Transaction could not be processed"),
    "460": (
        "Not extended format",
        "Missing input scripts: Transaction could not be transformed to extended format",
    ),
    "461": ("Malformed transaction", "Transaction is malformed and cannot be processed"),
    "462": ("Invalid inputs", "Transaction is invalid because the inputs are non-existent or spent"),
    "463": ("Malformed transaction", "Transaction is malformed and cannot be processed"),
    "464": ("Invalid outputs", "Transaction is invalid because the outputs are non-existent or invalid"),
    "465": ("Fee too low", "Fees are insufficient"),
    "466": (
        "Conflicting tx found",
        "Transaction is valid, but there is a conflicting tx in the block template",
    ),
    "474": ("Transaction size validation failed", "Transaction size validation failed"),
}
MIN_TX_BYTES = 61

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash TEXT NOT NULL, prev_hash TEXT NOT NULL, time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, txid TEXT NOT NULL UNIQUE, raw BLOB NOT NULL,
    kind TEXT NOT NULL, fee INTEGER NOT NULL, size INTEGER NOT NULL, accepted_at REAL NOT NULL,
    block_height INTEGER);
CREATE INDEX IF NOT EXISTS txs_block ON txs(block_height);
CREATE TABLE IF NOT EXISTS outputs (
    txid TEXT NOT NULL, vout INTEGER NOT NULL, satoshis INTEGER NOT NULL, script BLOB NOT NULL,
    hash160 BLOB, spent_by TEXT, PRIMARY KEY (txid, vout));
CREATE INDEX IF NOT EXISTS outputs_owner ON outputs(hash160, spent_by);
CREATE TABLE IF NOT EXISTS conflicts (
    txid TEXT PRIMARY KEY, raw BLOB NOT NULL, state TEXT NOT NULL, competing TEXT NOT NULL,
    detail TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS contests (
    txid TEXT NOT NULL, competitor TEXT NOT NULL, PRIMARY KEY (txid, competitor));
CREATE TABLE IF NOT EXISTS callbacks (
    txid TEXT NOT NULL, url TEXT NOT NULL, token TEXT NOT NULL, full_updates INTEGER NOT NULL,
    PRIMARY KEY (txid, url));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
DROP TABLE IF EXISTS rejected;
"""

# ARC's txStatus for each state, as the ledger reports it.
ARC_NAMES = {
    TxState.UNKNOWN: "UNKNOWN",
    TxState.PENDING: "STORED",
    TxState.MEMPOOL: "SEEN_ON_NETWORK",
    TxState.MINED: "MINED",
    TxState.DOUBLE_SPEND: "DOUBLE_SPEND_ATTEMPTED",
    TxState.ORPHAN: "SEEN_IN_ORPHAN_MEMPOOL",
    TxState.REJECTED: "REJECTED",
}
# Callbacks ARC sends without X-FullStatusUpdates: final states only.
FINAL_CALLBACK_STATES = (TxState.MINED, TxState.REJECTED)

# What a stored conflict is, in ARC's words.
CONFLICT_STATES = {
    "DOUBLE_SPEND_ATTEMPTED": TxState.DOUBLE_SPEND,
    "SEEN_IN_ORPHAN_MEMPOOL": TxState.ORPHAN,
    "REJECTED": TxState.REJECTED,
    "SEEN_ON_NETWORK": TxState.MEMPOOL,  # chaos: reported as seen, to be rejected at the next block
}


def merkle_levels(txids: Sequence[str]) -> list[list[bytes]]:
    """The Merkle tree of a block's txids (internal byte order), leaves first; an odd node pairs with
    itself, as Bitcoin's does."""
    levels = [[bytes.fromhex(txid)[::-1] for txid in txids]]
    while len(levels[-1]) > 1:
        row = levels[-1]
        levels.append(
            [sha256d(row[i] + (row[i + 1] if i + 1 < len(row) else row[i])) for i in range(0, len(row), 2)]
        )
    return levels


def block_leaves(height: int, txids: Sequence[str]) -> list[str]:
    """A block's Merkle leaves: a coinbase first, as in every real block (the ledger's is a placeholder id
    derived from the height), then its transactions in order. No block has a lone leaf."""
    return [sha256d(b"coinbase" + height.to_bytes(8, "little"))[::-1].hex(), *txids]


def merkle_path(txids: Sequence[str], txid: str, height: int) -> MerklePath:
    """The BUMP (BRC-74) proving `txid` in a block of `txids`: what ARC returns as `merklePath`."""
    levels = merkle_levels(txids)
    index = list(txids).index(txid)
    path: list[list[dict[str, Any]]] = []
    for depth, row in enumerate(levels[:-1]):
        position = index >> depth
        sibling = position ^ 1
        leaves: list[dict[str, Any]] = []
        if depth == 0:
            leaves.append({"offset": position, "hash_str": txid, "txid": True})
        if sibling < len(row):
            leaves.append({"offset": sibling, "hash_str": row[sibling][::-1].hex()})
        else:
            leaves.append({"offset": sibling, "duplicate": True})
        path.append(sorted(leaves, key=lambda leaf: int(leaf["offset"])))
    return MerklePath(height, path)


@dataclass(frozen=True)
class LedgerEntry:
    """One accepted transaction, in acceptance order."""

    txid: str
    raw: bytes
    kind: str
    fee: int
    size: int
    block_height: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "hex": self.raw.hex(),
            "kind": self.kind,
            "fee": self.fee,
            "size": self.size,
            "block_height": self.block_height,
            "where": "mempool" if self.block_height is None else f"block {self.block_height}",
        }


def rejection(code: str, reason: str, txid: str | None) -> TransactionRejected:
    """ARC's refusal: the message is ARC's `extraInfo` ("arc error <code>: <reason>")."""
    return TransactionRejected(f"arc error {code}: {reason}", code=code, txid=txid)


def rejection_for(error: VerificationError, txid: str) -> TransactionRejected:
    """ARC's code for a transaction that failed verification."""
    code = "461"
    if isinstance(error, FeeTooLowError):
        code = "465"
    elif isinstance(error, TransactionTooLargeError):
        code = "474"
    elif error.input_index is None:
        code = "463"
    return rejection(code, str(error), txid)


@dataclass(frozen=True)
class Conflict:
    """A valid transaction whose inputs a competitor spent first: what ARC then stores and reports."""

    arc_status: str
    competing: tuple[str, ...]
    detail: str


class LocalLedger:
    """A persistent local chain backend. Thread-safe; several processes may share `data_dir`."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        fee_rate: FeeRate | None = None,
        policy: Policy = DEFAULT_POLICY,
        network: str = "regtest",
    ):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.fee_rate = fee_rate or FeeRate()
        self.limits = policy
        self.network = network
        self._local = threading.local()
        self.chaos = Chaos(self)
        with self._write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)  # executescript would commit the open transaction
            if db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0] == 0:
                genesis = sha256d(b"digit-bounty local ledger genesis").hex()
                db.execute("INSERT INTO blocks VALUES (0, ?, ?, ?)", (genesis, NULL_TXID, int(time.time())))

    # -- storage -------------------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so check-then-insert is atomic
        across threads and processes."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def meta(self, key: str, default: str = "") -> str:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- ChainBackend --------------------------------------------------------------------------------------

    def height(self) -> int:
        return int(self._db().execute("SELECT MAX(height) FROM blocks").fetchone()[0])

    def broadcast(self, raw: bytes, parents: Mapping[str, bytes] | None = None) -> str:
        """Validate `raw` and accept it into the mempool; raise DoubleSpend or TransactionRejected (with
        ARC's code) or, in chaos mode, ChainUnavailable. `parents` are not needed: the ledger has them."""
        status = self.submit(bytes(raw))
        if status.state in (TxState.DOUBLE_SPEND, TxState.ORPHAN) or (
            status.state is TxState.REJECTED and status.competing_txids
        ):
            raise DoubleSpend(
                f"{status.txid} conflicts with {', '.join(status.competing_txids) or 'a mined spend'}",
                competing_txids=status.competing_txids,
                code=ARC_NAMES[status.state],
                txid=status.txid,
            )
        if status.state is TxState.REJECTED:
            raise TransactionRejected(
                f"{status.txid} was rejected: {status.detail}", code="REJECTED", txid=status.txid
            )
        return status.txid

    def broadcast_many(
        self, raws: Sequence[bytes], parents: Mapping[str, bytes] | None = None
    ) -> list[str | ChainError]:
        results: list[str | ChainError] = []
        for raw in raws:
            try:
                results.append(self.broadcast(raw))
            except ChainError as error:
                results.append(error)
        return results

    def submit(
        self,
        data: bytes,
        *,
        skip_fee: bool = False,
        callback: tuple[str, str, bool] | None = None,
    ) -> TxStatus:
        """Take a transaction as ARC's POST /v1/tx does (raw, Extended Format or BEEF) and return the
        status ARC answers with HTTP 200: SEEN_ON_NETWORK (MEMPOOL), the current status of a known one
        (no new validation), DOUBLE_SPEND_ATTEMPTED, SEEN_IN_ORPHAN_MEMPOOL, or REJECTED for what a node
        refuses (not final). A refusal by ARC's own validation raises TransactionRejected with ARC's code
        and is not stored. `callback` is (url, token, full_updates): POST status changes there."""
        fault = self.chaos.draw()
        if fault is Fault.BUSY:
            raise ChainUnavailable("context deadline exceeded (chaos)", code="409")
        try:
            submission = read_submission(bytes(data))
        except VerificationError as error:
            raise rejection("463" if data[:4] == BEEF_V1 else "400", str(error), None) from None
        for ancestor in submission.ancestors:
            self.submit(ancestor, skip_fee=skip_fee)
        tx = parse_transaction(submission.raw)
        txid = tx.txid()
        if callback is not None:
            with self._write() as db:
                db.execute("INSERT OR REPLACE INTO callbacks VALUES (?, ?, ?, ?)", (txid, *callback))
        known = self.status(txid)
        if known.state is not TxState.UNKNOWN:
            # Already known: ARC answers with the status it holds, a refusal included (metamorph's
            # ProcessTransaction), so the same bytes refused once are refused again without a look.
            return known
        if len(submission.raw) < MIN_TX_BYTES:
            raise rejection("463", f"transaction is {len(submission.raw)} bytes, under {MIN_TX_BYTES}", txid)
        if not tx.inputs or not tx.outputs:
            raise rejection("462", "transaction has no inputs or outputs", txid)
        try:
            self.limits.check_transaction_size(len(submission.raw))
        except TransactionTooLargeError as error:
            raise rejection("474", str(error), txid) from None
        spent, conflict = self._check_inputs(tx, txid)
        if submission.spent is not None and tuple(submission.spent) != tuple(spent):
            raise rejection("463", "the Extended Format data does not match the outputs it spends", txid)
        self._check_outputs(tx, txid)
        if not self._is_final(tx):
            return self._store_conflict(
                txid, submission.raw, Conflict("REJECTED", (), "invalid transaction: non-final")
            )
        try:
            check = verify_transaction(
                tx, spent, fee_rate=FeeRate(0) if skip_fee else self.fee_rate, policy=self.limits
            )
        except VerificationError as error:
            raise rejection_for(error, txid) from None
        if fault in (Fault.MALLEATE, Fault.MALLEATE_MINED) and conflict is None:
            copy = malleate(tx, spent, lambda candidate: self._valid(candidate, spent))
            if copy is not None:
                self.submit(copy)
                if fault is Fault.MALLEATE_MINED:
                    self.mine()
                spent, conflict = self._check_inputs(tx, txid)
        if conflict is not None:
            return self._store_conflict(txid, submission.raw, conflict)
        if fault is Fault.REJECT_LATER:
            return self._store_conflict(txid, submission.raw, Conflict("SEEN_ON_NETWORK", (), ""))
        with self._write() as db:
            # Checked again under the write lock: another thread or process may have spent an input, or
            # stored this very transaction, meanwhile. ARC answers a transaction it already has with its
            # status, so the second of two simultaneous submissions does too.
            if db.execute("SELECT 1 FROM txs WHERE txid = ?", (txid,)).fetchone() is not None:
                return self.status(txid)
            _, conflict = self._check_inputs(tx, txid, db)
            if conflict is None:
                self._store(db, tx, txid, submission.raw, kind="tx", fee=check.fee)
                db.execute("DELETE FROM conflicts WHERE txid = ?", (txid,))
        if conflict is not None:
            return self._store_conflict(txid, submission.raw, conflict)
        self.chaos.notify(txid, TxState.MEMPOOL)
        return self.status(txid)

    def status(self, txid: str) -> TxStatus:
        db = self._db()
        row = db.execute("SELECT block_height FROM txs WHERE txid = ?", (txid,)).fetchone()
        if row is not None:
            contested = tuple(
                str(other[0])
                for other in db.execute(
                    "SELECT competitor FROM contests WHERE txid = ? ORDER BY rowid", (txid,)
                )
            )
            if row[0] is not None:
                # ARC clears the competitors of a mined transaction and says they existed.
                detail = "previously double spend attempted" if contested else ""
                return TxStatus(txid, TxState.MINED, self.height() - row[0] + 1, row[0], detail)
            if contested:
                return TxStatus(txid, TxState.DOUBLE_SPEND, competing_txids=contested)
            return TxStatus(txid, TxState.MEMPOOL)
        conflict = db.execute(
            "SELECT state, competing, detail FROM conflicts WHERE txid = ?", (txid,)
        ).fetchone()
        if conflict is not None:
            arc_status, competing, detail = conflict
            return TxStatus(
                txid, CONFLICT_STATES[arc_status], detail=detail, competing_txids=tuple(json.loads(competing))
            )
        return TxStatus(txid, TxState.UNKNOWN)

    def block_txids(self, height: int) -> list[str]:
        rows = self._db().execute("SELECT txid FROM txs WHERE block_height = ? ORDER BY seq", (height,))
        return [str(row[0]) for row in rows]

    def merkle_path_hex(self, txid: str) -> str:
        """The BUMP of a mined transaction (empty while it is not mined)."""
        height = self.status(txid).block_height
        if height is None:
            return ""
        return str(merkle_path(block_leaves(height, self.block_txids(height)), txid, height).to_hex())

    def arc_json(self, txid: str) -> dict[str, Any]:
        """The transaction's status as ARC's JSON (TransactionStatus in arc.yaml; also a callback's body)."""
        status = self.status(txid)
        height = status.block_height
        return {
            "blockHash": (self.block_hash(height) or "") if height is not None else "",
            "blockHeight": height or 0,
            "competingTxs": list(status.competing_txids) or None,
            "extraInfo": status.detail,
            "merklePath": self.merkle_path_hex(txid) if status.state is TxState.MINED else "",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "txStatus": ARC_NAMES[status.state],
            "txid": txid,
        }

    def utxos(self, address: str) -> list[Utxo]:
        hash160 = parse_address(address).hash160
        rows = self._db().execute(
            "SELECT o.txid, o.vout, o.satoshis, o.script, t.block_height FROM outputs o "
            "JOIN txs t ON t.txid = o.txid WHERE o.hash160 = ? AND o.spent_by IS NULL ORDER BY t.seq, o.vout",
            (hash160,),
        )
        return [Utxo(txid, vout, sats, bytes(script), height) for txid, vout, sats, script, height in rows]

    def get_transaction(self, txid: str) -> bytes:
        row = self._db().execute("SELECT raw FROM txs WHERE txid = ?", (txid,)).fetchone()
        if row is None:
            raise TransactionNotFound(f"transaction {txid} is unknown to the local ledger", txid=txid)
        return bytes(row[0])

    def spender(self, txid: str, vout: int) -> str | None:
        row = (
            self._db()
            .execute("SELECT spent_by FROM outputs WHERE txid = ? AND vout = ?", (txid, vout))
            .fetchone()
        )
        return None if row is None or row[0] is None else str(row[0])

    # -- ledger operations ---------------------------------------------------------------------------------

    def fund(self, address: str, satoshis: int) -> str:
        """Faucet: a coinbase-like transaction paying `satoshis` to `address`, into the mempool."""
        parsed = parse_address(address)
        if not 0 < satoshis <= 21_000_000 * 100_000_000:
            raise ValueError(f"the faucet pays 1 sat to 21 million BSV, not {satoshis}")
        with self._write() as db:
            nonce = int((db.execute("SELECT value FROM meta WHERE key='faucet'").fetchone() or ["0"])[0]) + 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('faucet', ?)", (str(nonce),))
            # The nonce makes every faucet transaction unique, as a coinbase's height does.
            marker = b"faucet" + nonce.to_bytes(8, "little")
            coinbase_input = TransactionInput(
                source_txid=NULL_TXID,
                source_output_index=COINBASE_INDEX,
                unlocking_script=Script(bytes([len(marker)]) + marker),
            )
            tx = Transaction([coinbase_input], [tx_output(parsed.locking_script(), satoshis)], version=1)
            raw = tx.serialize()
            self._store(db, tx, tx.txid(), raw, kind="faucet", fee=0)
        return tx.txid()

    def mine(self, blocks: int = 1) -> list[int]:
        """Mine `blocks` blocks; the first takes the whole mempool. Returns the new heights.

        A conflict whose competitor is now in a block becomes REJECTED, as ARC reports it; so does a
        transaction that chaos reported as seen but the network never took."""
        heights = []
        for _ in range(blocks):
            with self._write() as db:
                height, prev_hash = db.execute(
                    "SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1"
                ).fetchone()
                txids = [
                    row[0]
                    for row in db.execute("SELECT txid FROM txs WHERE block_height IS NULL ORDER BY seq")
                ]
                now = int(time.time())
                header = (
                    bytes.fromhex(prev_hash) + (height + 1).to_bytes(4, "little") + now.to_bytes(8, "little")
                )
                root = merkle_levels(block_leaves(height + 1, txids))[-1][0]
                block_hash = sha256d(header + root).hex()
                db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)", (height + 1, block_hash, prev_hash, now))
                db.execute("UPDATE txs SET block_height = ? WHERE block_height IS NULL", (height + 1,))
                losers = [
                    row[0] for row in db.execute("SELECT txid FROM conflicts WHERE state != 'REJECTED'")
                ]
                db.execute(
                    "UPDATE conflicts SET state = 'REJECTED', detail = CASE state "
                    "WHEN 'SEEN_ON_NETWORK' THEN 'transaction rejected as not existing in node mempool' "
                    "ELSE 'double spend attempted' END, at = ? WHERE state != 'REJECTED'",
                    (time.time(),),
                )
            heights.append(height + 1)
            for txid in txids:
                self.chaos.notify(txid, TxState.MINED)
            for txid in losers:
                self.chaos.notify(txid, TxState.REJECTED)
        return heights

    def mempool(self) -> list[str]:
        rows = self._db().execute("SELECT txid FROM txs WHERE block_height IS NULL ORDER BY seq")
        return [row[0] for row in rows]

    def dump(self) -> list[LedgerEntry]:
        """Every accepted transaction in acceptance order."""
        rows = self._db().execute("SELECT txid, raw, kind, fee, size, block_height FROM txs ORDER BY seq")
        return [LedgerEntry(txid, bytes(raw), kind, fee, size, bh) for txid, raw, kind, fee, size, bh in rows]

    def block_hash(self, height: int) -> str | None:
        row = self._db().execute("SELECT hash FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else str(row[0])

    def callbacks(self, txid: str) -> list[tuple[str, str, bool]]:
        rows = self._db().execute("SELECT url, token, full_updates FROM callbacks WHERE txid = ?", (txid,))
        return [(str(url), str(token), bool(full)) for url, token, full in rows]

    def summary(self) -> dict[str, Any]:
        db = self._db()
        utxo_count, utxo_value = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(satoshis), 0) FROM outputs WHERE spent_by IS NULL"
        ).fetchone()
        return {
            "data": str(self.data_dir),
            "network": self.network,
            "height": self.height(),
            "best_block_hash": self.block_hash(self.height()),
            "transactions": db.execute("SELECT COUNT(*) FROM txs").fetchone()[0],
            "mempool": len(self.mempool()),
            "conflicts": db.execute("SELECT COUNT(*) FROM conflicts").fetchone()[0],
            "utxos": utxo_count,
            "utxo_satoshis": utxo_value,
            "fee_rate_sat_per_kb": self.fee_rate.satoshis_per_kb,
        }

    def policy(self) -> dict[str, Any]:
        """The ARC `GET /v1/policy` document for this ledger (schema `PolicyResponse` in arc.yaml)."""
        return {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "policy": {
                "maxscriptsizepolicy": self.limits.max_script_bytes,
                "maxtxsigopscountspolicy": 4_294_967_295,
                "maxtxsizepolicy": self.limits.max_transaction_bytes,
                "miningFee": {"satoshis": self.fee_rate.satoshis_per_kb, "bytes": 1000},
                "standardFormatSupported": True,
            },
        }

    # -- internals -----------------------------------------------------------------------------------------

    def _check_inputs(
        self, tx: Transaction, txid: str, db: sqlite3.Connection | None = None
    ) -> tuple[list[SpentOutput], Conflict | None]:
        """What each input spends, and the conflict when a competitor spent any of them first."""
        db = db or self._db()
        spent = []
        competing: list[str] = []
        mined_spend = False
        for index, tx_input in enumerate(tx.inputs):
            outpoint = f"{tx_input.source_txid}:{tx_input.source_output_index}"
            if tx_input.source_txid == NULL_TXID:
                raise rejection(
                    "462", f"input {index} is a coinbase input; only the ledger makes those", txid
                )
            row = db.execute(
                "SELECT o.satoshis, o.script, o.spent_by, s.block_height FROM outputs o "
                "LEFT JOIN txs s ON s.txid = o.spent_by WHERE o.txid = ? AND o.vout = ?",
                (tx_input.source_txid, tx_input.source_output_index),
            ).fetchone()
            if row is None:
                if db.execute("SELECT 1 FROM txs WHERE txid = ?", (tx_input.source_txid,)).fetchone():
                    raise rejection("462", f"input {index} spends {outpoint}, which does not exist", txid)
                raise rejection("460", f"input {index} spends {outpoint}: parent transaction not found", txid)
            satoshis, script, spent_by, spender_height = row
            if spent_by is not None and spent_by != txid:
                if spender_height is None:
                    competing.append(str(spent_by))
                else:
                    mined_spend = True
            spent.append(SpentOutput(int(satoshis), bytes(script)))
        if mined_spend:
            return spent, Conflict("SEEN_IN_ORPHAN_MEMPOOL", (), "an input is spent in a block")
        if competing:
            return spent, Conflict("DOUBLE_SPEND_ATTEMPTED", tuple(dict.fromkeys(competing)), "")
        return spent, None

    def _check_outputs(self, tx: Transaction, txid: str) -> None:
        for index, out in enumerate(tx.outputs):
            script = out.locking_script.serialize()
            is_data = script[:1] == b"\x6a" or script[:2] == b"\x00\x6a"  # (OP_FALSE) OP_RETURN
            if out.satoshis < DUST_LIMIT and not is_data:
                raise rejection("464", f"output {index} pays {out.satoshis} sat, under the dust limit", txid)

    def _is_final(self, tx: Transaction) -> bool:
        """Whether a node would take it now (ARC does not check; the node rejects it: REJECTED)."""
        if tx.locktime == 0 or all(tx_input.sequence == SEQUENCE_FINAL for tx_input in tx.inputs):
            return True
        if tx.locktime < LOCKTIME_THRESHOLD:
            return bool(tx.locktime < self.height() + 1)
        return tx.locktime < int(time.time())

    def _valid(self, tx: Transaction, spent: Sequence[SpentOutput]) -> bool:
        try:
            verify_transaction(tx, spent, fee_rate=self.fee_rate, policy=self.limits)
        except VerificationError:
            return False
        return True

    def _store(
        self, db: sqlite3.Connection, tx: Transaction, txid: str, raw: bytes, *, kind: str, fee: int
    ) -> None:
        db.execute(
            "INSERT INTO txs (txid, raw, kind, fee, size, accepted_at) VALUES (?, ?, ?, ?, ?, ?)",
            (txid, raw, kind, fee, len(raw), time.time()),
        )
        for tx_input in tx.inputs:
            if tx_input.source_txid != NULL_TXID:
                db.execute(
                    "UPDATE outputs SET spent_by = ? WHERE txid = ? AND vout = ?",
                    (txid, tx_input.source_txid, tx_input.source_output_index),
                )
        for vout, out in enumerate(tx.outputs):
            script = out.locking_script.serialize()
            db.execute(
                "INSERT INTO outputs VALUES (?, ?, ?, ?, ?, NULL)",
                (txid, vout, out.satoshis, script, hash160_of_p2pkh_script(script)),
            )

    def _store_conflict(self, txid: str, raw: bytes, conflict: Conflict) -> TxStatus:
        """Store a transaction ARC keeps without the network taking it; the competitors it names are
        flipped to DOUBLE_SPEND_ATTEMPTED too, as ARC flips the first-seen transaction."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO conflicts VALUES (?, ?, ?, ?, ?, ?)",
                (
                    txid,
                    raw,
                    conflict.arc_status,
                    json.dumps(conflict.competing),
                    conflict.detail,
                    time.time(),
                ),
            )
            for competitor in conflict.competing:
                db.execute("INSERT OR IGNORE INTO contests VALUES (?, ?)", (competitor, txid))
        status = self.status(txid)
        self.chaos.notify(txid, status.state)
        for competitor in conflict.competing:
            self.chaos.notify(competitor, TxState.DOUBLE_SPEND)
        return status
