"""Benchmark of the slot contracts on the local ledger: bytes and fees per paid image, verification time.

    .venv/bin/python benchmarks/chain.py [--model PATH] [--digit D] [--slots N] [--fee-rate R] [--json]
    .venv/bin/python benchmarks/chain.py --batch K [...]

Deploys slots for the model, claims each with real MNIST test images the model classifies as D, and prints:
deploy bytes per slot, claim transaction bytes, fee per claim at the rate, on-chain bytes per paid image
(slot output + claim transaction, plus the deploy's overhead shared by its slots), and how many claims per
second the ledger verifies (native VM + policy + fee) and accepts.

With `--batch K`, the same run also deploys batch slots of K lanes and pays N images (N rounded up to a
multiple of K) through full batch claims, and prints both side by side: bytes per paid image (the slot
output's share + the claim's share), claim transaction size, verification seconds per claim and per image
(`verify_transaction`: every input through the native VM, policy, fee), the fee per paid image at the rate;
checks that a batch with one image of another class is refused; and measures a half-filled batch claim
with its padded lanes' rewards returned to the funder's address vs to a fresh single slot of the bounty,
and the bytes per paid image when only n of the K lanes are filled, for n = 1..K.
Batch claims return the unneeded part of the slot's worst-case fee reservation to the funder (one output).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.batch_slot import BatchSlotContract
from contracts.batch_transactions import BatchClaimEntry, build_batch_claim
from contracts.chain import Utxo
from contracts.errors import VerificationError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.model import IntegerModel
from contracts.slot import SlotContract
from contracts.transactions import BuiltTransaction, build_claim, build_deploy
from contracts.txverify import SpentOutput, verify_transaction
from contracts.verify import require_native_vm
from contracts.wire import P2PKH_SCRIPT_BYTES, output_bytes

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "classifier" / "models" / "default.npz"


class Actors:
    def __init__(self) -> None:
        self.funder, self.operator, self.admin, self.contributor = (Key.generate("regtest") for _ in range(4))


def verify_seconds(claims: list[BuiltTransaction], rate: FeeRate) -> list[float]:
    """Seconds `verify_transaction` takes on each claim (the check the builders and the ledger run)."""
    seconds = []
    for claim in claims:
        spent = [SpentOutput(utxo.satoshis, utxo.script) for utxo in claim.spent]
        started = time.perf_counter()
        verify_transaction(claim.raw, spent, fee_rate=rate)
        seconds.append(time.perf_counter() - started)
    return seconds


def measure_single(
    model: IntegerModel, digit: int, matching: np.ndarray, reward: int, rate: FeeRate, actors: Actors
) -> dict[str, Any]:
    contract = SlotContract.from_model(model, digit, actors.operator.public_key, actors.admin.public_key)
    with tempfile.TemporaryDirectory() as data:
        ledger = LocalLedger(data, fee_rate=rate)
        ledger.fund(actors.funder.address, 10**9)
        started = time.perf_counter()
        funding = ledger.utxos(actors.funder.address)
        deploys = build_deploy(contract, reward, len(matching), funding, actors.funder, fee_rate=rate)
        deploy_seconds = time.perf_counter() - started
        for deploy in deploys:
            ledger.broadcast(deploy.raw)
        slots = [slot for deploy in deploys for slot in deploy.slots]
        started = time.perf_counter()
        claims = [
            build_claim(slot, contract, image, actors.contributor.address, actors.operator, fee_rate=rate)
            for slot, image in zip(slots, matching, strict=True)
        ]
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for claim in claims:
            ledger.broadcast(claim.raw)
        ledger_seconds = time.perf_counter() - started
    seconds = verify_seconds(claims, rate)

    deploy_bytes = sum(d.size for d in deploys)
    claim_sizes = [c.size for c in claims]
    median_claim = statistics.median(claim_sizes)
    exact_fees = [rate.fee_for(size) for size in claim_sizes]
    per_image = deploy_bytes / len(claims) + median_claim
    return {
        "slots": len(claims),
        "locking_script_bytes": len(contract.locking_script),
        "predicate_bytes": len(contract.predicate),
        "deploy_transactions": len(deploys),
        "deploy_bytes_per_slot": round(deploy_bytes / len(claims), 1),
        "claim_tx_bytes_median": median_claim,
        "claim_tx_bytes_max": max(claim_sizes),
        "claim_tx_bytes_worst_case": contract.max_claim_tx_bytes,
        "claim_fee_reserved_per_slot": contract.claim_fee(rate),
        "claim_fee_at_actual_size_median": statistics.median(exact_fees),
        "claim_fee_paid_median": statistics.median(c.fee for c in claims),
        "verify_seconds_per_claim_median": round(statistics.median(seconds), 5),
        "verify_seconds_per_image_median": round(statistics.median(seconds), 5),
        "onchain_bytes_per_paid_image": round(per_image, 1),
        "funder_cost_per_paid_image_sat": round(per_image * rate.satoshis_per_kb / 1000, 1),
        "claims_built_and_verified_per_second": round(len(claims) / build_seconds, 1),
        "claims_accepted_by_ledger_per_second": round(len(claims) / ledger_seconds, 1),
        "deploy_build_seconds": round(deploy_seconds, 3),
    }


def bytes_by_filled_lanes(
    contract: BatchSlotContract, slot: Utxo, matching: np.ndarray, reward: int, rate: FeeRate, actors: Actors
) -> dict[int, int]:
    """Bytes per paid image when only n of the K lanes are filled (the rest padded, their rewards returned):
    (slot output + median claim over 3 image sets) / n, for n = 1..K. Built and verified, not broadcast."""
    lanes = contract.lanes
    result = {}
    for filled in range(1, lanes + 1):
        sizes = []
        for trial in range(3):
            chosen = matching[trial * lanes : trial * lanes + filled]
            entries = [BatchClaimEntry(image, actors.contributor.address) for image in chosen]
            claim = build_batch_claim(
                slot, contract, entries, actors.operator, reward=reward, fee_rate=rate,
                change_address=actors.funder.address,
            )  # fmt: skip
            sizes.append(claim.size)
        result[filled] = round((contract.slot_output_bytes + statistics.median(sizes)) / filled)
    return result


def measure_batch(
    model: IntegerModel,
    digit: int,
    lanes: int,
    matching: np.ndarray,
    others: np.ndarray,
    reward: int,
    rate: FeeRate,
    actors: Actors,
) -> dict[str, Any]:
    started = time.perf_counter()
    contract = BatchSlotContract.from_model(
        model, digit, lanes, actors.operator.public_key, actors.admin.public_key
    )
    compile_seconds = time.perf_counter() - started
    single = SlotContract.from_model(model, digit, actors.operator.public_key, actors.admin.public_key)
    batches = [matching[start : start + lanes] for start in range(0, len(matching), lanes)]
    payee = actors.contributor.address
    with tempfile.TemporaryDirectory() as data:
        ledger = LocalLedger(data, fee_rate=rate)
        ledger.fund(actors.funder.address, 10**9)
        funding = ledger.utxos(actors.funder.address)
        # One extra slot for the refused batch and the padded measurements.
        deploys = build_deploy(contract, reward, len(batches) + 1, funding, actors.funder, fee_rate=rate)
        for deploy in deploys:
            ledger.broadcast(deploy.raw)
        slots = [slot for deploy in deploys for slot in deploy.slots]
        started = time.perf_counter()
        claims = [
            build_batch_claim(
                slot, contract, [BatchClaimEntry(image, payee) for image in batch], actors.operator,
                reward=reward, fee_rate=rate, change_address=actors.funder.address,
            )
            for slot, batch in zip(slots, batches, strict=False)
        ]  # fmt: skip
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for claim in claims:
            ledger.broadcast(claim.raw)
        ledger_seconds = time.perf_counter() - started

        spare = slots[len(batches)]
        wrong = [BatchClaimEntry(image, payee) for image in batches[0]]
        wrong[-1] = BatchClaimEntry(others[0], payee)
        try:
            build_batch_claim(spare, contract, wrong, actors.operator, reward=reward, fee_rate=rate)
            refused = False
        except VerificationError:
            refused = True
        # Half a batch: the padded lanes' rewards back to the funder (P2PKH) or into a fresh single slot.
        half = [BatchClaimEntry(image, payee) for image in batches[0][: max(1, lanes // 2)]]
        to_funder = build_batch_claim(
            spare, contract, half, actors.operator, reward=reward, fee_rate=rate,
            change_address=actors.funder.address,
        )  # fmt: skip
        to_slot = build_batch_claim(
            spare, contract, half, actors.operator, reward=reward, fee_rate=rate,
            change_script=single.locking_script,
        )  # fmt: skip
        ledger.broadcast(to_funder.raw)
        by_filled = bytes_by_filled_lanes(contract, slots[0], matching, reward, rate, actors)
    seconds = verify_seconds(claims, rate)

    deploy_bytes = sum(d.size for d in deploys)
    slot_share = deploy_bytes / len(slots) / lanes
    claim_sizes = [c.size for c in claims]
    median_claim = statistics.median(claim_sizes)
    per_image = slot_share + median_claim / lanes
    return {
        "lanes": lanes,
        "lane_bytes": contract.compiled.layout.lane_bytes,
        "slots": len(claims),
        "paid_images": sum(len(batch) for batch in batches),
        "locking_script_bytes": len(contract.locking_script),
        "predicate_bytes": len(contract.predicate),
        "compile_seconds": round(compile_seconds, 3),
        "deploy_bytes_per_slot": round(deploy_bytes / len(slots), 1),
        "slot_share_bytes_per_image": round(slot_share, 1),
        "claim_tx_bytes_median": median_claim,
        "claim_tx_bytes_max": max(claim_sizes),
        "claim_tx_bytes_worst_case": contract.max_claim_tx_bytes,
        "claim_share_bytes_per_image": round(median_claim / lanes, 1),
        "unlocking_bytes_per_image_median": round(
            statistics.median(len(contract.compiled.pushes(batch)) for batch in batches) / lanes, 1
        ),
        "claim_fee_reserved_per_slot": contract.claim_fee(rate),
        "claim_fee_paid_median": statistics.median(c.fee for c in claims),
        "verify_seconds_per_claim_median": round(statistics.median(seconds), 5),
        "verify_seconds_per_image_median": round(statistics.median(seconds) / lanes, 5),
        "onchain_bytes_per_paid_image": round(per_image, 1),
        "funder_cost_per_paid_image_sat": round(per_image * rate.satoshis_per_kb / 1000, 1),
        "batch_with_one_wrong_image_refused": refused,
        "padded_claim_images": len(half),
        "padded_claim_bytes_change_to_funder": to_funder.size,
        # Built when the padded lanes' money can pay for writing a single slot's script; otherwise the
        # same claim's size with that output in place of the P2PKH change (the bytes are the point).
        "padded_claim_bytes_change_to_single_slot": (
            to_slot.size
            if to_slot.check.outputs == len(half) + 1
            else to_funder.size - output_bytes(P2PKH_SCRIPT_BYTES) + single.slot_output_bytes
        ),
        "bytes_per_paid_image_by_filled_lanes": by_filled,
        "claims_built_and_verified_per_second": round(len(claims) / build_seconds, 2),
        "claims_accepted_by_ledger_per_second": round(len(claims) / ledger_seconds, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--digit", type=int, default=7)
    parser.add_argument("--slots", type=int, default=40, help="paid images (single slots)")
    parser.add_argument("--batch", type=int, metavar="K", help="also measure batch slots of K lanes")
    parser.add_argument("--reward", type=int, default=1_000)
    parser.add_argument("--fee-rate", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    require_native_vm()
    if not args.model.exists():
        print(f"error: no model at {args.model}: run `make model` or pass --model", file=sys.stderr)
        return 2
    if args.batch is not None and args.batch < 1:
        print("error: --batch needs K >= 1", file=sys.stderr)
        return 2
    from classifier.data import load_mnist  # glue: the benchmark feeds real images

    model = IntegerModel.load(args.model)
    mnist = load_mnist()
    images = mnist.x_test.reshape(len(mnist.x_test), -1)
    predictions = np.array([int(p) for p in model.predict(images)])
    matching = images[predictions == args.digit]
    others = images[predictions != args.digit]
    rate = FeeRate(args.fee_rate)
    actors = Actors()
    result: dict[str, Any] = {
        "model": str(args.model),
        "digit": args.digit,
        "fee_rate_sat_per_kb": rate.satoshis_per_kb,
        "single": measure_single(model, args.digit, matching[: args.slots], args.reward, rate, actors),
    }
    if args.batch is not None:
        paid = -(-args.slots // args.batch) * args.batch
        if paid > len(matching):
            print(f"error: only {len(matching)} test images are classified as {args.digit}", file=sys.stderr)
            return 2
        result["batch"] = measure_batch(
            model, args.digit, args.batch, matching[:paid], others, args.reward, rate, actors
        )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model {result['model']}, digit {args.digit}, {rate.satoshis_per_kb} sat/kB")
    single, batch = result["single"], result.get("batch", {})
    keys = list(dict.fromkeys([*single, *batch]))
    width = max(len(key) for key in keys)
    header = f"{'':<{width}}  {'single':>12}" + (f"  {'batch K=' + str(args.batch):>12}" if batch else "")
    print(header)
    for key in keys:
        if isinstance(batch.get(key), dict):
            print(f"{key}: " + ", ".join(f"{n}: {v:,}" for n, v in batch[key].items()))
            continue
        row = f"{key:<{width}}  {single.get(key, '')!s:>12}"
        if batch:
            row += f"  {batch.get(key, '')!s:>12}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
