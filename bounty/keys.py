"""The operator and admin keys: WIF from the environment, a file, or (local ledger only) a generated file.

The operator key co-signs claims and funds deploys; the admin key can refund or migrate unused slots.
A generated key is written once with mode 0600 under KEYS_DIR and never printed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from bsv import PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from contracts.errors import KeyFormatError
from contracts.keys import Key


def _generated(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        wif = Key.generate(settings.NETWORK).wif
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process generated it first
            return path.read_text().strip()
        with os.fdopen(descriptor, "w") as handle:
            handle.write(wif + "\n")
    return path.read_text().strip()


def _load(role: str) -> Key:
    name = f"{role.upper()}_KEY"
    wif = getattr(settings, name)
    if not wif:
        if not settings.GENERATE_MISSING_KEYS:
            raise ImproperlyConfigured(f"{name} or {name}_FILE is not set")
        wif = _generated(Path(settings.KEYS_DIR) / f"{role}.wif")
    try:
        return Key.from_wif(wif, settings.NETWORK)
    except KeyFormatError as error:
        raise ImproperlyConfigured(f"{name}: {error}") from None


@functools.cache
def operator_key() -> Key:
    return _load("operator")


@functools.cache
def admin_key() -> Key:
    return _load("admin")


def admin_key_on_server() -> bool:
    """Whether this server can sign as the admin (refunds and migrations run here) or must ask a person."""
    try:
        admin_key()
    except ImproperlyConfigured:
        return False
    return True


@functools.cache
def admin_public_key() -> str:
    """The admin's compressed public key (hex) that new bounties are locked to: ADMIN_PUBKEY when the admin
    key is kept off this server, else the admin key's own; both set must agree."""
    configured = settings.ADMIN_PUBKEY.strip().lower()
    if configured:
        try:
            parsed = PublicKey(configured).hex()
        except Exception:
            raise ImproperlyConfigured("ADMIN_PUBKEY is not a valid public key (hex, 33 bytes)") from None
        if admin_key_on_server() and admin_key().public_key.hex() != parsed:
            raise ImproperlyConfigured("ADMIN_PUBKEY does not belong to ADMIN_KEY")
        return parsed
    return admin_key().public_key.hex()


def reset_cache() -> None:
    operator_key.cache_clear()
    admin_key.cache_clear()
    admin_public_key.cache_clear()
