"""Every bounty test gets its own keys, ledger folder and media folder, never the developer's var/."""

from __future__ import annotations

import pytest

from bounty import chain, keys


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory):  # type: ignore[no-untyped-def]
    """One operator and admin key pair per test session, so compiled slot contracts stay cached."""
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(autouse=True)
def isolated_runtime(settings, tmp_path, keys_dir):  # type: ignore[no-untyped-def]
    settings.KEYS_DIR = keys_dir
    settings.LEDGER_DIR = tmp_path / "ledger"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OPERATOR_KEY = None
    settings.ADMIN_KEY = None
    settings.CHAIN_BACKEND = "local"
    settings.NETWORK = "regtest"
    settings.RATE_LIMIT_PER_ADDRESS = 100
    settings.RATE_LIMIT_PER_IP = 100
    keys.reset_cache()
    chain.reset()
    yield
    keys.reset_cache()
    chain.reset()
