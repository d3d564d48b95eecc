from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from bounty_testing import ChainTestCase, mnist_pixels
from django.conf import settings

from bounty import chain, pipeline
from bounty.models import Bounty, Slot, Submission
from bounty.ops import signing


class AdminActionsTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client.force_login(self.alice)

    def act(self, action: str, bounty: Bounty):  # type: ignore[no-untyped-def]
        return self.client.post(
            "/admin/bounty/bounty/", {"action": action, "_selected_action": [bounty.pk]}, follow=True
        )

    def test_the_add_form_shows_fee_and_bytes_per_paid_image(self) -> None:
        response = self.client.get("/admin/bounty/bounty/add/")
        cost = chain.claim_cost(self.version, 7, settings.FEE_RATE)
        self.assertContains(response, f"{cost['claim_fee']} sat")
        self.assertContains(response, f"{cost['bytes_per_paid_image']:,} bytes")

    def test_it_refuses_a_reward_below_the_claim_fee(self) -> None:
        response = self.client.post(
            "/admin/bounty/bounty/add/",
            {"digit": 7, "reward": 5, "slot_count": 2, "model_version": self.version.pk},
        )
        self.assertContains(response, "below the claim fee")
        self.assertEqual(Bounty.objects.filter(reward=5).count(), 0)

    def test_it_creates_a_draft_priced_at_the_configured_rate(self) -> None:
        self.client.post(
            "/admin/bounty/bounty/add/",
            {"digit": 2, "reward": 800, "slot_count": 2, "model_version": self.version.pk},
        )
        bounty = Bounty.objects.get(reward=800)
        self.assertEqual(bounty.state, "draft")
        self.assertEqual(bounty.claim_fee, chain.claim_cost(self.version, 2, settings.FEE_RATE)["claim_fee"])
        self.assertEqual(bounty.operator_pubkey, chain.public_keys()[0])

    def test_fund_and_deploy_creates_slots_on_chain_and_shows_the_txids(self) -> None:
        self.client.post(
            "/admin/bounty/bounty/add/",
            {"digit": 2, "reward": 800, "slot_count": 4, "model_version": self.version.pk},
        )
        bounty = Bounty.objects.get(reward=800)
        terms = self.act("deploy", bounty).context["rows"][0]["terms"]
        confirmed = {
            "action": "deploy",
            "_selected_action": [bounty.pk],
            "post": "yes",
            f"terms-{bounty.pk}": terms,
        }
        response = self.client.post("/admin/bounty/bounty/", confirmed, follow=True)
        bounty.refresh_from_db()
        deploy = bounty.transactions.get(kind="deploy")
        self.assertContains(response, deploy.txid)
        self.assertEqual(bounty.state, "active")
        self.assertEqual(bounty.slots.filter(state="free").count(), 4)
        self.assertEqual(chain.status(deploy.txid).state, chain.TxState.MEMPOOL)

    def test_pause_and_resume(self) -> None:
        self.act("pause", self.live)
        self.assertFalse(Bounty.objects.get(pk=self.live.pk).is_open())
        self.act("resume", self.live)
        self.assertTrue(Bounty.objects.get(pk=self.live.pk).is_open())

    def confirm_refund(self, bounty: Bounty):  # type: ignore[no-untyped-def]
        """Ask for the refund, then press "Yes" on the confirmation page with what it carries."""
        shown = self.act("refund", bounty).context["rows"][0]["slot_ids"]
        return self.client.post("/admin/bounty/bounty/", self.confirmation(bounty, shown), follow=True)

    def confirmation(self, bounty: Bounty, slots: str) -> dict:
        """The confirmation page's form: the action, the bounty, "yes" and the free slots it showed."""
        form = {"action": "refund", "_selected_action": [bounty.pk], "post": "yes"}
        return {**form, f"slots-{bounty.pk}": slots}

    def test_it_shows_what_a_refund_spends_and_pays_before_anything_is_broadcast(self) -> None:
        page = self.act("refund", self.live)
        refund = signing.prepare_refund(self.live, chain.operator_address())
        for slot in self.live.slots.all():
            row = f"<tr><td><code>{slot.outpoint}</code></td><td>{slot.satoshis}</td></tr>"
            self.assertContains(page, row)
        self.assertContains(page, f'<code class="address">{chain.operator_address()}</code>')
        self.assertContains(page, f'<strong class="total">{refund.total}</strong>')
        self.assertContains(page, f'<strong class="amount">{refund.amount}</strong>')
        self.assertContains(page, f'<strong class="fee">{refund.fee}</strong>')
        self.assertEqual(self.live.slots.filter(state="free").count(), 3, "asking spends nothing")
        self.assertFalse(self.live.transactions.filter(kind="refund").exists())
        self.assertEqual(Bounty.objects.get(pk=self.live.pk).state, "active")

    def test_it_ignores_a_refund_posted_without_the_confirmation(self) -> None:
        slots = ",".join(str(pk) for pk in self.live.slots.order_by("pk").values_list("pk", flat=True))
        self.act("refund", self.live)
        forged = {"action": "refund", "_selected_action": [self.live.pk], f"slots-{self.live.pk}": slots}
        self.client.post("/admin/bounty/bounty/", forged, follow=True)
        no_slots = {"action": "refund", "_selected_action": [self.live.pk], "post": "yes"}
        response = self.client.post("/admin/bounty/bounty/", no_slots, follow=True)
        self.assertContains(response, "nothing was refunded")
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)
        self.assertFalse(self.live.transactions.filter(kind="refund").exists())

    def test_it_refunds_nothing_when_the_slots_changed_after_the_confirmation_page(self) -> None:
        page = self.act("refund", self.live)
        shown = page.context["rows"][0]["slot_ids"]
        Slot.reserve(self.live, self.make_submission(mnist_pixels(7), bounty=self.live).pk)
        response = self.client.post("/admin/bounty/bounty/", self.confirmation(self.live, shown), follow=True)
        self.assertContains(response, "its free slots changed since the confirmation page")
        self.assertEqual(self.live.slots.filter(state="free").count(), 2)
        self.assertFalse(self.live.transactions.filter(kind="refund").exists())

    def test_refund_sweeps_unused_slots_back_to_the_wallet(self) -> None:
        before = chain.wallet_balance(chain.operator_address())
        response = self.confirm_refund(self.live)
        self.assertContains(response, "refund transaction")
        self.assertEqual(self.live.slots.filter(state="refunded").count(), 3)
        self.assertEqual(Bounty.objects.get(pk=self.live.pk).state, "refunded")
        self.assertGreater(chain.wallet_balance(chain.operator_address()), before)

    def test_refund_leaves_a_reserved_slot_to_its_claim(self) -> None:
        submission = self.make_submission(mnist_pixels(7), bounty=self.live)
        Slot.reserve(self.live, submission.pk)
        self.confirm_refund(self.live)
        self.assertEqual(self.live.slots.filter(state="refunded").count(), 2)
        self.assertEqual(self.live.slots.filter(state="reserved").count(), 1)

    def paid_submission(self) -> Submission:
        submission = self.make_submission(mnist_pixels(7), bounty=self.live)
        pipeline.process(submission.pk)
        return submission

    def test_export_zip_holds_pngs_and_a_manifest(self) -> None:
        submission = self.paid_submission()
        response = self.act("export_zip", self.live)
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        manifest = json.loads(archive.read("manifest.json"))
        self.assertEqual(manifest["images"][0]["submission"], submission.pk)
        self.assertEqual(manifest["images"][0]["label"], 7)
        self.assertIn(f"images/{manifest['images'][0]['file']}", archive.namelist())
        self.assertIn("manifest.csv", archive.namelist())

    def test_export_npz_is_ready_for_training(self) -> None:
        self.paid_submission()
        response = self.act("export_npz", self.live)
        arrays = np.load(io.BytesIO(response.content))
        self.assertEqual(arrays["images"].shape, (1, 28, 28))
        self.assertEqual(list(arrays["labels"]), [7])

    def test_the_review_queue_labels_and_approves(self) -> None:
        wrong = self.make_submission(mnist_pixels(3), bounty=self.live)
        pipeline.process(wrong.pk)
        response = self.client.get("/admin/bounty/reviewitem/")
        self.assertContains(response, "data:image/png;base64,")
        self.client.post(
            "/admin/bounty/reviewitem/", {"action": "label_as_predicted", "_selected_action": [wrong.pk]}
        )
        self.assertEqual(Submission.objects.get(pk=wrong.pk).true_digit, 3)

    def test_lists_and_the_wallet_box_render(self) -> None:
        self.paid_submission()
        for url in ("/admin/bounty/submission/", "/admin/bounty/slot/", "/admin/bounty/transaction/"):
            self.assertEqual(self.client.get(url).status_code, 200, url)
        tx = self.live.transactions.get(kind="deploy")
        detail = self.client.get(f"/admin/bounty/transaction/{tx.pk}/change/")
        self.assertContains(detail, "contract,")
        index = self.client.get("/admin/")
        self.assertContains(index, chain.operator_address())
        self.assertContains(index, "Operator wallet")
