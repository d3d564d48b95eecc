"""The JSON form of an unsigned transaction's parts, shared by `UnsignedMigration` and `UnsignedRefund`.

An unsigned transaction waits (in a database row, in a signing request) until an admin signs it, and must
come back exactly: the same spent outputs and the same outputs give the same BIP143 preimages, so signatures
made meanwhile still fit. Every slot of a bounty shares one locking script of tens of kilobytes, so scripts
are written once, in `scripts`, and spent outputs and outputs name them by index.

    {"scripts": ["<hex>", ...],
     "spent": [[txid, vout, satoshis, script_index], ...],
     "outputs": [[script_index, satoshis], ...]}

`decode` refuses anything else with a `ValueError` that says what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.chain import Utxo

Outputs = tuple[tuple[bytes, int], ...]


def encode(spent: Sequence[Utxo], outputs: Sequence[tuple[bytes, int]]) -> dict[str, Any]:
    scripts: list[bytes] = []
    index: dict[bytes, int] = {}

    def number(script: bytes) -> int:
        if script not in index:
            index[script] = len(scripts)
            scripts.append(script)
        return index[script]

    return {
        "spent": [[u.txid, u.vout, u.satoshis, number(u.script)] for u in spent],
        "outputs": [[number(script), satoshis] for script, satoshis in outputs],
        "scripts": [script.hex() for script in scripts],
    }


def decode(data: Any) -> tuple[tuple[Utxo, ...], Outputs]:
    if not isinstance(data, dict):
        raise ValueError("an unsigned transaction is a JSON object")
    try:
        scripts = [bytes.fromhex(text) for text in data["scripts"]]
        spent = tuple(
            Utxo(_txid(txid), _count(vout, "vout"), _count(sats, "satoshis"), scripts[_count(at, "script")])
            for txid, vout, sats, at in data["spent"]
        )
        outputs = tuple(
            (scripts[_count(at, "script")], _count(sats, "satoshis")) for at, sats in data["outputs"]
        )
    except (KeyError, TypeError, IndexError) as error:
        raise ValueError(f"not an unsigned transaction: {type(error).__name__} {error}") from None
    if not spent or not outputs:
        raise ValueError("an unsigned transaction spends something and pays something")
    return spent, outputs


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, not {value!r}")
    return value


def _txid(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise ValueError(f"a txid is 64 lowercase hex digits, not {value!r}")
    return value
