"""Every bounty test gets its own keys, ledger folder and media folder, never the developer's var/."""

from __future__ import annotations

import os

import pytest
from bounty_services import live_bounty, runtime, worker  # noqa: F401  (fixtures shared by service tests)
from fault_support import fault_broker  # noqa: F401  (the fault tests' broker fixture)

from bounty import chain, keys, storage_tally


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
    storage_tally.forget()  # Redis outlives each test's rolled-back database
    yield
    keys.reset_cache()
    chain.reset()
    storage_tally.forget()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Test databases that a worker subprocess can open too: a file for SQLite (not Django's in-memory
    default) and a per-process name for PostgreSQL (so parallel runs never share one)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    test = database.setdefault("TEST", {})
    if database["ENGINE"].endswith("sqlite3"):
        test["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")
    else:
        test["NAME"] = f"test_bounty_{os.getpid()}"
