"""The near-duplicate lookup through the band index gives the same answer as a scan of every earlier row
under the same definition (near hash within NEAR_DUPLICATE_BITS, pixels within NEAR_DUPLICATE_GREY, the
earliest such row), on crafted hashes at and around the threshold, on random hashes, and on real images.
Runs on SQLite here and on PostgreSQL in the suite's PostgreSQL re-run (DATABASE_URL switched)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
from bounty_testing import ROOT, BaseTestCase, mnist_pixels
from django.apps import apps
from django.conf import settings
from django.db.models import QuerySet
from django.test import override_settings

from bounty import images
from bounty.models import Submission
from bounty.near_duplicates import near_duplicate, sharing_a_band

GREY = 1.5


def scanned(submission: Submission, earlier: QuerySet[Submission]) -> int | None:
    """The definition, by brute force: every earlier row, in id order."""
    bits, grey = settings.NEAR_DUPLICATE_BITS, settings.NEAR_DUPLICATE_GREY
    if bits <= 0:
        return None
    mine = int(submission.near_hash, 16)
    for pk, value, pixels in earlier.order_by("pk").values_list("pk", "near_hash", "pixels"):
        close = (int(value, 16) ^ mine).bit_count() <= bits
        if close and images.mean_abs_difference(pixels, submission.pixel_bytes) < grey:
            return pk
    return None


def earlier_than(submission: Submission) -> QuerySet[Submission]:
    return Submission.objects.filter(pk__lt=submission.pk).exclude(state=Submission.State.REJECTED)


def flipped(value: int, positions: list[int]) -> int:
    for position in positions:
        value ^= 1 << position
    return value


@override_settings(NEAR_DUPLICATE_BITS=3, NEAR_DUPLICATE_GREY=GREY)
class NearDuplicateIndexTest(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.rng = np.random.default_rng(15)
        self.base = mnist_pixels(7)

    def row(self, pixels: np.ndarray, value: int | None = None, **fields: object) -> Submission:
        """A submission with these pixels and, when given, this near hash instead of the pixels' own."""
        submission = Submission(
            bounty=self.bounty, pixels=pixels.tobytes(), pixel_sha256=images.pixel_sha256(pixels),
            phash=images.perceptual_hash(pixels), claimed_digit=7, payout_address=self.bob_address, **fields,
        )  # fmt: skip
        if value is not None:
            submission.set_near_hash(value)
        submission.save()
        return submission

    def grey_shift(self, levels: int) -> np.ndarray:
        """The base image with `levels` grey levels added in all, spread over its pixels below 250: their
        mean absolute difference from it is exactly levels / 784."""
        changed = self.base.astype(np.int64).reshape(-1)
        room = np.flatnonzero(changed < 250)
        changed[room] += levels // len(room)
        changed[room[: levels % len(room)]] += 1
        assert int(np.abs(changed - self.base.reshape(-1)).sum()) == levels
        return changed.astype(np.uint8).reshape(28, 28)

    def assert_same_answers(self, queries: list[Submission], *, expect_found: int) -> None:
        found = 0
        for query in queries:
            indexed, scan = near_duplicate(query, earlier_than(query)), scanned(query, earlier_than(query))
            self.assertEqual(indexed, scan, f"submission {query.pk}")
            found += indexed is not None
        self.assertGreaterEqual(found, expect_found)  # the comparison covered matches, not only misses

    def test_crafted_hashes_at_and_around_the_threshold(self) -> None:
        close_pixels = self.grey_shift(784)  # exactly 1.0 grey level apart: within GREY
        at_grey = self.grey_shift(int(GREY * 784))  # exactly 1.5 apart: not below GREY, not a duplicate
        queries = []
        for number in range(12):
            value = int(self.rng.integers(0, 2**63)) * 2 + int(self.rng.integers(0, 2))
            bands = [list(range(16 * band, 16 * band + 16)) for band in range(4)]
            # Three bits in three different bands: only one band still agrees (the pigeonhole's edge).
            spread3 = [int(self.rng.choice(bands[band])) for band in self.rng.choice(4, 3, replace=False)]
            spread4 = [int(self.rng.choice(bands[band])) for band in range(4)]  # no band agrees: 4 bits
            in_one_band = [int(b) for b in self.rng.choice(bands[number % 4], 5, replace=False)]  # 5 bits
            variants = [
                (flipped(value, spread4), close_pixels),  # 4 bits: too far, whatever the pixels
                (flipped(value, in_one_band), close_pixels),  # 5 bits sharing three bands: too far
                (flipped(value, spread3), at_grey),  # 3 bits but pixels exactly at GREY: not a duplicate
                (flipped(value, spread3[:2]), self.rng.integers(0, 256, (28, 28), dtype=np.uint8)),
                (flipped(value, spread3), close_pixels),  # 3 bits, close pixels: the duplicate
                (flipped(value, spread3[:1]), close_pixels),  # a later, closer one: the earliest still wins
            ]
            order = self.rng.permutation(len(variants)) if number % 2 else range(len(variants))
            for index in order:
                variant, pixels = variants[index]
                self.row(pixels, variant)
            if number % 3 == 0:  # a rejected twin counts for neither
                self.row(self.base, value, state=Submission.State.REJECTED)
            queries.append(self.row(self.base, value))
        for _ in range(200):  # background: random hashes, random pixels
            self.row(self.rng.integers(0, 256, (28, 28), dtype=np.uint8), int(self.rng.integers(0, 2**63)))
        self.assert_same_answers(queries, expect_found=12)

    def test_every_threshold_from_none_to_three_bits(self) -> None:
        value = 0x0123_4567_89AB_CDEF
        queries = []
        for distance in range(6):
            positions = [16 * (step % 4) + step for step in range(distance)]
            self.row(self.grey_shift(100), flipped(value, positions))
            queries.append(self.row(self.base, value))
        for bits in range(4):
            with self.settings(NEAR_DUPLICATE_BITS=bits):
                for query in queries:
                    indexed = near_duplicate(query, earlier_than(query))
                    self.assertEqual(indexed, scanned(query, earlier_than(query)), (bits, query.pk))
                # The first query's only earlier rows are exactly `distance` bits away, one per distance.
                first = near_duplicate(queries[0], earlier_than(queries[0]))
                self.assertEqual(first is not None, bits > 0)

    def test_random_hashes_many_of_them_close(self) -> None:
        centres = [int(self.rng.integers(0, 2**63)) for _ in range(5)]
        rows = []
        for _ in range(300):
            centre = centres[int(self.rng.integers(len(centres)))]
            distance = int(self.rng.integers(0, 7))
            value = flipped(centre, [int(p) for p in self.rng.choice(64, distance, replace=False)])
            pixels = self.grey_shift(int(self.rng.integers(0, 2 * 784)))
            rows.append(self.row(pixels, value))
        self.assert_same_answers(rows[::3], expect_found=20)

    def test_real_images_and_their_edits(self) -> None:
        rows = []
        for nth in range(8):
            for digit in (1, 7):
                pixels = mnist_pixels(digit, nth)
                rows.append(self.row(pixels))
                noise = self.rng.integers(-3, 4, pixels.shape) * (pixels > 0)
                rows.append(self.row(np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)))
        self.assert_same_answers(rows, expect_found=8)

    def test_the_lookup_reads_only_rows_sharing_a_band(self) -> None:
        query_value = 0xFFFF_0000_FFFF_0000
        self.row(self.base, 0x0000_FFFF_0000_FFFF)  # no band in common, far away
        near = self.row(self.grey_shift(10), flipped(query_value, [1, 17, 33]))
        query = self.row(self.base, query_value)
        sharing = sharing_a_band(query_value, earlier_than(query)).values_list("pk", flat=True)
        self.assertEqual(list(sharing), [near.pk])
        self.assertEqual(near_duplicate(query, earlier_than(query)), near.pk)

    def test_saving_a_submission_stores_its_near_hash_and_bands(self) -> None:
        submission = self.row(self.base)
        value = images.near_hash(self.base)
        stored = Submission.objects.get(pk=submission.pk)
        self.assertEqual(stored.near_hash, f"{value:016x}")
        bands = [stored.near_band_0, stored.near_band_1, stored.near_band_2, stored.near_band_3]
        self.assertEqual(bands, list(images.near_hash_bands(value)))
        self.assertEqual(sum(part << (16 * band) for band, part in enumerate(bands)), value)

    def test_the_migration_backfills_rows_saved_before_it(self) -> None:
        rows = [self.row(mnist_pixels(digit)) for digit in range(5)]
        Submission.objects.filter(pk__in=[r.pk for r in rows]).update(
            near_hash="", near_band_0=None, near_band_1=None, near_band_2=None, near_band_3=None
        )
        migration = importlib.import_module("bounty.migrations.0011_near_duplicate_index")
        migration.backfill(apps, None)
        for digit, row in enumerate(rows):
            row.refresh_from_db()
            value = images.near_hash(mnist_pixels(digit))
            self.assertEqual(row.near_hash, f"{value:016x}")
            self.assertEqual(row.near_band_2, images.near_hash_bands(value)[2])


def test_the_hash_is_balanced_and_stable_on_known_images(mnist) -> None:  # type: ignore[no-untyped-def]
    """The projection file gives each bit about even odds on MNIST test digits, and a known image keeps its
    hash (a changed projection would orphan every stored hash)."""
    x_test = mnist.x_test[:2000]
    projection, thresholds = images.near_hash_projection()
    share = (images.blurred(x_test).astype(np.float64) @ projection.T.astype(np.float64) > thresholds).mean(0)
    assert share.min() > 0.4 and share.max() < 0.6, (share.min(), share.max())
    assert images.near_hashes(x_test[:2]) == [0x8CECA434C5F20157, 0xFAEC4F065B45A9F4]
    assert images.near_hash(x_test[0].tobytes()) == 0x8CECA434C5F20157
    assert images.near_hash(np.zeros((28, 28), dtype=np.uint8)) == images.near_hash(bytes(784))


def test_the_settings_refuse_a_distance_the_bands_cannot_find() -> None:
    code = "import django; django.setup()"
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "bounty.settings", "NEAR_DUPLICATE_BITS": "4"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "NEAR_DUPLICATE_BITS must be at most 3" in result.stderr
