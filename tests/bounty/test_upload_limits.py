"""Limits at the web layer, before an upload is decoded or stored: a burst and an hourly limit per network
(an IPv4 address or an IPv6 /64), a limit per payout address, a cap on the originals kept, and the deletion of
rejected originals after the retention period. Each refusal is the bounty page with a plain message, 429 (or
503 when storage is full) and Retry-After, and stores nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bounty_testing import BaseTestCase, mnist_png
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from bounty import limits
from bounty.models import Submission
from bounty.models.submissions import network_of


class UploadLimitsTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        cache.clear()

    def post(self, nth: int = 0, ip: str = "198.51.100.7", address: str | None = None) -> object:
        with self.captureOnCommitCallbacks(execute=False):
            return self.client.post(
                f"/bounties/{self.bounty.pk}/",
                {
                    "payout_address": address or self.bob_address,
                    "image": SimpleUploadedFile("digit.png", mnist_png(nth), "image/png"),
                },
                REMOTE_ADDR=ip,
            )

    def stored_files(self) -> int:
        return sum(1 for path in Path(self.settings_media()).rglob("*") if path.is_file())

    def settings_media(self) -> str:
        from django.conf import settings

        return str(settings.MEDIA_ROOT)

    def test_it_refuses_the_eleventh_upload_in_a_minute_from_one_ip_before_storing_it(self) -> None:
        addresses = [self.bob_address, self.charlie_address]
        for nth in range(10):
            self.assertEqual(self.post(nth, address=addresses[nth % 2]).status_code, 302)
        files = self.stored_files()
        refused = self.post(10)
        self.assertEqual(refused.status_code, 429)
        self.assertTrue(1 <= int(refused["Retry-After"]) <= 60)
        self.assertContains(refused, "Too many images from your network", status_code=429)
        self.assertEqual((Submission.objects.count(), self.stored_files()), (10, files))
        self.assertEqual(self.post(10, ip="198.51.100.8").status_code, 302, "another network is not limited")

    def test_a_row_that_cannot_be_stored_leaves_no_file_behind(self) -> None:
        # The file is written before the row (outside the database's write lock): when the INSERT fails,
        # the file goes too, and the next upload is stored as usual.
        from unittest import mock

        from django.db import DatabaseError

        self.client.raise_request_exception = False
        with mock.patch.object(Submission, "save", side_effect=DatabaseError("disk I/O error")):
            self.assertEqual(self.post(0).status_code, 500)
        self.assertEqual((Submission.objects.count(), self.stored_files()), (0, 0))
        self.assertEqual(self.post(1).status_code, 302)
        self.assertEqual((Submission.objects.count(), self.stored_files()), (1, 1))

    def test_an_ipv6_slash_64_is_one_network(self) -> None:
        with override_settings(BURST_LIMIT_PER_IP=2):
            self.assertEqual(self.post(0, ip="2001:db8:1:2::a").status_code, 302)
            self.assertEqual(
                self.post(1, ip="2001:db8:1:2:ffff::b", address=self.charlie_address).status_code, 302
            )
            self.assertEqual(self.post(2, ip="2001:db8:1:2:1:2:3:4").status_code, 429)
            self.assertEqual(self.post(2, ip="2001:db8:1:3::a").status_code, 302)
        self.assertEqual(network_of("2001:db8:1:2:1:2:3:4"), "2001:db8:1:2::/64")
        self.assertEqual(network_of("::ffff:192.0.2.1"), "192.0.2.1")

    def test_the_hourly_limit_counts_past_the_burst_window(self) -> None:
        with override_settings(RATE_LIMIT_PER_IP=3, BURST_LIMIT_PER_IP=100):
            for nth in range(3):
                self.assertEqual(self.post(nth).status_code, 302)
            Submission.objects.update(received_at=timezone.now() - timedelta(minutes=30))
            refused = self.post(3)
        self.assertEqual(refused.status_code, 429)
        self.assertTrue(25 * 60 <= int(refused["Retry-After"]) <= 30 * 60)
        self.assertContains(refused, "minutes", status_code=429)

    def test_it_limits_one_payout_address_across_networks(self) -> None:
        with override_settings(RATE_LIMIT_PER_ADDRESS=2):
            self.assertEqual(self.post(0, ip="203.0.113.1").status_code, 302)
            self.assertEqual(self.post(1, ip="203.0.113.2").status_code, 302)
            refused = self.post(2, ip="203.0.113.3")
        self.assertContains(refused, "This address has sent 2 images", status_code=429)
        self.assertEqual(Submission.objects.count(), 2)

    def test_it_refuses_new_uploads_while_the_originals_kept_are_over_the_cap(self) -> None:
        self.assertEqual(self.post(0).status_code, 302)
        kept = Submission.objects.get().original_bytes
        self.assertGreater(kept, 0)
        with override_settings(MAX_STORED_ORIGINALS_BYTES=kept + 10):
            refused = self.post(1, ip="203.0.113.9")
        self.assertContains(refused, "the space for uploads is full", status_code=503)
        self.assertEqual(Submission.objects.count(), 1)

    def test_a_flood_from_one_ip_stores_at_most_the_burst(self) -> None:
        codes = [self.post(nth % 40, address=(self.bob_address, self.charlie_address)[nth % 2]).status_code
                 for nth in range(65)]  # fmt: skip
        self.assertEqual(codes.count(302), 10)
        self.assertEqual(codes.count(429), 55)
        stored = sum(s.original_bytes for s in Submission.objects.all())
        self.assertEqual(Submission.objects.count(), 10)
        self.assertLess(stored, 10 * 50_000)


class ExpireOriginalsTestCase(BaseTestCase):
    def test_it_deletes_rejected_originals_after_the_retention_period_and_keeps_the_rest(self) -> None:
        old = timezone.now() - timedelta(days=8)
        expired = self.make_submission(original_bytes=100)
        Submission.objects.filter(pk=expired.pk).update(state="rejected", rejected_at=old)
        recent = self.make_submission(original_bytes=100)
        Submission.objects.filter(pk=recent.pk).update(state="rejected", rejected_at=timezone.now())
        paid = self.make_submission(original_bytes=100)
        Submission.objects.filter(pk=paid.pk).update(state="confirmed")
        path = Path(Submission.objects.get(pk=expired.pk).original.path)
        self.assertTrue(path.exists())
        self.assertEqual(limits.expire_originals(), 1)
        self.assertFalse(path.exists())
        gone = Submission.objects.get(pk=expired.pk)
        self.assertEqual((gone.original.name, gone.original_bytes), ("", 0))
        self.assertEqual(len(gone.pixel_bytes), 784, "the 28x28 image the network saw stays")
        for kept in (recent, paid):
            self.assertTrue(Path(Submission.objects.get(pk=kept.pk).original.path).exists())
