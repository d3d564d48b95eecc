"""The second opinion fails closed: with SECOND_OPINION on (the default), a payout needs the unpublished
model's agreement, recorded on the submission, and any error asking it holds the payout for a reviewer."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

from bounty_testing import ChainTestCase, mnist_pixels
from django.conf import settings
from django.core.checks import run_checks

from bounty import pipeline, sweeper
from bounty.models import Submission, Transaction
from classifier import second_opinion


class SecondOpinionGateTestCase(ChainTestCase):
    def submit(self, nth: int = 0) -> Submission:
        return self.make_submission(mnist_pixels(7, nth), bounty=self.live)

    def assert_held_without_spending(self, submission: Submission, hold: str) -> None:
        submission.refresh_from_db()
        self.assertEqual((submission.state, submission.hold), ("held", hold))
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)
        self.assertFalse(Transaction.objects.filter(kind="claim").exists())

    def test_it_is_on_by_default(self) -> None:
        self.assertTrue(settings.SECOND_OPINION)

    def test_it_pays_when_the_second_model_agrees(self) -> None:
        submission = self.submit()
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        self.assertEqual(Submission.objects.get(pk=submission.pk).second_opinion, "agrees")

    def test_it_holds_the_payout_when_the_second_model_cannot_be_loaded(self) -> None:
        submission = self.submit()
        with self.settings(SECOND_OPINION_MODEL="/nonexistent/second_opinion.npz"):
            self.assertEqual(pipeline.process(submission.pk), "held")
        self.assert_held_without_spending(submission, "second_opinion_failed")
        self.assertEqual(Submission.objects.get(pk=submission.pk).second_opinion, "failed")

    def test_it_holds_the_payout_when_asking_raises_anything(self) -> None:
        submission = self.submit()
        with mock.patch.object(second_opinion, "agrees", autospec=True, side_effect=MemoryError):
            self.assertEqual(pipeline.process(submission.pk), "held")
        self.assert_held_without_spending(submission, "second_opinion_failed")

    def test_it_holds_the_payout_when_the_second_model_disagrees(self) -> None:
        submission = self.submit()
        with mock.patch.object(second_opinion, "agrees", autospec=True, return_value=False):
            self.assertEqual(pipeline.process(submission.pk), "held")
        self.assert_held_without_spending(submission, "second_opinion")

    def test_a_claim_is_held_when_the_second_opinion_was_never_recorded(self) -> None:
        # What the old pipeline left after a crash between "checked" and the question: it paid.
        submission = self.submit()
        Submission.objects.filter(pk=submission.pk).update(state="checked", predicted_digit=7)
        self.assertEqual(pipeline.process(submission.pk), "held")
        self.assert_held_without_spending(submission, "second_opinion_missing")

    def test_a_reviewer_approval_pays_a_held_payout_and_a_window_never_releases_it(self) -> None:
        self.live.review_window = timedelta(seconds=1)
        self.live.save()
        submission = self.submit()
        with mock.patch.object(second_opinion, "agrees", autospec=True, return_value=False):
            pipeline.process(submission.pk)
        Submission.objects.filter(pk=submission.pk).update(held_at=submission.received_at - timedelta(days=1))
        self.assertEqual(sweeper.sweep()["held_released"], 0, "waits for a person, not for the window")
        with self.captureOnCommitCallbacks(execute=False):
            self.assertTrue(pipeline.approve(Submission.objects.get(pk=submission.pk)))
        self.assertEqual(pipeline.process(submission.pk), "broadcast")

    def test_the_service_refuses_to_start_when_the_model_cannot_be_loaded(self) -> None:
        second_opinion.load_cached.cache_clear()
        with self.settings(SECOND_OPINION_MODEL="/nonexistent/second_opinion.npz"):
            ids = [problem.id for problem in run_checks(tags=["bounty"])]
        self.assertIn("bounty.E004", ids)
        with self.settings(SECOND_OPINION=False, SECOND_OPINION_MODEL="/nowhere.npz"):
            self.assertNotIn("bounty.E004", [problem.id for problem in run_checks(tags=["bounty"])])
