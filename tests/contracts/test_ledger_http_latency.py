"""The ledger's HTTP server answers keep-alive requests without Nagle/delayed-ACK stalls.

Headers and body leave in two writes; without TCP_NODELAY the second waits for the client's delayed ACK
(about 40 ms on Linux) on every request of a persistent connection, which is how `requests.Session`,
ArcBackend's WhatsOnChain calls and the service's workers talk to it."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from contracts.ledger import LocalLedger
from contracts.ledger_http import LedgerService


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LedgerService]:
    with LedgerService(LocalLedger(tmp_path / "ledger"), port=0) as running:
        yield running


def test_keep_alive_requests_are_not_stalled_by_delayed_acks(service: LedgerService) -> None:
    session = requests.Session()
    session.get(f"{service.url}/v1/policy", timeout=10).raise_for_status()  # open the connection
    timings = []
    for _ in range(15):
        started = time.perf_counter()
        session.get(f"{service.url}/v1/policy", timeout=10).raise_for_status()
        timings.append(time.perf_counter() - started)
    # A stalled response takes >= 40 ms every time; an unstalled one a millisecond or two on loopback.
    assert statistics.median(timings) < 0.025, [round(t * 1000, 1) for t in timings]
