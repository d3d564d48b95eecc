"""The offline signing page: the admin signs preimages elsewhere, the service verifies and broadcasts."""

from __future__ import annotations

import logging

import pytest
from bounty_testing import deployed_bounty, model_artifact
from django.contrib.auth.models import User
from test_retraining_redeploy import newer_artifact

from bounty import chain, keys
from bounty.models import Bounty, ModelVersion, Slot, Transaction
from bounty.ops import signing
from bounty.retraining import redeploy
from bounty.retraining.models import MigrationStep, Redeployment
from contracts.address import parse_address
from contracts.keys import Key
from contracts.txverify import parse_transaction

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


# -- what is signed, in words; and where a refund may go -------------------------------------------------


@pytest.fixture
def alice(client):  # type: ignore[no-untyped-def]
    """Alice administers the site and signs refunds."""
    user = User.objects.create_superuser("alice", "alice@example.org", "password-of-alice")
    client.force_login(user)
    return user


@pytest.fixture
def mallory() -> str:
    """An address that is not the operator wallet: where a tampered link would send a refund."""
    return Key.generate("testnet").address


def refund_url(bounty: Bounty) -> str:
    return f"/ops/sign/bounty/{bounty.pk}/refund/"


def test_it_shows_each_output_in_words_beside_the_digests(client, alice, live_bounty: Bounty) -> None:  # type: ignore[no-untyped-def]
    page = client.get(refund_url(live_bounty)).content.decode()
    refund = signing.prepare_refund(live_bounty, chain.operator_address())
    [out] = refund.transaction.outputs
    assert (out.address, out.satoshis, out.bounty_id) == (
        chain.operator_address(),
        refund.amount,
        live_bounty.pk,
    )
    assert f'<code class="address">{out.address}</code>' in page
    assert f'<td class="satoshis">{refund.amount}</td><td>#{live_bounty.pk}</td>' in page
    assert f'<code class="hash-outputs">{refund.transaction.hash_outputs}</code>' in page
    for item in refund.inputs:
        assert f'<code class="digest">{item.digest}</code>' in page
        # what the page says is paid is what the signature commits to
        assert bytes.fromhex(item.preimage)[-40:-8].hex() == refund.transaction.hash_outputs


def test_it_exports_a_signing_request_naming_every_output(client, alice, live_bounty: Bounty) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"{refund_url(live_bounty)}request.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="refund-bounty-{live_bounty.pk}.json"'
    request = response.json()
    refund = signing.prepare_refund(live_bounty, chain.operator_address())
    assert (request["kind"], request["bounty"], request["fee"]) == ("refund", live_bounty.pk, refund.fee)
    [tx] = request["transactions"]
    assert tx["outputs"] == [
        {"index": 0, "address": chain.operator_address(), "satoshis": refund.amount,
         "bounty_id": live_bounty.pk, "what": "the operator wallet"},
    ]  # fmt: skip
    assert [i["digest"] for i in tx["inputs"]] == [i.digest for i in refund.inputs]
    assert {i["bounty"] for i in tx["inputs"]} == {live_bounty.pk}
    [paid] = parse_transaction(bytes.fromhex(tx["unsigned_hex"])).outputs
    pays = parse_address(chain.operator_address(), "regtest").locking_script()
    assert (paid.locking_script.serialize(), paid.satoshis) == (pays, refund.amount)
    for item in tx["inputs"]:
        assert bytes.fromhex(item["preimage"])[-40:-8].hex() == tx["hash_outputs"]


def test_it_ignores_a_link_that_redirects_the_refund(client, alice, live_bounty, mallory, caplog) -> None:  # type: ignore[no-untyped-def]
    tricked = signing.prepare_refund(live_bounty, mallory)  # what a tampered link would have shown
    linked = client.get(refund_url(live_bounty), {"to": mallory})
    assert linked.status_code == 200
    assert "is not the configured refund address" in linked.content.decode()
    assert 'class="preimage"' not in linked.content.decode()
    assert all(i.preimage not in linked.content.decode() for i in tricked.inputs)
    assert client.get(f"{refund_url(live_bounty)}request.json", {"to": mallory}).status_code == 400
    unticked = client.post(refund_url(live_bounty), {"to_address": mallory})
    assert unticked.status_code == 400 and 'class="preimage"' not in unticked.content.decode()
    # Even signatures made for that address (an admin fooled into signing offline) are not broadcast.
    posted = client.post(
        refund_url(live_bounty),
        {"to_address": mallory, "slot_ids": ",".join(map(str, tricked.slot_ids)),
         "signatures": "\n".join(signatures(tricked, keys.admin_key()))},
    )  # fmt: skip
    assert posted.status_code == 400
    assert not Transaction.objects.filter(kind=Transaction.Kind.REFUND).exists()
    assert set(Slot.objects.filter(bounty=live_bounty).values_list("state", flat=True)) == {"free"}
    assert "confirmed the refund" not in caplog.text


def test_it_pays_another_address_only_when_confirmed(client, alice, live_bounty, mallory, caplog) -> None:  # type: ignore[no-untyped-def]
    confirm = {"to_address": mallory, "confirm_other_address": "yes"}
    with caplog.at_level(logging.WARNING, logger="bounty.ops.views"):
        page = client.post(refund_url(live_bounty), confirm)
        refund = signing.prepare_refund(live_bounty, mallory)
        assert page.status_code == 200
        assert all(i.preimage in page.content.decode() for i in refund.inputs)
        assert "<strong>NOT the operator wallet</strong>" in page.content.decode()
        done = client.post(
            refund_url(live_bounty),
            {**confirm, "slot_ids": ",".join(map(str, refund.slot_ids)),
             "signatures": "\n".join(signatures(refund, keys.admin_key()))},
        )  # fmt: skip
    assert done.status_code == 200
    stored = Transaction.objects.get(kind=Transaction.Kind.REFUND)
    [paid] = parse_transaction(bytes.fromhex(stored.raw_hex)).outputs
    assert paid.locking_script.serialize() == parse_address(mallory, "regtest").locking_script()
    confirmations = [r.getMessage() for r in caplog.records if "confirmed the refund" in r.getMessage()]
    assert len(confirmations) == 2  # when the preimages were shown, and when the refund was broadcast
    assert all("alice" in m and f"#{live_bounty.pk}" in m and mallory in m for m in confirmations)
    for secret in (keys.admin_key().wif, keys.operator_key().wif, keys.admin_key().public_key.hex()):
        assert secret not in caplog.text


@pytest.fixture
def admin_offline(settings):  # type: ignore[no-untyped-def]
    """Only the operator key on the server; the admin's public key from the environment."""
    admin = Key(bytes.fromhex("ad" * 32), "testnet")
    settings.GENERATE_MISSING_KEYS = False
    settings.OPERATOR_KEY = Key(bytes.fromhex("0e" * 32), "testnet").wif
    settings.ADMIN_KEY = None
    settings.ADMIN_PUBKEY = admin.public_key.hex()
    keys.reset_cache()
    return admin


def test_it_shows_a_migrations_new_slots_and_change_in_words(client, alice, admin_offline, settings) -> None:  # type: ignore[no-untyped-def]
    version = ModelVersion.register(model_artifact(), name="test-model", activate=True)
    newer = ModelVersion.register(newer_artifact(str(settings.MEDIA_ROOT)), name="newer")
    chain.faucet(chain.operator_address(), 5_000_000)
    bounty = deployed_bounty(version, digit=7, slots=2)
    redeploy.start(newer, Redeployment.Kind.PROMOTION, "test promotion")
    redeploy.resume()
    step = MigrationStep.objects.get(bounty=bounty, state=MigrationStep.State.SIGNING)
    page = client.get(f"/ops/sign/migration/{step.pk}/").content.decode()
    request = client.get(f"/ops/sign/migration/{step.pk}/request.json").json()
    [tx] = request["transactions"]
    slots, change = tx["outputs"][:2], tx["outputs"][2:]
    words = f"a new slot of bounty #{bounty.pk}, locked to model newer"
    assert [(o["address"], o["what"], o["bounty_id"]) for o in slots] == [("", words, bounty.pk)] * 2
    assert [(o["address"], o["what"]) for o in change] == [(chain.operator_address(), "the operator wallet")]
    assert page.count(words) == 2 and chain.operator_address() in page
    assert f'<code class="hash-outputs">{tx["hash_outputs"]}</code>' in page
    signed_inputs = redeploy.to_sign(step).inputs
    assert [i["digest"] for i in tx["inputs"]] == [i.digest for i in signed_inputs]
    for item in signed_inputs:
        assert f'<code class="digest">{item.digest}</code>' in page
        assert bytes.fromhex(item.preimage)[-40:-8].hex() == tx["hash_outputs"]
