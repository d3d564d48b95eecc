"""A redeployment to another model moves single slots only: a batch bounty stays on its model, its batch
slots untouched and still paying, while a single bounty beside it moves (local ledger, default model)."""

from __future__ import annotations

from pathlib import Path

from bounty_testing import ChainTestCase, mnist_pixels, model_artifact
from django.conf import settings

from bounty import pipeline
from bounty.models import Bounty, ModelVersion, Slot, SlotKind, Submission
from bounty.retraining import redeploy
from bounty.retraining.models import MigrationStep, Redeployment
from classifier.integer_model import IntegerModel


def shifted_artifact(directory: Path) -> Path:
    """The test model with every class bias raised by one: another script, the same predictions."""
    model = IntegerModel.load(model_artifact())
    shifted = IntegerModel(model.w1, model.b1, model.w2, model.b2 + 1, manifest=dict(model.manifest))
    return shifted.save(directory / "shifted.npz")


class BatchRedeployTestCase(ChainTestCase):
    def test_a_batch_bounty_stays_on_its_model_and_keeps_paying(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.CLOSED)  # no chain behind it
        batch = self.create_bounty(digit=7, slots=1, slot_kind=SlotKind.BATCH, batch_lanes=2)
        before = list(batch.slots.values_list("pk", "state", "deploy_tx_id"))
        newer = ModelVersion.register(shifted_artifact(Path(settings.MEDIA_ROOT)), name="shifted")
        redeployment = redeploy.start(newer, Redeployment.Kind.PROMOTION, "test promotion")
        redeploy.resume()
        redeployment.refresh_from_db()
        self.assertEqual(redeployment.state, Redeployment.State.DONE)
        self.assertEqual(list(MigrationStep.objects.values_list("bounty_id", flat=True)), [self.live.pk])
        self.live.refresh_from_db()
        batch.refresh_from_db()
        self.assertEqual((self.live.model_version, batch.model_version), (newer, self.version))
        self.assertEqual(list(batch.slots.values_list("pk", "state", "deploy_tx_id")), before)
        members = [self.make_submission(mnist_pixels(7, n), bounty=batch) for n in range(2)]
        for submission in members:
            pipeline.process(submission.pk)
        paid = Submission.objects.filter(pk__in=[m.pk for m in members])
        self.assertEqual(set(paid.values_list("state", flat=True)), {"broadcast"})
        self.assertEqual(Slot.objects.get(bounty=batch).state, "claimed")
