"""The ledger's HTTP server under many requests: no Nagle/delayed-ACK stalls, no pile-up of SQLite handles.

Headers and body leave in two writes; without TCP_NODELAY the second waits for the client's delayed ACK
(about 40 ms on Linux) on every request of a persistent connection, which is how `requests.Session`,
ArcBackend's WhatsOnChain calls and the service's workers talk to it. Each connection is served by its own
thread with its own SQLite connection, which must be closed when the thread ends."""

from __future__ import annotations

import os
import statistics
import threading
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


def test_connections_do_not_leave_sqlite_handles_open(service: LedgerService) -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    def settle() -> None:  # wait for the handler threads of closed connections to finish
        deadline = time.monotonic() + 5
        while threading.active_count() > baseline_threads and time.monotonic() < deadline:
            time.sleep(0.02)

    requests.get(f"{service.url}/ledger/status", timeout=10).raise_for_status()
    baseline_threads = threading.active_count()
    before = open_files()
    for _ in range(30):  # a new connection (and so a new server thread) per request, as bsv-sdk's ARC client
        requests.get(f"{service.url}/ledger/status", timeout=10).raise_for_status()
    settle()
    assert open_files() - before <= 6  # each leaked SQLite connection in WAL mode holds up to 3 files
