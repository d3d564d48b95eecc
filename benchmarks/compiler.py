"""Benchmark of the predicate compiler on the MNIST test set, against the seed's arithmetic.

For every test image (or the first --limit), for the model's own prediction (the script must accept) and for
one other digit (it must reject), the verdict of bsv-sdk's native VM is compared with the integer reference.
Prints locking/unlocking bytes, opcodes, agreement counts, on-chain accuracy, median seconds per
verification and the fee at the policy rate, then the same for the seed-style baseline on a sample.

    .venv/bin/python benchmarks/compiler.py [--model PATH] [--limit N] [--baseline-limit N] [--json]
    .venv/bin/python benchmarks/compiler.py --sweep a.npz b.npz ...   # bytes vs accuracy of several models

This is glue: it may load MNIST through `classifier.data` and the drawn-style set through `classifier.drawn`
(the sweep reports accuracy on both); the `contracts` library itself never does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier import drawn  # noqa: E402
from contracts.baseline import compile_baseline  # noqa: E402
from contracts.compiler import compile_predicate  # noqa: E402
from contracts.errors import VerificationError  # noqa: E402
from contracts.fees import FeeRate  # noqa: E402
from contracts.model import IntegerModel  # noqa: E402
from contracts.numbers import push_number  # noqa: E402
from contracts.policy import DEFAULT_POLICY  # noqa: E402
from contracts.unlocking import image_pushes  # noqa: E402
from contracts.verify import require_native_vm, run_vm, verify_spend  # noqa: E402


def load_test_set(limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from classifier.data import load_mnist

    mnist = load_mnist()
    images = np.asarray(mnist.x_test).reshape(len(mnist.x_test), -1)
    labels = np.asarray(mnist.y_test).astype(np.int64)
    return (images[:limit], labels[:limit]) if limit else (images, labels)


def progress(done: int, total: int, started: float) -> None:
    if sys.stderr.isatty() and (done % 200 == 0 or done == total):
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"\r  {done}/{total} images ({rate:.0f}/s)", end="" if done < total else "\n", file=sys.stderr)


def bench_compiler(model: IntegerModel, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    classes = model.shape[2]
    started = time.perf_counter()
    predicates = [compile_predicate(model, digit) for digit in range(classes)]
    compile_seconds = (time.perf_counter() - started) / classes
    predictions = np.atleast_1d(model.predict(images))
    accept_agree = reject_agree = onchain_correct = 0
    seconds: list[float] = []
    unlocking_sizes: list[int] = []
    disagreements: list[dict[str, Any]] = []
    started = time.perf_counter()
    for index, (image, predicted, label) in enumerate(zip(images, predictions, labels, strict=True)):
        unlocking = image_pushes(predicates[0], image)  # the layout is the same for every digit
        unlocking_sizes.append(len(unlocking))
        verdicts: dict[int, bool] = {}
        for digit in {int(predicted), (int(predicted) + 1) % classes, int(label)}:
            result = verify_spend(predicates[digit].script, unlocking, predicate=predicates[digit])
            verdicts[digit] = result.accepted
            seconds.append(result.seconds)
        if verdicts[int(predicted)]:
            accept_agree += 1
        else:
            disagreements.append({"image": index, "digit": int(predicted), "expected": True})
        if not verdicts[(int(predicted) + 1) % classes]:
            reject_agree += 1
        else:
            disagreements.append({"image": index, "digit": (int(predicted) + 1) % classes, "expected": False})
        onchain_correct += verdicts[int(label)]
        progress(index + 1, len(images), started)
    sizes = [p.stats.bytes for p in predicates]
    unlocking_median = int(statistics.median(unlocking_sizes))
    return {
        "images": len(images),
        "accept_agreement": accept_agree,
        "reject_agreement": reject_agree,
        "disagreements": disagreements[:20],
        "reference_accuracy": float(np.mean(predictions == labels)),
        "onchain_accuracy": onchain_correct / len(images),
        "locking_bytes_min": min(sizes),
        "locking_bytes_max": max(sizes),
        "locking_bytes_mean": statistics.mean(sizes),
        "opcodes_max": max(p.stats.opcodes for p in predicates),
        "unoptimised_bytes_max": max(p.stats.unoptimised_bytes for p in predicates),
        "largest_constant": max(p.stats.largest_constant for p in predicates),
        "inputs_pushed": predicates[0].stats.inputs,
        "unlocking_bytes_median": unlocking_median,
        "unlocking_bytes_mean": statistics.mean(unlocking_sizes),
        "unlocking_bytes_max": max(unlocking_sizes),
        "median_seconds_per_verification": statistics.median(seconds),
        "compile_seconds_per_digit": compile_seconds,
        "predicate_bytes_per_claim": max(sizes) + unlocking_median,
        "predicate_fee_sat": FeeRate().fee_for(max(sizes) + unlocking_median),
    }


def bench_baseline(model: IntegerModel, images: np.ndarray) -> dict[str, Any]:
    """The seed-style script on a sample: it is over the policy's script limit, so only the VM is run."""
    predictions = np.atleast_1d(model.predict(images))
    started = time.perf_counter()
    baselines = {int(d): compile_baseline(model, int(d)) for d in set(predictions.tolist())}
    compile_seconds = (time.perf_counter() - started) / max(len(baselines), 1)
    agree = 0
    seconds: list[float] = []
    unlocking_sizes: list[int] = []
    for image, predicted in zip(images, predictions, strict=True):
        unlocking = b"".join(push_number(int(v)) for v in image)
        unlocking_sizes.append(len(unlocking))
        began = time.perf_counter()
        try:
            run_vm(baselines[int(predicted)].script, unlocking)
            accepted = True
        except VerificationError:
            accepted = False
        seconds.append(time.perf_counter() - began)
        agree += accepted
    sample = next(iter(baselines.values()))
    return {
        "images": len(images),
        "accept_agreement": agree,
        "locking_bytes": sample.stats.bytes,
        "opcodes": sample.stats.opcodes,
        "unlocking_bytes_median": int(statistics.median(unlocking_sizes)),
        "median_seconds_per_verification": statistics.median(seconds),
        "compile_seconds": compile_seconds,
        "within_policy": sample.stats.bytes <= DEFAULT_POLICY.max_script_bytes,
        "predicate_fee_sat": FeeRate().fee_for(sample.stats.bytes + int(statistics.median(unlocking_sizes))),
    }


def sweep(paths: list[Path], limit: int | None) -> list[dict[str, Any]]:
    images, labels = load_test_set(limit)
    style = drawn.cached()  # the drawn-style evaluation set, beside MNIST
    rows = []
    for path in paths:
        model = IntegerModel.load(path)
        sizes = [compile_predicate(model, digit).stats for digit in range(model.shape[2])]
        unlocking = statistics.median(len(image_pushes(model, image)) for image in images[:1000])
        rows.append(
            {
                "model": path.name,
                "sparsity": model.manifest.get("sparsity", float(np.mean(model.w1 == 0))),
                "bits": model.manifest.get("bits"),
                "nonzero_w1": int(np.count_nonzero(model.w1)),
                "integer_accuracy": float(np.mean(np.atleast_1d(model.predict(images)) == labels)),
                "drawn_accuracy": float(np.mean(model.predict(style.x.reshape(-1, 784)) == style.y)),
                "locking_bytes_max": max(s.bytes for s in sizes),
                "unlocking_bytes_median": unlocking,
            }
        )
    return rows


def print_table(compiled: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    c = compiled
    rows = [
        ("images", f"{c['images']:,}", f"{baseline['images']:,}" if baseline else "-"),
        (
            "accept agreement",
            f"{c['accept_agreement']:,}/{c['images']:,}",
            f"{baseline['accept_agreement']}/{baseline['images']}" if baseline else "-",
        ),
        ("reject agreement", f"{c['reject_agreement']:,}/{c['images']:,}", "-"),
        ("reference accuracy", f"{c['reference_accuracy']:.2%}", "-"),
        ("on-chain accuracy", f"{c['onchain_accuracy']:.2%}", "-"),
        (
            "locking bytes (max over digits)",
            f"{c['locking_bytes_max']:,}",
            f"{baseline['locking_bytes']:,}" if baseline else "-",
        ),
        ("locking bytes (min..mean)", f"{c['locking_bytes_min']:,}..{c['locking_bytes_mean']:,.0f}", "-"),
        ("opcodes (max)", f"{c['opcodes_max']:,}", f"{baseline['opcodes']:,}" if baseline else "-"),
        ("pixels pushed", f"{c['inputs_pushed']}", "784"),
        (
            "unlocking bytes (median)",
            f"{c['unlocking_bytes_median']:,}",
            f"{baseline['unlocking_bytes_median']:,}" if baseline else "-",
        ),
        (
            "median s per verification",
            f"{c['median_seconds_per_verification']:.4f}",
            f"{baseline['median_seconds_per_verification']:.4f}" if baseline else "-",
        ),
        (
            "predicate fee per claim (sat)",
            f"{c['predicate_fee_sat']:,}",
            f"{baseline['predicate_fee_sat']:,}" if baseline else "-",
        ),
    ]
    print(f"{'':34}{'compiled':>18}{'seed baseline':>18}")
    for name, ours, theirs in rows:
        print(f"{name:34}{ours:>18}{theirs:>18}")
    if baseline:
        ratio = baseline["locking_bytes"] / c["locking_bytes_max"]
        print(
            f"baseline / compiled locking bytes: {ratio:.1f}x; "
            f"baseline within policy: {baseline['within_policy']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "classifier" / "models" / "default.npz")
    parser.add_argument("--limit", type=int, help="only the first N test images")
    parser.add_argument(
        "--baseline-limit", type=int, default=20, help="images for the (slow) baseline; 0 skips"
    )
    parser.add_argument("--sweep", type=Path, nargs="+", help="compare bytes and accuracy of several models")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    require_native_vm()
    if args.sweep:
        rows = sweep(args.sweep, args.limit)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(
                f"{'model':28}{'sparsity':>9}{'bits':>5}{'nnz w1':>8}"
                f"{'accuracy':>10}{'drawn':>8}{'locking':>9}{'unlock':>8}"
            )
            for r in rows:
                print(
                    f"{r['model']:28}{r['sparsity']:>9.3f}{r['bits'] or '-':>5}{r['nonzero_w1']:>8}"
                    f"{r['integer_accuracy']:>10.2%}{r['drawn_accuracy']:>8.2%}{r['locking_bytes_max']:>9,}"
                    f"{r['unlocking_bytes_median']:>8,.0f}"
                )
        return 0
    model = IntegerModel.load(args.model)
    images, labels = load_test_set(args.limit)
    compiled = bench_compiler(model, images, labels)
    baseline = bench_baseline(model, images[: args.baseline_limit]) if args.baseline_limit else None
    if args.json:
        print(json.dumps({"model": str(args.model), "compiled": compiled, "baseline": baseline}, indent=2))
    else:
        print_table(compiled, baseline)
    ok = compiled["accept_agreement"] == compiled["reject_agreement"] == compiled["images"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
