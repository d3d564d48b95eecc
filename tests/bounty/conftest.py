"""Every bounty test gets its own keys, ledger folder and media folder, never the developer's var/."""

from __future__ import annotations

import pytest

from bounty import chain, keys


@pytest.fixture(autouse=True)
def isolated_runtime(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.KEYS_DIR = tmp_path / "keys"
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
