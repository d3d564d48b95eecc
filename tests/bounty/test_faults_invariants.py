"""The invariant checker of fault_support.py catches each violation it names, so a fault test that passes
means something."""

from __future__ import annotations

from datetime import UTC, datetime

from bounty_testing import ChainTestCase, mnist_pixels
from fault_support import InvariantBroken, check_invariants

from bounty import chain, pipeline
from bounty.models import Slot, Submission, Transaction


class InvariantCheckerTestCase(ChainTestCase):
    def pay(self, nth: int = 0) -> Submission:
        submission = self.make_submission(mnist_pixels(7, nth), bounty=self.live)
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        return Submission.objects.get(pk=submission.pk)

    def test_it_passes_a_clean_run(self) -> None:
        self.pay(0)
        wrong = self.make_submission(mnist_pixels(3), bounty=self.live, payout_address=self.charlie_address)
        self.assertEqual(pipeline.process(wrong.pk), "pending")  # kept for a later model: settled too
        counts = check_invariants()
        self.assertEqual((counts["paid"], counts["rejected"]), (1, 0))

    def test_it_catches_a_submission_left_behind(self) -> None:
        submission = self.make_submission(mnist_pixels(7), bounty=self.live)
        pipeline.check(submission)
        with self.assertRaisesRegex(InvariantBroken, "not in a final state"):
            check_invariants()

    def test_it_catches_a_stranded_slot(self) -> None:
        self.pay(0)
        gone = self.make_submission(mnist_pixels(7, 1), bounty=self.live, state="rejected")
        Slot.reserve(self.live, gone.pk)
        with self.assertRaisesRegex(InvariantBroken, "stranded"):
            check_invariants()

    def test_it_catches_a_transaction_the_database_never_stored(self) -> None:
        submission = self.make_submission(mnist_pixels(7), bounty=self.live)
        pipeline.check(submission)
        pipeline.claim(submission)
        chain.broadcast(submission.claim_tx.raw_hex)  # type: ignore[union-attr]
        Submission.objects.filter(pk=submission.pk).update(state="rejected", claim_tx=None)
        Slot.objects.filter(submission=submission).update(state="free", submission=None)
        Transaction.objects.filter(kind="claim").delete()
        with self.assertRaisesRegex(InvariantBroken, "never stored"):
            check_invariants()

    def test_it_catches_a_paid_submission_marked_rejected(self) -> None:
        submission = self.pay(0)
        Submission.objects.filter(pk=submission.pk).update(state="rejected")
        with self.assertRaisesRegex(InvariantBroken, "rejected or unknown submission"):
            check_invariants()

    def test_it_catches_a_slot_marked_claimed_that_the_chain_did_not_spend(self) -> None:
        submission = self.pay(0)
        Slot.objects.filter(bounty=self.live, state="free").update(
            state="claimed", spent_by=submission.claim_tx
        )
        with self.assertRaisesRegex(InvariantBroken, "claimed but the chain"):
            check_invariants()

    def test_the_stored_before_broadcast_check_reads_the_ledger_time(self) -> None:
        submission = self.pay(0)
        Transaction.objects.filter(pk=submission.claim_tx_id).update(created=datetime(2100, 1, 1, tzinfo=UTC))
        with self.assertRaisesRegex(InvariantBroken, "before it was stored"):
            check_invariants()
