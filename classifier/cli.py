"""`python -m classifier`: train, evaluate and predict from the command line.

Bad input (a missing file, something that is not an image or not a model, wrong shapes) ends the program
with one line on stderr and exit status 2, never a traceback. `--json` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifier import drawn
from classifier.errors import ClassifierError
from classifier.integer_model import IntegerModel
from classifier.train import TrainingOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m classifier", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    defaults = TrainingOptions()  # the defaults that built the committed default model
    train = commands.add_parser("train", help="train, compress and write a model artifact")
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--sparsity", type=float, default=defaults.sparsity, help="share of first-layer zeros")
    train.add_argument("--bits", type=int, default=defaults.bits, help="signed bit width of the weights")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--prune-epochs", type=int, default=defaults.prune_epochs, help="per pruning step")
    train.add_argument("--quant-epochs", type=int, default=defaults.quant_epochs, help="quantization-aware")
    train.add_argument("--extra", type=Path, help="npz of extra labelled examples (`images`, `labels`)")
    train.add_argument("--limit", type=int, help="train on the first N MNIST training images only")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--json", action="store_true")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help="accuracy, sparsity and confusion matrix on MNIST test")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser("predict", help="classify PNG/JPEG files")
    predict.add_argument("--model", type=Path, required=True)
    predict.add_argument("images", type=Path, nargs="+")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(handler=run_predict)
    drawn.add_command(commands)  # the drawn-style evaluation set keeps its command beside its code
    add_second_opinion_commands(commands)
    return parser


def add_second_opinion_commands(commands: Any) -> None:
    """`second-opinion train|evaluate|transfer`: the unpublished CNN (classifier/second_opinion/)."""
    from classifier.second_opinion import DEFAULT_MIN_CONFIDENCE, DEFAULT_PATH
    from classifier.second_opinion import TrainingOptions as SecondOpinionOptions

    group = commands.add_parser("second-opinion", help="train the second model, measure what it stops")
    second = group.add_subparsers(dest="second_opinion_command", required=True)
    defaults = SecondOpinionOptions()
    published = DEFAULT_PATH.parent / "default.npz"
    train = second.add_parser("train", help="train the CNN and write its artifact")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--limit", type=int, help="train on the first N MNIST training images only")
    train.add_argument("--json", action="store_true")
    train.set_defaults(handler=run_second_opinion_train)
    evaluate = second.add_parser("evaluate", help="attack success and how much of it this check stops")
    evaluate.add_argument("--model", type=Path, default=DEFAULT_PATH)
    evaluate.add_argument("--published", type=Path, default=published)
    evaluate.add_argument("--attacks", type=int, default=200)
    evaluate.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=run_second_opinion_evaluate)
    transfer = second.add_parser("transfer", help="joint attack with a surrogate CNN the attacker trains")
    transfer.add_argument("--model", type=Path, default=DEFAULT_PATH)
    transfer.add_argument("--published", type=Path, default=published)
    transfer.add_argument("--surrogate", type=Path, help="a trained surrogate npz (default: train one)")
    transfer.add_argument("--surrogate-seed", type=int, default=1234)
    transfer.add_argument("--surrogate-epochs", type=int, default=2)
    transfer.add_argument("--attacks", type=int, default=100)
    transfer.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    transfer.add_argument("--json", action="store_true")
    transfer.set_defaults(handler=run_second_opinion_transfer)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ClassifierError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run_train(args: argparse.Namespace) -> int:
    from classifier.data import load_labelled_arrays, load_mnist
    from classifier.train import train

    options = TrainingOptions(
        epochs=args.epochs,
        sparsity=args.sparsity,
        bits=args.bits,
        seed=args.seed,
        prune_epochs=args.prune_epochs,
        quant_epochs=args.quant_epochs,
    )
    extra = load_labelled_arrays(args.extra) if args.extra else None
    mnist = load_mnist()
    x_train, y_train = mnist.x_train[: args.limit], mnist.y_train[: args.limit]
    progress = (lambda line: print(line, file=sys.stderr)) if args.json else print
    result = train(
        x_train,
        y_train,
        mnist.x_test,
        mnist.y_test,
        options,
        extra=extra,
        progress=progress,
    )
    path = result.model.save(args.out)
    summary = {"model": str(path), **evaluation(result.model, mnist.x_test, mnist.y_test, brief=True)}
    print(json.dumps(summary, indent=2) if args.json else _readable(summary))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from classifier.data import load_mnist

    model = IntegerModel.load(args.model)
    mnist = load_mnist()
    report = {"model": str(args.model), **evaluation(model, mnist.x_test, mnist.y_test)}
    print(json.dumps(report, indent=2) if args.json else _readable(report))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from classifier.preprocess import preprocess_image

    model = IntegerModel.load(args.model)
    results = []
    for path in args.images:
        try:
            pixels = preprocess_image(path.read_bytes())
        except ClassifierError as error:
            raise type(error)(f"{path}: {error}") from None
        scores = model.scores(pixels.reshape(784))
        results.append({"image": str(path), "digit": int(np.argmax(scores)), "scores": scores.tolist()})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(f"{result['image']}: {result['digit']}  scores {result['scores']}")
    return 0


def run_second_opinion_train(args: argparse.Namespace) -> int:
    from classifier.second_opinion import TrainingOptions as SecondOpinionOptions
    from classifier.second_opinion import train

    options = SecondOpinionOptions(epochs=args.epochs, seed=args.seed, limit=args.limit)
    model, manifest = train(options, progress=not args.json)
    model.save(args.out)
    _print_nested({"out": str(args.out), "bytes": args.out.stat().st_size, **manifest}, args.json)
    return 0


def run_second_opinion_evaluate(args: argparse.Namespace) -> int:
    from classifier.second_opinion import SecondOpinion, evaluate

    result = evaluate(
        SecondOpinion.load(args.model), IntegerModel.load(args.published), attacks=args.attacks,
        min_confidence=args.min_confidence, progress=not args.json,
    )  # fmt: skip
    _print_nested(result, args.json)
    return 0


def run_second_opinion_transfer(args: argparse.Namespace) -> int:
    from classifier.second_opinion import SecondOpinion, evaluate_transfer, train
    from classifier.second_opinion import TrainingOptions as SecondOpinionOptions

    if args.surrogate:
        surrogate = SecondOpinion.load(args.surrogate)
    else:
        options = SecondOpinionOptions(epochs=args.surrogate_epochs, seed=args.surrogate_seed)
        surrogate, _ = train(options, progress=not args.json)
    result = evaluate_transfer(
        SecondOpinion.load(args.model), IntegerModel.load(args.published), surrogate, attacks=args.attacks,
        min_confidence=args.min_confidence, progress=not args.json,
    )  # fmt: skip
    _print_nested(result, args.json)
    return 0


def _print_nested(result: dict[str, Any], as_json: bool, prefix: str = "") -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        if isinstance(value, dict):
            _print_nested(value, False, f"{prefix}{key}.")
        else:
            print(f"{prefix}{key}: {value}")


def evaluation(
    model: IntegerModel, x_test: np.ndarray, y_test: np.ndarray, brief: bool = False
) -> dict[str, Any]:
    predictions = model.predict(x_test.reshape(len(x_test), -1))
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y_test.astype(int), np.asarray(predictions)), 1)
    metrics = model.manifest.get("metrics", {})
    report: dict[str, Any] = {
        "float_test_accuracy": metrics.get("float_test_accuracy"),
        "integer_test_accuracy": float(np.trace(confusion) / confusion.sum()),
        "sparsity": round(model.sparsity(), 4),
        "nonzero_weights": model.nonzero_weights(),
        "bits": model.manifest.get("bits"),
        "weights_sha256": model.weights_sha256(),
    }
    if not brief:
        report["per_class_accuracy"] = {
            str(d): round(float(confusion[d, d] / max(confusion[d].sum(), 1)), 4) for d in range(10)
        }
        report["confusion_matrix"] = confusion.tolist()
    return report


def _readable(report: dict[str, Any]) -> str:
    lines = []
    for key, value in report.items():
        if key == "confusion_matrix":
            lines.append("confusion matrix (rows: true digit, columns: predicted):")
            lines.append("      " + "".join(f"{d:>6}" for d in range(10)))
            lines.extend(f"{d:>6}" + "".join(f"{n:>6}" for n in row) for d, row in enumerate(value))
        elif isinstance(value, dict):
            lines.append(f"{key}: " + ", ".join(f"{k}: {v}" for k, v in value.items()))
        elif isinstance(value, float):
            lines.append(f"{key}: {value:.4f}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)
