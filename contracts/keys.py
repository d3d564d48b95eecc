"""Private keys (WIF) for the operator, the admin and the funding wallet.

Keys are always compressed (33-byte public keys: shorter scripts and signatures are what bsv-sdk signs with).
A WIF carries its network; loading one for the other network is refused, because the addresses it would
make belong to a chain the service is not on. Secrets never appear in `repr` or error messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bsv import PrivateKey
from bsv.constants import Network as BsvNetwork

from contracts.address import (
    BASE58_ALPHABET,
    Network,
    address_from_hash160,
    b58check_encode,
    b58decode,
    normalize_network,
    p2pkh_locking_script,
    sha256d,
)
from contracts.errors import KeyFormatError

WIF_VERSION: dict[Network, int] = {"mainnet": 0x80, "testnet": 0xEF}
SIGHASH_ALL_FORKID = 0x41


def _hash160(data: bytes) -> bytes:
    from bsv.hash import hash160

    return bytes(hash160(data))


@dataclass(frozen=True)
class Key:
    """A compressed secp256k1 key with the network its addresses belong to."""

    secret: bytes = field(repr=False)
    network: Network

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise KeyFormatError("a private key is 32 bytes")

    @classmethod
    def generate(cls, network: str = "testnet") -> Key:
        return cls(PrivateKey().serialize(), normalize_network(network))

    @classmethod
    def from_wif(cls, wif: str, network: str | None = None) -> Key:
        """Parse a WIF; refuse it when it belongs to another network than `network` (if given)."""
        text = wif.strip()
        if not text or any(char not in BASE58_ALPHABET for char in text):
            raise KeyFormatError("the private key is not a WIF string (base58 characters only)")
        decoded = b58decode(text)
        if len(decoded) < 5 or sha256d(decoded[:-4])[:4] != decoded[-4:]:
            raise KeyFormatError("the private key (WIF) has a bad checksum")
        payload = decoded[:-4]
        found = next((fam for fam, ver in WIF_VERSION.items() if ver == payload[0]), None)
        if found is None:
            raise KeyFormatError(f"WIF version byte 0x{payload[0]:02x} is neither mainnet nor testnet")
        if len(payload) == 33:
            raise KeyFormatError("uncompressed WIF keys are not supported; export the key as compressed")
        if len(payload) != 34 or payload[33] != 0x01:
            raise KeyFormatError("the private key (WIF) has the wrong length")
        if network is not None and normalize_network(network) != found:
            raise KeyFormatError(
                f"this is a {found} key but the service runs on {normalize_network(network)}"
            )
        return cls(payload[1:33], found)

    @classmethod
    def load(cls, value: str, network: str | None = None) -> Key:
        """A WIF given directly, or the path of a file holding one (first line)."""
        candidate = value.strip()
        if candidate and (os.sep in candidate or Path(candidate).is_file()):
            try:
                candidate = Path(candidate).read_text().strip().splitlines()[0]
            except (OSError, IndexError) as error:
                raise KeyFormatError(f"cannot read a key from {value}: {error}") from None
        return cls.from_wif(candidate, network)

    @property
    def wif(self) -> str:
        return b58check_encode(bytes([WIF_VERSION[self.network]]) + self.secret + b"\x01")

    @property
    def private_key(self) -> PrivateKey:
        bsv_network = BsvNetwork.MAINNET if self.network == "mainnet" else BsvNetwork.TESTNET
        return PrivateKey(self.secret, network=bsv_network)

    @property
    def public_key(self) -> bytes:
        """The 33-byte compressed public key."""
        return bytes(self.private_key.public_key().serialize(compressed=True))

    @property
    def hash160(self) -> bytes:
        return _hash160(self.public_key)

    @property
    def address(self) -> str:
        return address_from_hash160(self.hash160, self.network)

    def locking_script(self) -> bytes:
        """The P2PKH locking script paying this key."""
        return p2pkh_locking_script(self.hash160)

    def sign_preimage(self, preimage: bytes, sighash: int = SIGHASH_ALL_FORKID) -> bytes:
        """A DER signature (low-S, deterministic) of hash256(preimage) with the sighash byte appended."""
        return bytes(self.private_key.sign(preimage)) + bytes([sighash])
