"""Shared helpers of the chain tests: actors' keys, a funded ledger, and the bitcoinx cross-check."""

from __future__ import annotations

from pathlib import Path

import bitcoinx
import numpy as np
from bitcoinx import InterpreterLimits, MinerPolicy, TxInputContext, TxOutput

from contracts.chain import Utxo
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.ledger import NULL_TXID, LocalLedger
from contracts.model import IntegerModel
from contracts.slot import SlotContract
from contracts.transactions import build_deploy
from contracts.txverify import parse_transaction

# Fixed test keys (testnet, never funded anywhere real) so failures are reproducible.
ALICE = Key(bytes.fromhex("a1" * 32), "testnet")  # the funder / wallet owner
BOB = Key(bytes.fromhex("b0" * 32), "testnet")  # a contributor
OPERATOR = Key(bytes.fromhex("0e" * 32), "testnet")
ADMIN = Key(bytes.fromhex("ad" * 32), "testnet")
MALLORY = Key(bytes.fromhex("66" * 32), "testnet")  # someone who should never get paid

POLICY = MinerPolicy(
    max_script_size=500_000,
    max_script_num_length=10_000,
    max_stack_memory_usage=100_000_000,
    max_ops_per_script=4_294_967_295,
    max_pubkeys_per_multisig=64,
)


def bitcoinx_verify(raw: bytes, spent: list[tuple[int, bytes]]) -> None:
    """Run every input of `raw` through bitcoinx's interpreter (a second, independent implementation);
    raise if any input fails."""
    tx = bitcoinx.Tx.from_bytes(raw)
    for index, (satoshis, script) in enumerate(spent):
        limits = InterpreterLimits(POLICY, is_genesis_enabled=True, is_consensus=False)
        context = TxInputContext(tx, index, TxOutput(satoshis, bitcoinx.Script(script)))
        assert context.verify_input(limits, True), f"bitcoinx: input {index} of {tx.hex_hash()} left false"


def reverify_ledger_with_bitcoinx(ledger: LocalLedger) -> int:
    """Re-verify every transaction the ledger accepted with bitcoinx; return how many were checked."""
    outputs: dict[tuple[str, int], tuple[int, bytes]] = {}
    checked = 0
    for entry in ledger.dump():
        tx = parse_transaction(entry.raw)
        if entry.kind != "faucet":
            spent = [outputs[(tx_input.source_txid, tx_input.source_output_index)] for tx_input in tx.inputs]
            assert all(tx_input.source_txid != NULL_TXID for tx_input in tx.inputs)
            bitcoinx_verify(entry.raw, spent)
            checked += 1
        for vout, out in enumerate(tx.outputs):
            outputs[(entry.txid, vout)] = (out.satoshis, out.locking_script.serialize())
    return checked


def small_model(seed: int = 7) -> IntegerModel:
    """A 64-16-10 integer model with half its first-layer weights zero: compiles in milliseconds and has the
    shape features of the real one (sparse layer 1, negative weights, biases)."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-7, 8, (64, 16)) * (rng.random((64, 16)) < 0.5)
    w2 = rng.integers(-7, 8, (16, 10))
    return IntegerModel(w1, rng.integers(-200, 200, 16), w2, rng.integers(-300, 300, 10))


def sample_images(model: IntegerModel, count: int = 400, seed: int = 1) -> tuple[int, np.ndarray, np.ndarray]:
    """(digit, images the model classifies as digit, images it classifies otherwise), digit being the most
    common prediction on random images so both kinds exist."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, model.shape[0]))
    predictions = np.array([int(model.predict(image)) for image in images])
    digit = int(np.bincount(predictions).argmax())
    return digit, images[predictions == digit], images[predictions != digit]


def funded_ledger(folder: Path, rate: FeeRate, sats: int = 200_000) -> LocalLedger:
    """A fresh ledger in `folder` whose faucet has given ALICE `sats`."""
    ledger = LocalLedger(folder, fee_rate=rate)
    ledger.fund(ALICE.address, sats)
    return ledger


def deployed_slots(
    ledger: LocalLedger, contract: SlotContract, reward: int, count: int, rate: FeeRate
) -> list[Utxo]:
    """`count` slots of `contract` deployed from ALICE's coins and mined."""
    [deploy] = build_deploy(contract, reward, count, ledger.utxos(ALICE.address), ALICE, fee_rate=rate)
    ledger.broadcast(deploy.raw)
    ledger.mine()
    return list(deploy.slots)
