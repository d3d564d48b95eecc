"""Exactly-once payouts: every way ARC (here the local ledger, which answers as ARC does) can answer a claim,
settled from what the chain says, on a real model and a real ledger."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
from bounty_testing import ChainTestCase, mnist_pixels

from bounty import chain, confirmations, payouts, pipeline, sweeper
from bounty.models import Bounty, Reason, Slot, Submission, Transaction
from contracts.ledger import LocalLedger
from contracts.txverify import parse_transaction


class PayoutTestCase(ChainTestCase):
    def submit(self, pixels: np.ndarray | None = None, **fields: object) -> Submission:
        return self.make_submission(mnist_pixels(7) if pixels is None else pixels, bounty=self.live, **fields)

    @property
    def ledger(self) -> LocalLedger:
        backend = chain.backend()
        assert isinstance(backend, LocalLedger)
        return backend

    def paid_to(self, address: str) -> int:
        """Satoshis the ledger holds for `address` (mempool included)."""
        return sum(utxo.satoshis for utxo in self.ledger.utxos(address))

    def spend_out_of_band(self, slot: Slot) -> str:
        """Someone with the admin key spends the slot to Charlie: a competitor that pays someone else."""
        built = chain.build_refund(self.live, [slot], self.charlie_address)
        return chain.broadcast(built.raw_hex)

    def first_slot(self) -> Slot:
        slot = self.live.slots.order_by("pk").first()
        assert slot is not None
        return slot

    def settle_round(self) -> None:
        """A block, the poll (callbacks run what it queues), and the worker picking the submissions up."""
        chain.mine(1)
        with self.captureOnCommitCallbacks(execute=False) as queued:
            confirmations.poll_confirmations()
        assert len(queued) <= len(Submission.objects.all())
        for submission in Submission.objects.filter(state=Submission.State.CHECKED):
            pipeline.process(submission.pk)


class CompetitorPaysSomeoneElseTestCase(PayoutTestCase):
    def test_it_waits_for_the_block_then_pays_from_another_slot(self) -> None:
        first = self.first_slot()
        refund = self.spend_out_of_band(first)
        submission = self.submit()
        # ARC: HTTP 200 DOUBLE_SPEND_ATTEMPTED; ours may still be mined, so nothing is paid twice meanwhile.
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        contested = Transaction.objects.get(kind="claim")
        self.assertEqual(
            (contested.failure, contested.reject_code), ("double_spend", "DOUBLE_SPEND_ATTEMPTED")
        )
        self.assertEqual(contested.competing_txids, [refund])
        self.assertEqual(Slot.objects.get(submission=submission).pk, first.pk)
        self.settle_round()
        submission.refresh_from_db()
        self.assertEqual(submission.state, "broadcast")
        first.refresh_from_db()
        self.assertEqual(first.state, "spent_elsewhere")
        paying = Slot.objects.get(submission=submission)
        self.assertNotEqual(paying.pk, first.pk)
        self.assertEqual(Transaction.objects.get(pk=contested.pk).status, "failed")
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)

    def test_a_slot_spent_in_a_block_is_retired_at_once(self) -> None:
        first = self.first_slot()
        self.spend_out_of_band(first)
        chain.mine(1)
        submission = self.submit()
        # ARC: SEEN_IN_ORPHAN_MEMPOOL, the output is spent in a block: final, pay from another slot now.
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        first.refresh_from_db()
        self.assertEqual(first.state, "spent_elsewhere")
        self.assertNotEqual(Slot.objects.get(submission=submission).pk, first.pk)
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)

    def test_a_bounty_whose_slots_were_all_spent_elsewhere_says_it_is_exhausted(self) -> None:
        for slot in self.live.slots.all():
            self.spend_out_of_band(slot)
        chain.mine(1)
        submission = self.submit()
        self.assertEqual(pipeline.process(submission.pk), "rejected")
        submission.refresh_from_db()
        self.assertEqual(submission.reason, Reason.EXHAUSTED)
        self.assertEqual(self.live.slots.filter(state="spent_elsewhere").count(), 3)


class MalleatedCopyTestCase(PayoutTestCase):
    """A copy of our claim with one pixel push changed is valid (unlocking scripts are not signed) and pays
    the same contributor: it is the payment. Before the fix this paid the reward twice."""

    def assert_paid_once_by_the_copy(self, submission: Submission) -> None:
        submission.refresh_from_db()
        self.assertIn(submission.state, ("broadcast", "confirmed"))
        assert submission.claim_tx is not None
        ours = Transaction.objects.get(kind="claim", status="failed")
        self.assertNotEqual(submission.claim_tx.pk, ours.pk)
        self.assertEqual(self.ledger.spender(*outpoint(submission)), submission.claim_tx.txid)
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)
        self.assertEqual(self.live.slots.filter(state="free").count(), 2, "no second slot was spent")

    def test_a_copy_in_the_mempool_first_pays_once(self) -> None:
        self.ledger.chaos.configure(queue=["malleate"])
        submission = self.submit()
        pipeline.process(submission.pk)
        self.assert_paid_once_by_the_copy(submission)
        self.settle_round()
        submission.refresh_from_db()
        self.assertEqual(submission.state, "confirmed")
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)

    def test_a_copy_mined_first_pays_once(self) -> None:
        self.ledger.chaos.configure(queue=["malleate_mined"])
        submission = self.submit()
        pipeline.process(submission.pk)
        self.assert_paid_once_by_the_copy(submission)
        self.settle_round()
        self.assertEqual(Submission.objects.get(pk=submission.pk).state, "confirmed")


def outpoint(submission: Submission) -> tuple[str, int]:
    slot = Slot.objects.with_txids().get(submission=submission)
    return slot.deploy_txid, slot.vout


class RejectedAfterSeenTestCase(PayoutTestCase):
    def test_a_claim_rejected_after_it_was_seen_is_sent_again_and_paid_once(self) -> None:
        self.ledger.chaos.configure(queue=["reject_later"])
        submission = self.submit()
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        self.assertEqual(self.paid_to(self.bob_address), 0, "seen, but the network never took it")
        self.settle_round()  # REJECTED with the slot unspent: the claim is built and sent again
        submission.refresh_from_db()
        self.assertEqual((submission.state, submission.payout_attempts), ("broadcast", 1))
        self.settle_round()
        self.assertEqual(Submission.objects.get(pk=submission.pk).state, "confirmed")
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)

    def test_refused_bytes_are_never_sent_again_the_same_payment_goes_as_new_bytes(self) -> None:
        # ARC answers bytes it refused with that refusal for ever, so each try must be a new transaction.
        self.ledger.chaos.configure(queue=["reject_later", "reject_later"])
        submission = self.submit()
        pipeline.process(submission.pk)
        self.settle_round()
        self.settle_round()
        self.settle_round()
        submission.refresh_from_db()
        self.assertEqual((submission.state, submission.payout_attempts), ("confirmed", 2))
        claims = list(Transaction.objects.filter(kind="claim").order_by("pk"))
        self.assertEqual([c.status for c in claims], ["failed", "failed", "confirmed"])
        self.assertEqual(len({c.txid for c in claims}), 3)
        self.assertEqual([parse_transaction(bytes.fromhex(c.raw_hex)).locktime for c in claims], [0, 1, 2])
        self.assertEqual(submission.claim_tx, claims[-1])
        refused = [self.ledger.status(c.txid).state for c in claims[:2]]
        self.assertEqual(refused, [chain.TxState.REJECTED] * 2)
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)

    def test_a_claim_to_be_tried_again_that_a_hold_now_stops_gives_its_slot_back(self) -> None:
        self.ledger.chaos.configure(queue=["reject_later"])
        submission = self.submit()
        pipeline.process(submission.pk)
        chain.mine(1)
        with self.captureOnCommitCallbacks(execute=False):
            confirmations.poll_confirmations()
        self.assertEqual(Slot.objects.get(submission=submission).state, "reserved")
        Bounty.objects.filter(pk=self.live.pk).update(review_window=timedelta(hours=1))
        self.assertEqual(pipeline.process(submission.pk), "held")
        self.assertFalse(Slot.objects.filter(submission=submission).exists())
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)

    def test_the_claim_tried_again_spends_the_refused_ones_slot_so_at_most_one_can_pay(self) -> None:
        self.ledger.chaos.configure(queue=["reject_later"])
        first = self.submit()
        pipeline.process(first.pk)
        refused = Transaction.objects.get(kind="claim")
        spent = outpoint(first)
        chain.mine(1)
        with self.captureOnCommitCallbacks(execute=False):
            confirmations.poll_confirmations()  # refused, the slot unspent: "checked" again, not yet run
        self.assertEqual(Slot.objects.get(submission=first).state, "reserved")
        # Another contributor's claim meanwhile takes another slot, not the refused claim's.
        second = self.submit(mnist_pixels(7, 1), payout_address=self.charlie_address)
        self.assertEqual(pipeline.process(second.pk), "broadcast")
        self.assertNotEqual(outpoint(second), spent)
        self.assertEqual(pipeline.process(first.pk), "broadcast")
        first.refresh_from_db()
        assert first.claim_tx is not None
        self.assertNotEqual(first.claim_tx.txid, refused.txid)
        self.assertEqual(outpoint(first), spent)
        again = parse_transaction(bytes.fromhex(first.claim_tx.raw_hex)).inputs[0]
        self.assertEqual((again.source_txid, again.source_output_index), spent)
        self.assertEqual(self.ledger.spender(*spent), first.claim_tx.txid)


class TransientFailuresTestCase(PayoutTestCase):
    def test_a_busy_network_is_retried_then_pays(self) -> None:
        self.ledger.chaos.configure(queue=["busy", "busy"])
        submission = self.submit()
        for _ in range(2):
            with self.assertRaises(payouts.TryLater):
                pipeline.process(submission.pk)
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        self.assertEqual(Transaction.objects.get(kind="claim").broadcast_attempts, 3)

    def test_it_stalls_after_the_last_attempt_with_the_slot_reconciled_and_retries_on_request(self) -> None:
        self.ledger.chaos.configure(queue=["busy"] * 3)
        submission = self.submit()
        with self.settings(BROADCAST_MAX_ATTEMPTS=3):
            for _ in range(3):
                with self.assertRaises(payouts.TryLater):
                    pipeline.process(submission.pk)
            self.assertEqual(pipeline.process(submission.pk), "stalled")
        stored = Transaction.objects.get(kind="claim")
        self.assertEqual((stored.status, stored.failure), ("failed", "unreachable"))
        # Unspent on chain: free again while the payout waits for a person (a redeployment waits for reserved
        # slots, a refund takes free ones).
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)
        submission.refresh_from_db()
        self.assertTrue(payouts.retry_stalled(submission))
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)

    def stalled(self) -> Submission:
        self.ledger.chaos.configure(queue=["busy"])
        submission = self.submit()
        with self.settings(BROADCAST_MAX_ATTEMPTS=1):
            with self.assertRaises(payouts.TryLater):
                pipeline.process(submission.pk)
            self.assertEqual(pipeline.process(submission.pk), "stalled")
        return Submission.objects.get(pk=submission.pk)

    def test_an_admin_gives_up_a_stalled_payout_and_its_slot_is_free_again(self) -> None:
        submission = self.stalled()
        self.assertTrue(payouts.give_up_stalled(submission))
        submission.refresh_from_db()
        self.assertEqual((submission.state, submission.reason), ("rejected", Reason.CHAIN_REJECTED))
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)
        self.assertEqual(self.paid_to(self.bob_address), 0)

    def test_giving_up_asks_the_chain_first_and_a_claim_that_landed_is_the_payment(self) -> None:
        submission = self.stalled()
        assert submission.claim_tx is not None
        self.ledger.broadcast(bytes.fromhex(submission.claim_tx.raw_hex))  # it got through after all
        self.assertFalse(payouts.give_up_stalled(submission))
        submission.refresh_from_db()
        self.assertEqual(submission.state, "broadcast")
        self.assertEqual(Slot.objects.get(submission=submission).state, "claimed")
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)

    def test_a_stalled_claim_that_reached_the_chain_after_all_is_paid_by_it(self) -> None:
        self.ledger.chaos.configure(queue=["busy"])
        submission = self.submit()
        with self.settings(BROADCAST_MAX_ATTEMPTS=1):
            with self.assertRaises(payouts.TryLater):
                pipeline.process(submission.pk)
            stored = Transaction.objects.get(kind="claim")
            self.ledger.broadcast(bytes.fromhex(stored.raw_hex))  # it got through before the timeout
            self.assertEqual(pipeline.process(submission.pk), "broadcast")
        submission.refresh_from_db()
        assert submission.claim_tx is not None
        self.assertEqual(submission.claim_tx.txid, stored.txid)
        self.assertEqual(Transaction.objects.filter(kind="claim").count(), 1)
        self.assertEqual(self.paid_to(self.bob_address), self.live.reward)


class ArcCallbackTestCase(PayoutTestCase):
    TOKEN = "callback-t0ken"

    def post(self, body: object, token: str | None = TOKEN) -> int:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        with self.settings(ARC_CALLBACK_TOKEN=self.TOKEN):
            answer = self.client.post(
                "/arc/callback/", data=json.dumps(body), content_type="application/json", **headers
            )
        return answer.status_code

    def test_it_confirms_a_claim_on_arcs_mined_callback_late_and_repeated_alike(self) -> None:
        submission = self.submit()
        pipeline.process(submission.pk)
        txid = Transaction.objects.get(kind="claim").txid
        chain.mine(1)
        mined = self.ledger.arc_json(txid)
        self.assertEqual(self.post(mined), 200)
        self.assertEqual(Submission.objects.get(pk=submission.pk).state, "confirmed")
        self.assertEqual(self.post(mined), 200, "delivered twice: harmless")
        late = {**mined, "txStatus": "SEEN_ON_NETWORK", "blockHeight": 0, "blockHash": ""}
        self.assertEqual(self.post(late), 200)
        self.assertEqual(Transaction.objects.get(txid=txid).status, "confirmed", "never backwards")

    def test_it_refuses_callbacks_without_the_token_or_off(self) -> None:
        submission = self.submit()
        pipeline.process(submission.pk)
        chain.mine(1)
        body = self.ledger.arc_json(Transaction.objects.get(kind="claim").txid)
        self.assertEqual(self.post(body, token=None), 401)
        self.assertEqual(self.post(body, token="guess"), 401)
        self.assertEqual(self.post({"txid": "nope"}), 400)
        self.assertEqual(
            self.client.post("/arc/callback/", data="{}", content_type="application/json").status_code, 404
        )
        self.assertEqual(Submission.objects.get(pk=submission.pk).state, "broadcast")

    def test_a_batched_rejection_callback_settles_the_claim(self) -> None:
        self.ledger.chaos.configure(queue=["reject_later"])
        submission = self.submit()
        pipeline.process(submission.pk)
        chain.mine(1)
        txid = Transaction.objects.get(kind="claim").txid
        with self.captureOnCommitCallbacks(execute=False):
            code = self.post({"count": 1, "callbacks": [self.ledger.arc_json(txid)]})
        self.assertEqual(code, 200)
        submission.refresh_from_db()
        self.assertEqual((submission.state, submission.payout_attempts), ("checked", 1))


class SweeperBatchTestCase(PayoutTestCase):
    def test_the_sweeper_sends_forgotten_claims_again_in_one_request(self) -> None:
        from unittest import mock

        submissions = [self.submit(mnist_pixels(7, nth), payout_address=address) for nth, address in
                       enumerate((self.bob_address, self.charlie_address))]  # fmt: skip
        for submission in submissions:
            self.assertEqual(pipeline.process(submission.pk), "broadcast")
        fresh = LocalLedger(self.ledger.data_dir.parent / "forgetful", fee_rate=self.ledger.fee_rate)
        # The chain forgot both (a restarted node): the poll sets them back to stored.
        with mock.patch.object(chain, "status", autospec=True, side_effect=lambda txid: fresh.status(txid)):
            confirmations.poll_confirmations()
        self.assertEqual(Transaction.objects.filter(kind="claim", status="stored").count(), 2)
        real = chain.broadcast_many
        with mock.patch.object(chain, "broadcast_many", autospec=True, side_effect=real) as batch:
            self.assertEqual(sweeper.sweep()["resent"], 2)
        self.assertEqual(batch.call_count, 1)
        self.assertEqual(len(batch.call_args.args[0]), 2)
        self.assertEqual(Transaction.objects.filter(kind="claim", status="broadcast").count(), 2)
