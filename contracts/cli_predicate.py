"""Subcommands compile, unlock and verify: the predicate of one model and digit, from the command line.

    python -m contracts compile --model PATH --digit D [--out FILE] [--asm FILE] [--json]
    python -m contracts unlock  --model PATH --pixels FILE.npy [--out FILE]
    python -m contracts verify  --model PATH --digit D --pixels FILE.npy [--json]

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

from contracts.compiler import compile_predicate
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
    unlock_parser.set_defaults(handler=run_unlock)

    verify_parser = subcommands.add_parser("verify", help="run images through the script interpreter")
    verify_parser.add_argument("--model", required=True, type=Path, help="model artifact (.npz)")
    verify_parser.add_argument("--digit", required=True, type=int, help="target digit")
    verify_parser.add_argument(
        "--pixels", required=True, type=Path, help=".npy uint8 array (784,) or (N, 784)"
    )
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


def run_compile(args: argparse.Namespace) -> int:
    model = IntegerModel.load(args.model)
    compiled = compile_predicate(model, args.digit)
    if args.out:
        args.out.write_text(compiled.script.hex() + "\n")
    if args.asm:
        args.asm.write_text(compiled.asm)
    summary = {"digit": compiled.digit, "sha256": compiled.sha256, **asdict(compiled.stats)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        stats = compiled.stats
        print(
            f"digit {compiled.digit}: {stats.bytes:,} bytes, {stats.opcodes:,} opcodes, "
            f"{stats.inputs} pixels pushed, largest number pushed {stats.largest_constant:,}, "
            f"sha256 {compiled.sha256}"
        )
    return 0


def run_unlock(args: argparse.Namespace) -> int:
    model = IntegerModel.load(args.model)
    images = load_images(args.pixels, model.shape[0])
    lines = "".join(image_pushes(model, image).hex() + "\n" for image in images)
    if args.out:
        args.out.write_text(lines)
    else:
        sys.stdout.write(lines)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    require_native_vm()
    model = IntegerModel.load(args.model)
    compiled = compile_predicate(model, args.digit)
    images = load_images(args.pixels, model.shape[0])
    predictions = np.atleast_1d(model.predict(images))
    results: list[dict[str, Any]] = []
    seconds: list[float] = []
    for index, image in enumerate(images):
        outcome = verify_spend(compiled.script, image_pushes(compiled, image), predicate=compiled)
        seconds.append(outcome.seconds)
        results.append(
            {
                "image": index,
                "accepted": outcome.accepted,
                "reason": outcome.reason,
                "reference_prediction": int(predictions[index]),
                "agrees_with_reference": outcome.accepted == (int(predictions[index]) == compiled.digit),
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
                    "images": len(results),
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
            print(f"image {r['image']}: {verdict}; reference predicts {r['reference_prediction']}")
        print(
            f"{accepted}/{len(results)} accepted for digit {compiled.digit}; {agree}/{len(results)} agree "
            f"with the reference; median {median:.3f} s per verification"
        )
    return 0 if agree == len(results) else 1
