"""Bitcoin SV P2PKH addresses: parse and validate what a contributor types, and build payout scripts.

Only pay-to-public-key-hash is accepted: a claim pays exactly one P2PKH output. Everything else (a
script-hash address, the other network, a typo that breaks the checksum, stray whitespace) is refused
with a message a person can act on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from contracts.errors import AddressError

Network = Literal["mainnet", "testnet"]

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
P2PKH_VERSION: dict[Network, int] = {"mainnet": 0x00, "testnet": 0x6F}
# Script-hash prefixes are recognised only to explain why they are refused.
P2SH_VERSION: dict[Network, int] = {"mainnet": 0x05, "testnet": 0xC4}
NETWORK_NAMES: dict[str, Network] = {
    "mainnet": "mainnet",
    "main": "mainnet",
    "testnet": "testnet",
    "test": "testnet",
    # regtest and the local ledger use testnet's address prefixes, as bitcoind does.
    "regtest": "testnet",
}


def normalize_network(name: str) -> Network:
    """Map mainnet/main/testnet/test/regtest to the address family they use."""
    try:
        return NETWORK_NAMES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown network {name!r}: use mainnet, testnet or regtest") from None


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + BASE58_ALPHABET.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * leading_zeros + body


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(BASE58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(chars))


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + sha256d(payload)[:4])


@dataclass(frozen=True)
class Address:
    """A validated P2PKH address."""

    text: str
    network: Network
    hash160: bytes

    def locking_script(self) -> bytes:
        return p2pkh_locking_script(self.hash160)

    def __str__(self) -> str:
        return self.text


def p2pkh_locking_script(hash160: bytes) -> bytes:
    """OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG."""
    if len(hash160) != 20:
        raise ValueError(f"a public key hash is 20 bytes, got {len(hash160)}")
    return b"\x76\xa9\x14" + hash160 + b"\x88\xac"


def hash160_of_p2pkh_script(script: bytes) -> bytes | None:
    """The public key hash of a P2PKH locking script, or None for any other script."""
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return script[3:23]
    return None


def address_from_hash160(hash160: bytes, network: str = "mainnet") -> str:
    family = normalize_network(network)
    if len(hash160) != 20:
        raise ValueError(f"a public key hash is 20 bytes, got {len(hash160)}")
    return b58check_encode(bytes([P2PKH_VERSION[family]]) + hash160)


def parse_address(text: str, network: str | None = None) -> Address:
    """Validate `text` as a P2PKH address, of `network` when given (mainnet, testnet or regtest).

    Raises AddressError naming the problem: whitespace, characters outside base58, length, checksum,
    script hash, wrong network, unknown version.
    """
    if not isinstance(text, str):
        raise AddressError(repr(text), "an address is text")
    if text == "":
        raise AddressError(text, "the address is empty")
    if any(char.isspace() for char in text):
        raise AddressError(text, "it contains spaces or line breaks; remove them")
    bad = sorted({char for char in text if char not in BASE58_ALPHABET})
    if bad:
        shown = ", ".join(repr(char) for char in bad)
        raise AddressError(text, f"{shown} cannot appear in an address (base58 has no 0, O, I, l)")
    if not 25 <= len(text) <= 35:
        raise AddressError(text, f"{len(text)} characters is not the length of an address (25 to 35)")
    decoded = b58decode(text)
    if len(decoded) != 25:
        raise AddressError(text, f"decodes to {len(decoded)} bytes, an address is 25")
    payload, checksum = decoded[:21], decoded[21:]
    if sha256d(payload)[:4] != checksum:
        raise AddressError(text, "the checksum does not match: a character is mistyped or missing")
    version, hash160 = payload[0], payload[1:]
    expected = normalize_network(network) if network is not None else None
    for family, script_version in P2SH_VERSION.items():
        if version == script_version:
            raise AddressError(
                text, f"this is a {family} script-hash (P2SH) address; bounties pay only P2PKH addresses"
            )
    found: Network | None = next((fam for fam, ver in P2PKH_VERSION.items() if ver == version), None)
    if found is None:
        raise AddressError(text, f"version byte 0x{version:02x} is not a P2PKH address")
    if expected is not None and found != expected:
        raise AddressError(text, f"this is a {found} address but this service runs on {expected}")
    return Address(text=text, network=found, hash160=hash160)


def is_valid_address(text: str, network: str | None = None) -> bool:
    try:
        parse_address(text, network)
    except AddressError:
        return False
    return True
