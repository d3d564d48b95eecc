"""Benchmark of the slot contract on the local ledger: bytes and fees per paid image, ledger throughput.

    .venv/bin/python benchmarks/chain.py [--model PATH] [--digit D] [--slots N] [--fee-rate R] [--json]

Deploys N slots for the model, claims each with a real MNIST test image the model classifies as D, and prints:
deploy bytes per slot, claim transaction bytes, fee per claim at the rate, on-chain bytes per paid image
(slot output + claim transaction, plus the deploy's overhead shared by its slots), and how many claims per
second the ledger verifies (native VM + policy + fee) and accepts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.model import IntegerModel
from contracts.slot import SlotContract
from contracts.transactions import build_claim, build_deploy
from contracts.verify import require_native_vm

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "classifier" / "models" / "default.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--digit", type=int, default=7)
    parser.add_argument("--slots", type=int, default=40)
    parser.add_argument("--reward", type=int, default=1_000)
    parser.add_argument("--fee-rate", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    require_native_vm()
    if not args.model.exists():
        print(f"error: no model at {args.model}: run `make model` or pass --model", file=sys.stderr)
        return 2
    from classifier.data import load_mnist  # glue: the benchmark feeds real images

    model = IntegerModel.load(args.model)
    mnist = load_mnist()
    images = mnist.x_test.reshape(len(mnist.x_test), -1)
    predictions = np.array([int(p) for p in model.predict(images)])
    matching = images[predictions == args.digit][: args.slots]
    rate = FeeRate(args.fee_rate)
    funder, operator, admin, contributor = (Key.generate("regtest") for _ in range(4))
    contract = SlotContract.from_model(model, args.digit, operator.public_key, admin.public_key)

    with tempfile.TemporaryDirectory() as data:
        ledger = LocalLedger(data, fee_rate=rate)
        ledger.fund(funder.address, 10**9)
        started = time.perf_counter()
        deploys = build_deploy(
            contract, args.reward, len(matching), ledger.utxos(funder.address), funder, fee_rate=rate
        )
        deploy_seconds = time.perf_counter() - started
        for deploy in deploys:
            ledger.broadcast(deploy.raw)
        slots = [slot for deploy in deploys for slot in deploy.slots]
        started = time.perf_counter()
        claims = [
            build_claim(slot, contract, image, contributor.address, operator, fee_rate=rate)
            for slot, image in zip(slots, matching, strict=True)
        ]
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for claim in claims:
            ledger.broadcast(claim.raw)
        ledger_seconds = time.perf_counter() - started

    deploy_bytes = sum(d.size for d in deploys)
    claim_sizes = [c.size for c in claims]
    median_claim = statistics.median(claim_sizes)
    exact_fees = [rate.fee_for(size) for size in claim_sizes]
    per_image = deploy_bytes / len(claims) + median_claim
    result = {
        "model": str(args.model),
        "digit": args.digit,
        "slots": len(claims),
        "fee_rate_sat_per_kb": rate.satoshis_per_kb,
        "locking_script_bytes": len(contract.locking_script),
        "predicate_bytes": len(contract.predicate),
        "deploy_transactions": len(deploys),
        "deploy_bytes_per_slot": round(deploy_bytes / len(claims), 1),
        "claim_tx_bytes_median": median_claim,
        "claim_tx_bytes_max": max(claim_sizes),
        "claim_tx_bytes_worst_case": contract.max_claim_tx_bytes,
        "claim_fee_reserved_per_slot": contract.claim_fee(rate),
        "claim_fee_at_actual_size_median": statistics.median(exact_fees),
        "onchain_bytes_per_paid_image": round(per_image, 1),
        "funder_cost_per_paid_image_sat": round(per_image * rate.satoshis_per_kb / 1000, 1),
        "claims_built_and_verified_per_second": round(len(claims) / build_seconds, 1),
        "claims_accepted_by_ledger_per_second": round(len(claims) / ledger_seconds, 1),
        "deploy_build_seconds": round(deploy_seconds, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(key) for key in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
