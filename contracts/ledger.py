"""LocalLedger: a persistent, strict, regtest-style blockchain in one SQLite file.

It is the embedded default chain backend and the test double of the real network, so it is strict where the
network is: every input runs through the interpreter with the same checks as the transaction builders
(`contracts.txverify`), double spends (mempool and chain), spends of unknown outputs, fees below the floor,
non-final and oversize transactions are rejected with ARC's error codes. Accepted transactions wait in a
mempool until `mine()` puts them in a block. A faucet creates coinbase-like outputs to fund a development
wallet. Everything lives in SQLite (WAL mode), so a restart loses nothing and several processes (the HTTP
server, the CLI, tests) can share one data folder.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsv import Transaction, TransactionInput
from bsv.script.script import Script

from contracts.address import hash160_of_p2pkh_script, parse_address
from contracts.chain import TxState, TxStatus, Utxo
from contracts.errors import (
    FeeTooLowError,
    TransactionNotFound,
    TransactionRejected,
    TransactionTooLargeError,
    VerificationError,
)
from contracts.fees import FeeRate
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.txverify import (
    SpentOutput,
    parse_transaction,
    verify_transaction,
)

DB_NAME = "ledger.sqlite3"
NULL_TXID = "00" * 32
COINBASE_INDEX = 0xFFFFFFFF
SEQUENCE_FINAL = 0xFFFFFFFF
LOCKTIME_THRESHOLD = 500_000_000  # below: a block height; at or above: a unix time

# ARC's error numbering (RFC 7807 bodies with these as `status`), reused so clients handle both alike.
ERROR_TITLES = {
    "409": "Transaction is not final",
    "461": "Unlocking script failed",
    "462": "Inputs are unknown or spent",
    "463": "Malformed transaction",
    "465": "Fee too low",
    "466": "Conflicting transaction found (double spend)",
    "474": "Transaction too large",
}

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
CREATE TABLE IF NOT EXISTS rejected (
    txid TEXT PRIMARY KEY, code TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


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
    return TransactionRejected(f"{ERROR_TITLES[code]}: {reason}", code=code, txid=txid)


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

    # -- ChainBackend --------------------------------------------------------------------------------------

    def height(self) -> int:
        return int(self._db().execute("SELECT MAX(height) FROM blocks").fetchone()[0])

    def broadcast(self, raw: bytes) -> str:
        """Validate `raw` and accept it into the mempool, or raise TransactionRejected with an ARC code."""
        try:
            tx = parse_transaction(bytes(raw))
        except VerificationError as error:
            raise rejection("463", str(error), None) from None
        txid = tx.txid()
        if self._db().execute("SELECT 1 FROM txs WHERE txid = ?", (txid,)).fetchone():
            return txid  # already accepted: rebroadcasting is harmless
        try:
            spent = self._check_inputs(tx, txid)
            self._check_final(tx, txid)
            check = verify_transaction(tx, spent, fee_rate=self.fee_rate, policy=self.limits)
        except TransactionRejected as error:
            self._remember_rejection(txid, error)
            raise
        except VerificationError as error:
            code = "461"
            if isinstance(error, FeeTooLowError):
                code = "465"
            elif isinstance(error, TransactionTooLargeError):
                code = "474"
            elif error.input_index is None:
                code = "463"
            rejected = rejection(code, str(error), txid)
            self._remember_rejection(txid, rejected)
            raise rejected from None
        with self._write() as db:
            # Checked again under the write lock: another thread may have spent an input meanwhile.
            self._check_inputs(tx, txid, db)
            self._store(db, tx, txid, bytes(raw), kind="tx", fee=check.fee)
            db.execute("DELETE FROM rejected WHERE txid = ?", (txid,))
        return txid

    def status(self, txid: str) -> TxStatus:
        db = self._db()
        row = db.execute("SELECT block_height FROM txs WHERE txid = ?", (txid,)).fetchone()
        if row is not None:
            if row[0] is None:
                return TxStatus(txid, TxState.MEMPOOL)
            return TxStatus(txid, TxState.MINED, self.height() - row[0] + 1, row[0])
        rejected = db.execute("SELECT code, reason FROM rejected WHERE txid = ?", (txid,)).fetchone()
        if rejected is not None:
            return TxStatus(txid, TxState.REJECTED, detail=f"{rejected[0]}: {rejected[1]}")
        return TxStatus(txid, TxState.UNKNOWN)

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
            from contracts.txverify import output

            tx = Transaction([coinbase_input], [output(parsed.locking_script(), satoshis)], version=1)
            raw = tx.serialize()
            self._store(db, tx, tx.txid(), raw, kind="faucet", fee=0)
        return tx.txid()

    def mine(self, blocks: int = 1) -> list[int]:
        """Mine `blocks` blocks; the first takes the whole mempool. Returns the new heights."""
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
                block_hash = sha256d(header + b"".join(bytes.fromhex(txid) for txid in txids)).hex()
                db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)", (height + 1, block_hash, prev_hash, now))
                db.execute("UPDATE txs SET block_height = ? WHERE block_height IS NULL", (height + 1,))
            heights.append(height + 1)
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
            "utxos": utxo_count,
            "utxo_satoshis": utxo_value,
            "fee_rate_sat_per_kb": self.fee_rate.satoshis_per_kb,
        }

    def policy(self) -> dict[str, Any]:
        """The ARC `GET /v1/policy` document for this ledger."""
        return {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "policy": {
                "maxscriptsizepolicy": self.limits.max_script_bytes,
                "maxtxsizepolicy": self.limits.max_transaction_bytes,
                "maxscriptnumlengthpolicy": self.limits.max_number_bytes,
                "maxstackmemoryusagepolicy": self.limits.max_stack_memory_bytes,
                "miningFee": {"satoshis": self.fee_rate.satoshis_per_kb, "bytes": 1000},
            },
        }

    # -- internals -----------------------------------------------------------------------------------------

    def _check_inputs(
        self, tx: Transaction, txid: str, db: sqlite3.Connection | None = None
    ) -> list[SpentOutput]:
        db = db or self._db()
        spent = []
        for index, tx_input in enumerate(tx.inputs):
            outpoint = f"{tx_input.source_txid}:{tx_input.source_output_index}"
            if tx_input.source_txid == NULL_TXID:
                raise rejection(
                    "463", f"input {index} is a coinbase input; only the ledger makes those", txid
                )
            row = db.execute(
                "SELECT satoshis, script, spent_by FROM outputs WHERE txid = ? AND vout = ?",
                (tx_input.source_txid, tx_input.source_output_index),
            ).fetchone()
            if row is None:
                raise rejection("462", f"input {index} spends unknown output {outpoint}", txid)
            satoshis, script, spent_by = row
            if spent_by is not None and spent_by != txid:
                where = self.status(spent_by)
                place = "the mempool" if where.state is TxState.MEMPOOL else f"block {where.block_height}"
                raise rejection(
                    "466", f"input {index} spends {outpoint}, already spent by {spent_by} in {place}", txid
                )
            spent.append(SpentOutput(int(satoshis), bytes(script)))
        return spent

    def _check_final(self, tx: Transaction, txid: str) -> None:
        if tx.locktime == 0 or all(tx_input.sequence == SEQUENCE_FINAL for tx_input in tx.inputs):
            return
        next_height = self.height() + 1
        if tx.locktime < LOCKTIME_THRESHOLD and tx.locktime < next_height:
            return
        if tx.locktime >= LOCKTIME_THRESHOLD and tx.locktime < int(time.time()):
            return
        raise rejection("409", f"lock time {tx.locktime} is in the future (next block {next_height})", txid)

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
        for vout, tx_output in enumerate(tx.outputs):
            script = tx_output.locking_script.serialize()
            db.execute(
                "INSERT INTO outputs VALUES (?, ?, ?, ?, ?, NULL)",
                (txid, vout, tx_output.satoshis, script, hash160_of_p2pkh_script(script)),
            )

    def _remember_rejection(self, txid: str | None, error: TransactionRejected) -> None:
        if txid is None:
            return
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?)",
                (txid, error.code or "", str(error), time.time()),
            )


def entries_to_json(entries: list[LedgerEntry]) -> str:
    return json.dumps([entry.to_json() for entry in entries], indent=2)
