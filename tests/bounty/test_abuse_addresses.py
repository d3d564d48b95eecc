"""Payout addresses: every malformed one refused with a reason, and each network's addresses only on it."""

from __future__ import annotations

import pytest
from bounty_testing import NOT_ON_POSTGRES_RERUN, BaseTestCase
from django.test import override_settings

from bounty import chain
from bounty.forms import SubmissionForm
from contracts.address import b58check_encode, b58decode
from contracts.keys import Key

pytestmark = NOT_ON_POSTGRES_RERUN  # address parsing: nothing database-specific

MAINNET = Key.generate("mainnet").address
TESTNET = Key.generate("testnet").address
HASH160 = b58decode(TESTNET)[1:21]


def flip_last(address: str) -> str:
    return address[:-1] + ("2" if address[-1] != "2" else "3")


INVALID = {
    "checksum": (flip_last(TESTNET), "checksum"),
    "one character missing": (TESTNET[:-1], "checksum"),
    "too short": (TESTNET[:20], "length"),
    "too long": (TESTNET + TESTNET[:10], "length"),
    "21-byte hash": (b58check_encode(b"\x6f" + HASH160 + b"\0"), "25"),
    "unknown version": (b58check_encode(b"\x30" + HASH160), "version byte"),
    "testnet script hash": (b58check_encode(b"\xc4" + HASH160), "script-hash"),
    "mainnet script hash": (b58check_encode(b"\x05" + HASH160), "script-hash"),
    "space inside": (TESTNET[:10] + " " + TESTNET[10:], "spaces"),
    "line break inside": (TESTNET[:10] + "\n" + TESTNET[10:], "spaces"),
    "tab inside": (TESTNET[:10] + "\t" + TESTNET[10:], "spaces"),
    "no-break space inside": (TESTNET[:10] + "\u00a0" + TESTNET[10:], "spaces"),
    "zero-width space": (TESTNET[:10] + "\u200b" + TESTNET[10:], "cannot appear"),
    "base58-excluded letter": ("0" + TESTNET[1:], "cannot appear"),
    "cyrillic lookalike": (TESTNET.replace(TESTNET[5], "\u0430", 1), "cannot appear"),
    "cashaddr": ("bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a", "cannot appear"),
    "bech32": ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "cannot appear"),
    "empty": ("", "Enter the BSV address"),
}


def form_error(address: str) -> str:
    form = SubmissionForm({"payout_address": address}, {})
    form.is_valid()
    return " ".join(form.errors.get("payout_address", []))


@pytest.mark.parametrize("case", sorted(INVALID))
@override_settings(NETWORK="regtest")
def test_it_refuses_an_invalid_address(case: str) -> None:
    address, reason = INVALID[case]
    assert chain.address_problem(address) is not None
    assert reason in form_error(address)


@override_settings(NETWORK="mainnet")
def test_it_refuses_a_testnet_address_on_mainnet() -> None:
    assert "testnet address but this service runs on mainnet" in form_error(TESTNET)
    assert form_error(MAINNET) == ""


@pytest.mark.parametrize("network", ["testnet", "regtest"])
def test_it_refuses_a_mainnet_address_on_a_test_network(network: str) -> None:
    with override_settings(NETWORK=network):
        assert "mainnet address but this service runs on testnet" in form_error(MAINNET)
        assert form_error(TESTNET) == ""


class AddressOverHttpTestCase(BaseTestCase):
    def test_surrounding_whitespace_is_trimmed_and_never_stored(self) -> None:
        form = SubmissionForm({"payout_address": f"  {self.bob_address}\n"}, {})
        form.is_valid()
        self.assertEqual(form.cleaned_data["payout_address"], self.bob_address)

    def test_the_address_check_endpoint_refuses_the_same_forms(self) -> None:
        for address, _ in INVALID.values():
            answer = self.client.get("/address-check", {"address": address}).json()
            self.assertFalse(answer["valid"], address)
