"""Who may act in the admin and on the signing pages: every action and ops page needs its own permission.

Charlie is staff with every view permission and nothing else: he sees the lists but no action, and a POST he
forges (the action, even its confirmation) changes nothing. Fiona is in the funder group: she refunds, never
approves a payout. Dora is in the reviewer group: she approves payouts, never refunds or activates a model.
"""

from __future__ import annotations

from importlib import import_module

from bounty_testing import ChainTestCase, staff
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from bounty.models import Bounty, ModelVersion, Submission
from bounty.retraining.models import CollectedImage

roles = import_module("bounty.migrations.0007_roles")

BOUNTIES = "/admin/bounty/bounty/"
QUEUE = "/admin/bounty/reviewitem/"
SUBMISSIONS = "/admin/bounty/submission/"
VERSIONS = "/admin/bounty/modelversion/"
COLLECTED = "/admin/retraining/collectedimage/"


class RolesTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        # The groups come from migration 0007; running it again is harmless and keeps this test independent
        # of a transactional test that flushed the tables before it.
        roles.make_groups(django_apps, None)
        self.charlie = staff("charlie")
        self.charlie.user_permissions.add(
            *Permission.objects.filter(
                codename__startswith="view_", content_type__app_label__in=("bounty", "retraining")
            )
        )
        self.fiona = staff("fiona", "funder")
        self.dora = staff("dora", "reviewer")
        self.held = self.make_submission(bounty=self.live)
        Submission.objects.filter(pk=self.held.pk).update(state=Submission.State.HELD)
        self.stalled = self.make_submission(bounty=self.live)
        Submission.objects.filter(pk=self.stalled.pk).update(state=Submission.State.STALLED)
        self.draft = Bounty.objects.create(
            digit=3, reward=1000, slot_count=1, model_version=self.version, fee_rate=100, claim_fee=2000
        )
        self.other_version = ModelVersion.objects.create(
            name="other", artifact=self.version.artifact, sha256="cd" * 32
        )
        self.flagged = CollectedImage.objects.create(
            submission=self.held, pixel_sha256=self.held.pixel_sha256, label=7, source="reviewer",
            role=CollectedImage.Role.FLAGGED,
        )  # fmt: skip

    def actions(self, user: User, url: str) -> set[str]:
        """The actions the changelist at `url` offers `user` (its select list)."""
        self.client.force_login(user)
        page = self.client.get(url)
        self.assertEqual(page.status_code, 200, url)
        form = page.context["action_form"]
        return {name for name, _ in form.fields["action"].choices if name} if form else set()

    def act(self, url: str, action: str, *pks: int, **extra: str):  # type: ignore[no-untyped-def]
        return self.client.post(url, {"action": action, "_selected_action": list(pks), **extra}, follow=True)

    def refund_confirmed(self, bounty: Bounty):  # type: ignore[no-untyped-def]
        """The refund with its confirmation, as the confirmation page would post it."""
        slots = ",".join(str(s.pk) for s in bounty.slots.filter(state="free").order_by("pk"))
        return self.act(BOUNTIES, "refund", bounty.pk, post="yes", **{f"slots-{bounty.pk}": slots})

    def assert_untouched(self) -> None:
        live = Bounty.objects.get(pk=self.live.pk)
        self.assertEqual((live.state, live.paused), ("active", False))
        self.assertEqual(live.slots.filter(state="free").count(), 3)
        self.assertFalse(live.transactions.filter(kind="refund").exists())
        self.assertEqual(Bounty.objects.get(pk=self.draft.pk).state, "draft")
        self.assertEqual(Submission.objects.get(pk=self.held.pk).state, "held")
        self.assertFalse(Submission.objects.get(pk=self.held.pk).review_approved)
        self.assertIsNone(Submission.objects.get(pk=self.held.pk).true_digit)
        self.assertEqual(Submission.objects.get(pk=self.stalled.pk).state, "stalled")
        self.assertEqual(ModelVersion.active(), self.version)
        self.assertEqual(CollectedImage.objects.get(pk=self.flagged.pk).role, "flagged")

    def test_it_offers_a_view_only_user_no_action_at_all(self) -> None:
        for url in (BOUNTIES, QUEUE, SUBMISSIONS, VERSIONS, COLLECTED):
            self.assertEqual(self.actions(self.charlie, url), set(), url)

    def test_it_ignores_every_action_a_view_only_user_forges(self) -> None:
        self.client.force_login(self.charlie)
        self.refund_confirmed(self.live)
        self.act(BOUNTIES, "pause", self.live.pk)
        self.act(BOUNTIES, "deploy", self.draft.pk)
        export = self.act(BOUNTIES, "export_zip", self.live.pk)
        self.assertNotEqual(export["Content-Type"], "application/zip")
        for action in ("approve_payout", "label_as_claimed", "decline"):
            self.act(QUEUE, action, self.held.pk)
        self.act(SUBMISSIONS, "retry_payout", self.stalled.pk)
        self.act(SUBMISSIONS, "give_up_payout", self.stalled.pk)
        self.act(VERSIONS, "activate", self.other_version.pk)
        self.act(COLLECTED, "train_on", self.flagged.pk)
        label = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(self.held.pk)}
        edited = self.client.post(QUEUE, {**label, "form-0-true_digit": "3", "_save": "Save"})
        self.assertEqual(edited.status_code, 403)
        self.assert_untouched()

    def test_it_keeps_a_view_only_user_off_the_signing_pages(self) -> None:
        self.client.force_login(self.charlie)
        refund = f"/ops/sign/bounty/{self.live.pk}/refund/"
        for url in ("/ops/sign/", refund, f"{refund}request.json", "/ops/sign/migration/1/"):
            self.assertEqual(self.client.get(url).status_code, 403, url)
        posted = self.client.post(refund, {"slot_ids": "1,2,3", "signatures": "00 00 00"})
        self.assertEqual(posted.status_code, 403)
        self.assert_untouched()

    def test_it_lets_the_funder_refund_but_not_approve_payouts(self) -> None:
        offered = self.actions(self.fiona, BOUNTIES)
        self.assertEqual(offered, {"deploy", "pause", "resume", "refund", "export_zip", "export_npz"})
        asked = self.act(BOUNTIES, "refund", self.live.pk)
        self.assertContains(asked, "Yes, sign and broadcast these refunds")
        self.assertEqual(self.live.slots.filter(state="free").count(), 3, "the question spends nothing")
        response = self.refund_confirmed(self.live)
        self.assertContains(response, "refund transaction")
        self.assertEqual(Bounty.objects.get(pk=self.live.pk).state, "refunded")
        self.assertEqual(self.client.get(QUEUE).status_code, 403)
        self.assertEqual(self.act(QUEUE, "approve_payout", self.held.pk).status_code, 403)
        self.assertEqual(Submission.objects.get(pk=self.held.pk).state, "held")
        self.assertEqual(self.client.get("/ops/sign/").status_code, 200)

    def test_it_lets_the_reviewer_approve_payouts_but_not_refund_or_activate_a_model(self) -> None:
        offered = self.actions(self.dora, QUEUE)
        self.assertEqual(offered, {"approve_payout", "decline", "label_as_claimed", "label_as_predicted"})
        self.assertEqual(self.actions(self.dora, SUBMISSIONS), {"retry_payout", "give_up_payout"})
        self.assertEqual(self.actions(self.dora, BOUNTIES), set())
        self.act(QUEUE, "approve_payout", self.held.pk)
        approved = Submission.objects.get(pk=self.held.pk)
        self.assertEqual((approved.state, approved.review_approved), ("checked", True))

        self.refund_confirmed(self.live)
        self.assertEqual(Bounty.objects.get(pk=self.live.pk).state, "active")
        self.assertEqual(self.live.slots.filter(state="free").count(), 3)
        self.assertEqual(self.act(VERSIONS, "activate", self.other_version.pk).status_code, 403)
        self.assertEqual(ModelVersion.active(), self.version)
        rollback = {"target": self.other_version.pk, "reason": "", "_confirmed": ""}
        self.assertEqual(self.client.post("/admin/retraining/redeployment/add/", rollback).status_code, 403)
        self.assertEqual(ModelVersion.active(), self.version)
        self.assertEqual(self.client.get("/ops/sign/").status_code, 403)

    def test_it_lets_a_reviewer_change_only_the_label_in_the_queue(self) -> None:
        self.client.force_login(self.dora)
        url = f"{QUEUE}{self.held.pk}/change/"
        self.client.post(url, {"true_digit": "3", "payout_address": self.charlie_address, "state": "checked"})
        changed = Submission.objects.get(pk=self.held.pk)
        self.assertEqual(changed.true_digit, 3)
        self.assertEqual((changed.payout_address, changed.state), (self.bob_address, "held"))

    def test_it_creates_both_roles_when_a_fresh_database_migrates(self) -> None:
        Group.objects.filter(name__in=("funder", "reviewer")).delete()
        at_0007 = MigrationLoader(connection).project_state(("bounty", "0007_roles")).apps
        roles.make_groups(at_0007, None)
        funder = set(Group.objects.get(name="funder").permissions.values_list("codename", flat=True))
        reviewer = set(Group.objects.get(name="reviewer").permissions.values_list("codename", flat=True))
        self.assertLessEqual({"refund_bounty", "fund_bounty", "sign_offline", "view_transaction"}, funder)
        self.assertLessEqual({"approve_payout", "retry_payout", "label_submission"}, reviewer)
        self.assertFalse({"approve_payout", "activate_modelversion"} & funder)
        self.assertFalse({"refund_bounty", "sign_offline", "activate_modelversion"} & reviewer)
