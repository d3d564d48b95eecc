from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from bounty.env import envbool, envchoice, envint, envsecret


def test_it_reads_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "yes")
    assert envbool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        envbool("FLAG", False)


def test_it_reads_integers_with_a_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        envint("RATE", 100, minimum=1)
    monkeypatch.setenv("RATE", "ten")
    with pytest.raises(ImproperlyConfigured, match="integer"):
        envint("RATE", 100)


def test_it_refuses_an_unknown_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETWORK", "signet")
    with pytest.raises(ImproperlyConfigured, match="mainnet, testnet, regtest"):
        envchoice("NETWORK", "regtest", ("mainnet", "testnet", "regtest"))


def test_it_reads_a_secret_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "key"
    path.write_text("secret-value\n")
    monkeypatch.setenv("OPERATOR_KEY_FILE", str(path))
    assert envsecret("OPERATOR_KEY") == "secret-value"
    monkeypatch.setenv("OPERATOR_KEY", "other")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        envsecret("OPERATOR_KEY")


def test_it_names_an_unreadable_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADMIN_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="ADMIN_KEY_FILE"):
        envsecret("ADMIN_KEY")


def test_it_names_a_database_url_it_cannot_read() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "DATABASE_URL": "nonsense"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=environment, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is not a database URL" in result.stderr
