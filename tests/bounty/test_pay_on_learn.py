"""Pay on learn on the local ledger: a bounty's pending images are read again when its slots move to a
promoted model; those it reads as the digit are paid through the ordinary claim path, oldest first, while
slots last, with the version that read them recorded and shown to the contributor and on /models/."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from bounty_testing import ChainTestCase, deployed_bounty, mnist_test_set, model_artifact
from django.conf import settings

from bounty import pipeline
from bounty.models import Bounty, ModelVersion, Slot, Submission
from bounty.retraining import pending, redeploy
from bounty.retraining.models import Redeployment
from classifier.integer_model import IntegerModel
from contracts.address import parse_address
from contracts.txverify import parse_transaction


@cache
def weakened(directory: str) -> Path:
    """The test model with all but 8 hidden units cut from layer 2: it misreads many 7s the test model
    reads."""
    model = IntegerModel.load(model_artifact())
    w2 = model.w2.copy()
    w2[8:] = 0
    return IntegerModel(model.w1, model.b1, w2, model.b2, manifest={}).save(Path(directory) / "weak.npz")


def sevens(weak: Path) -> tuple[list[int], list[int]]:
    """MNIST test 7s the weak model reads as another digit: (those the test model reads as 7, those it
    does not)."""
    x_test, y_test = mnist_test_set()
    images = x_test.reshape(-1, 784)
    old = np.asarray(IntegerModel.load(weak).predict(images))
    new = np.asarray(IntegerModel.load(model_artifact()).predict(images))
    missed = (y_test == 7) & (old != 7)
    return [int(i) for i in np.flatnonzero(missed & (new == 7))], [
        int(i) for i in np.flatnonzero(missed & (new != 7))
    ]


class PayOnLearnTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.CLOSED)  # no chain behind it
        artifact = weakened(str(settings.MEDIA_ROOT))
        self.weak = ModelVersion.register(artifact, name="weak", activate=True)
        self.target = deployed_bounty(self.weak, 7, slots=2)
        learnable, unlearnable = sevens(artifact)
        x_test, _ = mnist_test_set()
        # Three the promoted model reads as 7 (two slots: the two oldest are paid), one it still misreads.
        self.kept = [self.keep(x_test[i]) for i in (*learnable[:3], unlearnable[0])]

    def keep(self, pixels: np.ndarray) -> Submission:
        submission = self.make_submission(pixels, bounty=self.target)
        self.assertEqual(pipeline.process(submission.pk), "pending")
        submission.refresh_from_db()
        return submission

    def promote(self) -> None:
        """The test model is promoted and the bounty's slots move to it; re-reading is queued on commit."""
        with self.captureOnCommitCallbacks() as queued:
            redeploy.start(self.version, Redeployment.Kind.PROMOTION, "test promotion")
            self.assertEqual(redeploy.resume(), [])
        self.target.refresh_from_db()
        self.assertEqual(self.target.model_version, self.version)
        self.assertTrue(queued, "finishing the migration queues the re-reading of the pending images")

    def test_pending_images_the_new_model_reads_are_paid_oldest_first_while_slots_last(self) -> None:
        self.promote()
        with self.captureOnCommitCallbacks() as queued:
            counts = pending.pay_pending(self.target.pk)
        self.assertEqual(counts, {"reread": 4, "converted": 2, "still_wrong": 1, "waiting_for_slots": 1})
        self.assertEqual(len(queued), 2, "each converted image is queued for the ordinary claim path")
        first, second, third, wrong = self.kept
        for submission in (first, second):
            self.assertEqual(pipeline.process(submission.pk), "broadcast")
            submission.refresh_from_db()
            self.assertEqual(submission.paid_by_version, self.version)
            self.assertEqual(submission.predicted_digit, 7)
            assert submission.claim_tx is not None
            tx = parse_transaction(bytes.fromhex(submission.claim_tx.raw_hex))
            self.assertEqual(
                tx.outputs[0].locking_script.serialize(), parse_address(self.bob_address).locking_script()
            )
            self.assertEqual(Slot.objects.get(submission=submission).deploy_tx.kind, "migrate")
        for submission in (third, wrong):
            submission.refresh_from_db()
            self.assertEqual((submission.state, submission.paid_by_version), ("pending", None))
        self.version.refresh_from_db()
        self.assertEqual(self.version.learning["reread"], 4)
        self.assertEqual(self.version.learning["still_wrong"], [wrong.pk])
        self.assertEqual(pending.converted(self.version), 2)

    def test_the_contributor_and_the_funder_see_who_paid_it(self) -> None:
        self.promote()
        pending.pay_pending(self.target.pk)
        first, second = self.kept[:2]
        pipeline.process(first.pk)
        pipeline.process(second.pk)
        status = self.client.get(f"/submissions/{first.public_id}/status.json").json()
        self.assertTrue(status["paid"])
        self.assertIn(f"model version {self.version.name}", status["paid_by"])
        page = self.client.get("/models/").content.decode()
        self.assertIn("pending paid", page)
        self.assertIn("<td>4</td><td>2</td>", page, "re-read 4 pending images, had 2 paid")
        self.assertIn(f'alt="#{self.kept[3].pk}, sent as a 7"', page, "the image it still misreads is shown")

    def test_a_bounty_that_does_not_pay_on_learn_keeps_them_pending(self) -> None:
        Bounty.objects.filter(pk=self.target.pk).update(pay_on_learn=False)
        self.promote()
        self.assertEqual(pending.pay_pending(self.target.pk)["converted"], 0)
        states = set(
            Submission.objects.filter(pk__in=[s.pk for s in self.kept]).values_list("state", flat=True)
        )
        self.assertEqual(states, {"pending"})
        self.assertEqual(self.target.slots.free().count(), 2)

    def test_a_paused_bounty_pays_nothing_now_and_loses_nothing(self) -> None:
        self.promote()
        Bounty.objects.filter(pk=self.target.pk).update(paused=True)
        counts = pending.pay_pending(self.target.pk)
        self.assertEqual((counts["converted"], counts["waiting_for_slots"]), (0, 3))
        self.assertEqual(Submission.objects.filter(state="pending").count(), 4)
