"""The reviewers' grid of pending images: many a page, one click each or bulk, CSRF-protected POSTs, and only
for the reviewer's permissions."""

from __future__ import annotations

from datetime import timedelta

from bounty_testing import BaseTestCase, staff
from django.test import Client
from django.utils import timezone

from bounty.models import Reason, Submission

URL = "/admin/bounty/reviewitem/pending/"


class PendingGridTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        until = timezone.now() + timedelta(days=30)
        self.kept = [
            self.make_submission(
                state=Submission.State.PENDING,
                predicted_digit=3,
                pending_until=until,
                neighbour_label=3,
                second_opinion=Submission.SecondOpinion.DISAGREES,
            )
            for _ in range(65)
        ]
        self.paid = self.make_submission(state=Submission.State.CONFIRMED)
        self.reviewer = staff("rita", "reviewer")
        self.funder = staff("fred", "funder")

    def states(self) -> list[str]:
        return [Submission.objects.get(pk=s.pk).state for s in self.kept]

    def test_a_reviewer_sees_a_page_of_thumbnails_with_their_signals(self) -> None:
        self.client.force_login(self.reviewer)
        page = self.client.get(URL)
        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        self.assertIn("65 pending images", html)
        self.assertEqual(html.count('class="tile'), 60, "sixty a page")
        self.assertEqual(html.count('value="confirm:'), 60, "one button each")
        self.assertIn("nearest MNIST: 3; second model: does not read the claimed digit", html)
        self.assertNotIn(f'data-id="{self.paid.pk}"', html)
        self.assertIn("page 1 of 2", html)

    def test_one_click_confirms_or_discards_one_image(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.reviewer)
        token = client.get(URL).context["csrf_token"]
        first, second = self.kept[0], self.kept[1]
        response = client.post(URL, {"csrfmiddlewaretoken": str(token), "one": f"confirm:{first.pk}"})
        self.assertEqual(response.status_code, 302)
        client.post(URL, {"csrfmiddlewaretoken": str(token), "one": f"discard:{second.pk}"})
        first.refresh_from_db()
        second.refresh_from_db()
        self.assertEqual((first.state, first.true_digit, first.review_approved), ("pending", 7, True))
        self.assertEqual((second.state, second.reason), ("rejected", Reason.REVIEWER))

    def test_bulk_actions_change_the_selection_only(self) -> None:
        self.client.force_login(self.reviewer)
        chosen = [s.pk for s in self.kept[:10]]
        self.client.post(URL, {"bulk": "discard", "ids": chosen})
        self.assertEqual(self.states(), ["rejected"] * 10 + ["pending"] * 55)
        self.client.post(URL, {"bulk": "confirm", "ids": [s.pk for s in self.kept[10:]]})
        confirmed = Submission.objects.filter(pk__in=[s.pk for s in self.kept], true_digit=7).count()
        self.assertEqual(confirmed, 55)

    def test_a_post_without_the_csrf_token_changes_nothing(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.reviewer)
        response = client.post(URL, {"bulk": "discard", "ids": [self.kept[0].pk]})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(set(self.states()), {"pending"})

    def test_staff_without_the_reviewer_permissions_cannot_look_or_act(self) -> None:
        self.client.force_login(self.funder)
        self.assertEqual(self.client.get(URL).status_code, 403)
        response = self.client.post(URL, {"bulk": "discard", "ids": [self.kept[0].pk]})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(set(self.states()), {"pending"})

    def test_a_bad_request_is_refused_clearly(self) -> None:
        self.client.force_login(self.reviewer)
        response = self.client.post(URL, {"bulk": "pay", "ids": ["1; drop"]}, follow=True)
        self.assertContains(response, "Nothing was changed")
        self.assertEqual(set(self.states()), {"pending"})

    def test_the_admin_index_links_the_grid_for_those_who_may_look(self) -> None:
        self.client.force_login(self.reviewer)
        self.assertContains(self.client.get("/admin/"), f'href="{URL}"')
        self.client.force_login(self.funder)
        self.assertNotContains(self.client.get("/admin/"), f'href="{URL}"')
