"""Batch predicates against the integer reference on all 10,000 MNIST test images.

    .venv/bin/python benchmarks/batch_agreement.py [--model PATH] [--batch K] [--json]

For every digit d: the test images the reference classifies as d, in batches of K (the last one padded with
copies of the first image, as the claim builder pads), must all be accepted by the batch predicate for d;
each batch with one lane (a different lane each time) replaced by an image of another class must be
refused. Every script runs in bsv-sdk's native VM. Accepted images are exactly those the integer reference
classifies as d, so the on-chain accuracy is the reference's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.batch import compile_batch_predicate
from contracts.model import IntegerModel
from contracts.verify import require_native_vm, verify_spend

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "classifier" / "models" / "default.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    require_native_vm()
    from classifier.data import load_mnist  # glue: the benchmark feeds real images

    model = IntegerModel.load(args.model)
    mnist = load_mnist()
    images = mnist.x_test.reshape(len(mnist.x_test), -1)
    labels = np.asarray(mnist.y_test)
    predictions = np.asarray(model.predict(images))
    lanes = args.batch
    accepted = rejected = batches = 0
    seconds: list[float] = []
    for digit in range(10):
        compiled = compile_batch_predicate(model, digit, lanes)
        mine, others = images[predictions == digit], images[predictions != digit]
        for number, start in enumerate(range(0, len(mine), lanes)):
            batch = mine[start : start + lanes]
            batch = np.concatenate([batch, np.repeat(batch[:1], lanes - len(batch), axis=0)])
            outcome = verify_spend(compiled.script, compiled.pushes(batch), predicate=compiled)
            accepted += outcome.accepted
            seconds.append(outcome.seconds)
            bad = batch.copy()
            bad[number % lanes] = others[(number * 37) % len(others)]
            rejected += not verify_spend(compiled.script, compiled.pushes(bad), predicate=compiled).accepted
            batches += 1
    result = {
        "model": str(args.model),
        "lanes": lanes,
        "images": len(images),
        "batches": batches,
        "batches_accepted": accepted,
        "batches_with_one_wrong_image_refused": rejected,
        "integer_accuracy": round(float(np.mean(predictions == labels)), 4),
        "median_seconds_per_batch": round(statistics.median(seconds), 5),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:<40} {value}")
    return 0 if accepted == rejected == batches else 1


if __name__ == "__main__":
    sys.exit(main())
