"""The ledger's HTTP server under many requests and bad ones: no Nagle/delayed-ACK stalls, no SQLite
handles piling up, bounded bodies, connections and threads.

Headers and body leave in two writes; without TCP_NODELAY the second waits for the client's delayed ACK
(about 40 ms on Linux) on every request of a persistent connection, which is how `requests.Session`,
ArcBackend's WhatsOnChain calls and the service's workers talk to it. Each connection is served by its own
thread with its own SQLite connection, which must be closed when the thread ends."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

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


def raw_request(url: str, request: bytes, wait: float = 5.0) -> bytes:
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=wait) as connection:
        connection.sendall(request)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize("length", ["-1", "abc", "99999999999"])
def test_it_answers_a_bad_or_huge_content_length_with_400_without_reading_it(
    service: LedgerService, length: str
) -> None:
    started = time.monotonic()
    answer = raw_request(
        service.url,
        b"POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    assert time.monotonic() - started < 3, "answered at once, not after reading until the client gives up"


def test_a_silent_connection_is_dropped_after_the_request_timeout(tmp_path: Path) -> None:
    ledger = LocalLedger(tmp_path / "quiet")
    service = LedgerService(ledger, port=0)
    service.server.request_timeout = 0.5
    with service:
        started = time.monotonic()
        answer = raw_request(service.url, b"POST /v1/tx HTTP/1.1\r\nHost: x\r\n", wait=10)
        assert time.monotonic() - started < 5 and answer == b"", "closed by the server, not by us"


def test_it_refuses_connections_past_its_cap_instead_of_starting_threads(tmp_path: Path) -> None:
    service = LedgerService(LocalLedger(tmp_path / "capped"), port=0)
    service.server.max_connections = 4
    service.server._slots = threading.BoundedSemaphore(4)
    with service:
        host, port = service.server.server_address[:2]
        idle = [socket.create_connection((str(host), int(port)), timeout=5) for _ in range(4)]
        time.sleep(0.3)
        extra = socket.create_connection((str(host), int(port)), timeout=5)
        assert extra.recv(10) == b"", "the connection past the cap is closed at once"
        for connection in [*idle, extra]:
            connection.close()
        time.sleep(0.3)
        assert requests.get(f"{service.url}/v1/health", timeout=5).ok, "served again once they left"
