"""The address field as contributors fill it: the network said up front, a payment link read for its address,
a paymail answered in plain words, and no encoding jargon in any message."""

from __future__ import annotations

import pytest
from bounty_testing import BaseTestCase, mnist_png
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from bounty.forms import SubmissionForm, extract_address
from bounty.models import Submission
from contracts.address import b58check_encode, b58decode
from contracts.keys import Key

TESTNET = Key.generate("testnet").address
MAINNET = Key.generate("mainnet").address
HASH160 = b58decode(TESTNET)[1:21]
# Every way an address can be wrong, each of which once produced a message (base58 and all).
WRONG = [
    "0" + TESTNET[1:],
    TESTNET[:-1],
    TESTNET[:20],
    TESTNET + TESTNET[:10],
    b58check_encode(b"\x6f" + HASH160 + b"\0"),
    b58check_encode(b"\x30" + HASH160),
    b58check_encode(b"\xc4" + HASH160),
    b58check_encode(b"\x05" + HASH160),
    TESTNET[:10] + " " + TESTNET[10:],
    "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    MAINNET,
]
JARGON = ("base58", "P2PKH", "P2SH", "hash160")


def address_error(address: str) -> str:
    form = SubmissionForm({"payout_address": address}, {})
    form.is_valid()
    return " ".join(form.errors.get("payout_address", []))


@pytest.mark.parametrize(
    "pasted",
    [
        f"bitcoin:{TESTNET}",
        f"bitcoin:{TESTNET}?amount=0.0001",
        f"BITCOIN:{TESTNET}?amount=0.0001&label=Digit%20bounty&message=thanks%20for%20the%207",
        f"  bitcoin:{TESTNET}?amount=1  ",
        f"bitcoin://{TESTNET}?amount=1",
    ],
)
@override_settings(NETWORK="regtest")
def test_a_payment_link_gives_its_address(pasted: str) -> None:
    assert extract_address(pasted) == TESTNET
    form = SubmissionForm({"payout_address": pasted}, {})
    form.is_valid()
    assert "payout_address" not in form.errors
    assert form.cleaned_data["payout_address"] == TESTNET


@pytest.mark.parametrize(
    "paymail", ["alice@example.com", "bob.smith@handcash.io", "bitcoin:carol@moneybutton.com"]
)
@pytest.mark.parametrize(
    ("network", "start"), [("regtest", "m or n"), ("testnet", "m or n"), ("mainnet", "1")]
)
def test_a_paymail_gets_plain_words(paymail: str, network: str, start: str) -> None:
    with override_settings(NETWORK=network):
        message = address_error(paymail)
    assert "paymail" in message.lower()
    assert "not supported" in message
    assert f"starts with {start}" in message
    assert "cannot appear" not in message


@pytest.mark.parametrize("address", WRONG)
@pytest.mark.parametrize(("network", "start"), [("regtest", "m or n"), ("mainnet", "1")])
def test_every_address_message_is_plain_and_says_what_to_do(address: str, network: str, start: str) -> None:
    if network == "mainnet" and address == MAINNET:
        return  # valid there
    with override_settings(NETWORK=network):
        message = address_error(address)
    assert message
    for word in JARGON:
        assert word.lower() not in message.lower(), message
    assert f"starts with {start}" in message, message


@override_settings(NETWORK="regtest")
def test_the_letters_an_address_never_holds_are_named_in_plain_words() -> None:
    message = address_error("0" + TESTNET[1:])
    assert "addresses never contain 0, O, I or l" in message


class AddressOverHttpTestCase(BaseTestCase):
    def test_the_bounty_page_names_the_network_beside_the_address_field(self) -> None:
        for network, words, start in [
            ("mainnet", "Bitcoin SV mainnet", "starts with 1"),
            ("testnet", "Bitcoin SV testnet", "starts with m or n"),
            ("regtest", "regtest", "starts with m or n"),
        ]:
            with self.settings(NETWORK=network):
                page = self.client.get(f"/bounties/{self.bounty.pk}/").content.decode()
            field = page.index('name="payout_address"')
            note = page.index('id="address-network"')
            self.assertLess(note, field, "the network is said before the field, up front")
            self.assertIn(words, page[note : note + 300])
            self.assertIn(start, page[note : note + 300])

    def test_a_payment_link_is_paid_to_its_address(self) -> None:
        link = f"bitcoin:{self.bob_address}?amount=0.00001&label=Digit%20bounty%20for%20a%207&message=thanks"
        self.assertGreater(len(link), 64)
        upload = SimpleUploadedFile("seven.png", mnist_png(0), "image/png")
        with self.captureOnCommitCallbacks(execute=False):
            response = self.client.post(
                f"/bounties/{self.bounty.pk}/", {"payout_address": link, "image": upload}
            )
        submission = Submission.objects.get()
        self.assertRedirects(response, f"/submissions/{submission.public_id}/")
        self.assertEqual(submission.payout_address, self.bob_address)

    def test_the_live_check_reads_a_payment_link_and_answers_a_paymail(self) -> None:
        answer = self.client.get("/address-check", {"address": f"bitcoin:{self.bob_address}?amount=1"}).json()
        self.assertEqual((answer["valid"], answer["address"]), (True, self.bob_address))
        self.assertIn("payment link", answer["message"])
        paymail = self.client.get("/address-check", {"address": "bob@example.com"}).json()
        self.assertFalse(paymail["valid"])
        self.assertIn("Paymail is not supported", paymail["message"])

    def test_a_paymail_is_refused_on_the_page_with_the_plain_message(self) -> None:
        upload = SimpleUploadedFile("seven.png", mnist_png(0), "image/png")
        response = self.client.post(
            f"/bounties/{self.bounty.pk}/", {"payout_address": "bob@example.com", "image": upload}
        )
        self.assertContains(response, "Paymail is not supported here", status_code=400)
        self.assertNotContains(response, "base58", status_code=400)
        self.assertFalse(Submission.objects.exists())
