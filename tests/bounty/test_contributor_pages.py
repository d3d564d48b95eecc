"""The bounty page and the home page as a contributor meets them: a bounty that ran out or is paused, a home
page with nothing open, a refused upload answered on the page, and the page's accessibility basics."""

from __future__ import annotations

import base64

from bounty_testing import BaseTestCase, mnist_png, stroke_png
from django.core.files.uploadedfile import SimpleUploadedFile
from django.templatetags.static import static
from django.test import Client
from test_contributor_status import Page, assert_references_exist

from bounty.models import Bounty, Slot, Submission


def drawing() -> str:
    return "data:image/png;base64," + base64.b64encode(stroke_png()).decode()


class ClosedBountyTestCase(BaseTestCase):
    def page(self, status: int = 200) -> Page:
        response = self.client.get(f"/bounties/{self.bounty.pk}/")
        self.assertEqual(response.status_code, status)
        return Page(response.content.decode())

    def assert_closed(self, page: Page, message: str) -> None:
        self.assertIn(message, page.text)
        self.assertEqual(page.text.count("not accepting images"), 1, "one clear message")
        self.assertIn("disabled", page.element("submit"))
        self.assertEqual(page.element("canvas").get("aria-disabled"), "true")
        fieldset = next(attributes for tag, attributes in page.elements if tag == "fieldset")
        self.assertIn("disabled", fieldset, "the drawing, the upload and the address are all off")
        self.assertEqual(page.element("other-bounties")["href"], "/")
        self.assertIn("closed", page.element("submission-form")["class"])

    def test_an_exhausted_bounty_says_so_once_and_turns_the_form_off(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.EXHAUSTED)
        Slot.objects.filter(bounty=self.bounty).update(state=Slot.State.CLAIMED)
        self.assert_closed(self.page(), "All 3 rewards of this bounty have been claimed")

    def test_an_active_bounty_with_every_reward_taken_is_closed_too(self) -> None:
        Slot.objects.filter(bounty=self.bounty).update(state=Slot.State.CLAIMED)
        self.assert_closed(self.page(), "All 3 rewards of this bounty have been claimed")

    def test_a_paused_bounty_says_so_once_and_turns_the_form_off(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(paused=True)
        self.assert_closed(self.page(), "The funder has paused this bounty")

    def test_it_points_to_the_other_open_bounties(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(paused=True)
        other = Bounty.objects.create(
            digit=2, reward=500, slot_count=1, model_version=self.version, fee_rate=100, state="active"
        )
        Slot.objects.create(bounty=other, deploy_tx=self.deploy, vout=9, satoshis=3000)
        page = self.page()
        self.assertIn("See the other open bounties (1)", page.text)

    def test_a_submit_to_a_closed_bounty_keeps_the_drawing_and_the_address(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.EXHAUSTED)
        sent = drawing()
        response = self.client.post(
            f"/bounties/{self.bounty.pk}/", {"payout_address": self.bob_address, "drawing": sent}
        )
        self.assertEqual(response.status_code, 400)
        page = Page(response.content.decode())
        self.assertEqual(page.text.count("not accepting images"), 1)
        self.assertEqual(page.element("id_payout_address")["value"], self.bob_address)
        hidden = next(a for _, a in page.elements if a.get("name") == "drawing")
        self.assertEqual(hidden["value"], sent)
        self.assertFalse(Submission.objects.exists())

    def test_an_open_bounty_has_no_closed_message_and_submit_on(self) -> None:
        page = self.page()
        self.assertNotIn("not accepting", page.text)
        self.assertNotIn("disabled", page.element("submit"))
        self.assertEqual(page.element("submission-form")["data-open"], "true")


class HomePageTestCase(BaseTestCase):
    def test_with_no_open_bounty_it_says_what_the_site_is_and_when_to_come_back(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(state=Bounty.State.EXHAUSTED)
        page = Page(self.client.get("/").content.decode())
        self.assertIn("No bounty is open right now.", page.text)
        self.assertIn("This site pays small rewards in Bitcoin SV for handwritten digits", page.text)
        self.assertIn("come back in a day or two", page.text)

    def test_a_paused_bounty_means_later_today_and_one_being_set_up_means_minutes(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(paused=True)
        self.assertContains(self.client.get("/"), "come back later today")
        Bounty.objects.create(
            digit=4, reward=5, slot_count=1, model_version=self.version, fee_rate=1, state="funded"
        )
        self.assertContains(self.client.get("/"), "come back in a few minutes")

    def test_a_bounty_with_no_reward_left_is_not_listed(self) -> None:
        Slot.objects.filter(bounty=self.bounty).update(state=Slot.State.CLAIMED)
        self.assertContains(self.client.get("/"), "No bounty is open right now.")


class RefusedUploadTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.browser = Client(enforce_csrf_checks=True)
        self.token = self.browser.get(f"/bounties/{self.bounty.pk}/").cookies["csrftoken"].value

    def post(self, **fields: object):  # type: ignore[no-untyped-def]
        data = {"payout_address": self.bob_address, "csrfmiddlewaretoken": self.token, **fields}
        return self.browser.post(f"/bounties/{self.bounty.pk}/", data)

    def test_a_body_far_over_the_limit_gets_the_bounty_page_back_not_plain_text(self) -> None:
        with self.settings(MAX_UPLOAD_BYTES=16 * 1024):
            response = self.post(
                image=SimpleUploadedFile("photo.jpg", b"\xff\xd8" + b"\0" * 300_000, "image/jpeg")
            )
        self.assertEqual(response.status_code, 413)
        self.assertTrue(response["Content-Type"].startswith("text/html"))
        page = Page(response.content.decode())
        self.assertIn("The upload is too large (293 KB; the limit is 16 KB)", page.text)
        self.assertIn("Choose a smaller photo", page.text)
        self.assertIn("submission-form", page.ids)
        self.assertEqual(page.element("submission-form")["data-refused"], "true")
        self.assertFalse(Submission.objects.exists())

    def test_the_page_sent_back_carries_a_token_that_still_works(self) -> None:
        with self.settings(MAX_UPLOAD_BYTES=16 * 1024):
            refused = self.post(image=SimpleUploadedFile("photo.jpg", b"\0" * 300_000, "image/jpeg"))
            token = next(
                a
                for _, a in Page(refused.content.decode()).elements
                if a.get("name") == "csrfmiddlewaretoken"
            )
            self.token = token["value"]
        with self.captureOnCommitCallbacks(execute=False):
            response = self.post(image=SimpleUploadedFile("seven.png", mnist_png(0), "image/png"))
        self.assertEqual(response.status_code, 302)

    def test_a_file_over_the_limit_is_refused_in_the_form_with_what_to_do(self) -> None:
        with self.settings(MAX_UPLOAD_BYTES=64 * 1024):
            response = self.post(
                image=SimpleUploadedFile("photo.png", mnist_png(0) + b"\0" * 70_000, "image/png")
            )
        self.assertContains(response, "Choose a smaller photo", status_code=400)

    def test_what_is_not_an_image_is_refused_with_what_to_do(self) -> None:
        response = self.post(image=SimpleUploadedFile("digit.pdf", b"%PDF-1.4 a document", "application/pdf"))
        page = Page(response.content.decode())
        self.assertEqual(response.status_code, 400)
        self.assertIn("not an image we can read", page.text)
        self.assertIn("Choose a PNG or JPEG photo of one handwritten digit", page.text)
        self.assertEqual(page.element("submission-form")["data-image-refused"], "true")

    def test_a_refused_drawing_comes_back_in_its_hidden_field(self) -> None:
        sent = drawing()
        response = self.post(payout_address="", drawing=sent)
        page = Page(response.content.decode())
        self.assertEqual(response.status_code, 400)
        hidden = next(a for _, a in page.elements if a.get("name") == "drawing")
        self.assertEqual(hidden["value"], sent)
        self.assertEqual(page.element("submission-form")["data-refused"], "true")


class AccessibilityTestCase(BaseTestCase):
    def test_the_canvas_is_an_image_with_a_name(self) -> None:
        page = Page(self.client.get(f"/bounties/{self.bounty.pk}/").content.decode())
        canvas = page.element("canvas")
        self.assertEqual(canvas["role"], "img")
        self.assertIn("Drawing box for your 7", canvas["aria-label"])

    def test_upload_is_offered_in_a_visible_sentence_as_the_accessible_path(self) -> None:
        page = Page(self.client.get(f"/bounties/{self.bounty.pk}/").content.decode())
        self.assertIn("Uploading works with a keyboard and with screen readers", page.text)
        self.assertIn("upload-path", page.element("id_image")["aria-describedby"].split())

    def test_every_aria_reference_points_to_an_element_of_the_page(self) -> None:
        pages = [self.client.get(f"/bounties/{self.bounty.pk}/")]
        pages.append(self.client.post(f"/bounties/{self.bounty.pk}/", {"payout_address": "nope"}))
        Bounty.objects.filter(pk=self.bounty.pk).update(paused=True)
        pages.append(self.client.get(f"/bounties/{self.bounty.pk}/"))
        pages.append(self.client.get("/"))
        for response in pages:
            assert_references_exist(self, Page(response.content.decode()))

    def test_every_page_links_a_favicon_that_is_served(self) -> None:
        icon = static("bounty/favicon.svg")
        for url in ("/", f"/bounties/{self.bounty.pk}/"):
            page = Page(self.client.get(url).content.decode())
            links = [a for tag, a in page.elements if tag == "link" and a.get("rel") == "icon"]
            self.assertEqual([link["href"] for link in links], [icon])
        served = self.client.get(icon)
        self.assertEqual(served.status_code, 200)
        self.assertIn(b"<svg", b"".join(served.streaming_content if served.streaming else [served.content]))
