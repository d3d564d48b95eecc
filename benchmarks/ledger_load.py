"""Load benchmark of the local ledger: claims accepted per second and memory over a long, bounded run.

    .venv/bin/python benchmarks/ledger_load.py [--mode inprocess|http|both] [--model default|small|PATH]
        [--client arc|session] [--claims N] [--seconds T] [--samples S] [--mine-every K] [--tracemalloc]
        [--json]

Deploys N reward slots, then streams N claims (each a valid claim of a different slot, signed but not
pre-verified, so the ledger does all the checking) at the ledger, one after another:

- `inprocess`: `LocalLedger.broadcast` in this process; RSS of this process and, with `--tracemalloc`,
  the Python heap (current traced bytes) and the part of it allocated in contracts/ledger*.py.
- `http`: the ledger's HTTP server (`contracts.ledger_http.LedgerService`) in a child process on
  127.0.0.1, driven through `contracts.arc.ArcBackend` (the service's own client; bsv-sdk opens a new
  connection per broadcast) or, with `--client session`, raw `POST /v1/tx` on one keep-alive
  `requests.Session`; RSS and open files of the server process.

Only the broadcast is timed (building and signing claims is not). Every S-th of the run it samples: claims
done, accepted/s in the last window, RSS, heap; a block is mined every K claims. The summary fits a line to
the second half of the samples: RSS growth per 1,000 claims, and the last window's rate against the first.
Bounded by both N and T; loopback only; everything lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.chain import Utxo
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.model import IntegerModel
from contracts.slot import SlotContract
from contracts.transactions import assemble_claim, build_deploy
from contracts.verify import require_native_vm

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "classifier" / "models" / "default.npz"
REWARD = 1_000
SERVER = """
import sys
from contracts.fees import FeeRate
from contracts.ledger import LocalLedger
from contracts.ledger_http import LedgerService
service = LedgerService(
    LocalLedger(sys.argv[1], fee_rate=FeeRate(int(sys.argv[2]))), "127.0.0.1", 0, dev=True
).start()
print(service.url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
service.stop()
"""


@dataclass
class Sample:
    claims: int
    seconds: float  # broadcast time so far
    window_rate: float  # claims accepted per second since the previous sample
    rss_kb: int
    open_files: int  # file descriptors of the ledger's process (sqlite connections hold 3 each in WAL mode)
    heap_kb: float | None  # tracemalloc current, whole process (inprocess mode only)
    ledger_heap_kb: float | None  # the part allocated in contracts/ledger*.py
    db_kb: int  # the ledger's SQLite files


def rss_kb(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_files(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def db_kb(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("ledger.sqlite3*")) // 1024


def ledger_heap_kb(snapshot: tracemalloc.Snapshot) -> float:
    wanted = snapshot.filter_traces([tracemalloc.Filter(True, "*contracts/ledger*.py")])
    return sum(stat.size for stat in wanted.statistics("filename")) / 1024


def small_model(seed: int = 7) -> IntegerModel:
    """A 64-16-10 model (as in the contracts tests): the VM costs little, so the ledger's own cost shows."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-7, 8, (64, 16)) * (rng.random((64, 16)) < 0.5)
    return IntegerModel(
        w1, rng.integers(-200, 200, 16), rng.integers(-7, 8, (16, 10)), rng.integers(-300, 300, 10)
    )


def accepted_images(model: IntegerModel, which: str) -> tuple[int, np.ndarray]:
    """(digit, images the model classifies as digit): MNIST test images for a 784-input model."""
    if model.shape[0] == 784:
        from classifier.data import load_mnist  # glue: the benchmark feeds real images

        images = load_mnist().x_test.reshape(-1, 784)
        digit = 7
    else:
        images = np.random.default_rng(1).integers(0, 256, (2000, model.shape[0]), dtype=np.uint8)
        digit = int(np.bincount(np.asarray(model.predict(images))).argmax())
    predictions = np.asarray(model.predict(images))
    return digit, images[predictions == digit]


@dataclass
class Setup:
    contract: SlotContract
    slots: list[Utxo]
    images: np.ndarray
    operator: Key
    payee: str
    deploy_seconds: float


def deploy(ledger: LocalLedger, model: IntegerModel, count: int, rate: FeeRate, which: str) -> Setup:
    digit, images = accepted_images(model, which)
    funder, operator, admin, payee = (Key.generate("regtest") for _ in range(4))
    contract = SlotContract.from_model(model, digit, operator.public_key, admin.public_key)
    ledger.fund(funder.address, count * contract.slot_value(REWARD, rate) + 10**8)
    started = time.perf_counter()
    built = build_deploy(contract, REWARD, count, ledger.utxos(funder.address), funder, fee_rate=rate)
    for tx in built:
        ledger.broadcast(tx.raw)
    ledger.mine()
    slots = [slot for tx in built for slot in tx.slots]
    return Setup(contract, slots, images, operator, payee.address, time.perf_counter() - started)


def claims(setup: Setup) -> Iterator[bytes]:
    for number, slot in enumerate(setup.slots):
        image = setup.images[number % len(setup.images)]
        payout = slot.satoshis - setup.contract.claim_fee(FeeRate(100))
        tx = assemble_claim(slot, setup.contract, image, setup.payee, setup.operator, payout=payout)
        yield tx.serialize()


def run_stream(
    setup: Setup,
    broadcast: Callable[[bytes], str],
    mine: Callable[[], Any],
    measure_rss: Callable[[], int],
    measure_files: Callable[[], int],
    folder: Path,
    *,
    seconds: float,
    samples: int,
    mine_every: int,
    trace: bool,
    progress: bool,
) -> tuple[list[Sample], int]:
    """Broadcast claims until all are sent or `seconds` of broadcasting passed; (samples, errors)."""
    total = len(setup.slots)
    every = max(1, total // samples)
    timed = 0.0
    window_start, window_claims = 0.0, 0
    errors = 0
    result: list[Sample] = []
    for done, raw in enumerate(claims(setup), 1):
        started = time.perf_counter()
        try:
            broadcast(raw)
        except Exception as error:  # counted and shown: a benchmark that hides errors measures nothing
            errors += 1
            if errors <= 3:
                print(f"  claim {done} refused: {error}", file=sys.stderr)
        timed += time.perf_counter() - started
        if done % mine_every == 0:
            mine()
        if done % every == 0 or done == total or timed >= seconds:
            rate = (done - window_claims) / max(timed - window_start, 1e-9)
            heap = ledger_heap = None
            if trace:
                heap = tracemalloc.get_traced_memory()[0] / 1024
                ledger_heap = ledger_heap_kb(tracemalloc.take_snapshot())
            sample = Sample(
                done,
                round(timed, 3),
                round(rate, 1),
                measure_rss(),
                measure_files(),
                heap,
                ledger_heap,
                db_kb(folder),
            )
            result.append(sample)
            window_start, window_claims = timed, done
            if progress:
                print(f"  {done}/{total} claims, {rate:.1f}/s, RSS {sample.rss_kb} KB", file=sys.stderr)
        if timed >= seconds:
            break
    return result, errors


def summarise(mode: str, samples: list[Sample], errors: int, setup: Setup) -> dict[str, Any]:
    done = samples[-1].claims if samples else 0
    half = samples[len(samples) // 2 :]
    growth = None
    if len(half) >= 2:
        slope = np.polyfit([s.claims for s in half], [s.rss_kb for s in half], 1)[0]
        growth = round(float(slope) * 1000, 1)
    heap_growth = None
    if len(half) >= 2 and half[0].heap_kb is not None:
        slope = np.polyfit([s.claims for s in half], [s.heap_kb for s in half], 1)[0]
        heap_growth = round(float(slope) * 1000, 1)
    return {
        "mode": mode,
        "claims": done,
        "errors": errors,
        "locking_script_bytes": len(setup.contract.locking_script),
        "deploy_seconds": round(setup.deploy_seconds, 2),
        "broadcast_seconds": samples[-1].seconds if samples else 0,
        "accepted_per_second": round(done / samples[-1].seconds, 1) if samples else 0,
        "first_window_per_second": samples[0].window_rate if samples else None,
        "last_window_per_second": samples[-1].window_rate if samples else None,
        "rss_kb_first": samples[0].rss_kb if samples else None,
        "rss_kb_last": samples[-1].rss_kb if samples else None,
        "open_files_first": samples[0].open_files if samples else None,
        "open_files_last": samples[-1].open_files if samples else None,
        "rss_growth_kb_per_1000_claims_second_half": growth,
        "heap_growth_kb_per_1000_claims_second_half": heap_growth,
        "db_kb_last": samples[-1].db_kb if samples else None,
        "samples": [asdict(sample) for sample in samples],
    }


def run_mode(mode: str, model: IntegerModel, args: argparse.Namespace) -> dict[str, Any]:
    rate = FeeRate(args.fee_rate)
    with tempfile.TemporaryDirectory(prefix="ledger-load-") as data:
        folder = Path(data)
        ledger = LocalLedger(folder, fee_rate=rate)
        setup = deploy(ledger, model, args.claims, rate, args.model)
        options = dict(
            seconds=args.seconds,
            samples=args.samples,
            mine_every=args.mine_every,
            progress=not args.json,
        )
        if mode == "inprocess":
            if args.tracemalloc:
                tracemalloc.start()
            try:
                samples, errors = run_stream(
                    setup,
                    ledger.broadcast,
                    ledger.mine,
                    rss_kb,
                    open_files,
                    folder,
                    trace=args.tracemalloc,
                    **options,
                )
            finally:
                tracemalloc.stop()
            ledger.close()
            return summarise(mode, samples, errors, setup)
        ledger.close()
        return run_http(setup, folder, rate, args.client, options)


def run_http(
    setup: Setup, folder: Path, rate: FeeRate, client: str, options: dict[str, Any]
) -> dict[str, Any]:
    import requests

    from contracts.arc import ArcBackend

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(folder), str(rate.satoshis_per_kb)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the ledger server did not start (said {url!r})")
        backend = ArcBackend(url, f"{url}/v1/bsv/regtest", retries=0, timeout=60)
        session = requests.Session()

        def post(raw: bytes) -> str:
            headers = {"Content-Type": "application/octet-stream"}
            response = session.post(f"{url}/v1/tx", data=raw, headers=headers, timeout=60)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
            return str(response.json()["txid"])

        def mine() -> None:
            session.post(f"{url}/ledger/mine", json={"blocks": 1}, timeout=60).raise_for_status()

        samples, errors = run_stream(
            setup,
            post if client == "session" else backend.broadcast,
            mine,
            lambda: rss_kb(server.pid),
            lambda: open_files(server.pid),
            folder,
            trace=False,
            **options,
        )
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return summarise(f"http ({client})", samples, errors, setup)


def print_table(result: dict[str, Any]) -> None:
    print(f"\n== {result['mode']}: {result['claims']} claims, {result['errors']} errors ==")
    columns = ("claims", 7), ("secs", 8), ("claims/s", 9), ("RSS KB", 9), ("fds", 5), ("heap KB", 9)
    print(" ".join(f"{name:>{width}}" for name, width in (*columns, ("ledger KB", 10), ("db KB", 8))))
    for s in result["samples"]:
        heap = "-" if s["heap_kb"] is None else f"{s['heap_kb']:.0f}"
        ledger = "-" if s["ledger_heap_kb"] is None else f"{s['ledger_heap_kb']:.0f}"
        print(
            f"{s['claims']:>7} {s['seconds']:>8.2f} {s['window_rate']:>9.1f} {s['rss_kb']:>9} "
            f"{s['open_files']:>5} {heap:>9} {ledger:>10} {s['db_kb']:>8}"
        )
    for key, value in result.items():
        if key not in ("samples", "mode"):
            print(f"{key}: {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["inprocess", "http", "both"], default="both")
    parser.add_argument("--client", choices=["arc", "session"], default="arc", help="http mode's client")
    parser.add_argument("--model", default="small", help="'small' (64-16-10), 'default', or an npz path")
    parser.add_argument("--claims", type=int, default=2000, help="slots deployed and claimed (upper bound)")
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="upper bound on broadcasting time per mode"
    )
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--mine-every", type=int, default=250)
    parser.add_argument("--fee-rate", type=int, default=100)
    parser.add_argument("--tracemalloc", action="store_true", help="trace the heap (slows the run down)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    require_native_vm()
    if args.model == "small":
        model = small_model()
    else:
        model = IntegerModel.load(DEFAULT_MODEL if args.model == "default" else Path(args.model))
    modes = ["inprocess", "http"] if args.mode == "both" else [args.mode]
    results = [run_mode(mode, model, args) for mode in modes]
    if args.json:
        print(json.dumps({"model": args.model, "results": results}, indent=2))
    else:
        for result in results:
            print_table(result)
    return 0 if all(result["errors"] == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
