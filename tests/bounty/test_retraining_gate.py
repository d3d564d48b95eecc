"""The evaluation gate refuses a candidate that reads the held-out collected images worse than the active
model, even when MNIST accuracy and the predicate size pass, and the refusal changes nothing else.

The trainer is replaced by one that returns a fixed candidate (the active model that never answers 7), so the
test is about the gate and what a refusal leaves behind, not about training."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from bounty_testing import BaseTestCase, mnist_test_set, reference_predictions

from bounty.models import Bounty, ModelVersion, Slot, Submission
from bounty.retraining import job
from bounty.retraining.models import CollectedImage, Redeployment, RetrainingRun
from classifier.integer_model import IntegerModel
from classifier.train import TrainingResult


def never_seven(artifact: str) -> IntegerModel:
    """The model with the score of 7 pushed far down: it reads every 7 as something else."""
    model = IntegerModel.load(Path(artifact))
    b2 = model.b2.copy()
    b2[7] -= 10**9
    return IntegerModel(model.w1, model.b1, model.w2, b2, manifest=dict(model.manifest))


class HeldoutGateTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        x_test, y_test = mnist_test_set()
        # Sevens the active model reads as 7 (the reference predictions are those of the same weights).
        sevens = np.flatnonzero((y_test[:2000] == 7) & (reference_predictions() == 7))[:8]
        self.collected = [
            self.make_submission(pixels=x_test[i], state=Submission.State.CONFIRMED) for i in sevens
        ]
        self.models = tempfile.mkdtemp(prefix="retrain-models-")

    def test_it_refuses_a_candidate_worse_on_the_heldout_images_and_leaves_everything_as_it_was(self) -> None:
        before = {
            "slots": list(Slot.objects.order_by("pk").values_list("pk", "state", "deploy_tx", "spent_by")),
            "bounties": list(
                Bounty.objects.order_by("pk").values_list("pk", "model_version", "state", "paused")
            ),
        }
        candidate = never_seven(self.version.artifact)
        result = TrainingResult(
            model=candidate, float_test_accuracy=0.9, integer_test_accuracy=0.9, seconds=0.1
        )
        with (
            self.settings(
                RETRAIN_HELDOUT_PERCENT=100,
                RETRAIN_MNIST_LIMIT=1000,
                RETRAIN_GATE_DIGITS="7",
                RETRAIN_MAX_ACCURACY_DROP=0.5,
                RETRAIN_MODEL_DIR=self.models,
            ),  # fmt: skip
            mock.patch("classifier.train.train", autospec=True, return_value=result) as trainer,
        ):
            run = job.retrain("test", force=True)

        self.assertEqual(run.state, RetrainingRun.State.REJECTED, run.reason)
        self.assertEqual(
            run.reason, "refused: held-out collected accuracy fell from 100.00% to 0.00% on 8 images"
        )
        self.assertEqual(run.gate["heldout_accuracy"], {"old": 1.0, "new": 0.0, "images": 8, "passed": False})
        self.assertTrue(run.gate["mnist_accuracy"]["passed"], "only the held-out criterion refuses")
        self.assertTrue(run.gate["predicate_bytes"]["passed"])
        self.assertIsNone(trainer.call_args.kwargs["extra"], "held-out images are never trained on")
        self.assertEqual((run.counts["heldout"], run.counts["collected_train"]), (8, 0))
        # Nothing else changed: the active version, the bounties, their slots, the collected images' roles.
        self.assertEqual(ModelVersion.active(), self.version)
        self.assertEqual(run.candidate.sha256, candidate.weights_sha256())
        self.assertFalse(run.candidate.is_active)
        self.assertFalse(Redeployment.objects.exists())
        self.assertEqual(
            list(Slot.objects.order_by("pk").values_list("pk", "state", "deploy_tx", "spent_by")),
            before["slots"],
        )
        self.assertEqual(
            list(Bounty.objects.order_by("pk").values_list("pk", "model_version", "state", "paused")),
            before["bounties"],
        )
        roles = set(CollectedImage.objects.values_list("role", "trained_in"))
        self.assertEqual(roles, {(CollectedImage.Role.HELDOUT, None)})

    def test_the_same_candidate_passes_when_it_reads_the_heldout_images_as_well(self) -> None:
        """The counterpart: a candidate with the same predictions is promoted by the same gate."""
        model = IntegerModel.load(Path(self.version.artifact))
        same = IntegerModel(model.w1, model.b1, model.w2, model.b2 + 1, manifest=dict(model.manifest))
        result = TrainingResult(model=same, float_test_accuracy=0.9, integer_test_accuracy=0.9, seconds=0.1)
        with (
            self.settings(
                RETRAIN_HELDOUT_PERCENT=100,
                RETRAIN_MNIST_LIMIT=1000,
                RETRAIN_GATE_DIGITS="7",
                RETRAIN_MAX_ACCURACY_DROP=0.5,
                RETRAIN_MODEL_DIR=self.models,
            ),  # fmt: skip
            mock.patch("classifier.train.train", autospec=True, return_value=result),
        ):
            run = job.retrain("test", force=True)
        self.assertEqual(run.state, RetrainingRun.State.PROMOTED, run.reason)
        self.assertEqual(run.gate["heldout_accuracy"]["new"], 1.0)
        self.assertEqual(ModelVersion.active(), run.candidate)
