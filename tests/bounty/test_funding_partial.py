"""Deploys split into several transactions, on the local ledger: when one after the first is refused, waits
for the chain or is cut short by a crash, the slots the service counts are exactly the slot outputs the chain
holds, a refund returns exactly those, and `resume_deploy` finishes the deploy from what the chain says."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from unittest import mock

from bounty_testing import ChainTestCase, mnist_pixels
from django.db.models import Q
from django.test import TestCase

from bounty import chain, funding, keys, sweeper
from bounty.funding import draft_bounty, publish_deploys, refund_unused, resume_deploy
from bounty.models import Bounty, Slot, Transaction
from bounty.payouts import send as real_send
from contracts.address import hash160_of_p2pkh_script
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.transactions import build_payment
from contracts.txverify import parse_transaction

# Two slots per deploy transaction: a bounty of 5 is deployed by three (2 + 2 + 1), each spending the
# previous one's change, as a bounty too large for one transaction is.
SLOTS_PER_DEPLOY = 2


class Crash(Exception):
    """The worker dies here: nothing after it runs, nothing in memory survives."""


def slot_outputs_on_chain() -> dict[tuple[str, int], int]:
    """Every unspent output on the ledger that is not a P2PKH coin: the slots the chain holds, by outpoint."""
    ledger = chain.backend()
    held = {}
    for entry in ledger.dump():
        for vout, out in enumerate(parse_transaction(entry.raw).outputs):
            is_coin = hash160_of_p2pkh_script(out.locking_script.serialize()) is not None
            if not is_coin and ledger.spender(entry.txid, vout) is None:
                held[(entry.txid, vout)] = out.satoshis
    return held


def slots_counted(but: Bounty) -> dict[tuple[str, int], int]:
    """The slots the service counts as holding money, but those of `but`: free or reserved (offered to
    claims, refunds and migrations), or taken by one of its transactions that is stored, not yet sent."""
    offered = Q(state__in=(Slot.State.FREE, Slot.State.RESERVED))
    pending = Q(
        state__in=(Slot.State.REFUNDED, Slot.State.MIGRATED), spent_by__status=Transaction.Status.STORED
    )
    slots = Slot.objects.on_chain().filter(offered | pending).exclude(bounty=but)
    return {(slot.deploy_txid, slot.vout): slot.satoshis for slot in slots.with_txids()}


def spend_from_wallet() -> str:
    """Someone else pays from the operator wallet: its coins (the last deploy's change) are spent."""
    operator = keys.operator_key()
    payment = build_payment(
        chain.backend().utxos(operator.address), operator, Key.generate("testnet").address, 5_000,
        fee_rate=FeeRate(100),
    )  # fmt: skip
    return chain.broadcast(payment.hex)


@contextmanager
def after_first_sent(target: str, then: Callable[[], None]) -> Iterator[None]:
    """`send` as the module `target` calls it, running `then` once the chain has the first transaction."""
    sent: list[str] = []

    def send(tx: Transaction) -> bool:
        accepted = real_send(tx)
        if accepted and not sent:
            sent.append(tx.txid)
            then()
        return accepted

    with mock.patch(f"{target}.send", send):
        yield


class ChainAccounting(TestCase):
    """The base case's `self.bounty` stands for a live bounty without a chain behind it: it is left out."""

    bounty: Bounty

    def assert_nothing_stranded(self) -> None:
        """The slots the service counts are exactly the slot outputs the chain holds, satoshi for satoshi, and
        every claimed slot is spent on the chain by its claim."""
        counted, held = slots_counted(but=self.bounty), slot_outputs_on_chain()
        self.assertEqual(counted, held)
        self.assertEqual(sum(counted.values()), sum(held.values()))
        for slot in Slot.objects.on_chain().filter(state=Slot.State.CLAIMED).select_related("spent_by"):
            self.assertEqual(chain.spender(slot.deploy_txid, slot.vout), slot.spent_by.txid)


class StrandedMoneyCase(ChainAccounting, ChainTestCase):
    def draft(self, slots: int) -> Bounty:
        return draft_bounty(self.version, digit=3, slots=slots, reward=1000)

    def deploy_split(self, bounty: Bounty, then: Callable[[], None] | None = None) -> list[Transaction]:
        """Fund and deploy `bounty` in transactions of SLOTS_PER_DEPLOY slots, running `then` once the chain
        has the first."""
        split = mock.patch("contracts.transactions.slots_per_transaction", return_value=SLOTS_PER_DEPLOY)
        with split, after_first_sent("bounty.funding", then or (lambda: None)):
            return funding.fund_and_deploy(bounty)

    def reserve_all(self, bounty: Bounty) -> list[Slot]:
        reserved = []
        while (slot := Slot.reserve(bounty, self.make_submission(bounty=bounty).pk)) is not None:
            reserved.append(slot)
        return reserved


class RefusedDeployTestCase(StrandedMoneyCase):
    def test_it_goes_live_with_the_slots_the_chain_has_when_a_later_deploy_is_refused(self) -> None:
        bounty = self.draft(5)
        first, second, third = self.deploy_split(bounty, then=spend_from_wallet)
        for tx in (bounty, first, second, third):
            tx.refresh_from_db()
        self.assertEqual(first.status, Transaction.Status.BROADCAST)
        self.assertEqual((second.status, second.failure), ("failed", Transaction.Failure.DOUBLE_SPEND))
        self.assertEqual(third.status, Transaction.Status.FAILED, "it spends the refused one's change")
        self.assertEqual(third.broadcast_attempts, 0)
        self.assertEqual(bounty.state, Bounty.State.ACTIVE)
        self.assertEqual(bounty.slots_left(), 2)
        self.assert_nothing_stranded()
        self.assertEqual({slot.deploy_tx_id for slot in self.reserve_all(bounty)}, {first.pk})

    def test_it_refunds_exactly_the_deployed_slots_after_a_refused_deploy(self) -> None:
        bounty = self.draft(5)
        first, *_ = self.deploy_split(bounty, then=spend_from_wallet)
        deployed = sum(first.slots.values_list("satoshis", flat=True))
        to = Key.generate("testnet").address
        refund = refund_unused(bounty, to)
        assert refund is not None
        self.assertEqual(refund.status, Transaction.Status.BROADCAST)
        self.assertEqual(chain.wallet_balance(to), deployed - refund.fee)
        self.assertEqual(set(refund.spent_slots.values_list("deploy_tx", flat=True)), {first.pk})
        self.assert_nothing_stranded()

    def test_it_deploys_the_missing_slots_again_from_the_wallet(self) -> None:
        bounty = self.draft(5)
        self.deploy_split(bounty, then=spend_from_wallet)
        again = resume_deploy(bounty)
        assert again is not None
        self.assertEqual(again.status, Transaction.Status.BROADCAST)
        self.assertEqual(again.slots.count(), 3)
        bounty.refresh_from_db()
        self.assertEqual((bounty.state, bounty.slots_left()), (Bounty.State.ACTIVE, 5))
        self.assert_nothing_stranded()
        # once: resuming again finds nothing missing
        self.assertIsNone(resume_deploy(bounty))
        self.assertEqual(Transaction.objects.filter(bounty=bounty, kind="deploy").count(), 4)
        built = chain.build_claim(bounty, again.slots.first(), self.bob_address, mnist_pixels(3).tobytes())
        self.assertTrue(chain.broadcast(built.raw_hex))

    def test_it_counts_a_refused_deploy_that_the_chain_has_after_all(self) -> None:
        bounty = self.draft(3)
        _, second = self.deploy_split(bounty)
        # recorded as refused (a lost answer, a competitor that did not win), yet on the chain
        Transaction.objects.filter(pk=second.pk).update(
            status=Transaction.Status.FAILED, failure=Transaction.Failure.DOUBLE_SPEND
        )
        self.assertEqual(bounty.slots_left(), 2)
        self.assertIsNone(resume_deploy(bounty), "nothing is built again")
        self.assertEqual(bounty.slots_left(), 3)
        self.assert_nothing_stranded()

    def test_it_builds_again_a_deploy_the_chain_took_then_rejected(self) -> None:
        bounty = self.draft(3)
        # the first is seen, then rejected at the next block; the second spends its change
        chain.backend().chaos.configure(queue=["reject_later"])
        first, _ = self.deploy_split(bounty)
        chain.mine()
        again = resume_deploy(bounty)
        first.refresh_from_db()
        self.assertEqual(first.status, Transaction.Status.FAILED)
        assert again is not None
        self.assertEqual(again.slots.count(), 3)
        bounty.refresh_from_db()
        self.assertEqual(bounty.slots_left(), 3)
        self.assert_nothing_stranded()

    def test_it_stays_funded_without_slots_when_the_first_deploy_is_refused_and_deploys_again(self) -> None:
        bounty = self.draft(5)
        chain.backend().chaos.configure(queue=["busy"])
        self.deploy_split(bounty)  # stored, not yet sent
        spend_from_wallet()  # the coin the first deploy spends goes elsewhere meanwhile
        self.assertFalse(publish_deploys(bounty))
        bounty.refresh_from_db()
        self.assertEqual((bounty.state, bounty.slots_left()), (Bounty.State.FUNDED, 0))
        self.assertEqual(
            set(bounty.transactions.values_list("status", flat=True)), {Transaction.Status.FAILED}
        )
        self.assert_nothing_stranded()
        again = resume_deploy(bounty)
        assert again is not None
        bounty.refresh_from_db()
        self.assertEqual(
            (bounty.state, bounty.slots_left(), again.slots.count()), (Bounty.State.ACTIVE, 5, 5)
        )
        self.assert_nothing_stranded()


class InterruptedDeployTestCase(StrandedMoneyCase):
    def test_it_counts_only_the_deploys_the_chain_has_while_the_rest_wait(self) -> None:
        bounty = self.draft(5)
        busy = lambda: chain.backend().chaos.configure(queue=["busy"])  # noqa: E731
        self.deploy_split(bounty, then=busy)
        bounty.refresh_from_db()
        self.assertEqual(bounty.state, Bounty.State.FUNDED)
        self.assertEqual(bounty.slots_left(), 2)
        self.assert_nothing_stranded()
        self.assertTrue(publish_deploys(bounty))  # the sweeper, once the chain answers
        bounty.refresh_from_db()
        self.assertEqual((bounty.state, bounty.slots_left()), (Bounty.State.ACTIVE, 5))
        self.assert_nothing_stranded()

    def test_a_refund_while_deploys_wait_returns_only_what_the_chain_has(self) -> None:
        bounty = self.draft(5)
        busy = lambda: chain.backend().chaos.configure(queue=["busy"])  # noqa: E731
        first, *_ = self.deploy_split(bounty, then=busy)
        to = Key.generate("testnet").address
        refund = refund_unused(bounty, to)
        assert refund is not None
        deployed = sum(first.slots.values_list("satoshis", flat=True))
        self.assertEqual(chain.wallet_balance(to), deployed - refund.fee)
        self.assert_nothing_stranded()
        waiting = bounty.transactions.filter(kind="deploy").exclude(pk=first.pk)
        self.assertEqual(set(waiting.values_list("status", flat=True)), {"failed"}, "never sent now")

    def test_a_refund_counts_a_deploy_the_chain_has_that_a_crash_left_unrecorded(self) -> None:
        bounty = self.draft(3)

        def die_once_sent(step: str) -> None:
            if step == "broadcast_sent":
                raise Crash

        with mock.patch("bounty.payouts.fault_point", die_once_sent), self.assertRaises(Crash):
            self.deploy_split(bounty)
        to = Key.generate("testnet").address
        refund = refund_unused(bounty, to)
        assert refund is not None
        first = bounty.transactions.filter(kind="deploy").order_by("pk").first()
        self.assertEqual(first.status, Transaction.Status.BROADCAST)
        self.assertEqual(
            chain.wallet_balance(to), sum(first.slots.values_list("satoshis", flat=True)) - refund.fee
        )
        self.assert_nothing_stranded()

    def test_it_resumes_a_deploy_cut_short_by_a_crash(self) -> None:
        bounty = self.draft(5)

        def die_once_sent(step: str) -> None:
            if step == "broadcast_sent":
                raise Crash  # the chain has the first deploy; the worker dies before recording it

        with mock.patch("bounty.payouts.fault_point", die_once_sent), self.assertRaises(Crash):
            self.deploy_split(bounty)
        bounty.refresh_from_db()
        self.assertEqual(bounty.state, Bounty.State.FUNDED)
        self.assertEqual(bounty.slots_left(), 0, "no deploy is recorded as accepted yet")
        self.assertIsNone(resume_deploy(bounty), "a new process finds the first deploy on the chain")
        bounty.refresh_from_db()
        self.assertEqual((bounty.state, bounty.slots_left()), (Bounty.State.ACTIVE, 5))
        self.assertEqual(Transaction.objects.filter(bounty=bounty, kind="deploy").count(), 3)
        self.assert_nothing_stranded()


class ResumeFromOutsideTestCase(StrandedMoneyCase):
    def test_the_command_deploys_the_missing_slots_and_says_so(self) -> None:
        import json
        from io import StringIO

        from django.core.management import call_command

        bounty = self.draft(5)
        self.deploy_split(bounty, then=spend_from_wallet)
        out = StringIO()
        call_command("resume_deploy", str(bounty.pk), "--json", stdout=out)
        result = json.loads(out.getvalue())
        self.assertEqual((result["state"], result["slots_left"]), ("active", 5))
        self.assertIsNotNone(result["new_deploy"])
        self.assert_nothing_stranded()

    def test_the_sweeper_sends_a_rebuilt_deploy_that_waited_for_the_chain(self) -> None:
        bounty = self.draft(5)
        self.deploy_split(bounty, then=spend_from_wallet)
        self.ledger_busy_once()
        waiting = resume_deploy(bounty)  # rebuilt and stored, but the chain answered "busy"
        assert waiting is not None
        self.assertEqual(waiting.status, Transaction.Status.STORED)
        sweeper.sweep()
        waiting.refresh_from_db()
        self.assertEqual(waiting.status, Transaction.Status.BROADCAST)
        bounty.refresh_from_db()
        self.assertEqual(bounty.slots_left(), 5)
        self.assert_nothing_stranded()

    def ledger_busy_once(self) -> None:
        from contracts.ledger import LocalLedger

        ledger = chain.backend()
        assert isinstance(ledger, LocalLedger)
        ledger.chaos.configure(queue=["busy"])
