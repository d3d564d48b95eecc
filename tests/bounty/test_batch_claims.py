"""Batch bounties through the pipeline (bounty/batches.py, bounty/pipeline.py, bounty/payouts.py): K images
claimed in one transaction paying each of them, a lone image claimed padded after the maximum wait, a bad
image left out, a batch the chain refuses rebuilt without its offender, a contested batch settled like a
single claim. On the default model and the local ledger; every transaction the ledger accepts is re-verified
with bitcoinx, and the fault tests' invariant checker runs on each outcome."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
from bounty_testing import ChainTestCase, mnist_pixels
from bsv.script.script import Script
from django.utils import timezone
from fault_support import check_invariants

from bounty import batches, chain, confirmations, keys, payouts, pipeline, sweeper
from bounty.models import Reason, Slot, SlotKind, Submission, Transaction
from contracts.address import parse_address
from contracts.batch_slot import BatchSlotContract
from contracts.batch_transactions import BatchClaimEntry, assemble_batch_claim
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.txverify import parse_transaction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contracts"))
from ledger_helpers import reverify_ledger_with_bitcoinx

LANES = 4


class BatchTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.batch = self.create_bounty(digit=7, slots=2, slot_kind=SlotKind.BATCH, batch_lanes=LANES)
        self.payees = [Key.generate("testnet").address for _ in range(8)]

    @property
    def ledger(self) -> LocalLedger:
        backend = chain.backend()
        assert isinstance(backend, LocalLedger)
        return backend

    def paid_to(self, address: str) -> int:
        return sum(utxo.satoshis for utxo in self.ledger.utxos(address))

    def submit(self, nth: int, pixels: np.ndarray | None = None) -> Submission:
        image = mnist_pixels(7, nth) if pixels is None else pixels
        return self.make_submission(image, bounty=self.batch, payout_address=self.payees[nth])

    def checked(self, *nths: int) -> list[Submission]:
        """Submissions that passed the check, each processed once (so each waits or is claimed)."""
        return [self.process(self.submit(nth)) for nth in nths]

    def process(self, submission: Submission) -> Submission:
        pipeline.process(submission.pk)
        submission.refresh_from_db()
        return submission

    def finish(self, submissions: list[Submission]) -> list[Submission]:
        """What the queued tasks of the other members do: each is processed (broadcast) once more."""
        for submission in submissions:
            pipeline.process(submission.pk)
        return [Submission.objects.get(pk=s.pk) for s in submissions]

    def age(self, submissions: list[Submission], seconds: float) -> None:
        """As if these were checked `seconds` ago."""
        Submission.objects.filter(pk__in=[s.pk for s in submissions]).update(
            checked_at=timezone.now() - timedelta(seconds=seconds)
        )

    def claim_outputs(self, tx: Transaction) -> list[tuple[int, bytes]]:
        return [
            (o.satoshis, o.locking_script.serialize())
            for o in parse_transaction(bytes.fromhex(tx.raw_hex)).outputs
        ]


class BatchDeployTestCase(BatchTestCase):
    def test_a_batch_bounty_deploys_batch_slots_of_k_rewards(self) -> None:
        cost = chain.claim_cost(self.version, 7, self.batch.fee_rate, LANES)
        self.assertEqual(self.batch.claim_fee, cost["claim_fee"])
        single = chain.claim_cost(self.version, 7, self.batch.fee_rate)
        # Bytes per paid image of a full batch against a single slot's: the predicate is shared by K images.
        self.assertLess(cost["bytes_per_paid_image"], single["bytes_per_paid_image"] / 3)
        contract = chain.bounty_contract(self.batch)
        self.assertIsInstance(contract, BatchSlotContract)
        slots = list(self.batch.slots.all())
        self.assertEqual([s.lanes for s in slots], [LANES, LANES])
        self.assertEqual({s.satoshis for s in slots}, {LANES * self.batch.reward + self.batch.claim_fee})
        for slot in slots:
            raw = parse_transaction(bytes.fromhex(slot.deploy_tx.raw_hex))
            self.assertEqual(raw.outputs[slot.vout].locking_script.serialize(), contract.locking_script)
        # Single bounties keep single slots.
        self.assertEqual({s.lanes for s in self.live.slots.all()}, {1})
        self.assertEqual(reverify_ledger_with_bitcoinx(self.ledger), 2, "the two deploys")

    def test_its_pages_count_the_images_it_pays_for_not_its_slots(self) -> None:
        page = self.client.get(f"/bounties/{self.batch.pk}/").content.decode()
        self.assertIn(f"{2 * LANES} of {2 * LANES} rewards left", page)
        Slot.objects.filter(pk=self.batch.slots.first().pk).update(state=Slot.State.CLAIMED)
        page = self.client.get(f"/bounties/{self.batch.pk}/").content.decode()
        self.assertIn(f"{LANES} of {2 * LANES} rewards left", page)
        self.assertIn(f"{LANES} of {2 * LANES} left", self.client.get("/").content.decode())


class FullBatchTestCase(BatchTestCase):
    def test_k_checked_images_are_paid_by_one_claim_each_by_its_own_output(self) -> None:
        first = self.checked(0, 1, 2)
        self.assertEqual([s.state for s in first], ["checked"] * 3, "waiting for the fourth")
        decision = batches.decision_for(self.batch)
        self.assertEqual(decision.status(), "waiting for 1 more image or at most 60 seconds")
        last = self.process(self.submit(3))
        self.assertEqual(last.state, "broadcast", "the fourth completes the batch: claimed and sent at once")
        # Its broadcast moved the other three members with it: no task of theirs was needed.
        members = [*(Submission.objects.get(pk=s.pk) for s in first), last]
        self.assertEqual({s.state for s in members}, {"broadcast"})
        [claim] = Transaction.objects.filter(kind="claim")
        self.assertEqual({s.claim_tx_id for s in members}, {claim.pk})
        self.assertEqual(sorted(s.claim_output for s in members), [0, 1, 2, 3])
        outputs = self.claim_outputs(claim)
        # Output K (the only other one) returns the part of the reserved fee this claim did not need.
        self.assertEqual(len(outputs), LANES + 1)
        self.assertEqual(outputs[LANES][1], parse_address(chain.operator_address()).locking_script())
        for member in members:
            satoshis, script = outputs[member.claim_output]  # type: ignore[index]
            self.assertEqual(
                (satoshis, script), (1000, parse_address(member.payout_address).locking_script())
            )
            self.assertEqual(self.paid_to(member.payout_address), 1000)
        slot = Slot.objects.get(spent_by=claim)
        self.assertEqual((slot.state, slot.lanes), ("claimed", LANES))
        self.assertEqual(set(slot.batch_members.values_list("pk", flat=True)), {s.pk for s in members})
        self.assertEqual(check_invariants()["paid"], 4)
        self.assertEqual(reverify_ledger_with_bitcoinx(self.ledger), 3, "two deploys and the claim")

    def test_a_batch_the_network_dropped_is_sent_again_as_new_bytes_and_paid_once(self) -> None:
        self.ledger.chaos.configure(queue=["reject_later"])
        members = [*self.checked(0, 1, 2), self.process(self.submit(3))]
        [first] = Transaction.objects.filter(kind="claim")
        self.assertEqual(Submission.objects.get(pk=members[0].pk).state, "broadcast")
        chain.mine(1)  # the network drops it: REJECTED, the slot unspent; nobody is an offender
        with self.captureOnCommitCallbacks(execute=False):
            confirmations.poll_confirmations()
        rest = [Submission.objects.get(pk=s.pk) for s in members]
        self.assertEqual({(s.state, s.payout_attempts) for s in rest}, {("checked", 1)})
        # The same members from the same slot: the same payment, which ARC would refuse again as those
        # bytes, goes as a transaction with the next lock time.
        rest = self.finish(rest)
        self.assertEqual({s.state for s in rest}, {"broadcast"})
        first.refresh_from_db()
        second = Transaction.objects.get(kind="claim", status="broadcast")
        self.assertEqual((first.status, first.failure), ("failed", "rejected"))
        self.assertEqual(self.claim_outputs(second), self.claim_outputs(first))
        locktimes = [parse_transaction(bytes.fromhex(t.raw_hex)).locktime for t in (first, second)]
        self.assertEqual(locktimes, [0, 1])
        self.assertEqual({s.claim_tx_id for s in rest}, {second.pk})
        self.assertEqual([self.paid_to(s.payout_address) for s in rest], [1000] * LANES)
        chain.mine(1)
        confirmations.poll_confirmations()
        self.assertEqual(check_invariants()["paid"], LANES)

    def test_a_batch_holds_at_most_k_and_the_rest_wait_for_the_next(self) -> None:
        waiting = [self.submit(nth) for nth in range(6)]
        for submission in waiting:
            pipeline.check(submission)
        [stored] = batches.claim_ready(self.batch)
        self.assertEqual(len(stored), LANES)
        self.assertEqual(len(batches.waiting(self.batch)), 2)
        self.assertIsNone(batches.take_batch(self.batch), "two are not a batch before the maximum wait")


class PaddedBatchTestCase(BatchTestCase):
    def test_a_lone_image_is_claimed_padded_after_the_maximum_wait(self) -> None:
        [lone] = self.checked(0)
        self.assertEqual(lone.state, "checked")
        self.assertEqual(
            batches.decision_for(self.batch).status(), "waiting for 3 more images or at most 60 seconds"
        )
        self.assertEqual(sweeper.claim_due_batches(), 0, "not yet due")
        self.age([lone], 61)
        with self.captureOnCommitCallbacks(execute=False):
            self.assertEqual(sweeper.claim_due_batches(), 1)
        lone = self.finish([lone])[0]
        self.assertEqual((lone.state, lone.claim_output), ("broadcast", 0))
        outputs = self.claim_outputs(lone.claim_tx)  # type: ignore[arg-type]
        # One payee and the change: the three padded lanes' rewards and the unneeded fee, to the funder.
        self.assertEqual(len(outputs), 2)
        operator = parse_address(chain.operator_address()).locking_script()
        self.assertEqual(outputs[1][1], operator)
        slot = Slot.objects.get(spent_by=lone.claim_tx)
        fee = lone.claim_tx.fee  # type: ignore[union-attr]
        self.assertEqual(outputs[1][0], slot.satoshis - 1000 - fee)
        self.assertGreaterEqual(outputs[1][0], 3 * 1000)
        self.assertEqual(check_invariants()["paid"], 1)
        self.assertEqual(reverify_ledger_with_bitcoinx(self.ledger), 3, "two deploys and the claim")

    def test_the_status_page_says_how_many_more_images_or_how_long_at_most(self) -> None:
        [lone] = self.checked(0)
        self.age([lone], 18)
        expected = "waiting for 3 more images or at most 42 seconds"
        page = self.client.get(f"/submissions/{lone.public_id}/status.json").json()
        self.assertEqual(page["batch_wait"], f"Your image waits for its batch of 4: {expected}.")
        self.assertContains(self.client.get(f"/submissions/{lone.public_id}/"), expected)
        self.checked(1)
        page = self.client.get(f"/submissions/{lone.public_id}/status.json").json()
        self.assertIn("waiting for 2 more images or at most 42 seconds", page["batch_wait"])
        self.age([lone], 61)
        self.assertEqual(self.process(lone).state, "broadcast")
        page = self.client.get(f"/submissions/{lone.public_id}/status.json").json()
        self.assertEqual((page["batch_wait"], page["paid"]), ("", True))

    def test_the_maximum_wait_is_the_setting(self) -> None:
        with self.settings(BATCH_MAX_WAIT=5):
            [lone] = self.checked(0)
            self.assertEqual(batches.decision_for(self.batch).wait_seconds, 5)
            self.age([lone], 6)
            self.assertEqual(self.process(lone).state, "broadcast")


class BadImageTestCase(BatchTestCase):
    def test_an_image_the_model_does_not_read_as_the_digit_costs_the_others_nothing(self) -> None:
        good = self.checked(0, 1, 2)
        # An image that reached "checked" although the model reads a 3 (checked under another model, say).
        bad = self.submit(3, pixels=mnist_pixels(3, 0))
        Submission.objects.filter(pk=bad.pk).update(
            state="checked", checked_at=timezone.now(), second_opinion="agrees", predicted_digit=7
        )
        self.age(good, 1)
        [stored] = batches.claim_ready(self.batch)
        self.assertEqual(sorted(stored), sorted(s.pk for s in good))
        bad.refresh_from_db()
        self.assertEqual((bad.state, bad.reason, bad.batch_slot_id), ("rejected", Reason.WRONG_DIGIT, None))
        good = self.finish(good)
        self.assertEqual({s.state for s in good}, {"broadcast"})
        self.assertEqual(self.paid_to(bad.payout_address), 0)
        self.assertEqual(check_invariants()["paid"], 3)
        self.assertEqual(reverify_ledger_with_bitcoinx(self.ledger), 3, "two deploys and the claim")

    def test_a_batch_the_chain_refuses_is_rebuilt_without_the_offender(self) -> None:
        members = [self.submit(nth) for nth in range(3)]
        for submission in members:
            pipeline.check(submission)
        offender = self.submit(3, pixels=mnist_pixels(3, 0))
        # A claim the off-chain check never saw (built by an earlier release, say): it packs a 3 among the
        # 7s. The builder would refuse it, so it is assembled unverified and stored as the batch's claim.
        slot = Slot.reserve(self.batch, members[0].pk)
        assert slot is not None
        batch = [*members, offender]
        contract = chain.bounty_contract(self.batch)
        assert isinstance(contract, BatchSlotContract)
        utxo = chain.slot_utxos(contract, [slot])[0]  # type: ignore[arg-type]
        entries = [
            BatchClaimEntry(np.frombuffer(s.pixel_bytes, np.uint8).astype(np.int64), s.payout_address)
            for s in batch
        ]
        raw = assemble_batch_claim(
            utxo, contract, entries, keys.operator_key(), reward=1000, fee_rate=chain.fee_rate(100)
        ).serialize()
        tx = Transaction.objects.create(
            txid=parse_transaction(raw).txid(), raw_hex=raw.hex(), kind="claim", bounty=self.batch
        )
        Submission.objects.filter(pk=offender.pk).update(state="checked", second_opinion="agrees")
        for index, submission in enumerate(batch):
            Submission.objects.filter(pk=submission.pk).update(
                state="verified", claim_tx=tx, claim_output=index, batch_slot=slot
            )
        # The first member's broadcast: refused; the batch is settled at once.
        self.assertEqual(pipeline.process(members[0].pk), "checked")
        offender.refresh_from_db()
        self.assertEqual((offender.state, offender.reason), ("rejected", Reason.WRONG_DIGIT))
        tx.refresh_from_db()
        self.assertEqual((tx.status, tx.failure), ("failed", "rejected"))
        rest = [Submission.objects.get(pk=s.pk) for s in members]
        self.assertEqual(
            {(s.state, s.batch_slot_id, s.payout_attempts) for s in rest}, {("checked", None, 0)}
        )
        # Rebuilt without the offender (padded, once the wait has passed) and paid.
        self.age(rest, 61)
        with self.captureOnCommitCallbacks(execute=False):
            self.assertEqual(sweeper.claim_due_batches(), 3)
        rest = self.finish(rest)
        self.assertEqual({s.state for s in rest}, {"broadcast"})
        self.assertEqual([self.paid_to(s.payout_address) for s in rest], [1000] * 3)
        self.assertEqual(self.paid_to(offender.payout_address), 0)
        self.assertEqual(check_invariants()["paid"], 3)
        self.assertEqual(reverify_ledger_with_bitcoinx(self.ledger), 3, "two deploys and the claim")


class ContestedBatchTestCase(BatchTestCase):
    def test_a_copy_with_other_images_that_lands_first_is_every_members_payment(self) -> None:
        members = [self.submit(nth) for nth in range(4)]
        for submission in members:
            pipeline.check(submission)
        [stored] = batches.claim_ready(self.batch)
        self.assertEqual(len(stored), 4)
        ours = Transaction.objects.get(kind="claim")
        # Anyone may swap the image pushes (the unlocking script is not signed) for other accepted 7s.
        copy = parse_transaction(bytes.fromhex(ours.raw_hex))
        unlocking = copy.inputs[0].unlocking_script.serialize()
        signature = unlocking[1 : unlocking[0] + 1]
        contract = chain.bounty_contract(self.batch)
        assert isinstance(contract, BatchSlotContract)
        # The same images in other lanes: another txid, no more bytes (so the fee still suffices).
        images = [np.frombuffer(m.pixel_bytes, np.uint8).astype(np.int64) for m in members]
        for shift in range(1, LANES):
            swapped = contract.claim_unlocking(signature, np.stack(images[shift:] + images[:shift]))
            if len(swapped) <= len(unlocking):
                break
        self.assertLessEqual(len(swapped), len(unlocking))
        copy.inputs[0].unlocking_script = Script(swapped)
        txid = chain.broadcast(copy.serialize().hex())
        self.assertNotEqual(txid, ours.txid)
        for submission in members:
            pipeline.process(submission.pk)
        members = [Submission.objects.get(pk=s.pk) for s in members]
        self.assertEqual({s.state for s in members}, {"broadcast"})
        payment = Transaction.objects.get(txid=txid)
        self.assertEqual({s.claim_tx_id for s in members}, {payment.pk})
        self.assertFalse(payment.built_here)
        self.assertEqual(Transaction.objects.get(pk=ours.pk).status, "failed")
        self.assertEqual([self.paid_to(s.payout_address) for s in members], [1000] * 4)
        self.assertEqual(check_invariants()["paid"], 4)
        self.assertEqual(reverify_ledger_with_bitcoinx(self.ledger), 3, "two deploys and the claim")
        self.assertTrue(
            payouts.pays_submission(
                members[1],
                payment,
                payment.raw_hex,
                (Slot.objects.get(spent_by=payment).deploy_txid, Slot.objects.get(spent_by=payment).vout),
            )
        )
