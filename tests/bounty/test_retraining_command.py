"""`manage.py retrain`: one run by hand, its decision recorded with a reason and shown in the admin."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from bounty_testing import BaseTestCase, mnist_test_set
from django.core.management import call_command

from bounty.models import ModelVersion, Submission
from bounty.retraining.models import Redeployment, RetrainingRun
from classifier.integer_model import IntegerModel
from classifier.train import TrainingResult


class RetrainCommandTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        x_test, y_test = mnist_test_set()
        for i in np.flatnonzero(y_test == 7)[:3]:
            self.make_submission(pixels=x_test[i], state=Submission.State.CONFIRMED)
        self.client.force_login(self.alice)

    def retrain(self, *args: str) -> str:
        out = io.StringIO()
        call_command("retrain", *args, stdout=out)
        return out.getvalue()

    def test_it_records_a_skip_and_its_reason_where_the_admin_sees_it(self) -> None:
        with self.settings(RETRAIN_MIN_NEW_IMAGES=10, RETRAIN_HELDOUT_PERCENT=0):
            output = self.retrain()
        run = RetrainingRun.objects.get()
        reason = "too few new images: 3 collected since the last training, at least 10 needed"
        self.assertEqual(
            (run.trigger, run.state, run.reason), ("command", RetrainingRun.State.SKIPPED, reason)
        )
        self.assertIn(f"run #{run.pk}: skipped in ", output)
        self.assertIn(reason, output)
        listing = self.client.get("/admin/retraining/retrainingrun/")
        self.assertContains(listing, reason)
        self.assertContains(listing, "command")
        detail = self.client.get(f"/admin/retraining/retrainingrun/{run.pk}/change/")
        self.assertContains(detail, reason)
        self.assertContains(detail, "new_since_last_training")

    def test_it_prints_the_promotion_as_json_and_leaves_the_slots_with_no_redeploy(self) -> None:
        model = IntegerModel.load(Path(self.version.artifact))
        candidate = IntegerModel(model.w1, model.b1, model.w2, model.b2 + 1, manifest=dict(model.manifest))
        result = TrainingResult(
            model=candidate, float_test_accuracy=0.9, integer_test_accuracy=0.9, seconds=0.1
        )
        with (
            self.settings(
                RETRAIN_MIN_NEW_IMAGES=1,
                RETRAIN_HELDOUT_PERCENT=0,
                RETRAIN_HELDOUT_MAX_P=1,  # the same answers and no held-out images: no gain asked for here
                RETRAIN_MNIST_LIMIT=1000,
                RETRAIN_GATE_DIGITS="7",
                RETRAIN_MODEL_DIR=tempfile.mkdtemp(prefix="retrain-models-"),
            ),  # fmt: skip
            mock.patch("classifier.train.train", autospec=True, return_value=result) as trainer,
        ):
            printed = json.loads(self.retrain("--json", "--no-redeploy"))
        run = RetrainingRun.objects.get()
        self.assertEqual(printed["run"], run.pk)
        self.assertEqual(printed["state"], "promoted")
        self.assertTrue(printed["reason"].startswith("promoted: MNIST test accuracy"))
        self.assertEqual(printed["candidate"], run.candidate.name)
        self.assertEqual(printed["counts"]["collected_train"], 3)
        self.assertEqual(printed["redeployments_waiting"], [])
        self.assertEqual(len(trainer.call_args.kwargs["extra"][1]), 3, "trained on the collected images")
        self.assertEqual(ModelVersion.active(), run.candidate)
        redeployment = Redeployment.objects.get()
        self.assertEqual((redeployment.state, redeployment.steps.count()), (Redeployment.State.RUNNING, 0))
        self.bounty.refresh_from_db()
        self.assertEqual(self.bounty.model_version, self.version, "--no-redeploy leaves the slots")
        self.assertContains(
            self.client.get("/admin/retraining/retrainingrun/"), "promoted: MNIST test accuracy"
        )
