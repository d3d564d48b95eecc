"""Subcommands compile, unlock and verify: the predicate of one model and digit, from the command line.

    python -m contracts compile --model PATH --digit D [--batch K] [--out FILE] [--asm FILE] [--json]
    python -m contracts unlock  --model PATH --pixels FILE.npy [--batch K] [--out FILE]
    python -m contracts verify  --model PATH --digit D --pixels FILE.npy [--batch K] [--json]

With `--batch K` the predicate checks K lane-packed images at once (contracts/batch.py): `unlock` writes one
line per K consecutive images, and `verify` runs each group of K, which the script accepts only if the
reference classifies all K as the digit.

Wrong input ends with one line on stderr and a non-zero status (the frame in contracts/cli.py prints it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from contracts.batch import CompiledBatchPredicate, compile_batch_predicate
from contracts.batch_lanes import lane_layout
from contracts.compiler import CompiledPredicate, compile_predicate
from contracts.errors import ImageError
from contracts.model import IntegerModel
from contracts.unlocking import image_pushes
from contracts.verify import require_native_vm, verify_spend


def register(subcommands: argparse._SubParsersAction) -> None:
    compile_parser = subcommands.add_parser(
        "compile", help="compile a model and digit into a predicate script"
    )
    compile_parser.add_argument("--model", required=True, type=Path, help="model artifact (.npz)")
    compile_parser.add_argument("--digit", required=True, type=int, help="target digit")
    compile_parser.add_argument("--batch", type=int, metavar="K", help="a batch predicate over K images")
    compile_parser.add_argument("--out", type=Path, help="write the locking script here as hex")
    compile_parser.add_argument("--asm", type=Path, help="write commented ASM here")
    compile_parser.add_argument("--json", action="store_true", help="print statistics as JSON")
    compile_parser.set_defaults(handler=run_compile)

    unlock_parser = subcommands.add_parser("unlock", help="unlocking scripts (hex, one per line) for images")
    unlock_parser.add_argument("--model", required=True, type=Path, help="model artifact (.npz)")
    unlock_parser.add_argument(
        "--pixels", required=True, type=Path, help=".npy uint8 array (784,) or (N, 784)"
    )
    unlock_parser.add_argument("--out", type=Path, help="write here instead of standard output")
    unlock_parser.add_argument("--batch", type=int, metavar="K", help="one line per K lane-packed images")
    unlock_parser.set_defaults(handler=run_unlock)

    verify_parser = subcommands.add_parser("verify", help="run images through the script interpreter")
    verify_parser.add_argument("--model", required=True, type=Path, help="model artifact (.npz)")
    verify_parser.add_argument("--digit", required=True, type=int, help="target digit")
    verify_parser.add_argument(
        "--pixels", required=True, type=Path, help=".npy uint8 array (784,) or (N, 784)"
    )
    verify_parser.add_argument("--batch", type=int, metavar="K", help="verify groups of K images")
    verify_parser.add_argument("--json", action="store_true", help="print results as JSON")
    verify_parser.set_defaults(handler=run_verify)


def load_images(path: Path, inputs: int) -> np.ndarray:
    """An (N, inputs) integer array from a .npy file; ImageError on a wrong shape, dtype or value."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise ImageError(f"{path}: not a readable .npy array ({error})") from None
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != inputs:
        raise ImageError(f"{path}: pixels must have shape ({inputs},) or (N, {inputs}), got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ImageError(f"{path}: pixels must be integers 0..255, got dtype {array.dtype}")
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
        raise ImageError(
            f"{path}: pixel values must lie in 0..255, got {int(array.min())}..{int(array.max())}"
        )
    return array


def _compile(model: IntegerModel, digit: int, batch: int | None) -> CompiledPredicate:
    return compile_predicate(model, digit) if batch is None else compile_batch_predicate(model, digit, batch)


def _groups(images: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """The images one unlocking script pushes: one each, or K consecutive ones for a batch."""
    if batch is None:
        return list(images)
    if len(images) % batch:
        raise ImageError(
            f"{len(images)} images do not fill batches of {batch}: pad the last batch with copies of an "
            "image the model accepts"
        )
    return [images[start : start + batch] for start in range(0, len(images), batch)]


def run_compile(args: argparse.Namespace) -> int:
    model = IntegerModel.load(args.model)
    compiled = _compile(model, args.digit, args.batch)
    if args.out:
        args.out.write_text(compiled.script.hex() + "\n")
    if args.asm:
        args.asm.write_text(compiled.asm)
    summary = {"digit": compiled.digit, "sha256": compiled.sha256, **asdict(compiled.stats)}
    if isinstance(compiled, CompiledBatchPredicate):
        summary |= {"lanes": compiled.lanes, "lane_bytes": compiled.layout.lane_bytes}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        stats = compiled.stats
        lanes = f", {compiled.lanes} lanes" if isinstance(compiled, CompiledBatchPredicate) else ""
        print(
            f"digit {compiled.digit}{lanes}: {stats.bytes:,} bytes, {stats.opcodes:,} opcodes, "
            f"{stats.inputs} pixels pushed, largest number pushed {stats.largest_constant:,}, "
            f"sha256 {compiled.sha256}"
        )
    return 0


def run_unlock(args: argparse.Namespace) -> int:
    model = IntegerModel.load(args.model)
    images = load_images(args.pixels, model.shape[0])
    if args.batch is None:
        lines = "".join(image_pushes(model, image).hex() + "\n" for image in images)
    else:
        layout = lane_layout(model, args.batch)
        lines = "".join(layout.pushes(group).hex() + "\n" for group in _groups(images, args.batch))
    if args.out:
        args.out.write_text(lines)
    else:
        sys.stdout.write(lines)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    require_native_vm()
    model = IntegerModel.load(args.model)
    compiled = _compile(model, args.digit, args.batch)
    images = load_images(args.pixels, model.shape[0])
    results: list[dict[str, Any]] = []
    seconds: list[float] = []
    unit, units = ("image", "images") if args.batch is None else ("batch", "batches")
    for index, group in enumerate(_groups(images, args.batch)):
        if isinstance(compiled, CompiledBatchPredicate):
            unlocking = compiled.pushes(group)
        else:
            unlocking = image_pushes(compiled, group)
        predicted = [int(p) for p in np.atleast_1d(model.predict(group))]
        outcome = verify_spend(compiled.script, unlocking, predicate=compiled)
        seconds.append(outcome.seconds)
        expected = all(p == compiled.digit for p in predicted)
        results.append(
            {
                unit: index,
                "accepted": outcome.accepted,
                "reason": outcome.reason,
                "reference_prediction": predicted[0] if args.batch is None else predicted,
                "agrees_with_reference": outcome.accepted == expected,
                "seconds": round(outcome.seconds, 6),
            }
        )
    accepted = sum(1 for r in results if r["accepted"])
    agree = sum(1 for r in results if r["agrees_with_reference"])
    median = statistics.median(seconds) if seconds else 0.0
    if args.json:
        print(
            json.dumps(
                {
                    "digit": compiled.digit,
                    "accepted": accepted,
                    units: len(results),
                    "agree_with_reference": agree,
                    "median_seconds": median,
                    "results": results,
                },
                indent=2,
            )
        )
    else:
        for r in results:
            verdict = "accepted" if r["accepted"] else f"rejected ({r['reason']})"
            print(f"{unit} {r[unit]}: {verdict}; reference predicts {r['reference_prediction']}")
        print(
            f"{accepted}/{len(results)} accepted for digit {compiled.digit}; {agree}/{len(results)} agree "
            f"with the reference; median {median:.3f} s per verification"
        )
    return 0 if agree == len(results) else 1
