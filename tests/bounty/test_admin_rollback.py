"""A rollback added in the admin moves every active bounty's free slots to another model: it first shows what
it would spend and create, and nothing moves until that page is confirmed for what it showed."""

from __future__ import annotations

from bounty_testing import ChainTestCase
from django.conf import settings
from test_retraining_redeploy import newer_artifact

from bounty.models import Bounty, ModelVersion, Slot
from bounty.retraining.models import Redeployment

ADD = "/admin/retraining/redeployment/add/"


class RollbackConfirmationTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.CLOSED)  # no chain behind it
        self.older = ModelVersion.register(newer_artifact(str(settings.MEDIA_ROOT)), name="older")
        self.client.force_login(self.alice)

    def assert_nothing_moved(self) -> None:
        self.assertFalse(Redeployment.objects.exists())
        self.assertEqual(ModelVersion.active(), self.version)
        self.assertEqual(Bounty.objects.get(pk=self.live.pk).model_version, self.version)
        self.assertEqual(self.live.slots.filter(state=Slot.State.FREE).count(), 3)
        self.assertFalse(self.live.transactions.filter(kind="migrate").exists())

    def test_it_shows_each_slot_and_the_fee_before_moving_anything(self) -> None:
        page = self.client.post(ADD, {"target": self.older.pk, "reason": "the new one misreads sevens"})
        self.assertEqual(page.status_code, 200)
        for slot in self.live.slots.all():
            self.assertContains(
                page, f"<tr><td><code>{slot.outpoint}</code></td><td>{slot.satoshis}</td></tr>"
            )
        [planned] = page.context["rows"][0]["transactions"]
        self.assertEqual(planned["new_slots"], 3)
        self.assertGreater(planned["fee"], 0)
        self.assertContains(page, f'<strong class="fee">{planned["fee"]}</strong>')
        self.assertContains(page, planned["change_address"])
        self.assertContains(page, '<strong id="target">older</strong>')
        self.assert_nothing_moved()

    def test_it_ignores_a_rollback_posted_without_the_confirmation(self) -> None:
        self.client.post(ADD, {"target": self.older.pk, "reason": "forged", "_save": "Save"})
        self.client.post(ADD, {"target": self.older.pk, "reason": "forged", "_confirmed": "1:1,2,3"})
        self.assert_nothing_moved()

    def test_it_moves_the_slots_once_the_rollback_is_confirmed(self) -> None:
        page = self.client.post(ADD, {"target": self.older.pk, "reason": "confirmed"})
        confirmed = {"target": self.older.pk, "reason": "confirmed", "_confirmed": page.context["plan"]}
        self.assertRedirects(self.client.post(ADD, confirmed), "/admin/retraining/redeployment/")
        self.assertEqual(Redeployment.objects.get().target, self.older)
        self.assertEqual(ModelVersion.active(), self.older)
        self.assertEqual(Bounty.objects.get(pk=self.live.pk).model_version, self.older)
        self.assertEqual(self.live.transactions.filter(kind="migrate").count(), 1)
