"""LocalLedger: acceptance, every rejection path, mining, persistence across restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from bsv import Transaction
from bsv.merkle_path import MerklePath
from ledger_helpers import ALICE, BOB, MALLORY, reverify_ledger_with_bitcoinx

from contracts.address import p2pkh_locking_script
from contracts.chain import ChainBackend, TxState, Utxo
from contracts.errors import DoubleSpend, TransactionNotFound, TransactionRejected
from contracts.fees import FeeRate
from contracts.ledger import LocalLedger, block_leaves, merkle_levels
from contracts.transactions import build_payment, sign_p2pkh_inputs, unsigned_input
from contracts.txverify import output, parse_transaction

RATE = FeeRate(100)


@pytest.fixture
def ledger(tmp_path: Path) -> LocalLedger:
    return LocalLedger(tmp_path / "ledger", fee_rate=RATE)


@pytest.fixture
def funded(ledger: LocalLedger) -> LocalLedger:
    ledger.fund(ALICE.address, 100_000)
    return ledger


def pay(ledger: LocalLedger, satoshis: int = 10_000, to: str = BOB.address, rate: FeeRate = RATE) -> bytes:
    return build_payment(ledger.utxos(ALICE.address), ALICE, to, satoshis, fee_rate=rate).raw


def test_it_is_a_chain_backend(ledger: LocalLedger) -> None:
    assert isinstance(ledger, ChainBackend)
    assert ledger.height() == 0


def test_it_funds_an_address_from_the_faucet(ledger: LocalLedger) -> None:
    txid = ledger.fund(ALICE.address, 5_000)
    [utxo] = ledger.utxos(ALICE.address)
    assert utxo == Utxo(txid, 0, 5_000, ALICE.locking_script(), None)
    assert ledger.status(txid).state is TxState.MEMPOOL
    assert ledger.fund(ALICE.address, 5_000) != txid, "two faucet payments must be distinct transactions"


def test_it_accepts_a_payment_and_moves_the_coins(funded: LocalLedger) -> None:
    raw = pay(funded, 10_000)
    txid = funded.broadcast(raw)
    assert [u.satoshis for u in funded.utxos(BOB.address)] == [10_000]
    [change] = funded.utxos(ALICE.address)
    assert change.txid == txid and change.satoshis == 100_000 - 10_000 - parse_fee(funded, raw)
    assert funded.get_transaction(txid) == raw
    assert reverify_ledger_with_bitcoinx(funded) == 1


def parse_fee(ledger: LocalLedger, raw: bytes) -> int:
    [entry] = [e for e in ledger.dump() if e.raw == raw]
    return entry.fee


def test_it_mines_the_mempool_and_counts_confirmations(funded: LocalLedger) -> None:
    txid = funded.broadcast(pay(funded))
    assert funded.mine() == [1]
    status = funded.status(txid)
    assert (status.state, status.block_height, status.confirmations) == (TxState.MINED, 1, 1)
    funded.mine(2)
    assert funded.status(txid).confirmations == 3
    assert funded.mempool() == []
    assert funded.utxos(BOB.address)[0].height == 1


def test_it_accepts_the_same_transaction_twice_without_harm(funded: LocalLedger) -> None:
    raw = pay(funded)
    assert funded.broadcast(raw) == funded.broadcast(raw)
    assert len(funded.utxos(BOB.address)) == 1


def test_it_answers_the_same_transaction_sent_at_once_by_several_threads(funded: LocalLedger) -> None:
    """Two workers may send the same claim at the same moment: each gets the status, as from ARC, and the
    transaction is stored once (it was an IntegrityError for all but the first)."""
    raw = pay(funded)
    start = threading.Barrier(8)
    answers: list[object] = []

    def submit() -> None:
        start.wait()
        try:
            answers.append(funded.broadcast(raw))
        except Exception as error:  # recorded, so the assertion names it
            answers.append(error)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    txid = parse_transaction(raw).txid()
    assert answers == [txid] * 8
    assert funded.status(txid).state is TxState.MEMPOOL
    assert len(funded.utxos(BOB.address)) == 1


def test_it_rejects_a_double_spend_in_the_mempool(funded: LocalLedger) -> None:
    coins = funded.utxos(ALICE.address)
    first = build_payment(coins, ALICE, BOB.address, 10_000, fee_rate=RATE)
    second = build_payment(coins, ALICE, MALLORY.address, 10_000, fee_rate=RATE)
    funded.broadcast(first.raw)
    with pytest.raises(DoubleSpend) as caught:
        funded.broadcast(second.raw)
    assert caught.value.code == "DOUBLE_SPEND_ATTEMPTED" and caught.value.permanent
    assert caught.value.competing_txids == (first.txid,)
    assert funded.status(second.txid).state is TxState.DOUBLE_SPEND
    assert funded.utxos(MALLORY.address) == []
    assert funded.spender(coins[0].txid, coins[0].vout) == first.txid
    with pytest.raises(DoubleSpend):
        funded.broadcast(second.raw)  # known: the same answer again, nothing new stored
    funded.mine()
    loser = funded.status(second.txid)
    assert (loser.state, loser.detail) == (TxState.REJECTED, "double spend attempted")
    winner = funded.status(first.txid)
    assert (winner.state, winner.detail) == (TxState.MINED, "previously double spend attempted")


def test_it_rejects_a_double_spend_of_a_mined_output(funded: LocalLedger) -> None:
    coins = funded.utxos(ALICE.address)
    funded.broadcast(build_payment(coins, ALICE, BOB.address, 10_000, fee_rate=RATE).raw)
    funded.mine()
    late = build_payment(coins, ALICE, MALLORY.address, 9_000, fee_rate=RATE)
    with pytest.raises(DoubleSpend) as caught:
        funded.broadcast(late.raw)
    assert (caught.value.code, caught.value.competing_txids) == ("SEEN_IN_ORPHAN_MEMPOOL", ())
    assert funded.status(late.txid).state is TxState.ORPHAN


def test_it_lets_only_one_of_two_racing_spends_in(funded: LocalLedger) -> None:
    coins = funded.utxos(ALICE.address)
    racers = [
        build_payment(coins, ALICE, payee.address, 10_000, fee_rate=RATE).raw for payee in (BOB, MALLORY)
    ]
    outcomes: list[str] = []

    def submit(raw: bytes) -> None:
        try:
            funded.broadcast(raw)
            outcomes.append("accepted")
        except DoubleSpend as error:
            outcomes.append(error.code or "")

    threads = [threading.Thread(target=submit, args=(raw,)) for raw in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["DOUBLE_SPEND_ATTEMPTED", "accepted"]


def test_it_rejects_a_spend_of_an_unknown_output(ledger: LocalLedger) -> None:
    ghost = Utxo("ab" * 32, 0, 50_000, ALICE.locking_script())
    raw = build_payment([ghost], ALICE, BOB.address, 10_000, fee_rate=RATE).raw
    with pytest.raises(TransactionRejected, match="parent transaction not found") as caught:
        ledger.broadcast(raw)
    assert caught.value.code == "460"
    assert ledger.status(caught.value.txid or "").state is TxState.UNKNOWN, "a refusal is not stored"


def test_it_rejects_a_fee_below_the_floor(funded: LocalLedger) -> None:
    cheap = pay(funded, rate=FeeRate(10))
    with pytest.raises(TransactionRejected, match="below 100 sat/kB") as caught:
        funded.broadcast(cheap)
    assert caught.value.code == "465"


def test_it_rejects_a_payment_redirected_after_signing(funded: LocalLedger) -> None:
    tx = parse_transaction(pay(funded))
    tx.outputs[0].locking_script = type(tx.outputs[0].locking_script)(p2pkh_locking_script(MALLORY.hash160))
    with pytest.raises(TransactionRejected, match="input 0: script failed") as caught:
        funded.broadcast(tx.serialize())
    assert caught.value.code == "461"


def test_it_rejects_a_non_final_transaction(funded: LocalLedger) -> None:
    coins = funded.utxos(ALICE.address)
    tx = parse_transaction(build_payment(coins, ALICE, BOB.address, 10_000, fee_rate=RATE).raw)
    tx.locktime = 50  # a height far ahead, with a non-final sequence: not minable yet
    tx.inputs[0].sequence = 0
    with pytest.raises(TransactionRejected, match="non-final") as caught:
        funded.broadcast(tx.serialize())
    # ARC does not check finality; the node refuses it and ARC reports REJECTED (HTTP 200).
    assert caught.value.code == "REJECTED"
    assert funded.status(tx.txid()).state is TxState.REJECTED


def test_it_rejects_an_oversize_transaction(ledger: LocalLedger) -> None:
    ledger.fund(ALICE.address, 2_000_000)
    [coin] = ledger.utxos(ALICE.address)
    # Built by hand: the builders themselves refuse to produce an oversize transaction.
    huge_script = b"\x6a\x4e" + (10_000_000).to_bytes(4, "little") + bytes(10_000_000)
    tx = Transaction([unsigned_input(coin)], [output(huge_script, 0)], version=1)
    sign_p2pkh_inputs(tx, ALICE)
    with pytest.raises(TransactionRejected, match="over the 10000000-byte policy limit") as caught:
        ledger.broadcast(tx.serialize())
    assert caught.value.code == "474"


def test_it_rejects_malformed_bytes(ledger: LocalLedger) -> None:
    with pytest.raises(TransactionRejected) as caught:
        ledger.broadcast(b"\x01\x00\x00\x00\xff")
    assert caught.value.code == "400"


def test_it_refuses_unknown_transactions(ledger: LocalLedger) -> None:
    with pytest.raises(TransactionNotFound):
        ledger.get_transaction("cd" * 32)
    assert ledger.status("cd" * 32).state is TxState.UNKNOWN


def test_it_keeps_utxos_and_mempool_across_a_restart(tmp_path: Path) -> None:
    first = LocalLedger(tmp_path / "ledger", fee_rate=RATE)
    first.fund(ALICE.address, 100_000)
    first.mine()
    pending = first.broadcast(pay(first))
    utxos_before = first.utxos(BOB.address) + first.utxos(ALICE.address)
    first.close()

    second = LocalLedger(tmp_path / "ledger", fee_rate=RATE)
    assert second.height() == 1
    assert second.mempool() == [pending]
    assert second.utxos(BOB.address) + second.utxos(ALICE.address) == utxos_before
    second.mine()
    assert second.status(pending).confirmations == 1


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_it_proves_a_mined_transaction_with_a_merkle_path(ledger: LocalLedger, count: int) -> None:
    txids = [ledger.fund(ALICE.address, 1_000 + n) for n in range(count)]
    ledger.mine()
    root = merkle_levels(block_leaves(1, txids))[-1][0][::-1].hex()
    for txid in txids:
        path = MerklePath.from_hex(ledger.merkle_path_hex(txid))
        assert path.block_height == 1
        assert path.compute_root(txid) == root, "every transaction proves the same root"
    assert ledger.merkle_path_hex(ledger.fund(ALICE.address, 5)) == "", "nothing to prove while unmined"
