"""The offline signing page: the admin signs preimages elsewhere, the service verifies and broadcasts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from bounty import chain, keys
from bounty.models import Bounty, Slot, Transaction
from bounty.ops import signing
from contracts.keys import Key

pytestmark = pytest.mark.django_db


def signatures(refund: signing.UnsignedRefund, key: Key) -> list[str]:
    return [key.sign_preimage(bytes.fromhex(i.preimage)).hex() for i in refund.inputs]


def test_it_broadcasts_a_refund_signed_with_the_admin_key(live_bounty: Bounty) -> None:
    refund = signing.prepare_refund(live_bounty, chain.operator_address())
    assert len(refund.inputs) == live_bounty.slot_count
    assert refund.admin_pubkey == keys.admin_key().public_key.hex()
    stored = signing.submit_signed_refund(
        live_bounty, list(refund.slot_ids), refund.to_address, signatures(refund, keys.admin_key())
    )
    assert stored.kind == Transaction.Kind.REFUND and stored.status == Transaction.Status.BROADCAST
    assert chain.status(stored.txid).state in (chain.TxState.MEMPOOL, chain.TxState.MINED)
    assert set(Slot.objects.filter(bounty=live_bounty).values_list("state", flat=True)) == {"refunded"}


def test_it_refuses_signatures_of_another_key_and_keeps_the_slots_free(live_bounty: Bounty) -> None:
    refund = signing.prepare_refund(live_bounty, chain.operator_address())
    with pytest.raises(signing.SigningError, match="does not verify"):
        signing.submit_signed_refund(
            live_bounty, list(refund.slot_ids), refund.to_address, signatures(refund, keys.operator_key())
        )
    assert set(Slot.objects.filter(bounty=live_bounty).values_list("state", flat=True)) == {"free"}
    assert not Transaction.objects.filter(kind=Transaction.Kind.REFUND).exists()


def test_it_shows_staff_the_preimages_and_hides_them_from_others(client, live_bounty: Bounty) -> None:  # type: ignore[no-untyped-def]
    url = f"/ops/sign/bounty/{live_bounty.pk}/refund/"
    assert client.get(url).status_code == 302  # to the admin login
    alice = User.objects.create_superuser("alice", "", "pw-alice-123")
    client.force_login(alice)
    page = client.get(url)
    refund = signing.prepare_refund(live_bounty, chain.operator_address())
    assert page.status_code == 200
    for item in refund.inputs:
        assert item.preimage in page.content.decode()
    index = client.get("/ops/sign/")
    assert f"/ops/sign/bounty/{live_bounty.pk}/refund/" in index.content.decode()
    posted = client.post(
        url,
        {
            "to_address": refund.to_address,
            "slot_ids": ",".join(map(str, refund.slot_ids)),
            "signatures": "\n".join(signatures(refund, keys.admin_key())),
        },
    )
    assert posted.status_code == 200
    assert Transaction.objects.get(kind=Transaction.Kind.REFUND).txid in posted.content.decode()
