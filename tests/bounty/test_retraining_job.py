"""The retraining job on a real (short) training run: the gate refuses a worse model and nothing changes;
too few images skip; a second run is refused while the lock is held; duplicates and suspicious labels are
kept out of training."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from bounty_testing import BaseTestCase, mnist_test_set
from django.test import override_settings
from django.utils import timezone

from bounty.models import ModelVersion, Slot, Submission
from bounty.retraining import job, lease
from bounty.retraining.models import CollectedImage, Lease, Redeployment, RetrainingRun

SHORT = {"epochs": 1, "prune_steps": 1, "prune_epochs": 1, "quant_epochs": 1}


class JobTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        x_test, y_test = mnist_test_set()
        self.x, self.y = x_test, y_test

    def collect(self, count: int, start: int = 5000) -> list[Submission]:
        """Paid submissions to the 7-bounty: MNIST test images of sevens."""
        sevens = np.flatnonzero(self.y == 7)[start // 10 :]
        return [
            self.make_submission(pixels=self.x[i], state=Submission.State.CONFIRMED) for i in sevens[:count]
        ]

    def test_it_skips_with_a_reason_when_too_few_new_images(self) -> None:
        self.collect(3)
        with self.settings(RETRAIN_MIN_NEW_IMAGES=10, RETRAIN_HELDOUT_PERCENT=0):
            run = job.retrain("test")
        self.assertEqual(run.state, RetrainingRun.State.SKIPPED)
        self.assertIn("too few new images: 3", run.reason)
        self.assertIsNone(Lease.objects.get(name="retrain").expires_at, "the lock is released")

    def test_it_refuses_a_second_run_while_another_holds_the_lock(self) -> None:
        token = lease.acquire(job.LOCK, 60, holder="run-elsewhere")
        self.assertIsNotNone(token)
        run = job.retrain("test", force=True)
        self.assertEqual(run.state, RetrainingRun.State.SKIPPED)
        self.assertIn("another retraining is running (run-elsewhere", run.reason)
        # A holder that crashed stops heartbeating; once its lease runs out the next run may start.
        Lease.objects.filter(name=job.LOCK).update(expires_at=timezone.now() - timedelta(seconds=1))
        self.assertIsNotNone(lease.acquire(job.LOCK, 60))
        self.assertFalse(lease.heartbeat(job.LOCK, token, 60), "the crashed holder lost it")

    def test_it_excludes_duplicates_and_flags_labels_nobody_agrees_with(self) -> None:
        original = self.collect(1)[0]
        same = np.frombuffer(original.pixel_bytes, dtype=np.uint8).reshape(28, 28)
        copy = self.make_submission(pixels=same, state=Submission.State.CONFIRMED)
        three = int(np.flatnonzero(self.y == 3)[0])
        poisoned = self.make_submission(pixels=self.x[three], true_digit=8)  # a clear 3 labelled 8
        with self.settings(RETRAIN_MIN_NEW_IMAGES=100, RETRAIN_HELDOUT_PERCENT=0):
            job.retrain("test")
        roles = dict(CollectedImage.objects.values_list("submission_id", "role"))
        self.assertEqual(roles[original.pk], "train")
        self.assertEqual(roles[copy.pk], "duplicate")
        self.assertEqual(roles[poisoned.pk], "flagged")
        note = CollectedImage.objects.get(submission=poisoned).note
        self.assertIn("labelled 8, but the model read 3 and the nearest MNIST images are 3s", note)


@pytest.mark.slow
class GateTestCase(BaseTestCase):
    def test_it_refuses_a_worse_model_and_leaves_everything_as_it_was(self) -> None:
        x_test, y_test = mnist_test_set()
        for i in np.flatnonzero(y_test == 7)[:6]:
            self.make_submission(pixels=x_test[i], state=Submission.State.CONFIRMED)
        before_slots = list(Slot.objects.values_list("pk", "state", "deploy_tx"))
        with override_settings(
            RETRAIN_OPTIONS=SHORT, RETRAIN_MNIST_LIMIT=3000, RETRAIN_MIN_NEW_IMAGES=1,
            RETRAIN_GATE_DIGITS="7", RETRAIN_MAX_ACCURACY_DROP=0.01, RETRAIN_MODEL_DIR=self.tmp_models(),
        ):  # fmt: skip
            run = job.retrain("test")
        self.assertEqual(run.state, RetrainingRun.State.REJECTED, run.reason)
        self.assertIn("refused: MNIST test accuracy fell from 97.", run.reason)
        self.assertFalse(run.gate["mnist_accuracy"]["passed"])
        self.assertTrue(run.gate["predicate_bytes"]["passed"])
        self.assertEqual(ModelVersion.active(), self.version)
        self.assertFalse(run.candidate.is_active)
        self.assertEqual(run.counts["collected_train"] + run.counts["heldout"], 6)
        self.assertFalse(Redeployment.objects.exists())
        self.assertEqual(list(Slot.objects.values_list("pk", "state", "deploy_tx")), before_slots)
        print(f"\nretrain seconds {run.seconds}, gate {run.gate['mnist_accuracy']}")

    def tmp_models(self) -> str:
        import tempfile

        return tempfile.mkdtemp(prefix="retrain-models-")
