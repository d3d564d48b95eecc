"""A promotion with the admin key kept off the server (ADMIN_PUBKEY, no ADMIN_KEY): the migration waits,
prepared unsigned, on the /ops/sign/ page; an admin signs its preimages elsewhere and pastes the signatures;
the service verifies, stores and broadcasts it and the bounty moves to the new model. In-process, on the
local ledger; the test signs with the admin Key as the offline admin would."""

from __future__ import annotations

from bounty_testing import BaseTestCase, deployed_bounty, mnist_pixels, model_artifact
from django.conf import settings
from test_retraining_redeploy import newer_artifact

from bounty import chain, keys
from bounty.models import Bounty, ModelVersion, Slot, Transaction
from bounty.ops import signing
from bounty.retraining import redeploy
from bounty.retraining.models import MigrationStep, Redeployment
from contracts.keys import Key
from contracts.txverify import parse_transaction

# Fixed keys, so the compiled slot contracts are cached across the tests of this module.
OPERATOR = Key(bytes.fromhex("0e" * 32), "testnet")
ADMIN = Key(bytes.fromhex("ad" * 32), "testnet")  # kept "offline": only this test holds it


class OfflineAdminMigrationTestCase(BaseTestCase):
    def setUp(self) -> None:
        offline = self.settings(
            GENERATE_MISSING_KEYS=False, OPERATOR_KEY=OPERATOR.wif, ADMIN_KEY=None,
            ADMIN_PUBKEY=ADMIN.public_key.hex(),
        )  # fmt: skip
        offline.enable()
        self.addCleanup(offline.disable)
        keys.reset_cache()
        self.addCleanup(keys.reset_cache)
        super().setUp()
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.CLOSED)  # no chain behind it
        ModelVersion.objects.update(is_active=False)
        self.version = ModelVersion.register(model_artifact(), name="test-model", activate=True)
        self.newer = ModelVersion.register(newer_artifact(str(settings.MEDIA_ROOT)), name="newer")
        chain.faucet(chain.operator_address(), 5_000_000)
        self.live = deployed_bounty(self.version, digit=7, slots=3)
        self.assertFalse(keys.admin_key_on_server())
        self.assertEqual(self.live.admin_pubkey, ADMIN.public_key.hex())

    def promote_and_wait(self) -> MigrationStep:
        redeployment = redeploy.start(self.newer, Redeployment.Kind.PROMOTION, "test promotion")
        self.assertEqual(redeploy.resume(), [redeployment], "still running: it waits for the admin")
        step = MigrationStep.objects.get(redeployment=redeployment, bounty=self.live)
        self.assertEqual(step.state, MigrationStep.State.SIGNING)
        self.assertIn("/ops/sign/", step.detail)
        return step

    def signatures(self, step: MigrationStep, key: Key = ADMIN) -> list[str]:
        return [key.sign_preimage(bytes.fromhex(i.preimage)).hex() for i in redeploy.to_sign(step).inputs]

    def assert_untouched_on_the_old_model(self, step: MigrationStep) -> None:
        self.live.refresh_from_db()
        self.assertEqual(self.live.model_version, self.version)
        self.assertFalse(Transaction.objects.filter(kind=Transaction.Kind.MIGRATE).exists())
        step.refresh_from_db()
        self.assertEqual(step.txids, [])

    def assert_moved(self, step: MigrationStep, old_slots: list[int], count: int) -> list[Slot]:
        step.refresh_from_db()
        self.assertEqual(step.state, MigrationStep.State.DONE, step.detail)
        self.assertEqual(step.unsigned, [])
        self.live.refresh_from_db()
        self.assertEqual(self.live.model_version, self.newer)
        self.assertFalse(self.live.paused)
        [migration] = Transaction.objects.filter(kind=Transaction.Kind.MIGRATE)
        self.assertEqual((migration.txid, migration.status), (step.txids[0], Transaction.Status.BROADCAST))
        self.assertIn(chain.status(migration.txid).state, (chain.TxState.MEMPOOL, chain.TxState.MINED))
        new = list(self.live.slots.filter(state=Slot.State.FREE))
        self.assertEqual(len(new), count)
        contract = chain.bounty_contract(self.live)
        outputs = parse_transaction(bytes.fromhex(migration.raw_hex)).outputs
        for slot in new:
            self.assertEqual(slot.deploy_tx, migration)
            self.assertEqual(outputs[slot.vout].locking_script.serialize(), contract.locking_script)
        old = Slot.objects.filter(pk__in=old_slots)
        self.assertEqual(set(old.values_list("state", "spent_by")), {(Slot.State.MIGRATED, migration.pk)})
        return new

    def test_it_waits_for_the_admins_signatures_on_the_signing_page_then_moves_the_slots(self) -> None:
        # A claim in flight holds one slot: the migration leaves it alone until the claim finishes.
        submission = self.make_submission(pixels=mnist_pixels(7, 1), bounty=self.live)
        reserved = Slot.reserve(self.live, submission.pk)
        redeployment = redeploy.start(self.newer, Redeployment.Kind.PROMOTION, "test promotion")
        self.assertEqual(redeploy.resume(), [redeployment])
        self.assertEqual(MigrationStep.objects.get().state, MigrationStep.State.DRAINING)
        built = chain.build_claim(self.live, reserved, self.bob_address, mnist_pixels(7, 1).tobytes())
        chain.broadcast(built.raw_hex)
        Slot.objects.filter(pk=reserved.pk).update(state=Slot.State.CLAIMED)
        old_slots = list(self.live.slots.filter(state=Slot.State.FREE).values_list("pk", flat=True))

        self.assertEqual(redeploy.resume(), [redeployment])
        step = MigrationStep.objects.get()
        self.assertEqual(step.state, MigrationStep.State.SIGNING)
        self.assertEqual(sorted(step.slot_ids), sorted(old_slots))
        self.live.refresh_from_db()
        self.assertTrue(self.live.paused, "no new claims while the slots wait to move")
        self.assert_untouched_on_the_old_model(step)

        self.client.force_login(self.alice)
        index = self.client.get("/ops/sign/").content.decode()
        url = f"/ops/sign/migration/{step.pk}/"
        self.assertIn(url, index)
        page = self.client.get(url)
        self.assertEqual(page.status_code, 200)
        to_sign = redeploy.to_sign(step)
        self.assertEqual(len(to_sign.inputs), 2)
        self.assertEqual(to_sign.admin_pubkey, ADMIN.public_key.hex())
        old_money = sum(i.satoshis for i in to_sign.inputs)
        self.assertEqual(old_money + to_sign.from_wallet, 2 * to_sign.slot_value + to_sign.fee)
        self.assertGreater(to_sign.from_wallet, 0, "the operator wallet tops the migration up")
        for item in to_sign.inputs:
            self.assertContains(page, item.preimage)
            self.assertContains(page, item.digest)

        wrong = self.client.post(url, {"signatures": "\n".join(self.signatures(step, OPERATOR))})
        self.assertContains(wrong, "does not verify", status_code=400)
        step.refresh_from_db()
        self.assertEqual(step.state, MigrationStep.State.SIGNING)
        self.assert_untouched_on_the_old_model(step)
        too_few = self.client.post(url, {"signatures": self.signatures(step)[0]})
        self.assertContains(too_few, "expected 2 signature(s), got 1", status_code=400)

        done = self.client.post(url, {"signatures": "\n".join(self.signatures(step))})
        self.assertEqual(done.status_code, 200)
        new = self.assert_moved(step, old_slots, count=2)
        self.assertContains(done, step.txids[0])
        redeployment.refresh_from_db()
        self.assertEqual(redeployment.state, Redeployment.State.DONE)
        self.assertIn(f"sign/migration/{step.pk}/", index)
        self.assertNotIn(url, self.client.get("/ops/sign/").content.decode(), "nothing left to sign")
        # The new slot pays an image the new model accepts.
        claim = chain.build_claim(self.live, new[0], self.charlie_address, mnist_pixels(7, 2).tobytes())
        self.assertTrue(chain.broadcast(claim.raw_hex))
        self.assertEqual(
            Slot.objects.filter(pk=reserved.pk).values_list("state", flat=True).get(), Slot.State.CLAIMED
        )

    def test_a_crash_after_the_signatures_are_stored_is_finished_by_resume(self) -> None:
        old_slots = list(self.live.slots.values_list("pk", flat=True))
        step = self.promote_and_wait()
        # A new process prepares the same preimages from what the step stored.
        first = [i.preimage for i in redeploy.to_sign(step).inputs]
        step = MigrationStep.objects.select_related("bounty", "from_version", "redeployment__target").get()
        self.assertEqual([i.preimage for i in redeploy.to_sign(step).inputs], first)
        signed = self.signatures(step)
        redeploy.accept_signatures(step, signed)
        self.assertEqual(step.state, MigrationStep.State.STORED)
        with self.assertRaisesMessage(signing.SigningError, "is stored, not waiting for signatures"):
            redeploy.accept_signatures(step, signed)  # pasted twice: stored once
        # The worker died here: nothing broadcast yet. Beat's resume finishes the job.
        self.assertEqual(Transaction.objects.get(kind="migrate").status, Transaction.Status.STORED)
        self.assertEqual(redeploy.resume(), [])
        self.assert_moved(step, old_slots, count=3)

    def test_a_migration_waiting_when_another_version_becomes_active_gives_the_slots_back(self) -> None:
        step = self.promote_and_wait()
        redeploy.start(self.version, Redeployment.Kind.ROLLBACK, "changed our mind")
        redeploy.resume()
        step.refresh_from_db()
        self.assertEqual(step.state, MigrationStep.State.FAILED)
        self.assertIn("superseded", step.detail)
        self.assertEqual(self.live.slots.filter(state=Slot.State.FREE, spent_by=None).count(), 3)
        self.live.refresh_from_db()
        self.assertFalse(self.live.paused)
        self.assert_untouched_on_the_old_model(step)
        self.client.force_login(self.alice)
        gone = self.client.get(f"/ops/sign/migration/{step.pk}/")
        self.assertContains(gone, "this migration is failed, not waiting for signatures")

    def test_only_staff_see_the_migration_to_sign(self) -> None:
        step = self.promote_and_wait()
        self.assertEqual(self.client.get(f"/ops/sign/migration/{step.pk}/").status_code, 302)
