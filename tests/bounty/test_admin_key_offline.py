"""The admin key kept off the server: bounties are locked to ADMIN_PUBKEY and refunds wait for a person."""

from __future__ import annotations

import pytest
from bounty_testing import deployed_bounty, model_artifact
from django.contrib.auth.models import User

from bounty import chain, keys
from bounty.checks import check_keys
from bounty.funding import FundingError, refund_unused
from bounty.models import Bounty, ModelVersion
from contracts.keys import Key

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_offline(settings):  # type: ignore[no-untyped-def]
    """Only the operator key on the server; the admin's public key from the environment."""
    admin = Key.generate("testnet")
    settings.GENERATE_MISSING_KEYS = False
    settings.OPERATOR_KEY = Key.generate("testnet").wif
    settings.ADMIN_KEY = None
    settings.ADMIN_PUBKEY = admin.public_key.hex()
    keys.reset_cache()
    return admin


def test_it_passes_the_key_checks_without_the_admin_key(admin_offline):  # type: ignore[no-untyped-def]
    assert check_keys() == []
    assert keys.admin_key_on_server() is False
    assert chain.public_keys()[1] == admin_offline.public_key.hex()


def test_bounties_are_locked_to_the_offline_admin_and_refunds_wait(admin_offline):  # type: ignore[no-untyped-def]
    version = ModelVersion.register(model_artifact(), name="offline-admin", activate=True)
    chain.faucet(chain.operator_address(), 1_000_000)
    bounty = deployed_bounty(version, digit=7, slots=2)
    assert bounty.admin_pubkey == admin_offline.public_key.hex()
    assert bounty.slots.filter(state="free").count() == 2
    with pytest.raises(FundingError, match="/ops/sign/"):
        refund_unused(bounty)
    assert bounty.slots.filter(state="free").count() == 2  # nothing taken, nothing lost
    bounty.refresh_from_db()
    assert bounty.state != Bounty.State.REFUNDED


def test_it_refuses_an_admin_pubkey_that_is_not_a_key(admin_offline, settings):  # type: ignore[no-untyped-def]
    settings.ADMIN_PUBKEY = "02" + "zz" * 32
    keys.reset_cache()
    [error] = check_keys()
    assert error.id == "bounty.E002" and "ADMIN_PUBKEY" in error.msg


def test_it_refuses_an_admin_pubkey_that_is_not_the_admin_keys(admin_offline, settings):  # type: ignore[no-untyped-def]
    settings.ADMIN_KEY = Key.generate("testnet").wif
    keys.reset_cache()
    [error] = check_keys()
    assert error.id == "bounty.E002" and "does not belong" in error.msg


def test_without_either_the_admin_key_is_a_configuration_error(admin_offline, settings):  # type: ignore[no-untyped-def]
    settings.ADMIN_PUBKEY = ""
    keys.reset_cache()
    [error] = check_keys()
    assert error.id == "bounty.E002"


def test_it_sends_a_refund_to_the_signing_page_from_its_confirmation(admin_offline, client):  # type: ignore[no-untyped-def]
    version = ModelVersion.register(model_artifact(), name="offline-admin", activate=True)
    chain.faucet(chain.operator_address(), 1_000_000)
    bounty = deployed_bounty(version, digit=7, slots=2)
    alice = User.objects.create_superuser("alice", "alice@example.org", "password-of-alice")
    client.force_login(alice)
    page = client.post("/admin/bounty/bounty/", {"action": "refund", "_selected_action": [bounty.pk]})
    assert f'href="/ops/sign/bounty/{bounty.pk}/refund/"' in page.content.decode()
    assert "Yes, sign and broadcast" not in page.content.decode(), "nothing here can sign"
    for slot in bounty.slots.all():
        assert slot.outpoint in page.content.decode()
    assert bounty.slots.filter(state="free").count() == 2
