from __future__ import annotations

from bounty_testing import BaseTestCase

from bounty.models import Bounty, Slot


class BountyStateTestCase(BaseTestCase):
    def test_it_is_open_only_when_active_and_not_paused(self) -> None:
        self.assertTrue(self.bounty.is_open())
        self.bounty.paused = True
        self.assertFalse(self.bounty.is_open())
        self.bounty.paused = False
        self.bounty.state = Bounty.State.EXHAUSTED
        self.assertFalse(self.bounty.is_open())

    def test_it_becomes_exhausted_when_no_slot_is_free_or_reserved(self) -> None:
        Slot.objects.update(state=Slot.State.CLAIMED)
        self.bounty.mark_exhausted_if_spent()
        self.bounty.refresh_from_db()
        self.assertEqual(self.bounty.state, "exhausted")

    def test_it_stays_active_while_a_claim_is_in_flight(self) -> None:
        Slot.objects.update(state=Slot.State.CLAIMED)
        Slot.objects.filter(pk=Slot.objects.first().pk).update(state=Slot.State.RESERVED)  # type: ignore[union-attr]
        self.bounty.mark_exhausted_if_spent()
        self.bounty.refresh_from_db()
        self.assertEqual(self.bounty.state, "active")
