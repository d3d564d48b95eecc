from __future__ import annotations

from importlib import import_module

from bounty_testing import BaseTestCase
from django.apps import apps as django_apps

from bounty.models import Slot, Transaction
from bounty.retraining.models import MigrationStep, Redeployment


class SlotReservationTestCase(BaseTestCase):
    def test_it_reserves_a_free_slot(self) -> None:
        submission = self.make_submission()
        slot = Slot.reserve(self.bounty, submission.pk)
        assert slot is not None
        self.assertEqual(slot.state, "reserved")
        self.assertEqual(slot.submission_id, submission.pk)

    def test_it_gives_the_same_slot_when_the_task_runs_twice(self) -> None:
        submission = self.make_submission()
        first = Slot.reserve(self.bounty, submission.pk)
        second = Slot.reserve(self.bounty, submission.pk)
        assert first is not None and second is not None
        self.assertEqual(first.pk, second.pk)
        self.assertEqual(Slot.objects.filter(state="reserved").count(), 1)

    def test_it_never_gives_one_slot_to_two_submissions(self) -> None:
        submissions = [self.make_submission() for _ in range(4)]
        slots = [Slot.reserve(self.bounty, s.pk) for s in submissions]
        taken = [slot.pk for slot in slots if slot is not None]
        self.assertEqual(len(taken), 3)
        self.assertEqual(len(set(taken)), 3)
        self.assertIsNone(slots[3])

    def test_it_skips_a_slot_another_worker_just_took(self) -> None:
        first, second = self.make_submission(), self.make_submission()
        slot = Slot.objects.order_by("pk").first()
        assert slot is not None
        Slot.objects.filter(pk=slot.pk).update(state=Slot.State.RESERVED, submission=first)
        mine = Slot.reserve(self.bounty, second.pk)
        assert mine is not None
        self.assertNotEqual(mine.pk, slot.pk)

    def test_release_frees_only_a_reserved_slot(self) -> None:
        submission = self.make_submission()
        slot = Slot.reserve(self.bounty, submission.pk)
        assert slot is not None
        self.assertTrue(slot.release())
        self.assertFalse(slot.release())
        slot.refresh_from_db()
        self.assertEqual((slot.state, slot.submission_id), ("free", None))


class MigratedStateTestCase(BaseTestCase):
    """Slots a redeployment took were once marked refunded; migration 0010 says what happened to them."""

    def test_the_data_migration_marks_only_slots_a_redeployment_took(self) -> None:
        mark_migrated = import_module("bounty.migrations.0010_slot_state_migrated").mark_migrated
        moved, taken, refunded = Slot.objects.filter(bounty=self.bounty).order_by("vout")
        migration = Transaction.objects.create(
            txid="a" * 64, raw_hex="00", kind=Transaction.Kind.MIGRATE, bounty=self.bounty
        )
        refund = Transaction.objects.create(
            txid="b" * 64, raw_hex="00", kind=Transaction.Kind.REFUND, bounty=self.bounty
        )
        Slot.objects.filter(pk=moved.pk).update(state="refunded", spent_by=migration)
        Slot.objects.filter(pk=refunded.pk).update(state="refunded", spent_by=refund)
        Slot.objects.filter(pk=taken.pk).update(state="refunded")
        redeployment = Redeployment.objects.create(target=self.version, kind=Redeployment.Kind.PROMOTION)
        MigrationStep.objects.create(
            redeployment=redeployment, bounty=self.bounty, from_version=self.version,
            state=MigrationStep.State.TAKEN, slot_ids=[taken.pk],
        )  # fmt: skip
        mark_migrated(django_apps, None)
        states = dict(Slot.objects.filter(bounty=self.bounty).values_list("pk", "state"))
        self.assertEqual(
            states, {moved.pk: Slot.State.MIGRATED, taken.pk: Slot.State.MIGRATED, refunded.pk: "refunded"}
        )
