"""An image optimised against the published weights (classifier/adversarial.py, through the service's own
preprocessing) is read as the target by the published model; with SECOND_OPINION on, the second model
disagrees and the payout is held for a reviewer, costing no slot. Off (the default), it would be paid."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from bounty_testing import BaseTestCase, mnist_pixels, model_artifact
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from bounty import pipeline, sweeper
from bounty.models import Submission


@cache
def crafted_seven() -> bytes:
    """A genuine 3 perturbed until the published model reads a 7, as the PNG an attacker uploads."""
    from classifier.adversarial import targeted_attack, through_preprocessing
    from classifier.integer_model import IntegerModel

    model = IntegerModel.load(model_artifact())
    for nth in range(5):
        result = targeted_attack(model, mnist_pixels(3, nth), 7, preprocess=through_preprocessing)
        if result.success:
            buffer = io.BytesIO()
            Image.fromarray(result.adversarial.reshape(28, 28)).save(buffer, format="PNG")
            return buffer.getvalue()
    raise AssertionError("the attack found no adversarial 7 among five 3s")


class AdversarialImageTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.version.artifact = str(model_artifact())
        self.version.save()

    def submit(self, png: bytes) -> Submission:
        with self.captureOnCommitCallbacks(execute=False):
            response = self.client.post(
                f"/bounties/{self.bounty.pk}/",
                {"payout_address": self.bob_address, "image": SimpleUploadedFile("x.png", png, "image/png")},
            )
        self.assertEqual(response.status_code, 302)
        submission = Submission.objects.latest("pk")
        pipeline.check(submission)  # the network's verdict and the screens; claiming is not at stake here
        return Submission.objects.get(pk=submission.pk)

    def test_without_the_second_opinion_the_crafted_image_passes_the_published_model(self) -> None:
        with self.settings(SECOND_OPINION=False):
            submission = self.submit(crafted_seven())
        self.assertEqual((submission.predicted_digit, submission.state), (7, "checked"))

    def test_the_second_opinion_holds_the_crafted_image_and_spends_no_slot(self) -> None:
        with self.settings(SECOND_OPINION=True):
            submission = self.submit(crafted_seven())
            self.assertEqual((submission.predicted_digit, submission.state), (7, "held"))
            self.assertEqual((submission.hold, submission.second_opinion), ("second_opinion", "disagrees"))
            self.assertEqual(self.bounty.slots.filter(state="free").count(), 3)
            self.assertEqual(sweeper.sweep()["held_released"], 0)  # waits for a person, not a window
        self.assertEqual(Submission.objects.get(pk=submission.pk).state, "held")

    def test_the_second_opinion_lets_a_genuine_seven_through(self) -> None:
        png = io.BytesIO()
        Image.fromarray(255 - np.asarray(mnist_pixels(7, 0))).resize((112, 112)).save(png, format="PNG")
        with self.settings(SECOND_OPINION=True):
            submission = self.submit(png.getvalue())
        self.assertEqual((submission.predicted_digit, submission.state), (7, "checked"))
