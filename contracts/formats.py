"""The transaction formats ARC accepts, read and written in one place: raw, Extended Format and BEEF.

- raw: the transaction as the network serializes it.
- Extended Format (EF, BRC-30): raw with a marker `0000000000EF` after the version and, after each input, the
  satoshis and locking script of the output it spends. ARC prefers it: it can validate the scripts without
  looking the parents up (no 460 "parent not found" for a parent it has not seen yet).
- BEEF (BRC-62, version 1): the transaction with its unconfirmed ancestors (and proofs of the confirmed ones).

`to_extended_format` is what our ARC client sends; `read_submission` is what the local ledger reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bsv import Transaction
from bsv.utils import Reader, unsigned_to_varint

from contracts.errors import VerificationError
from contracts.txverify import SpentOutput, parse_transaction

EF_MARKER = bytes.fromhex("0000000000ef")
BEEF_V1 = (4022206465).to_bytes(4, "little")


@dataclass(frozen=True)
class Submission:
    """A transaction as submitted: its raw bytes, what EF says each input spends, and BEEF's ancestors."""

    raw: bytes
    spent: tuple[SpentOutput, ...] | None = None  # from EF: the sender's claim, to be checked
    ancestors: tuple[bytes, ...] = ()  # from BEEF: raw transactions to accept first, oldest first
    format: str = "raw"


def to_extended_format(raw: bytes, parents: Mapping[str, bytes]) -> bytes:
    """`raw` in Extended Format, with each input's spent output taken from `parents` (txid -> raw).

    Raises KeyError naming the first input whose parent is missing."""
    tx = parse_transaction(raw)
    for tx_input in tx.inputs:
        parent = parents.get(tx_input.source_txid)
        if parent is None:
            raise KeyError(tx_input.source_txid)
        tx_input.source_transaction = parse_transaction(parent)
    return bytes(tx.to_ef())


def read_submission(data: bytes) -> Submission:
    """Detect the format of `data` and read it; VerificationError if it is none of them or malformed."""
    if data[:4] == BEEF_V1:
        return _read_beef(data)
    if len(data) >= 10 and data[4:10] == EF_MARKER:
        return _read_extended(data)
    parse_transaction(data)
    return Submission(data)


def _read_extended(data: bytes) -> Submission:
    reader = Reader(data)
    try:
        version = reader.read(4)
        reader.read(6)
        inputs, spent = [], []
        for _ in range(_count(reader)):
            outpoint = _take(reader, 36)
            script = _take(reader, _count(reader))
            sequence = _take(reader, 4)
            satoshis = int.from_bytes(_take(reader, 8), "little")
            locking = _take(reader, _count(reader))
            inputs.append(outpoint + unsigned_to_varint(len(script)) + script + sequence)
            spent.append(SpentOutput(satoshis, locking))
        outputs = []
        for _ in range(_count(reader)):
            amount = _take(reader, 8)
            script = _take(reader, _count(reader))
            outputs.append(amount + unsigned_to_varint(len(script)) + script)
        locktime = _take(reader, 4)
    except (ValueError, TypeError) as error:
        raise VerificationError(f"malformed Extended Format transaction: {error}") from None
    if not reader.eof():
        raise VerificationError("malformed Extended Format transaction: trailing bytes")
    raw = (
        version
        + unsigned_to_varint(len(inputs))
        + b"".join(inputs)
        + unsigned_to_varint(len(outputs))
        + b"".join(outputs)
        + locktime
    )
    parse_transaction(raw)
    return Submission(raw, tuple(spent), format="ef")


def _read_beef(data: bytes) -> Submission:
    try:
        tx = Transaction.from_beef(data)
    except Exception as error:  # the SDK raises assorted types for truncated or inconsistent BEEF
        raise VerificationError(f"malformed BEEF: {error}") from None
    ancestors: list[bytes] = []
    seen: set[str] = set()

    def collect(node: Transaction) -> None:
        if node.merkle_path is not None:
            return  # mined: the ledger must know it already
        for tx_input in node.inputs:
            parent = tx_input.source_transaction
            if parent is not None and parent.txid() not in seen:
                seen.add(parent.txid())
                collect(parent)
                ancestors.append(parent.serialize())

    collect(tx)
    return Submission(tx.serialize(), ancestors=tuple(ancestors), format="beef")


def _count(reader: Reader) -> int:
    value = reader.read_var_int_num()
    if value is None:
        raise ValueError("truncated")
    return int(value)


def _take(reader: Reader, size: int) -> bytes:
    chunk = reader.read(size)
    if chunk is None or len(chunk) != size:
        raise ValueError("truncated")
    return bytes(chunk)
