"""Every lookup on the submission path is served by an index, on SQLite and (in the PostgreSQL re-run of the
suite) on PostgreSQL: the rate limits, the exact and near duplicate checks, the status page, reserving a slot.

PostgreSQL's planner prefers a sequential scan on a table this small, so sequential scans are switched off
for the check: the question is whether an index can serve the query at all, which a million rows make matter.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from bounty_testing import BaseTestCase
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from bounty.models import Slot, Submission
from bounty.near_duplicates import sharing_a_band


class QueryPlanTestCase(BaseTestCase):
    def plan(self, queryset: QuerySet) -> str:  # type: ignore[type-arg]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET enable_seqscan = off")
        return queryset.explain()

    def assert_uses_index(self, queryset: QuerySet, index: str | None = None) -> None:  # type: ignore[type-arg]
        plan = self.plan(queryset)
        if connection.vendor == "postgresql":
            self.assertRegex(plan, r"Index (Only )?Scan|Bitmap Index Scan", plan)
        else:
            self.assertIn("USING", plan, plan)
            self.assertNotRegex(plan, r"\bSCAN (bounty_submission|bounty_slot)\b(?! USING)", plan)
        if index is not None:
            self.assertIn(index, plan, plan)

    def test_the_rate_limits_count_through_their_indexes(self) -> None:
        since = timezone.now() - timedelta(hours=1)
        self.assert_uses_index(
            Submission.objects.filter(client_net="192.0.2.10", received_at__gte=since),
            "submission_net_recent",
        )
        self.assert_uses_index(
            Submission.objects.filter(payout_address=self.bob_address, received_at__gte=since),
            "submission_address_recent",
        )

    def test_the_duplicate_check_and_the_status_page_use_an_index(self) -> None:
        self.assert_uses_index(Submission.objects.filter(pixel_sha256="ab" * 32))
        self.assert_uses_index(Submission.objects.filter(public_id=Submission().public_id))

    def test_reserving_a_slot_uses_an_index(self) -> None:
        self.assert_uses_index(Slot.objects.filter(bounty=self.bounty, state=Slot.State.FREE))

    def test_the_exact_duplicate_check_as_screening_runs_it_uses_the_pixel_hash_index(self) -> None:
        """Neither ordered nor limited, so no plan can prefer walking another index and filtering."""
        earlier = Submission.objects.filter(pk__lt=10**9).exclude(state=Submission.State.REJECTED)
        lookup = earlier.filter(pixel_sha256="ab" * 32).order_by().values_list("pk", flat=True)
        self.assertNotIn("ORDER BY", str(lookup.query))
        self.assertNotIn("LIMIT", str(lookup.query))
        self.assert_uses_index(lookup)

    def test_the_near_duplicate_lookup_reads_the_four_band_indexes(self) -> None:
        """With rows in the table and its statistics current, as in service: the id bound matches nearly every
        row, a band value almost none."""
        rng = np.random.default_rng(15)
        rows = []
        for number in range(3000):
            row = Submission(
                bounty=self.bounty, pixels=bytes(784), pixel_sha256=f"{number:064x}", phash="0" * 64,
                claimed_digit=7, payout_address=self.bob_address,
            )  # fmt: skip
            row.set_near_hash(int(rng.integers(0, 2**63)))
            rows.append(row)
        Submission.objects.bulk_create(rows)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE bounty_submission")
        newest = Submission.objects.order_by("-pk").values_list("pk", flat=True)[0]
        earlier = Submission.objects.filter(pk__lt=newest).exclude(state=Submission.State.REJECTED)
        lookup = sharing_a_band(0x0123_4567_89AB_CDEF, earlier).order_by().values_list("pk", "near_hash")
        for band in range(4):
            self.assert_uses_index(lookup, f"submission_near_band_{band}")
