"""Pricing and locking a draft bounty: the one function every creator of a bounty uses (the admin's add
form, the bootstrap command, the tests and the benchmarks)."""

from __future__ import annotations

from bounty_testing import ChainTestCase
from django.test import override_settings

from bounty import chain
from bounty.funding import FundingError, draft_bounty, price_and_lock
from bounty.models import Bounty


class PriceAndLockTestCase(ChainTestCase):
    def test_a_draft_is_priced_at_the_configured_rate_and_locked_to_the_service_keys(self) -> None:
        with override_settings(FEE_RATE=250):
            bounty = draft_bounty(self.version, digit=4, slots=2, reward=900)
        bounty.refresh_from_db()
        self.assertEqual((bounty.state, bounty.fee_rate, bounty.slot_count), (Bounty.State.DRAFT, 250, 2))
        contract = chain.bounty_contract(bounty)
        self.assertEqual(bounty.claim_fee, contract.claim_fee(chain.fee_rate(250)))
        self.assertEqual((bounty.operator_pubkey, bounty.admin_pubkey), chain.public_keys())
        cheaper = draft_bounty(self.version, digit=4, slots=2, reward=900)
        self.assertLess(cheaper.claim_fee, bounty.claim_fee, "the claim fee follows the fee rate")

    def test_a_deployed_bounty_keeps_the_price_and_keys_on_chain(self) -> None:
        before = (self.live.fee_rate, self.live.claim_fee, self.live.operator_pubkey)
        self.live.refresh_from_db()
        with override_settings(FEE_RATE=500), self.assertRaises(FundingError):
            price_and_lock(self.live)
        self.assertEqual((self.live.fee_rate, self.live.claim_fee, self.live.operator_pubkey), before)
