"""A claim's cost does not grow with its bounty's slot count.

One deploy transaction holds up to a few hundred slots of 17.5 KB each, so its raw hex is megabytes. The claim
path used to read it twice per claim (the slot's txid through the slot's deploy transaction, and the parents
sent with the broadcast), and SQLite walked it for every join on its status: at 550 slots a claim took 158 ms
of worker time, against 42 ms now (benchmarks/profile_submission.py --slots 550).
"""

from __future__ import annotations

from bounty_testing import BaseTestCase, ChainTestCase, mnist_pixels
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bounty import payouts, pipeline
from bounty.models import Slot, Transaction


def reads_raw_of(queries: list[dict], tx: Transaction) -> list[str]:
    """The captured statements that read `tx`'s raw bytes (by its primary key or its txid)."""
    found = []
    for query in queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT") or "raw_hex" not in sql.split("FROM", 1)[0]:
            continue
        if f"= {tx.pk}" in sql or f"IN ({tx.pk})" in sql or tx.txid in sql:
            found.append(sql)
    return found


class SlotTxidTestCase(BaseTestCase):
    def test_a_slot_gives_its_deploy_txid_without_reading_the_raw_bytes(self) -> None:
        slot = Slot.objects.get(deploy_tx=self.deploy, vout=1)  # loaded without its deploy transaction
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(slot.deploy_txid, self.deploy.txid)
            self.assertEqual(slot.outpoint, f"{self.deploy.txid}:1")
        self.assertEqual(len(queries), 1, "read once, then kept on the slot")
        self.assertNotIn("raw_hex", queries[0]["sql"])

    def test_slots_listed_with_their_txids_leave_the_raw_bytes_unread(self) -> None:
        with CaptureQueriesContext(connection) as queries:
            slots = list(Slot.objects.with_txids().filter(bounty=self.bounty))
            txids = {slot.deploy_txid for slot in slots}
        self.assertEqual(txids, {self.deploy.txid})
        self.assertEqual(len(queries), 1, "one join for every slot and its txid")
        self.assertNotIn("raw_hex", queries[0]["sql"])
        # The raw is still there for whoever asks for it.
        self.assertEqual(slots[0].deploy_tx.raw_hex, "00")

    def test_the_raw_bytes_are_stored_last_in_the_row(self) -> None:
        # SQLite reaches a column stored after a large value only by walking that value's overflow pages;
        # on PostgreSQL (large values kept out of line) the order is the same, and harmless.
        columns = [
            c.name
            for c in connection.introspection.get_table_description(connection.cursor(), "bounty_transaction")
        ]
        self.assertEqual(columns[-1], "raw_hex")
        self.assertLess(columns.index("status"), columns.index("raw_hex"))


class ParentsTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        payouts._parents.clear()
        self.addCleanup(payouts._parents.clear)

    def claimed(self, nth: int) -> Transaction:
        submission = self.make_submission(mnist_pixels(7, nth), bounty=self.live)
        self.assertEqual(pipeline.process(submission.pk), "broadcast")
        submission.refresh_from_db()
        assert submission.claim_tx is not None
        return submission.claim_tx

    def test_a_parent_is_read_from_the_database_once_per_process(self) -> None:
        claim = self.claimed(0)
        deploy = Slot.objects.get(spent_by=claim).deploy_tx
        payouts._parents.clear()
        with CaptureQueriesContext(connection) as first:
            parents = payouts.parents_of(claim)
        self.assertEqual(parents, {deploy.txid: bytes.fromhex(deploy.raw_hex)})
        self.assertEqual(len(reads_raw_of(first.captured_queries, deploy)), 1)
        with self.assertNumQueries(0):
            self.assertEqual(payouts.parents_of(claim), parents)

    def test_the_bytes_kept_are_bounded(self) -> None:
        claim = self.claimed(0)
        deploy_txid = Slot.objects.get(spent_by=claim).deploy_txid
        payouts._parents.clear()
        payouts._parents["f" * 64] = b"\0" * 10  # an older parent
        bound = payouts.PARENTS_KEPT_BYTES
        payouts.PARENTS_KEPT_BYTES = 1  # below one deploy's size: only the newest parent stays
        try:
            payouts.parents_of(claim)
        finally:
            payouts.PARENTS_KEPT_BYTES = bound
        self.assertEqual(list(payouts._parents), [deploy_txid])

    def test_a_second_claim_on_the_bounty_never_reads_the_deploy_transaction(self) -> None:
        first = self.claimed(0)
        deploy = Slot.objects.get(spent_by=first).deploy_tx
        with CaptureQueriesContext(connection) as queries:
            second = self.claimed(1)
        self.assertNotEqual(second.pk, first.pk)
        self.assertEqual(Slot.objects.get(spent_by=second).deploy_tx_id, deploy.pk)
        self.assertEqual(reads_raw_of(queries.captured_queries, deploy), [])
