"""A funder chooses batch slots and K in the admin: the bounty is priced for a batch slot (its claim fee
covers K payees and is shared by them), deployed with batch slots of K rewards, and K outside 2..16 is
refused with a clear error. Left out, the choice is single slots, as before."""

from __future__ import annotations

from bounty_testing import ChainTestCase

from bounty import chain
from bounty.admin.bounties import per_image_in_words
from bounty.funding import fund_and_deploy
from bounty.models import Bounty, SlotKind

BOUNTIES = "/admin/bounty/bounty/"


class BatchAdminTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client.force_login(self.alice)

    def add(self, **fields: object):  # type: ignore[no-untyped-def]
        form = {"digit": 3, "reward": 2000, "slot_count": 2, "model_version": self.version.pk, **fields}
        return self.client.post(f"{BOUNTIES}add/", form)

    def test_a_batch_bounty_is_priced_and_deployed_with_batch_slots(self) -> None:
        response = self.add(slot_kind="batch", batch_lanes=8)
        self.assertEqual(response.status_code, 302, response.content[:2000])
        bounty = Bounty.objects.get(reward=2000)
        self.assertEqual((bounty.slot_kind, bounty.batch_lanes, bounty.lanes), (SlotKind.BATCH, 8, 8))
        batch = chain.claim_cost(self.version, 3, bounty.fee_rate, 8)
        single = chain.claim_cost(self.version, 3, bounty.fee_rate)
        self.assertEqual(bounty.claim_fee, batch["claim_fee"])
        self.assertGreater(batch["claim_fee"], single["claim_fee"], "a claim paying 8 costs more than one")
        self.assertLess(batch["bytes_per_paid_image"], 4_000, "under 4 KB per paid image in a full batch")
        self.assertIn("in a full batch of 8", per_image_in_words(bounty))
        fund_and_deploy(bounty)
        slots = list(bounty.slots.all())
        self.assertEqual(len(slots), 2)
        self.assertEqual({(s.lanes, s.satoshis) for s in slots}, {(8, 8 * 2000 + bounty.claim_fee)})

    def test_left_out_the_choice_is_single_slots(self) -> None:
        self.assertEqual(self.add().status_code, 302)
        bounty = Bounty.objects.get(reward=2000)
        self.assertEqual((bounty.slot_kind, bounty.lanes), (SlotKind.SINGLE, 1))
        self.assertEqual(bounty.claim_fee, chain.claim_cost(self.version, 3, bounty.fee_rate)["claim_fee"])

    def test_k_outside_2_to_16_is_refused_clearly(self) -> None:
        for lanes in (1, 17):
            response = self.add(slot_kind="batch", batch_lanes=lanes)
            self.assertEqual(response.status_code, 200)
            self.assertContains(response, "Ensure this value is")
        self.assertFalse(Bounty.objects.filter(reward=2000).exists())
