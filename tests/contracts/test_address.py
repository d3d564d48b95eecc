"""P2PKH address validation and WIF keys: every refusal says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from bsv import PrivateKey
from bsv.constants import Network as BsvNetwork

from contracts.address import (
    address_from_hash160,
    b58check_encode,
    is_valid_address,
    parse_address,
)
from contracts.errors import AddressError, KeyFormatError
from contracts.keys import Key

HASH = bytes(range(20))
MAINNET = address_from_hash160(HASH, "mainnet")
TESTNET = address_from_hash160(HASH, "testnet")


def test_it_agrees_with_bsv_sdk_on_addresses() -> None:
    key = PrivateKey(bytes.fromhex("11" * 32))
    ours = Key(bytes.fromhex("11" * 32), "mainnet")
    assert ours.address == key.address()
    assert Key(ours.secret, "testnet").address == key.address(network=BsvNetwork.TESTNET)


@pytest.mark.parametrize(
    ("text", "network", "expected"),
    [
        (MAINNET, "mainnet", "mainnet"),
        (MAINNET, None, "mainnet"),
        (TESTNET, "testnet", "testnet"),
        (TESTNET, "regtest", "testnet"),
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "mainnet", "mainnet"),
    ],
)
def test_it_accepts_p2pkh_addresses(text: str, network: str | None, expected: str) -> None:
    parsed = parse_address(text, network)
    assert parsed.network == expected
    assert parsed.locking_script()[:3] == b"\x76\xa9\x14"


@pytest.mark.parametrize(
    ("text", "network", "message"),
    [
        (TESTNET, "mainnet", "testnet address but this service runs on mainnet"),
        (MAINNET, "testnet", "mainnet address but this service runs on testnet"),
        ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", None, "script-hash \\(P2SH\\)"),
        (b58check_encode(b"\xc4" + HASH), "testnet", "testnet script-hash"),
        (MAINNET[:-1] + ("2" if MAINNET[-1] != "2" else "3"), None, "checksum does not match"),
        (" " + MAINNET, None, "spaces or line breaks"),
        (MAINNET + "\n", None, "spaces or line breaks"),
        ("", None, "empty"),
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN0", None, "'0' cannot appear"),
        ("1BvBMSEY", None, "8 characters"),
        (b58check_encode(b"\x00" + HASH + b"\x00"), None, "decodes to 26 bytes"),
        (b58check_encode(b"\x30" + HASH), None, "version byte 0x30"),
    ],
)
def test_it_refuses_what_is_not_a_p2pkh_address_of_the_network(
    text: str, network: str | None, message: str
) -> None:
    with pytest.raises(AddressError, match=message):
        parse_address(text, network)
    assert not is_valid_address(text, network)


def test_it_round_trips_wif_keys() -> None:
    key = Key.generate("mainnet")
    assert Key.from_wif(key.wif) == key
    assert PrivateKey(key.wif).address() == key.address
    assert key.secret.hex() not in repr(key) and key.wif not in repr(key)


def test_it_loads_a_key_from_a_file(tmp_path: Path) -> None:
    key = Key.generate("testnet")
    path = tmp_path / "operator.wif"
    path.write_text(key.wif + "\n")
    assert Key.load(str(path), "regtest") == key


@pytest.mark.parametrize(
    ("wif", "network", "message"),
    [
        (
            Key(bytes.fromhex("11" * 32), "mainnet").wif,
            "testnet",
            "mainnet key but the service runs on testnet",
        ),
        (Key(bytes.fromhex("11" * 32), "mainnet").wif[:-1] + "x", None, "bad checksum"),
        (b58check_encode(b"\x80" + bytes.fromhex("11" * 32)), None, "uncompressed"),
        ("not a key!", None, "not a WIF"),
    ],
)
def test_it_refuses_bad_keys(wif: str, network: str | None, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        Key.from_wif(wif, network)
