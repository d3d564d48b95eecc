"""A migration that the old slots' money cannot pay alone: funding coins top it up, with the same
verification as every builder; and the same migration signed by an admin elsewhere, from its preimages."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import (
    ADMIN,
    ALICE,
    BOB,
    MALLORY,
    OPERATOR,
    deployed_slots,
    funded_ledger,
    reverify_ledger_with_bitcoinx,
    sample_images,
    small_model,
)

from contracts.chain import Utxo
from contracts.errors import InsufficientFundsError, TransactionTooLargeError, VerificationError
from contracts.fees import FeeRate
from contracts.ledger import LocalLedger
from contracts.policy import Policy
from contracts.slot import SlotContract
from contracts.transactions import (
    P2PKH_UNLOCKING_MAX,
    REFUND_UNLOCKING_MAX,
    build_claim,
    build_migration,
    input_bytes,
    migration_slots_per_transaction,
    prepare_migration,
    tx_bytes,
)

RATE = FeeRate(100)
OLD_REWARD, NEW_REWARD = 1_000, 5_000  # the new slots hold more than the old ones: the wallet pays the rest
OLD = SlotContract.from_model(
    small_model(), sample_images(small_model())[0], OPERATOR.public_key, ADMIN.public_key
)
NEWER = small_model(seed=11)
DIGIT, ACCEPTED, _ = sample_images(NEWER, seed=2)
NEW = SlotContract.from_model(NEWER, DIGIT, OPERATOR.public_key, ADMIN.public_key)


@pytest.fixture
def ledger(tmp_path: Path) -> LocalLedger:
    return funded_ledger(tmp_path / "ledger", RATE)


@pytest.fixture
def slots(ledger: LocalLedger) -> list[Utxo]:
    return deployed_slots(ledger, OLD, OLD_REWARD, 4, RATE)


def test_the_old_slots_alone_cannot_pay_for_the_new_ones(slots: list[Utxo]) -> None:
    with pytest.raises(InsufficientFundsError, match="the migrated slots"):
        build_migration(slots, ADMIN, NEW, NEW_REWARD, ALICE.address, fee_rate=RATE, count=4)


def test_funding_coins_turn_every_old_slot_into_a_new_one(ledger: LocalLedger, slots: list[Utxo]) -> None:
    coins = ledger.utxos(ALICE.address)
    migration = build_migration(
        slots, ADMIN, NEW, NEW_REWARD, ALICE.address, fee_rate=RATE, funding=(coins, ALICE)
    )
    value = NEW.slot_value(NEW_REWARD, RATE)
    assert [(u.satoshis, u.script) for u in migration.slots] == [(value, NEW.locking_script)] * 4
    assert migration.spent[:4] == tuple(slots) and set(migration.spent[4:]) <= set(coins)
    assert RATE.covers(migration.fee, migration.size)
    outputs = migration.outputs()
    assert len(outputs) == 5 and outputs[4].script == ALICE.locking_script(), "the change goes back"
    spent_total = sum(u.satoshis for u in migration.spent)
    assert spent_total == 4 * value + outputs[4].satoshis + migration.fee
    ledger.broadcast(migration.raw)
    claim = build_claim(migration.slots[3], NEW, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE)
    ledger.broadcast(claim.raw)
    assert [u.satoshis for u in ledger.utxos(BOB.address)] == [NEW_REWARD]
    assert reverify_ledger_with_bitcoinx(ledger) == 3


def test_coins_signed_by_someone_else_never_become_a_transaction(
    ledger: LocalLedger, slots: list[Utxo]
) -> None:
    with pytest.raises(VerificationError, match="input 4"):
        build_migration(
            slots, ADMIN, NEW, NEW_REWARD, ALICE.address, fee_rate=RATE,
            funding=(ledger.utxos(ALICE.address), MALLORY),
        )  # fmt: skip


def test_a_wallet_too_small_is_refused_with_what_it_lacks(slots: list[Utxo]) -> None:
    small = [Utxo("ab" * 32, 0, 2_000, ALICE.locking_script())]
    with pytest.raises(InsufficientFundsError) as caught:
        build_migration(slots, ADMIN, NEW, NEW_REWARD, ALICE.address, fee_rate=RATE, funding=(small, ALICE))
    assert caught.value.available == sum(u.satoshis for u in slots) + 2_000
    assert caught.value.needed > caught.value.available


def test_an_admin_elsewhere_signs_the_preimages(ledger: LocalLedger, slots: list[Utxo]) -> None:
    unsigned = prepare_migration(
        slots, NEW, NEW_REWARD, ALICE.address, fee_rate=RATE, funding=ledger.utxos(ALICE.address)
    )
    preimages = unsigned.admin_preimages()
    assert len(preimages) == 4 and unsigned.admin_preimages() == preimages, "the same preimages every time"
    with pytest.raises(VerificationError, match="input 0"):
        unsigned.sign([MALLORY.sign_preimage(p) for p in preimages], ALICE, fee_rate=RATE)
    with pytest.raises(ValueError, match="funder"):
        unsigned.sign([ADMIN.sign_preimage(p) for p in preimages], None, fee_rate=RATE)
    signed = unsigned.sign([ADMIN.sign_preimage(p) for p in preimages], ALICE, fee_rate=RATE)
    assert len(signed.slots) == 4
    ledger.broadcast(signed.raw)
    assert reverify_ledger_with_bitcoinx(ledger) == 2


def test_as_many_slots_as_the_estimate_allows_fit_in_one_transaction(
    ledger: LocalLedger, slots: list[Utxo]
) -> None:
    per_slot = NEW.slot_output_bytes + input_bytes(REFUND_UNLOCKING_MAX)
    policy = Policy(max_transaction_bytes=tx_bytes([P2PKH_UNLOCKING_MAX] * 8, [25]) + 16 + 2 * per_slot + 100)
    assert migration_slots_per_transaction(NEW, policy=policy) == 2
    coins = (ledger.utxos(ALICE.address), ALICE)
    fits = build_migration(
        slots[:2], ADMIN, NEW, NEW_REWARD, ALICE.address, fee_rate=RATE, funding=coins, policy=policy
    )
    assert len(fits.slots) == 2 and fits.size <= policy.max_transaction_bytes
    with pytest.raises(TransactionTooLargeError, match="migrate fewer slots at a time"):
        build_migration(
            slots[:4], ADMIN, NEW, NEW_REWARD, ALICE.address, fee_rate=RATE, funding=coins, policy=policy
        )
