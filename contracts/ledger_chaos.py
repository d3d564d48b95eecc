"""Chaos mode of the local ledger, and the ARC callbacks it delivers.

With chaos off (the default) the ledger answers every submission on its merits. Tests and operators can make
it answer as ARC does under stress, so the pipeline's handling of each answer is exercised end to end:

- `busy`: HTTP 409 "deadline exceeded" (transient; nothing stored);
- `reject_later`: SEEN_ON_NETWORK now, REJECTED at the next block, the inputs left unspent (a node refused
  it after ARC first reported it seen);
- `malleate`: a copy of the transaction with one unlocking push changed (still valid: the unlocking script is
  not signed) reaches the mempool first, so the original is DOUBLE_SPEND_ATTEMPTED with the copy in
  `competingTxs`;
- `malleate_mined`: the same copy is mined first, so the original is SEEN_IN_ORPHAN_MEMPOOL;
- callbacks delivered `callback_delay` seconds late, and twice with `callback_twice`.

Faults come first from a queue (`queue`, consumed in order, one per submission), then at random with
`rates`. The plan lives in the ledger's SQLite file, so every process sharing the data folder (the HTTP
server, a worker with the in-process ledger, the test) sees the same one.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Any, Protocol

from bsv import Transaction
from bsv.script.script import Script as SdkScript

from contracts.chain import TxState
from contracts.errors import ScriptError
from contracts.numbers import decode_number, encode_number
from contracts.script import Instruction, Opcode, parse, serialize
from contracts.txverify import SpentOutput


class ChaosHost(Protocol):
    """What chaos needs of its ledger (`contracts.ledger.LocalLedger`): its key-value meta table, a write
    transaction on it, the callbacks registered for a transaction and its ARC status JSON."""

    def meta(self, key: str, default: str = "") -> str: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def callbacks(self, txid: str) -> list[tuple[str, str, bool]]: ...

    def arc_json(self, txid: str) -> dict[str, Any]: ...


log = logging.getLogger(__name__)
PLAN_KEY = "chaos"
MAX_MALLEATION_TRIES = 64


class Fault(StrEnum):
    BUSY = "busy"
    REJECT_LATER = "reject_later"
    MALLEATE = "malleate"
    MALLEATE_MINED = "malleate_mined"


class Chaos:
    """The chaos plan of one ledger, and delivery of its callbacks."""

    def __init__(self, ledger: ChaosHost) -> None:
        self.ledger = ledger
        self._random = random.Random()

    def plan(self) -> dict[str, Any]:
        stored = self.ledger.meta(PLAN_KEY)
        return json.loads(stored) if stored else {}

    def configure(
        self,
        *,
        queue: Sequence[str] = (),
        rates: dict[str, float] | None = None,
        callback_delay: float = 0.0,
        callback_twice: bool = False,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Set the plan (replacing any earlier one); ValueError for an unknown fault or a bad rate."""
        faults = [Fault(name).value for name in queue]
        rates = {Fault(name).value: float(rate) for name, rate in (rates or {}).items()}
        if any(not 0 <= rate <= 1 for rate in rates.values()) or sum(rates.values()) > 1:
            raise ValueError("chaos rates are probabilities that add up to at most 1")
        if callback_delay < 0 or callback_delay > 60:
            raise ValueError("callback_delay is 0 to 60 seconds")
        plan = {
            "queue": faults,
            "rates": rates,
            "callback_delay": float(callback_delay),
            "callback_twice": bool(callback_twice),
        }
        if seed is not None:
            self._random.seed(seed)
        self.ledger.set_meta(PLAN_KEY, json.dumps(plan))
        return plan

    def clear(self) -> None:
        self.ledger.set_meta(PLAN_KEY, "")

    def draw(self) -> Fault | None:
        """The fault for this submission, if any: the head of the queue, else one drawn by `rates`."""
        if not self.ledger.meta(PLAN_KEY):
            return None
        with self.ledger._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (PLAN_KEY,)).fetchone()
            plan = json.loads(row[0]) if row and row[0] else {}
            if plan.get("queue"):
                fault = Fault(plan["queue"].pop(0))
                db.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(plan), PLAN_KEY))
                return fault
        roll = self._random.random()
        for name, rate in plan.get("rates", {}).items():
            if roll < rate:
                return Fault(name)
            roll -= rate
        return None

    def notify(self, txid: str, state: TxState) -> None:
        """POST the transaction's status to every callback registered for it, as ARC does, in the
        background: final states (MINED, REJECTED) always, the others only to callbacks registered with
        full status updates; late and twice when the plan says so."""
        targets = [
            (url, token)
            for url, token, full in self.ledger.callbacks(txid)
            if full or state in (TxState.MINED, TxState.REJECTED)
        ]
        if not targets:
            return
        plan = self.plan()
        body = json.dumps(self.ledger.arc_json(txid)).encode()
        delay = float(plan.get("callback_delay") or 0)
        times = 2 if plan.get("callback_twice") else 1
        for url, token in targets:
            thread = threading.Thread(
                target=deliver, args=(url, token, body, delay, times), daemon=True, name="ledger-callback"
            )
            thread.start()


def deliver(url: str, token: str, body: bytes, delay: float, times: int) -> None:
    """ARC's callback: a JSON POST with the token as a bearer credential; retried a few times on failure."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    time.sleep(delay)
    for _ in range(times):
        for attempt in range(3):
            try:
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
                break
            except OSError as error:
                log.info("callback to %s failed (%s), attempt %d", url, error, attempt + 1)
                time.sleep(0.5 * 2**attempt)


def malleate(
    tx: Transaction, spent: Sequence[SpentOutput], valid: Callable[[Transaction], bool]
) -> bytes | None:
    """A copy of `tx` with one small-number push of an unlocking script moved by one, that `valid` still
    accepts; None when no such copy is found. The signatures still verify: they do not cover unlocking
    scripts. This is the third party who copies a claim from the mempool and races it."""
    tries = 0
    for index, tx_input in enumerate(tx.inputs):
        if tx_input.unlocking_script is None:
            continue
        try:
            instructions = parse(tx_input.unlocking_script.serialize())
        except ScriptError:
            continue
        for position, instruction in enumerate(instructions):
            value = small_number(instruction)
            if value is None:
                continue
            for changed in (value + 1, value - 1):
                if not 0 <= changed <= 255 or tries >= MAX_MALLEATION_TRIES:
                    continue
                tries += 1
                edited = [*instructions]
                edited[position] = Instruction.push(encode_number(changed))
                copy = Transaction.from_hex(tx.serialize())
                assert copy is not None
                copy.inputs[index].unlocking_script = SdkScript(serialize(edited))
                if valid(copy):
                    return bytes(copy.serialize())
    return None


def small_number(instruction: Instruction) -> int | None:
    """The value a push of a number 0..255 stands for (a pixel), else None."""
    if instruction.op == Opcode.OP_0:
        return 0
    if Opcode.OP_1 <= instruction.op <= Opcode.OP_16:
        return int(instruction.op) - int(Opcode.OP_1) + 1
    if instruction.data is not None and 1 <= len(instruction.data) <= 2:
        try:
            value = decode_number(instruction.data)
        except ScriptError:
            return None
        return value if 0 <= value <= 255 else None
    return None
