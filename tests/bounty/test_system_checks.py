"""System checks report an unreachable chain backend as a warning that names where it looked."""

from __future__ import annotations

import socket

from bounty import chain
from bounty.checks import check_chain_reachable


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_it_warns_when_arc_cannot_be_reached(settings):  # type: ignore[no-untyped-def]
    settings.CHAIN_BACKEND = "arc"
    settings.ARC_URL = f"http://127.0.0.1:{closed_port()}"
    settings.WOC_URL = settings.ARC_URL
    chain.reset()
    [warning] = check_chain_reachable()
    assert warning.id == "bounty.W001"
    assert settings.ARC_URL in warning.msg


def test_it_warns_when_the_local_ledger_folder_is_unusable(settings, tmp_path):  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the ledger folder should be")
    settings.CHAIN_BACKEND = "local"
    settings.LEDGER_DIR = blocker
    chain.reset()
    [warning] = check_chain_reachable()
    assert warning.id == "bounty.W001"
    assert str(blocker) in warning.msg


def test_it_is_silent_when_the_local_ledger_works(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.CHAIN_BACKEND = "local"
    settings.LEDGER_DIR = tmp_path / "ledger"
    chain.reset()
    assert check_chain_reachable() == []
