"""The pipeline's plain functions against a real model and a real local ledger (no broker needed)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from bounty_testing import ChainTestCase, mnist_pixels, tamper_stored_claim

from bounty import chain, confirmations, payouts, pipeline, sweeper
from bounty.models import Bounty, Reason, Slot, Submission, Transaction
from contracts.address import parse_address
from contracts.txverify import parse_transaction


class PipelineTestCase(ChainTestCase):
    def submit(self, pixels: np.ndarray, **fields: object) -> Submission:
        return self.make_submission(pixels, bounty=fields.pop("bounty", self.live), **fields)

    def test_it_pays_an_image_the_network_reads_as_the_target(self) -> None:
        submission = self.submit(mnist_pixels(7))
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        submission.refresh_from_db()
        assert submission.claim_tx is not None
        tx = parse_transaction(bytes.fromhex(submission.claim_tx.raw_hex))
        self.assertEqual(tx.outputs[0].satoshis, self.live.reward)
        payee = parse_address(self.bob_address).locking_script()
        self.assertEqual(tx.outputs[0].locking_script.serialize(), payee)
        self.assertEqual(Slot.objects.get(submission=submission).state, "claimed")

    def test_it_confirms_a_claim_once_it_is_in_a_block(self) -> None:
        submission = self.submit(mnist_pixels(7))
        pipeline.process(submission.pk)
        chain.mine(1)
        confirmations.poll_confirmations()
        submission.refresh_from_db()
        self.assertEqual(submission.state, "confirmed")
        assert submission.claim_tx is not None
        self.assertEqual(submission.claim_tx.block_height, chain.ping())

    def test_a_claim_confirmed_before_its_submission_reached_broadcast_confirms_it_at_the_next_poll(
        self,
    ) -> None:
        submission = self.submit(mnist_pixels(7))
        pipeline.process(submission.pk)
        chain.mine(1)
        # The poll confirmed the transaction while the worker had not yet moved the submission on.
        Submission.objects.filter(pk=submission.pk).update(state="verified")
        confirmations.poll_confirmations()
        Submission.objects.filter(pk=submission.pk).update(state="broadcast")
        confirmations.poll_confirmations()
        submission.refresh_from_db()
        self.assertEqual(submission.state, "confirmed")

    def test_it_rejects_another_digit_without_spending_a_slot(self) -> None:
        # A bounty that keeps no image for a later model (pay on learn: tests/bounty/test_pending_*.py).
        Bounty.objects.filter(pk=self.live.pk).update(pending_days=0)
        submission = self.submit(mnist_pixels(3))
        self.assertEqual(pipeline.process(submission.pk), "rejected")
        submission.refresh_from_db()
        self.assertEqual(submission.reason, Reason.WRONG_DIGIT)
        self.assertEqual(submission.predicted_digit, 3)
        self.assertEqual(len(submission.scores), 10)
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)

    def test_it_rejects_the_same_pixels_twice_across_bounties(self) -> None:
        other = self.create_bounty(digit=7, slots=1)
        first = self.submit(mnist_pixels(7))
        second = self.submit(mnist_pixels(7), bounty=other, payout_address=self.charlie_address)
        pipeline.process(first.pk)
        self.assertEqual(pipeline.process(second.pk), "rejected")
        second.refresh_from_db()
        self.assertEqual(second.reason, Reason.DUPLICATE)
        self.assertEqual(other.slots.filter(state="free").count(), 1)

    def test_it_rejects_a_near_duplicate(self) -> None:
        pixels = mnist_pixels(7)
        touched = pixels.copy()
        touched[10, 10:14] = np.clip(touched[10, 10:14].astype(int) + 40, 0, 255).astype(np.uint8)
        pipeline.process(self.submit(pixels).pk)
        again = self.submit(touched, payout_address=self.charlie_address)
        self.assertEqual(pipeline.process(again.pk), "rejected")
        self.assertIn("near duplicate", Submission.objects.get(pk=again.pk).reason_detail)

    def test_it_pays_a_different_drawing_of_the_same_digit(self) -> None:
        pipeline.process(self.submit(mnist_pixels(7, 0)).pk)
        other = self.submit(mnist_pixels(7, 1), payout_address=self.charlie_address)
        self.assertEqual(pipeline.process(other.pk), "broadcast")

    def test_it_rate_limits_an_address(self) -> None:
        with self.settings(RATE_LIMIT_PER_ADDRESS=1):
            self.assertEqual(pipeline.process(self.submit(mnist_pixels(7, 0)).pk), "broadcast")
            late = self.submit(mnist_pixels(7, 1))
            self.assertEqual(pipeline.process(late.pk), "rejected")
        self.assertEqual(Submission.objects.get(pk=late.pk).reason, Reason.RATE_LIMITED)

    def test_it_rate_limits_an_ip(self) -> None:
        with self.settings(RATE_LIMIT_PER_IP=1):
            pipeline.process(self.submit(mnist_pixels(7, 0)).pk)
            late = self.submit(mnist_pixels(7, 1), payout_address=self.charlie_address)
            pipeline.process(late.pk)
        self.assertEqual(Submission.objects.get(pk=late.pk).reason, Reason.RATE_LIMITED)

    def test_running_twice_pays_once(self) -> None:
        submission = self.submit(mnist_pixels(7))
        pipeline.process(submission.pk)
        pipeline.process(submission.pk)
        self.assertEqual(Transaction.objects.filter(kind="claim").count(), 1)
        self.assertEqual(self.live.slots.exclude(state="free").count(), 1)

    def test_it_says_when_the_bounty_is_exhausted(self) -> None:
        small = self.create_bounty(digit=7, slots=1)
        pipeline.process(self.submit(mnist_pixels(7, 0), bounty=small).pk)
        late = self.submit(mnist_pixels(7, 1), bounty=small, payout_address=self.charlie_address)
        self.assertEqual(pipeline.process(late.pk), "rejected")
        self.assertEqual(Submission.objects.get(pk=late.pk).reason, Reason.EXHAUSTED)
        self.assertEqual(Bounty.objects.get(pk=small.pk).state, "exhausted")

    def test_it_holds_a_payout_for_review_and_pays_when_approved(self) -> None:
        reviewed = self.create_bounty(digit=7, slots=1, review_window=timedelta(hours=1))
        submission = self.submit(mnist_pixels(7), bounty=reviewed)
        self.assertEqual(pipeline.process(submission.pk), "held")
        self.assertFalse(reviewed.slots.exclude(state="free").exists())
        with self.captureOnCommitCallbacks(execute=False):
            self.assertTrue(pipeline.approve(submission))
        self.assertEqual(pipeline.process(submission.pk), "broadcast")

    def test_it_rebroadcasts_a_claim_stored_before_a_crash(self) -> None:
        submission = self.submit(mnist_pixels(7))
        pipeline.check(submission)
        pipeline.claim(submission)  # the worker dies here: stored, never broadcast
        self.assertEqual(submission.state, "verified")
        self.assertEqual(submission.claim_tx.status, "stored")  # type: ignore[union-attr]
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        txid = submission.claim_tx.txid  # type: ignore[union-attr]
        self.assertEqual(chain.status(txid).state, chain.TxState.MEMPOOL)

    def test_it_treats_a_claim_the_chain_already_has_as_broadcast(self) -> None:
        submission = self.submit(mnist_pixels(7))
        pipeline.check(submission)
        pipeline.claim(submission)
        chain.broadcast(submission.claim_tx.raw_hex)  # type: ignore[union-attr]  # broadcast, then the worker died
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        tx = Transaction.objects.get(kind="claim")
        self.assertEqual((tx.status, chain.status(tx.txid).state), ("broadcast", chain.TxState.MEMPOOL))

    def test_it_rebuilds_a_stored_claim_the_chain_refuses_and_pays_once(self) -> None:
        submission = self.submit(mnist_pixels(7))
        pipeline.check(submission)
        pipeline.claim(submission)
        tamper_stored_claim(submission)  # the payout redirected after signing: the chain says 461
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        submission.refresh_from_db()
        self.assertEqual(submission.payout_attempts, 1)
        assert submission.claim_tx is not None
        self.assertEqual(chain.status(submission.claim_tx.txid).state, chain.TxState.MEMPOOL)
        self.assertEqual(self.live.slots.filter(state="free").count(), 2)

    def test_it_stalls_a_claim_the_chain_keeps_refusing_with_its_slot_free(self) -> None:
        submission = self.submit(mnist_pixels(7))
        pipeline.check(submission)
        pipeline.claim(submission)
        tamper_stored_claim(submission)
        with self.settings(CLAIM_MAX_ATTEMPTS=1):
            self.assertEqual(pipeline.process(submission.pk), "stalled")
        refused = Transaction.objects.get(kind="claim")
        self.assertEqual(
            (refused.status, refused.failure, refused.reject_code), ("failed", "rejected", "461")
        )
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)
        self.assertTrue(payouts.give_up_stalled(Submission.objects.get(pk=submission.pk)))
        given_up = Submission.objects.get(pk=submission.pk)
        self.assertEqual((given_up.state, given_up.reason), ("rejected", "chain_rejected"))

    def test_the_sweeper_releases_a_slot_left_by_a_rejected_submission(self) -> None:
        submission = self.submit(mnist_pixels(7))
        Slot.reserve(self.live, submission.pk)
        Submission.objects.filter(pk=submission.pk).update(state="rejected", reason="reviewer")
        self.assertEqual(sweeper.sweep()["released"], 1)
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)

    def test_the_sweeper_requeues_stuck_submissions(self) -> None:
        submission = self.submit(mnist_pixels(7))
        Submission.objects.filter(pk=submission.pk).update(updated=submission.updated - timedelta(hours=1))
        with self.settings(CELERY_TASK_ALWAYS_EAGER=True):
            from bounty.celery import app

            app.conf.task_always_eager = True
            try:
                self.assertEqual(sweeper.sweep()["requeued"], 1)
            finally:
                app.conf.task_always_eager = False
        self.assertEqual(Submission.objects.get(pk=submission.pk).state, "broadcast")
