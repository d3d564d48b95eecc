"""The cap on stored originals reads a shared tally instead of summing every submission per web process.

At a million rows on PostgreSQL that sum (each web process's first request, then every minute, by every
thread that found the count expired) took the scale benchmark from 40 to 33 paid/s; reading the tally costs
one Redis GET (docs/scale.md).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from unittest import mock

from bounty_testing import BaseTestCase
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bounty import limits, storage_tally, warmup
from bounty.models import Submission


def redis_tally() -> int | None:
    kept = storage_tally._client().get(storage_tally.key())
    return None if kept is None else int(kept)


class StorageTallyTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        for size in (1000, 2500, 0):
            self.make_submission(original_bytes=size)

    def test_a_request_reads_the_tally_without_touching_the_database(self) -> None:
        self.assertEqual(storage_tally.recount(), 3500)
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(limits.stored_original_bytes(), 3500)
            self.assertIsNone(limits.storage_refusal(100))
        self.assertEqual(len(queries), 0)

    def test_a_missing_tally_is_counted_once_then_shared(self) -> None:
        self.assertIsNone(redis_tally())
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(storage_tally.total(), 3500)
        self.assertEqual(len(queries), 1)
        self.assertIn("SUM", queries[0]["sql"].upper())
        self.assertEqual(redis_tally(), 3500)
        # It expires after a day, so a drift lasts a day at most.
        self.assertGreater(storage_tally._client().ttl(storage_tally.key()), 3600)
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(storage_tally.total(), 3500)
        self.assertEqual(len(queries), 0)

    def test_an_upload_adds_to_a_tally_but_never_starts_one(self) -> None:
        storage_tally.add(700)
        self.assertIsNone(redis_tally(), "a partial sum would undercount every upload before it")
        storage_tally.recount()
        limits.note_stored(700)
        self.assertEqual(redis_tally(), 4200)
        self.assertEqual(storage_tally.total(), 4200)

    def test_threads_that_find_it_missing_wait_for_one_count(self) -> None:
        calls = []

        def slow_count() -> int:
            calls.append(threading.get_ident())
            time.sleep(0.3)
            return 3500

        results: list[int] = []

        def read() -> None:
            results.append(storage_tally.total())

        with mock.patch.object(storage_tally, "counted", side_effect=slow_count):
            threads = [threading.Thread(target=read) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        self.assertEqual(len(calls), 1)
        self.assertEqual(results, [3500] * 6)

    def test_the_daily_expiry_counts_it_again(self) -> None:
        storage_tally.recount()
        old = timezone.now() - timedelta(days=30)
        Submission.objects.filter(original_bytes=2500).update(state="rejected", rejected_at=old)
        self.assertEqual(limits.expire_originals(), 1)
        self.assertEqual(redis_tally(), 1000)
        self.assertEqual(limits.stored_original_bytes(), 1000)

    def test_a_worker_counts_it_when_missing_and_keeps_one_that_exists(self) -> None:
        warmup.warm_up()
        self.assertEqual(redis_tally(), 3500)
        storage_tally._client().set(storage_tally.key(), 123_456)
        self.assertEqual(warmup.warm_up()["stored originals"][0], 1)
        self.assertEqual(redis_tally(), 123_456)

    def test_without_redis_each_process_counts_and_the_cap_still_holds(self) -> None:
        with override_settings(REDIS_URL="redis://127.0.0.1:1/0", MAX_STORED_ORIGINALS_BYTES=3550):
            self.assertEqual(limits.stored_original_bytes(), 3500)
            self.assertIsNone(limits.storage_refusal(50))
            limits.note_stored(50)
            refusal = limits.storage_refusal(1)
        self.assertIsNotNone(refusal)
        self.assertEqual(refusal.status, 503)  # type: ignore[union-attr]

    def test_each_database_has_its_own_tally(self) -> None:
        self.assertIn(str(connection.settings_dict["NAME"]), storage_tally.key())
