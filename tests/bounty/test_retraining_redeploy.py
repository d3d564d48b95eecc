"""Redeployment on the local ledger: free slots move to another model through the admin branch, resumably;
reserved slots wait for their claims; rollback goes back the same way."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from bounty_testing import ChainTestCase, mnist_pixels, model_artifact
from django.core.management import call_command

from bounty import chain
from bounty.models import Bounty, ModelVersion, Slot, Transaction
from bounty.retraining import redeploy
from bounty.retraining.models import MigrationStep, Redeployment
from classifier.integer_model import IntegerModel
from contracts.keys import Key
from contracts.txverify import parse_transaction


@cache
def newer_artifact(directory: str) -> Path:
    """The test model with every class bias raised by one: other weights (so another script and sha), the
    same predictions (argmax ignores a shift shared by all classes)."""
    model = IntegerModel.load(model_artifact())
    shifted = IntegerModel(model.w1, model.b1, model.w2, model.b2 + 1, manifest=dict(model.manifest))
    return shifted.save(Path(directory) / "newer.npz")


class RedeployTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.CLOSED)  # no chain behind it
        from django.conf import settings

        self.newer = ModelVersion.register(newer_artifact(str(settings.MEDIA_ROOT)), name="newer")
        self.old_slots = list(self.live.slots.values_list("pk", flat=True))

    def promote(self) -> Redeployment:
        return redeploy.start(self.newer, Redeployment.Kind.PROMOTION, "test promotion")

    def assert_on_newer(self) -> list[Slot]:
        self.live.refresh_from_db()
        self.assertEqual(self.live.model_version, self.newer)
        self.assertFalse(self.live.paused)
        new = list(self.live.slots.filter(state=Slot.State.FREE))
        self.assertEqual(len(new), 3)
        migration = new[0].deploy_tx
        self.assertTrue(all(slot.deploy_tx == migration for slot in new))
        self.assertEqual(migration.status, Transaction.Status.BROADCAST)
        self.assertEqual(migration.kind, Transaction.Kind.MIGRATE)
        contract = chain.bounty_contract(self.live)
        outputs = parse_transaction(chain.backend().get_transaction(migration.txid)).outputs
        for slot in new:
            self.assertEqual(outputs[slot.vout].locking_script.serialize(), contract.locking_script)
            self.assertEqual(outputs[slot.vout].satoshis, slot.satoshis)
        old = Slot.objects.filter(pk__in=self.old_slots)
        self.assertEqual(set(old.values_list("state", flat=True)), {Slot.State.MIGRATED})
        self.assertEqual(set(old.values_list("spent_by", flat=True)), {migration.pk})
        return new

    def claim(self, slot: Slot) -> str:
        built = chain.build_claim(
            self.live, slot, Key.generate("testnet").address, mnist_pixels(7, 1).tobytes()
        )
        return chain.broadcast(built.raw_hex)

    def test_it_moves_free_slots_to_the_new_model_in_one_transaction(self) -> None:
        redeployment = self.promote()
        self.assertEqual(redeploy.resume(), [])
        new = self.assert_on_newer()
        redeployment.refresh_from_db()
        self.assertEqual(redeployment.state, Redeployment.State.DONE)
        [step] = redeployment.steps.all()
        self.assertEqual((step.state, len(step.txids), step.new_slots), ("done", 1, 3))
        self.assertTrue(self.claim(new[0]))  # the new slot pays an image the new model accepts

    def test_it_finishes_a_migration_cut_short_after_each_stage(self) -> None:
        for stage in ("draining", "taken", "stored", "broadcast_sent"):
            with self.subTest(stage=stage):
                self.run_until_crash(stage)

    def run_until_crash(self, stage: str) -> None:
        # Restart from a freshly deployed bounty each time.
        self.live = self.create_bounty(digit=7, slots=3)
        self.old_slots = list(self.live.slots.values_list("pk", flat=True))
        ModelVersion.objects.get(name="test-model").activate()
        Redeployment.objects.update(state=Redeployment.State.DONE)
        redeployment = self.promote()
        Bounty.objects.exclude(pk=self.live.pk).filter(state=Bounty.State.ACTIVE).update(
            state=Bounty.State.CLOSED
        )
        step, _ = MigrationStep.objects.get_or_create(
            redeployment=redeployment, bounty=self.live, defaults={"from_version": self.live.model_version}
        )
        step = MigrationStep.objects.select_related("bounty", "from_version").get(pk=step.pk)
        redeploy.pause(step)
        if stage != "draining":
            redeploy.take(step)
            self.assertEqual(step.state, "taken")
        if stage in ("stored", "broadcast_sent"):
            redeploy.store(step, self.newer)
            self.assertEqual(step.state, "stored")
            self.assertTrue(self.live.slots.filter(spent_by__isnull=False).exists())
        if stage == "broadcast_sent":
            # the chain got the transaction, but the worker died before recording it
            chain.broadcast(Transaction.objects.get(txid=step.txids[0]).raw_hex)
        # The crash: nothing in memory survives; a new process resumes from the database.
        self.live.refresh_from_db()
        self.assertTrue(self.live.paused, "no new claims while the slots move")
        self.assertEqual(redeploy.resume(), [])
        self.assert_on_newer()
        migrations = Transaction.objects.filter(bounty=self.live, spent_slots__isnull=False).distinct()
        self.assertEqual(migrations.count(), 1, "one migration, never a second spend of the same slots")

    def test_it_leaves_reserved_slots_alone_until_their_claim_finishes(self) -> None:
        submission = self.make_submission(pixels=mnist_pixels(7, 1), bounty=self.live)
        reserved = Slot.reserve(self.live, submission.pk)
        redeployment = self.promote()
        self.assertEqual(len(redeploy.resume()), 1)
        [step] = redeployment.steps.all()
        self.assertEqual(step.state, MigrationStep.State.DRAINING)
        self.assertIn("1 claim(s) in flight", step.detail)
        self.live.refresh_from_db()
        self.assertTrue(self.live.paused)
        self.assertEqual(self.live.model_version.name, "test-model")
        self.assertEqual(self.live.slots.filter(state=Slot.State.FREE).count(), 2, "nothing taken yet")
        # The claim finishes on the old model.
        built = chain.build_claim(self.live, reserved, self.bob_address, mnist_pixels(7, 1).tobytes())
        chain.broadcast(built.raw_hex)
        Slot.objects.filter(pk=reserved.pk).update(state=Slot.State.CLAIMED)
        self.assertEqual(redeploy.resume(), [])
        self.live.refresh_from_db()
        self.assertEqual(self.live.model_version, self.newer)
        self.assertEqual(self.live.slots.filter(state=Slot.State.FREE).count(), 2)
        self.assertFalse(self.live.paused)

    def test_it_rolls_back_to_the_earlier_version_the_same_way(self) -> None:
        old_version = self.live.model_version
        self.promote()
        redeploy.resume()
        self.old_slots = list(self.live.slots.filter(state=Slot.State.FREE).values_list("pk", flat=True))
        call_command("rollback", old_version.name, "--reason", "the new one pays the wrong people")
        old_version.refresh_from_db()
        self.assertTrue(old_version.is_active)
        self.live.refresh_from_db()
        self.assertEqual(self.live.model_version, old_version)
        back = list(self.live.slots.filter(state=Slot.State.FREE))
        self.assertEqual(len(back), 3)
        self.assertEqual(Redeployment.objects.filter(kind="rollback", state="done").count(), 1)
        self.assertTrue(self.claim(back[0]))
        spent_twice = Slot.objects.filter(pk__in=self.old_slots).exclude(state=Slot.State.MIGRATED)
        self.assertFalse(spent_twice.exists())
        self.assertEqual(np.unique(list(self.live.slots.values_list("deploy_tx", flat=True))).size, 3)


class NothingToMoveTestCase(ChainTestCase):
    def test_it_finishes_at_once_when_no_bounty_uses_another_model(self) -> None:
        Bounty.objects.update(state=Bounty.State.CLOSED)
        redeployment = redeploy.start(self.version, Redeployment.Kind.ROLLBACK, "nothing to do")
        self.assertTrue(redeploy.process(redeployment))
        self.assertFalse(redeployment.steps.exists())
