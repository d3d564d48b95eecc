from __future__ import annotations

from bounty_testing import BaseTestCase, mnist_png

from bounty.models import Bounty, Reason, Submission


class ContributorPagesTestCase(BaseTestCase):
    def test_index_lists_open_bounties_only(self) -> None:
        Bounty.objects.create(
            digit=4,
            reward=500,
            slot_count=1,
            model_version=self.version,
            fee_rate=100,
            state="active",
            paused=True,
        )
        response = self.client.get("/")
        self.assertContains(response, "1000 sat")
        self.assertContains(response, "3 of 3 left")
        self.assertNotContains(response, "500 sat")

    def test_a_draft_bounty_has_no_page(self) -> None:
        draft = Bounty.objects.create(
            digit=1, reward=500, slot_count=1, model_version=self.version, fee_rate=100
        )
        self.assertEqual(self.client.get(f"/bounties/{draft.pk}/").status_code, 404)

    def test_the_bounty_page_has_a_canvas_an_upload_and_an_address_field(self) -> None:
        response = self.client.get(f"/bounties/{self.bounty.pk}/")
        self.assertContains(response, '<canvas id="canvas"')
        self.assertContains(response, 'type="file"')
        self.assertContains(response, 'name="payout_address"')
        self.assertContains(response, 'name="viewport"')

    def test_an_upload_without_javascript_lands_on_the_status_page(self) -> None:
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            response = self.client.post(
                f"/bounties/{self.bounty.pk}/", {"payout_address": self.bob_address, "image": self.upload()}
            )
        submission = Submission.objects.get()
        self.assertRedirects(response, f"/submissions/{submission.public_id}/")
        self.assertEqual(len(callbacks), 1)  # queued only after the commit
        self.assertEqual((submission.state, submission.claimed_digit), ("received", 7))
        self.assertTrue(submission.original.name)
        self.assertEqual(len(submission.pixel_bytes), 784)

    def test_it_shows_form_errors_in_place(self) -> None:
        response = self.client.post(f"/bounties/{self.bounty.pk}/", {"payout_address": "nope"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Not a valid address", status_code=400)
        self.assertFalse(Submission.objects.exists())

    def test_a_paused_bounty_refuses_submissions(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(paused=True)
        response = self.client.post(
            f"/bounties/{self.bounty.pk}/", {"payout_address": self.bob_address, "image": self.upload()}
        )
        self.assertContains(response, "not accepting", status_code=400)

    def test_the_status_page_explains_a_rejection(self) -> None:
        submission = self.make_submission(predicted_digit=3, scores=list(range(10)))
        submission.reject(Reason.WRONG_DIGIT)
        response = self.client.get(f"/submissions/{submission.public_id}/")
        self.assertContains(response, "read your image as a 3, not a 7")
        self.assertContains(response, 'class="bar top"')
        self.assertContains(response, "data:image/png;base64,")
        self.assertNotContains(response, "192.0.2.10")

    def test_the_status_json_follows_the_state(self) -> None:
        submission = self.make_submission()
        data = self.client.get(f"/submissions/{submission.public_id}/status.json").json()
        self.assertEqual((data["state"], data["paid"], data["txid"]), ("received", False, ""))
        self.assertNotIn("contributor_ip", data)

    def test_the_address_check_answers_as_you_type(self) -> None:
        good = self.client.get("/address-check", {"address": self.bob_address}).json()
        bad = self.client.get("/address-check", {"address": self.bob_address[:-2]}).json()
        self.assertTrue(good["valid"])
        self.assertFalse(bad["valid"])
        self.assertIn("Not a valid address", bad["message"])

    def upload(self):  # type: ignore[no-untyped-def]
        from django.core.files.uploadedfile import SimpleUploadedFile

        return SimpleUploadedFile("seven.png", mnist_png(0), "image/png")
