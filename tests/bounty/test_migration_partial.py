"""Migrations split into several transactions, on the local ledger: the slots each accepted transaction
creates are recorded at once, a later one that the chain refuses is built again from the old slots the chain
still holds, and a migration that waits (for the chain, for wallet coins) or is cut short finishes from what
the chain says, with every satoshi of the bounty accounted for."""

from __future__ import annotations

from unittest import mock

from bounty_testing import BaseTestCase, deployed_bounty, mnist_pixels, model_artifact
from django.conf import settings
from test_funding_partial import (
    ChainAccounting,
    Crash,
    StrandedMoneyCase,
    after_first_sent,
    spend_from_wallet,
)
from test_retraining_offline_admin import ADMIN, OPERATOR
from test_retraining_redeploy import newer_artifact

from bounty import chain, keys
from bounty.funding import FundingError, refund_unused, resume_deploy
from bounty.models import Bounty, ModelVersion, Slot, Transaction
from bounty.payouts import send as real_send
from bounty.retraining import redeploy
from bounty.retraining.models import MigrationStep, Redeployment
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.transactions import build_payment

# Two old slots per migration transaction: the live bounty's three slots move in two (2 + 1), the second
# funded by the first one's change.
SPLIT = mock.patch("contracts.transactions.migration_slots_per_transaction", return_value=2)


def empty_wallet() -> None:
    """Someone else takes nearly all the operator wallet holds: too little is left to fund a migration."""
    operator = keys.operator_key()
    coins = chain.backend().utxos(operator.address)
    payment = build_payment(
        coins, operator, Key.generate("testnet").address, sum(c.satoshis for c in coins) - 1000,
        fee_rate=FeeRate(100),
    )  # fmt: skip
    chain.broadcast(payment.hex)


def spend_wallet_coin_of(txid: str) -> None:
    """Someone else pays from the operator wallet with the coin that transaction `txid` was to spend."""
    operator = keys.operator_key()
    inputs, _ = chain.describe(Transaction.objects.get(txid=txid).raw_hex)
    spends = {(source, vout) for source, vout, _ in inputs}
    [coin] = [c for c in chain.backend().utxos(operator.address) if (c.txid, c.vout) in spends]
    payment = build_payment([coin], operator, Key.generate("testnet").address, 5_000, fee_rate=FeeRate(100))
    chain.broadcast(payment.hex)


class PartialMigrationTestCase(StrandedMoneyCase):
    def setUp(self) -> None:
        super().setUp()
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.CLOSED)
        self.newer = ModelVersion.register(newer_artifact(str(settings.MEDIA_ROOT)), name="newer")
        self.old_slots = list(self.live.slots.values_list("pk", flat=True))
        self.redeployment = redeploy.start(self.newer, Redeployment.Kind.PROMOTION, "test promotion")

    def resume(self, then=None) -> list[Redeployment]:  # type: ignore[no-untyped-def]
        with SPLIT, after_first_sent("bounty.retraining.redeploy", then or (lambda: None)):
            return redeploy.resume()

    def step(self) -> MigrationStep:
        return MigrationStep.objects.get(redeployment=self.redeployment, bounty=self.live)

    def accepted(self) -> list[Transaction]:
        return list(
            Transaction.objects.filter(bounty=self.live, kind="migrate", status="broadcast").order_by("pk")
        )

    def assert_moved(self) -> None:
        """Every old slot is spent on the chain by an accepted migration, and the bounty is on the new model
        with three free slots that the chain holds."""
        step = self.step()
        self.assertEqual(step.state, MigrationStep.State.DONE)
        self.live.refresh_from_db()
        self.assertEqual((self.live.model_version, self.live.paused), (self.newer, False))
        self.assertEqual(self.live.slots_left(), 3)
        self.assertEqual(step.txids, [tx.txid for tx in self.accepted()])
        for old in Slot.objects.filter(pk__in=self.old_slots).select_related("deploy_tx", "spent_by"):
            self.assertEqual(old.state, Slot.State.MIGRATED)
            self.assertEqual(chain.spender(old.deploy_txid, old.vout), old.spent_by.txid)
            self.assertIn(old.spent_by.txid, step.txids)
        self.assert_nothing_stranded()
        slot = Slot.objects.free().filter(bounty=self.live).first()
        built = chain.build_claim(self.live, slot, self.bob_address, mnist_pixels(7, 1).tobytes())
        self.assertTrue(chain.broadcast(built.raw_hex), "a new slot pays an image on the new model")

    def test_it_builds_again_a_second_migration_the_chain_refused(self) -> None:
        self.assertEqual(self.resume(then=spend_from_wallet), [])
        first, again = self.accepted()
        self.assertEqual(first.slots.count(), 2)
        self.assertEqual(again.slots.count(), 1)
        refused = Transaction.objects.get(bounty=self.live, kind="migrate", status="failed")
        self.assertEqual(refused.failure, Transaction.Failure.DOUBLE_SPEND)
        self.assertFalse(refused.spent_slots.exists())
        self.assert_moved()

    def test_it_counts_a_second_migration_the_chain_took_though_it_was_recorded_as_refused(self) -> None:
        first: list[str] = []

        def send(tx: Transaction) -> bool:
            if first and tx.txid != first[0] and tx.status == "stored":
                chain.broadcast(tx.raw_hex)  # the chain takes it, the answer said refused
                Transaction.objects.filter(pk=tx.pk).update(
                    status="failed", failure=Transaction.Failure.DOUBLE_SPEND, broadcast_attempts=1
                )
                tx.refresh_from_db()
                return False
            first[:] = first or [tx.txid]
            return real_send(tx)

        with SPLIT, mock.patch("bounty.retraining.redeploy.send", send):
            self.assertEqual(redeploy.resume(), [])
        self.assertEqual(len(self.accepted()), 2)
        self.assertFalse(Transaction.objects.filter(kind="migrate").exclude(status="broadcast").exists())
        self.assertEqual(self.step().new_slots, 3)
        self.assert_moved()

    def test_it_stops_building_after_repeated_refusals_and_waits_paused(self) -> None:
        first: list[str] = []

        def send(tx: Transaction) -> bool:
            if first and tx.txid != first[0] and tx.status == "stored":
                spend_wallet_coin_of(tx.txid)  # every time, its coin goes elsewhere first
            first[:] = first or [tx.txid]
            return real_send(tx)

        with SPLIT, mock.patch("bounty.retraining.redeploy.send", send):
            for _ in range(3):
                self.assertEqual(len(redeploy.resume()), 1)
        refused = Transaction.objects.filter(bounty=self.live, kind="migrate", status="failed")
        self.assertEqual(refused.count(), redeploy.MAX_REFUSALS, "no new transaction at every resume")
        self.assertEqual(set(refused.values_list("failure", flat=True)), {Transaction.Failure.DOUBLE_SPEND})
        self.assert_waiting_with_one_slot_left(first[0])

    def test_it_waits_rather_than_send_again_the_same_refused_bytes(self) -> None:
        first: list[str] = []

        def send(tx: Transaction) -> bool:
            if first and tx.txid != first[0] and not Transaction.objects.filter(status="failed").exists():
                # refused for good, once (its coin stays unspent: built again, it is the same transaction)
                Transaction.objects.filter(pk=tx.pk).update(
                    status="failed", failure=Transaction.Failure.REJECTED, broadcast_attempts=1
                )
                tx.refresh_from_db()
                return False
            first[:] = first or [tx.txid]
            return real_send(tx)

        with SPLIT, mock.patch("bounty.retraining.redeploy.send", send):
            self.assertEqual(len(redeploy.resume()), 1)
            self.assertEqual(len(redeploy.resume()), 1)
            self.assertEqual(Transaction.objects.filter(bounty=self.live, kind="migrate").count(), 2)
            self.assert_waiting_with_one_slot_left(first[0])
            chain.faucet(chain.operator_address(), 10_000_000)  # a larger coin: another transaction
            self.assertEqual(redeploy.resume(), [])
        self.assert_moved()

    def assert_waiting_with_one_slot_left(self, first: str) -> None:
        step = self.step()
        self.assertEqual((step.state, step.txids), (MigrationStep.State.STORED, [first]))
        self.assertEqual(Transaction.objects.get(txid=first).slots.count(), 2)
        [left] = Slot.objects.filter(pk__in=step.slot_ids, spent_by=None)
        self.assertIsNone(chain.spender(left.deploy_txid, left.vout), "still on the chain, still the step's")
        self.live.refresh_from_db()
        self.assertTrue(self.live.paused)
        self.assertEqual(self.live.model_version.name, "test-model")

    def test_it_records_the_first_migrations_slots_while_the_second_waits_for_the_chain(self) -> None:
        busy = lambda: chain.backend().chaos.configure(queue=["busy"])  # noqa: E731
        self.assertEqual(len(self.resume(then=busy)), 1)
        [first] = self.accepted()
        self.assertEqual(first.slots.count(), 2, "recorded as soon as the chain took it")
        self.assertEqual(self.step().state, MigrationStep.State.STORED)
        self.live.refresh_from_db()
        self.assertTrue(self.live.paused, "no claim while the bounty is on two models")
        self.assert_nothing_stranded()
        with self.assertRaises(FundingError):
            refund_unused(self.live)  # not while its slots move
        self.assertEqual(self.resume(), [])
        self.assert_moved()

    def test_it_resumes_a_migration_cut_short_before_the_second_transaction(self) -> None:
        sent: list[Transaction] = []

        def send(tx: Transaction) -> bool:
            if sent:
                raise Crash  # the worker dies before sending the second
            sent.append(tx)
            return real_send(tx)

        with SPLIT, mock.patch("bounty.retraining.redeploy.send", send), self.assertRaises(Crash):
            redeploy.resume()
        self.assertEqual(self.step().state, MigrationStep.State.STORED)
        [first] = self.accepted()
        self.assertEqual(first.slots.count(), 2, "recorded before the crash")
        self.assert_nothing_stranded()
        self.assertEqual(self.resume(), [])
        self.assert_moved()

    def test_it_waits_for_wallet_coins_then_moves_the_rest(self) -> None:
        self.assertEqual(len(self.resume(then=lambda: (spend_from_wallet(), empty_wallet()))), 1)
        step = self.step()
        self.assertEqual(step.state, MigrationStep.State.STORED)
        [first] = self.accepted()
        self.assertEqual(first.slots.count(), 2)
        # the old slot the refused transaction would have moved is still on the chain, and still the step's
        [left] = Slot.objects.filter(pk__in=step.slot_ids).exclude(spent_by=first)
        self.assertEqual(left.state, Slot.State.MIGRATED)
        self.assertIsNone(chain.spender(left.deploy_txid, left.vout))
        self.live.refresh_from_db()
        self.assertTrue(self.live.paused)
        self.assertEqual(self.live.model_version.name, "test-model")
        chain.faucet(chain.operator_address(), 1_000_000)
        self.assertEqual(self.resume(), [])
        self.assert_moved()

    def test_it_moves_only_the_slots_the_chain_has_and_deploys_the_rest_on_the_new_model(self) -> None:
        bounty = self.draft(5)
        self.deploy_split(bounty, then=spend_from_wallet)  # the chain has two of its five slots
        self.assertEqual(self.resume(), [])
        step = MigrationStep.objects.get(redeployment=self.redeployment, bounty=bounty)
        self.assertEqual((step.state, len(step.slot_ids), step.new_slots), (MigrationStep.State.DONE, 2, 2))
        bounty.refresh_from_db()
        self.assertEqual((bounty.model_version, bounty.slots_left()), (self.newer, 2))
        self.assert_nothing_stranded()
        again = resume_deploy(bounty)
        assert again is not None
        self.assertEqual(again.slots.count(), 3)
        self.assertEqual(bounty.slots_left(), 5)
        self.assert_nothing_stranded()
        built = chain.build_claim(bounty, again.slots.first(), self.bob_address, mnist_pixels(3).tobytes())
        self.assertTrue(chain.broadcast(built.raw_hex), "deployed again on the model the bounty is on now")


class OfflineAdminPartialMigrationTestCase(ChainAccounting, BaseTestCase):
    """The admin key off the server: a refused second migration is prepared again for the admin's signatures,
    after the one the chain accepted."""

    def setUp(self) -> None:
        offline = self.settings(
            GENERATE_MISSING_KEYS=False, OPERATOR_KEY=OPERATOR.wif, ADMIN_KEY=None,
            ADMIN_PUBKEY=ADMIN.public_key.hex(),
        )  # fmt: skip
        offline.enable()
        self.addCleanup(offline.disable)
        keys.reset_cache()
        self.addCleanup(keys.reset_cache)
        super().setUp()
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.CLOSED)
        ModelVersion.objects.update(is_active=False)
        self.version = ModelVersion.register(model_artifact(), name="test-model", activate=True)
        self.newer = ModelVersion.register(newer_artifact(str(settings.MEDIA_ROOT)), name="newer")
        # Unsigned migrations cannot spend each other's change: each needs a coin of its own.
        for _ in range(2):
            chain.faucet(chain.operator_address(), 5_000_000)
        self.live = deployed_bounty(self.version, digit=7, slots=3)
        self.old_slots = list(self.live.slots.values_list("pk", flat=True))

    def sign(self, step: MigrationStep) -> None:
        inputs = redeploy.to_sign(step).inputs
        redeploy.accept_signatures(
            step, [ADMIN.sign_preimage(bytes.fromhex(i.preimage)).hex() for i in inputs]
        )

    def step(self) -> MigrationStep:
        return MigrationStep.objects.select_related("bounty", "from_version", "redeployment__target").get()

    def test_it_asks_the_admin_to_sign_again_for_the_slots_a_refused_migration_left(self) -> None:
        redeployment = redeploy.start(self.newer, Redeployment.Kind.PROMOTION, "test promotion")
        with SPLIT:
            self.assertEqual(redeploy.resume(), [redeployment])
        step = self.step()
        self.assertEqual(len(step.unsigned), 2)
        self.sign(step)
        first_txid, second_txid = step.txids
        with SPLIT, after_first_sent("bounty.retraining.redeploy", lambda: spend_wallet_coin_of(second_txid)):
            self.assertEqual(redeploy.resume(), [redeployment])
        step = self.step()
        self.assertEqual((step.state, step.txids), (MigrationStep.State.SIGNING, [first_txid]))
        first = Transaction.objects.get(txid=first_txid)
        self.assertEqual(first.slots.count(), 2, "recorded as soon as the chain took it")
        self.assertEqual(Transaction.objects.get(txid=second_txid).status, Transaction.Status.FAILED)
        self.assertEqual(len(redeploy.to_sign(step).inputs), 1, "only the slot left behind")
        self.live.refresh_from_db()
        self.assertTrue(self.live.paused)
        self.sign(step)
        self.assertEqual(step.txids[0], first_txid)
        self.assertEqual(redeploy.resume(), [])
        step = self.step()
        self.assertEqual((step.state, step.new_slots), (MigrationStep.State.DONE, 3))
        self.live.refresh_from_db()
        self.assertEqual(
            (self.live.model_version, self.live.paused, self.live.slots_left()), (self.newer, False, 3)
        )
        for old in Slot.objects.filter(pk__in=self.old_slots).select_related("deploy_tx", "spent_by"):
            self.assertEqual(chain.spender(old.deploy_txid, old.vout), old.spent_by.txid)
            self.assertIn(old.spent_by.txid, step.txids)
        self.assert_nothing_stranded()
