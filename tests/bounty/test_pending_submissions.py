"""Pay on learn, the keeping side: an image the model reads as another digit is kept pending (with its
screening signals) instead of rejected, for the bounty's window; reviewers confirm or discard it; it expires;
only confirmed images or those both independent signals read as the digit are trained on."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from bounty_testing import ChainTestCase, mnist_pixels
from django.utils import timezone

from bounty import pipeline
from bounty.models import Bounty, Reason, Submission
from bounty.retraining import dataset, pending


class KeepTestCase(ChainTestCase):
    def submit(self, pixels: np.ndarray, **fields: object) -> Submission:
        return self.make_submission(pixels, bounty=fields.pop("bounty", self.live), **fields)

    def test_another_digit_is_kept_pending_for_the_bounty_window_with_its_signals(self) -> None:
        before = timezone.now()
        submission = self.submit(mnist_pixels(3))
        self.assertEqual(pipeline.process(submission.pk), "pending")
        submission.refresh_from_db()
        self.assertEqual((submission.predicted_digit, submission.reason), (3, ""))
        assert submission.pending_until is not None
        self.assertGreaterEqual(submission.pending_until, before + timedelta(days=30))
        self.assertLess(submission.pending_until, timezone.now() + timedelta(days=30, minutes=1))
        self.assertEqual(submission.neighbour_label, 3, "a clear MNIST 3: its nearest neighbours are 3s")
        self.assertEqual(submission.second_opinion, Submission.SecondOpinion.DISAGREES)
        self.assertEqual(self.live.slots.filter(state="free").count(), 3, "no slot is spent on it")

    def test_the_funder_sets_the_window_and_zero_keeps_nothing(self) -> None:
        Bounty.objects.filter(pk=self.live.pk).update(pending_days=3)
        kept = self.submit(mnist_pixels(3))
        pipeline.process(kept.pk)
        kept.refresh_from_db()
        assert kept.pending_until is not None
        self.assertLess(kept.pending_until, timezone.now() + timedelta(days=3, minutes=1))
        Bounty.objects.filter(pk=self.live.pk).update(pending_days=0)
        rejected = self.submit(mnist_pixels(3, 1))
        self.assertEqual(pipeline.process(rejected.pk), "rejected")
        rejected.refresh_from_db()
        self.assertEqual(rejected.reason, Reason.WRONG_DIGIT)

    def test_a_duplicate_of_another_digit_is_rejected_not_kept(self) -> None:
        first = self.submit(mnist_pixels(3))
        self.assertEqual(pipeline.process(first.pk), "pending")
        copy = self.submit(mnist_pixels(3), payout_address=self.charlie_address)
        self.assertEqual(pipeline.process(copy.pk), "rejected")
        copy.refresh_from_db()
        self.assertEqual(copy.reason, Reason.WRONG_DIGIT)
        self.assertIn(f"same pixels as submission {first.pk}", copy.reason_detail)

    def test_a_rate_limited_contributor_is_not_kept(self) -> None:
        with self.settings(RATE_LIMIT_PER_ADDRESS=1):
            self.submit(mnist_pixels(7, 3))
            late = self.submit(mnist_pixels(3))
            self.assertEqual(pipeline.process(late.pk), "rejected")
        late.refresh_from_db()
        self.assertIn("more than 1 submissions for this address", late.reason_detail)

    def test_the_digit_itself_is_still_paid_at_once(self) -> None:
        submission = self.submit(mnist_pixels(7))
        self.assertEqual(pipeline.process(submission.pk), "broadcast")

    def test_a_window_that_ends_rejects_it_and_keeps_the_image(self) -> None:
        submission = self.submit(mnist_pixels(3))
        pipeline.process(submission.pk)
        self.assertEqual(pending.expire(), 0, "not before its window ends")
        Submission.objects.filter(pk=submission.pk).update(
            pending_until=timezone.now() - timedelta(seconds=1)
        )
        self.assertEqual(pending.expire(), 1)
        submission.refresh_from_db()
        self.assertEqual((submission.state, submission.reason), ("rejected", Reason.PENDING_EXPIRED))
        self.assertIn("none read it as the digit in time", submission.reason_text)
        self.assertEqual(bytes(submission.pixels), mnist_pixels(3).tobytes(), "the image stays collected")

    def test_a_reviewer_confirms_or_discards_a_pending_image(self) -> None:
        kept, dropped = self.submit(mnist_pixels(3)), self.submit(mnist_pixels(5))
        for submission in (kept, dropped):
            pipeline.process(submission.pk)
            submission.refresh_from_db()
        self.assertTrue(pending.confirm(kept))
        self.assertTrue(pending.discard(dropped))
        kept.refresh_from_db()
        dropped.refresh_from_db()
        self.assertEqual((kept.state, kept.true_digit, kept.review_approved), ("pending", 7, True))
        self.assertEqual((dropped.state, dropped.reason), ("rejected", Reason.REVIEWER))
        self.assertFalse(pending.confirm(dropped), "only a pending image can be confirmed")
        self.assertFalse(pending.discard(dropped))


class TrainingRuleTestCase(ChainTestCase):
    """Item 6: pending images train only when a reviewer confirmed them or both independent signals agree."""

    def pending(self, digit: int, nth: int, **fields: object) -> Submission:
        return self.make_submission(
            mnist_pixels(digit, nth), bounty=self.live, state=Submission.State.PENDING,
            predicted_digit=digit, pending_at=timezone.now(),
            pending_until=timezone.now() + timedelta(days=1),
            **fields,
        )  # fmt: skip

    def test_only_confirmed_or_agreed_pending_images_are_labelled_for_training(self) -> None:
        agrees = Submission.SecondOpinion.AGREES
        confirmed = self.pending(3, 0)
        pending.confirm(confirmed)
        both = self.pending(1, 0, second_opinion=agrees, neighbour_label=7)
        only_knn = self.pending(1, 1, second_opinion=Submission.SecondOpinion.DISAGREES, neighbour_label=7)
        only_second = self.pending(1, 2, second_opinion=agrees, neighbour_label=1)
        unreviewed = self.pending(3, 1)
        chosen = set(dataset.labelled_submissions().values_list("pk", flat=True))
        self.assertIn(confirmed.pk, chosen)
        self.assertIn(both.pk, chosen)
        self.assertEqual(chosen & {only_knn.pk, only_second.pk, unreviewed.pk}, set())
        labels = {s.pk: dataset.label_of(s) for s in dataset.labelled_submissions()}
        self.assertEqual(labels[confirmed.pk], (7, "confirmed"))
        self.assertEqual(labels[both.pk], (7, "signals"))

    def test_a_confirmed_pending_image_is_trained_on_even_though_the_model_and_neighbours_disagree(
        self,
    ) -> None:
        confirmed = self.pending(3, 0)
        pending.confirm(confirmed)
        with self.settings(RETRAIN_HELDOUT_PERCENT=0):
            dataset.screen_new(None, self.version)
        self.assertEqual(confirmed.collected.role, "train", "a reviewer looked at it: not flagged again")


class ScheduleTestCase(ChainTestCase):
    def test_beat_expires_pending_images_hourly_and_the_worker_knows_both_tasks(self) -> None:
        from django_celery_beat.models import PeriodicTask

        from bounty.celery import app
        from bounty.retraining import tasks

        row = PeriodicTask.objects.get(task="bounty.retraining.tasks.expire_pending")
        self.assertEqual((row.interval.every, row.interval.period, row.enabled), (3600, "seconds", True))
        self.assertIn(pending.PAY_PENDING, app.tasks)
        submission = self.make_submission(mnist_pixels(3), bounty=self.live)
        pipeline.process(submission.pk)
        ended = timezone.now() + timedelta(days=31)
        self.assertEqual(pending.expire(ended), 1)
        self.assertEqual(tasks.expire_pending(), 0, "the task finds nothing more to expire")
