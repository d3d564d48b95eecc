"""Forms and endpoints under abuse: CSRF on, the admin only for staff, rate limits per IP and per payout
address (configurable, not evaded by a forged X-Forwarded-For), and no page that shows one contributor's IP
or address to anyone else."""

from __future__ import annotations

from bounty_testing import BaseTestCase, mnist_index, mnist_pixels, mnist_png
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from bounty import pipeline
from bounty.models import Reason, Submission

BOB_IP = "198.51.100.7"


def seven(nth: int) -> SimpleUploadedFile:
    return SimpleUploadedFile("seven.png", mnist_png(mnist_index(7, nth)), "image/png")


def public_paths(patterns=None, prefix: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    """Every route of the site as a path template (`<int:pk>` kept), the admin left out."""
    paths = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if route.startswith("admin/"):
            continue
        if isinstance(entry, URLResolver):
            paths += public_paths(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            paths.append("/" + route.lstrip("^").rstrip("$"))
    return paths


class CsrfTestCase(BaseTestCase):
    def test_a_submission_without_the_token_is_refused(self) -> None:
        browser = Client(enforce_csrf_checks=True)
        data = {"payout_address": self.bob_address, "image": seven(0)}
        response = browser.post(f"/bounties/{self.bounty.pk}/", data)
        self.assertEqual(response.status_code, 403)
        self.assertFalse(Submission.objects.exists())

    def test_a_token_from_another_session_is_refused(self) -> None:
        mallory = Client(enforce_csrf_checks=True)
        mallory.get(f"/bounties/{self.bounty.pk}/")
        stolen = mallory.cookies["csrftoken"].value
        victim = Client(enforce_csrf_checks=True)
        victim.get(f"/bounties/{self.bounty.pk}/")
        victim.cookies["csrftoken"] = "x" * 32
        data = {"payout_address": self.bob_address, "image": seven(0), "csrfmiddlewaretoken": stolen}
        self.assertEqual(victim.post(f"/bounties/{self.bounty.pk}/", data).status_code, 403)

    def test_the_admin_login_needs_the_token(self) -> None:
        browser = Client(enforce_csrf_checks=True)
        response = browser.post("/admin/login/", {"username": "alice", "password": "password-of-alice"})
        self.assertEqual(response.status_code, 403)


class AdminAccessTestCase(BaseTestCase):
    PAGES = ("/admin/", "/admin/bounty/submission/", "/admin/bounty/bounty/", "/ops/sign/")

    def test_anonymous_visitors_are_sent_to_the_login(self) -> None:
        for page in self.PAGES:
            response = self.client.get(page)
            self.assertEqual(response.status_code, 302, page)
            self.assertIn("/admin/login/", response["Location"])

    def test_a_signed_in_contributor_who_is_not_staff_is_refused(self) -> None:
        User.objects.create_user("charlie", "charlie@example.org", "password-of-charlie")
        self.client.login(username="charlie", password="password-of-charlie")
        for page in self.PAGES:
            response = self.client.get(page)
            self.assertEqual(response.status_code, 302, page)
            self.assertIn("/admin/login/", response["Location"])
        self.assertNotContains(
            self.client.get(f"/admin/bounty/submission/{self.make_submission().pk}/change/", follow=True),
            "192.0.2.10",
        )

    def test_staff_get_in(self) -> None:
        self.client.login(username="alice", password="password-of-alice")
        for page in self.PAGES:
            self.assertEqual(self.client.get(page).status_code, 200, page)


class RateLimitTestCase(BaseTestCase):
    def post(self, nth: int, address: str, ip: str, forged: str = "") -> HttpResponse:
        client = Client(REMOTE_ADDR=ip, HTTP_X_FORWARDED_FOR=forged or f"203.0.113.{nth}")
        with self.captureOnCommitCallbacks(execute=False):
            return client.post(
                f"/bounties/{self.bounty.pk}/", {"payout_address": address, "image": seven(nth)}
            )

    def submit(self, nth: int, address: str, ip: str, forged: str = "") -> Submission:
        response = self.post(nth, address, ip, forged)
        self.assertEqual(response.status_code, 302)
        submission = Submission.objects.get(public_id=response["Location"].split("/")[-2])
        pipeline.check(submission)
        return Submission.objects.get(pk=submission.pk)

    def test_it_limits_one_ip_and_a_forged_forwarded_for_does_not_help(self) -> None:
        addresses = [self.bob_address, self.charlie_address, self.bob_address]
        with self.settings(RATE_LIMIT_PER_IP=2, RATE_LIMIT_PER_ADDRESS=0):
            states = [self.submit(n, addresses[n], BOB_IP).state for n in range(2)]
            refused = self.post(2, addresses[2], BOB_IP)  # the web form counts before storing anything
            # Two uploads that raced past the form's count are still caught by the worker's screen.
            raced = self.make_submission(mnist_pixels(7, 5), contributor_ip=BOB_IP)
            pipeline.check(raced)
        self.assertEqual(states, ["checked", "checked"])
        self.assertEqual(refused.status_code, 429)
        self.assertEqual(Submission.objects.count(), 3)
        raced.refresh_from_db()
        self.assertEqual((raced.state, raced.reason), ("rejected", Reason.RATE_LIMITED))
        self.assertEqual(self.bounty.slots.filter(state="free").count(), 3)

    def test_it_limits_one_payout_address_across_ips(self) -> None:
        with self.settings(RATE_LIMIT_PER_IP=0, RATE_LIMIT_PER_ADDRESS=2):
            states = [self.submit(n, self.bob_address, f"198.51.100.{n + 1}").state for n in range(2)]
            refused = self.post(2, self.bob_address, "198.51.100.3")
            other = self.submit(3, self.charlie_address, "198.51.100.1").state
        self.assertEqual((states, other), (["checked", "checked"], "checked"))
        self.assertContains(refused, "This address has sent 2 images", status_code=429)

    def test_the_proxy_header_counts_only_when_trusted(self) -> None:
        with self.settings(TRUST_X_FORWARDED_FOR=True, RATE_LIMIT_PER_IP=1, RATE_LIMIT_PER_ADDRESS=0):
            first = self.submit(0, self.bob_address, "127.0.0.1", forged="198.51.100.9")
            second = self.submit(1, self.charlie_address, "127.0.0.1", forged="198.51.100.10")
        self.assertEqual((first.contributor_ip, second.contributor_ip), ("198.51.100.9", "198.51.100.10"))
        self.assertEqual((first.state, second.state), ("checked", "checked"))


class PrivacyTestCase(BaseTestCase):
    def test_no_public_endpoint_shows_a_contributors_ip_or_address(self) -> None:
        bob = self.make_submission(contributor_ip=BOB_IP, predicted_digit=7, scores=list(range(10)))
        values = {"<int:pk>": str(self.bounty.pk), "<uuid:public_id>": str(bob.public_id)}
        charlie = Client(REMOTE_ADDR="192.0.2.99")
        seen = 0
        for template in public_paths():
            path = template
            for placeholder, value in values.items():
                path = path.replace(placeholder, value)
            self.assertNotIn("<", path, f"add a value for {template}")
            response = charlie.get(path, {"address": self.charlie_address})
            body = b"".join(response) if response.streaming else response.content
            self.assertNotIn(BOB_IP.encode(), body, path)
            self.assertNotIn(self.bob_address.encode(), body, path)
            seen += response.status_code == 200
        self.assertGreaterEqual(seen, 5)
