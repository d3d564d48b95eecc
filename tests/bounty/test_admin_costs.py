"""What a bounty costs, said in the admin before and after it is deployed.

Fiona is in the funder group. Before deploying she sees the whole bill of a 5 x 2,000 sat bounty: rewards,
claim fees, the deploy fee of the very transaction the action would build, the total, the share that reaches
contributors and the wallet before and after; nothing is spent until she confirms that page. Afterwards the
bounty's page lists each deploy transaction with its size and fee, and the total. Charlie is staff who may
only look: his forged confirmation deploys nothing.
"""

from __future__ import annotations

import html
import re
from importlib import import_module

from bounty_testing import ChainTestCase, staff
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Permission

from bounty import chain
from bounty.funding import draft_bounty
from bounty.models import Bounty

roles = import_module("bounty.migrations.0007_roles")

BOUNTIES = "/admin/bounty/bounty/"


def text(response) -> str:  # type: ignore[no-untyped-def]
    """The page's words, without tags and with whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


class DeployBillTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        roles.make_groups(django_apps, None)  # the groups of migration 0007, as a fresh database has them
        self.fiona = staff("fiona", "funder")
        self.client.force_login(self.fiona)
        self.client.post(
            f"{BOUNTIES}add/",
            {"digit": 3, "reward": 2000, "slot_count": 5, "model_version": self.version.pk},
        )
        self.draft = Bounty.objects.get(reward=2000)
        self.wallet = chain.operator_address()

    def ask(self, *bounties: Bounty):  # type: ignore[no-untyped-def]
        """Choose "Fund and deploy" for `bounties` in the list: the confirmation page."""
        selected = [bounty.pk for bounty in bounties]
        return self.client.post(BOUNTIES, {"action": "deploy", "_selected_action": selected}, follow=True)

    def confirm(self, bounty: Bounty, terms: str):  # type: ignore[no-untyped-def]
        form = {
            "action": "deploy",
            "_selected_action": [bounty.pk],
            "post": "yes",
            f"terms-{bounty.pk}": terms,
        }
        return self.client.post(BOUNTIES, form, follow=True)

    def assert_not_deployed(self, balance: int) -> None:
        draft = Bounty.objects.get(pk=self.draft.pk)
        self.assertEqual(draft.state, "draft")
        self.assertFalse(draft.transactions.exists())
        self.assertFalse(draft.slots.exists())
        self.assertEqual(chain.wallet_balance(self.wallet), balance)

    def test_it_shows_the_whole_bill_and_the_wallet_before_anything_is_spent(self) -> None:
        balance = chain.wallet_balance(self.wallet)
        [deploy] = chain.build_deploy(self.draft)  # what the action would build: its fee
        claim_fee = self.draft.claim_fee
        total = 5 * (2000 + claim_fee) + deploy.fee
        page = self.ask(self.draft)
        size = page.context["rows"][0]["bill"]["size"]  # a signature made anew may take a byte more or less
        self.assertLessEqual(abs(size - deploy.size), 2)
        words = text(page)
        self.assertIn("Rewards 5 × 2,000 sat 10,000 sat", words)
        self.assertIn(f"Claim fees 5 × {claim_fee:,} sat {5 * claim_fee:,} sat", words)
        self.assertIn(f"Deploy fee 1 transaction, {size:,} bytes {deploy.fee:,} sat", words)
        self.assertIn(f"Total {total:,} sat", words)
        self.assertIn(f"{10_000 / total:.1%} of it reaches contributors", words)
        self.assertIn(f"Balance now {balance:,} sat", words)
        self.assertIn(f"Balance after {balance - total:,} sat", words)
        self.assertContains(page, f'<input type="submit" value="Yes, spend {total:,} sat and deploy">')
        self.assert_not_deployed(balance)

    def test_it_deploys_what_the_confirmation_page_showed(self) -> None:
        balance = chain.wallet_balance(self.wallet)
        shown = self.ask(self.draft).context["rows"][0]
        response = self.confirm(self.draft, shown["terms"])
        deployed = Bounty.objects.get(pk=self.draft.pk)
        self.assertEqual(deployed.state, "active")
        self.assertEqual(deployed.slots_left(), 5)
        [deploy] = deployed.transactions.filter(kind="deploy")
        self.assertEqual(deploy.fee, shown["bill"]["fee"])
        self.assertEqual(chain.wallet_balance(self.wallet), balance - shown["bill"]["total"])
        self.assertContains(response, f"it spent {shown['bill']['total']:,} sat")
        self.assertContains(response, deploy.txid)

    def test_it_deploys_nothing_on_a_forged_post_without_the_confirmation(self) -> None:
        balance = chain.wallet_balance(self.wallet)
        terms = self.ask(self.draft).context["rows"][0]["terms"]
        forged = {"action": "deploy", "_selected_action": [self.draft.pk], "post": "yes"}
        response = self.client.post(BOUNTIES, forged, follow=True)
        self.assertContains(response, "nothing was deployed")
        self.assert_not_deployed(balance)
        charlie = staff("charlie")  # may only look: even the page's own confirmation does nothing for him
        charlie.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
        self.client.force_login(charlie)
        self.confirm(self.draft, terms)
        self.assert_not_deployed(balance)

    def test_it_deploys_nothing_when_the_draft_changed_after_the_confirmation_page(self) -> None:
        balance = chain.wallet_balance(self.wallet)
        terms = self.ask(self.draft).context["rows"][0]["terms"]
        Bounty.objects.filter(pk=self.draft.pk).update(slot_count=50)
        response = self.confirm(self.draft, terms)
        self.assertContains(response, "what it costs changed since the confirmation page")
        self.assert_not_deployed(balance)

    def test_it_offers_no_confirmation_when_the_wallet_cannot_pay(self) -> None:
        balance = chain.wallet_balance(self.wallet)
        Bounty.objects.filter(pk=self.draft.pk).update(reward=balance)  # more than the wallet holds
        page = self.ask(self.draft)
        self.assertContains(page, "it will not be deployed")
        self.assertNotContains(page, '<input type="submit"')
        self.assertEqual(page.context["rows"][0]["terms"], "")
        self.assert_not_deployed(balance)

    def test_it_offers_no_confirmation_when_two_deploys_together_overdraw_the_wallet(self) -> None:
        most = chain.wallet_balance(self.wallet) * 3 // 5  # each alone fits in the wallet, not both
        Bounty.objects.filter(pk=self.draft.pk).update(reward=most, slot_count=1)
        self.draft.refresh_from_db()
        other = draft_bounty(self.version, digit=3, slots=1, reward=most)
        page = self.ask(self.draft, other)
        self.assertTrue(all(row["terms"] for row in page.context["rows"]), "each alone is affordable")
        self.assertLess(page.context["after"], 0)
        self.assertContains(page, "these deploys need")
        self.assertNotContains(page, '<input type="submit"')

    def test_it_shows_on_a_deployed_bounty_what_it_spent_and_by_which_transactions(self) -> None:
        shown = self.ask(self.draft).context["rows"][0]
        self.confirm(self.draft, shown["terms"])
        [deploy] = self.draft.transactions.filter(kind="deploy")
        page = self.client.get(f"{BOUNTIES}{self.draft.pk}/change/")
        self.assertContains(page, deploy.txid)
        words = text(page)
        self.assertIn(f"{deploy.txid} {deploy.status} {deploy.size:,} bytes {deploy.fee:,} sat", words)
        self.assertIn(f"Deploy fee 1 transaction, {deploy.size:,} bytes {deploy.fee:,} sat", words)
        self.assertIn(f"Total {shown['bill']['total']:,} sat", words)
        self.assertIn(f"{shown['bill']['share']} of it reaches contributors", words)

    def test_it_leaves_a_refused_deploy_out_of_what_the_bounty_spent(self) -> None:
        self.confirm(self.draft, self.ask(self.draft).context["rows"][0]["terms"])
        deploy = self.draft.transactions.get(kind="deploy")
        type(deploy).objects.filter(pk=deploy.pk).update(status="failed")
        words = text(self.client.get(f"{BOUNTIES}{self.draft.pk}/change/"))
        self.assertIn("failed (cost nothing)", words)
        self.assertIn("Total 0 sat", words)

    def test_it_says_on_a_draft_that_nothing_was_spent_yet(self) -> None:
        page = self.client.get(f"{BOUNTIES}{self.draft.pk}/change/")
        self.assertContains(
            page, "Nothing yet: the deploy action shows the whole bill before anything is spent."
        )

    def test_it_explains_bytes_per_paid_image_in_satoshis(self) -> None:
        cost = chain.claim_cost(self.version, 3, settings.FEE_RATE)
        size = cost["bytes_per_paid_image"]
        sats = -(-size * settings.FEE_RATE // 1000)
        explained = f"{size:,} bytes per paid image = {sats:,} sat at {settings.FEE_RATE} sat/kB"
        self.assertContains(self.client.get(f"{BOUNTIES}{self.draft.pk}/change/"), explained)
        self.assertContains(self.client.get(f"{BOUNTIES}add/"), f"<td>{sats:,} sat</td>")
