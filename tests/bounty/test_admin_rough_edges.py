"""The admin's small things, as Fiona (the funder group) meets them: a deployed bounty's terms shown once, a
draft's slots, counts in words, the review window typed as people type it, several bounties exported at
once, the wallet's balance and how to top it up, the index without unused schedules, the links to the model
page, and whether the second opinion guards a bounty.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from importlib import import_module
from unittest import mock

import numpy as np
from bounty_testing import BaseTestCase, mnist_pixels, staff
from django.apps import apps as django_apps
from django.test import override_settings

from bounty import chain
from bounty.models import Bounty, Submission

roles = import_module("bounty.migrations.0007_roles")

BOUNTIES = "/admin/bounty/bounty/"


class RoughEdgesTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        roles.make_groups(django_apps, None)  # the groups of migration 0007, as a fresh database has them
        self.fiona = staff("fiona", "funder")
        self.client.force_login(self.fiona)
        self.draft = Bounty.objects.create(
            digit=3, reward=1500, slot_count=4, model_version=self.version, fee_rate=100, claim_fee=139
        )

    def act(self, action: str, *bounties: Bounty):  # type: ignore[no-untyped-def]
        selected = [bounty.pk for bounty in bounties]
        return self.client.post(BOUNTIES, {"action": action, "_selected_action": selected}, follow=True)

    def change_form(self, bounty: Bounty, **fields: object) -> dict:
        """The change form of `bounty` as the browser posts it, with `fields` changed."""
        form = {
            "digit": bounty.digit, "reward": bounty.reward, "slot_count": bounty.slot_count,
            "model_version": bounty.model_version_id, "review_window": "", "expires_at_0": "",
            "expires_at_1": "",
        }  # fmt: skip
        return {**form, **fields}

    def test_it_shows_each_term_of_a_deployed_bounty_once_and_keeps_a_draft_editable(self) -> None:
        page = self.client.get(f"{BOUNTIES}{self.bounty.pk}/change/")
        for label in ("Digit:", "Reward:", "Slot count:", "Model version:"):
            self.assertContains(page, f"{label}</label>", count=1)
        self.assertNotContains(page, 'name="reward"')  # shown, not editable: the slots hold it
        draft = self.client.get(f"{BOUNTIES}{self.draft.pk}/change/")
        self.assertContains(draft, 'name="reward"', count=1)
        self.assertContains(draft, "Reward:</label>", count=1)

    def test_it_shows_a_draft_as_not_deployed_rather_than_zero_slots_left(self) -> None:
        listing = self.client.get(BOUNTIES)
        self.assertContains(listing, '<td class="field-left">not deployed</td>', html=True)
        self.assertContains(listing, '<td class="field-left">3</td>', html=True)

    def test_it_counts_paused_and_resumed_bounties_in_words(self) -> None:
        self.assertContains(self.act("pause", self.bounty), "Paused 1 bounty.")
        self.assertContains(self.act("resume", self.bounty), "Resumed 1 bounty.")
        self.assertContains(self.act("pause", self.bounty, self.draft), "Paused 2 bounties.")

    def test_it_tells_the_accepted_formats_of_the_review_window(self) -> None:
        page = self.client.get(f"{BOUNTIES}{self.draft.pk}/change/")
        self.assertContains(page, "HH:MM:SS, or a number of seconds")
        self.assertContains(page, "01:00:00")
        refused = self.client.post(
            f"{BOUNTIES}{self.draft.pk}/change/", self.change_form(self.draft, review_window="soon")
        )
        self.assertContains(refused, "Enter a duration as HH:MM:SS (01:00:00 is one hour)")

    def test_it_accepts_a_review_window_in_words(self) -> None:
        for typed, window in (
            ("1 hour", timedelta(hours=1)),
            ("30 minutes", timedelta(minutes=30)),
            ("2 days", timedelta(days=2)),
            ("1h 30m", timedelta(hours=1, minutes=30)),
            ("01:00:00", timedelta(hours=1)),
            ("3600", timedelta(hours=1)),
        ):
            saved = self.client.post(
                f"{BOUNTIES}{self.draft.pk}/change/", self.change_form(self.draft, review_window=typed)
            )
            self.assertEqual(saved.status_code, 302, typed)
            self.assertEqual(Bounty.objects.get(pk=self.draft.pk).review_window, window, typed)

    def paid(self, bounty: Bounty, label: int) -> Submission:
        submission = self.make_submission(mnist_pixels(label), bounty=bounty)
        # claimed_digit set here: make_submission takes it from its default bounty
        Submission.objects.filter(pk=submission.pk).update(
            state=Submission.State.CONFIRMED, claimed_digit=bounty.digit
        )
        return submission

    def test_it_exports_every_selected_bounty_into_one_zip(self) -> None:
        seven, three = self.paid(self.bounty, 7), self.paid(self.draft, 3)
        response = self.act("export_zip", self.bounty, self.draft)
        self.assertIn(
            f"bounties-{self.bounty.pk}-{self.draft.pk}-images.zip", response["Content-Disposition"]
        )
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        for bounty, submission in ((self.bounty, seven), (self.draft, three)):
            manifest = json.loads(archive.read(f"bounty-{bounty.pk}/manifest.json"))
            self.assertEqual(manifest["bounty"], bounty.pk)
            self.assertEqual([image["submission"] for image in manifest["images"]], [submission.pk])
            self.assertIn(f"bounty-{bounty.pk}/images/{manifest['images'][0]['file']}", archive.namelist())

    def test_it_exports_every_selected_bounty_into_one_npz(self) -> None:
        seven, three = self.paid(self.bounty, 7), self.paid(self.draft, 3)
        response = self.act("export_npz", self.bounty, self.draft)
        arrays = np.load(io.BytesIO(response.content))
        self.assertEqual(arrays["images"].shape, (2, 28, 28))
        self.assertEqual(sorted(zip(arrays["bounty"], arrays["submission"], arrays["labels"], strict=True)),
                         sorted([(self.bounty.pk, seven.pk, 7), (self.draft.pk, three.pk, 3)]))  # fmt: skip

    def test_it_shows_the_wallet_balance_with_separators_and_the_faucet_on_the_local_ledger(self) -> None:
        with mock.patch.object(chain, "wallet_balance", return_value=12_345_678):
            index = self.client.get("/admin/")
        address = chain.operator_address()
        self.assertContains(index, '<td id="wallet-balance">12,345,678 sat</td>', html=True)
        self.assertContains(index, "python -m contracts ledger fund --data")
        self.assertContains(index, f"{address} 50000000</code>")

    @override_settings(CHAIN_BACKEND="arc", NETWORK="testnet")
    def test_it_tells_where_to_send_bsv_to_top_up_the_wallet(self) -> None:
        with mock.patch.object(chain, "wallet_balance", return_value=1_000):
            index = self.client.get("/admin/")
        self.assertContains(
            index, f"To top up, send BSV to <code>{chain.operator_address()}</code> on testnet."
        )
        self.assertNotContains(index, "ledger fund")

    def test_it_leaves_clocked_and_solar_schedules_out_of_the_admin(self) -> None:
        self.client.force_login(self.alice)
        index = self.client.get("/admin/")
        self.assertNotContains(index, "/admin/django_celery_beat/clockedschedule/")
        self.assertNotContains(index, "/admin/django_celery_beat/solarschedule/")
        for kept in ("periodictask", "intervalschedule", "crontabschedule"):
            self.assertContains(index, f"/admin/django_celery_beat/{kept}/")
        self.assertEqual(self.client.get("/admin/django_celery_beat/clockedschedule/").status_code, 404)

    def test_it_links_the_model_page_from_the_home_page_and_the_admin(self) -> None:
        self.assertContains(self.client.get("/"), 'href="/models/"')
        self.assertContains(self.client.get(f"/bounties/{self.bounty.pk}/"), 'href="/models/"')
        self.assertContains(self.client.get("/admin/"), 'href="/models/"')

    def test_it_says_whether_the_second_opinion_guards_the_bounty(self) -> None:
        with override_settings(SECOND_OPINION=True):
            on = self.client.get(f"{BOUNTIES}{self.bounty.pk}/change/")
        self.assertContains(on, "Payouts also need the second model&#x27;s agreement (on).")
        with override_settings(SECOND_OPINION=False):
            off = self.client.get(f"{BOUNTIES}{self.bounty.pk}/change/")
        self.assertContains(off, "Off: only the published model decides.")
