"""An optional second, off-chain model that must agree with the published one before the operator co-signs.

The published integer MLP is public by design (it is in every locking script), so anyone can optimise an
image against it (see classifier/adversarial.py and docs/threats.md). A model of a different kind, whose
weights are not published, is a cheap filter: a perturbation tuned to the MLP's piecewise-linear regions
rarely moves a small CNN to the same target. This module trains that CNN with Keras and runs it at
inference in plain numpy, so the service never loads TensorFlow per request.

    conv 3x3x16 relu -> maxpool 2 -> conv 3x3x32 relu -> maxpool 2 -> dense 64 relu -> dense 10 (softmax)

Artifact: one `.npz` (`allow_pickle=False`) holding the eight float32 arrays and a JSON `manifest`, with the
manifest also written beside it as `<name>.json`. Rebuild the committed one with

    python -m classifier.second_opinion train --out classifier/models/second_opinion.npz

and measure it against the attack with `python -m classifier.second_opinion evaluate [--json]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from classifier.errors import ClassifierError, ModelFormatError

FORMAT_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parent / "models" / "second_opinion.npz"
ARRAY_NAMES = ("conv1_w", "conv1_b", "conv2_w", "conv2_b", "dense1_w", "dense1_b", "dense2_w", "dense2_b")
# The agreement check also asks for this much probability on the digit: a crafted image often lands near
# a decision boundary of the second model even when it crosses it. Measured cost on MNIST test: see json.
DEFAULT_MIN_CONFIDENCE = 0.5
# How far the numpy forward pass may differ from Keras (float32 rounding in a different summation order).
FORWARD_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SecondOpinion:
    """The CNN's weights as numpy arrays (Keras layout: conv kernels (3, 3, in, out), dense (in, out))."""

    conv1_w: np.ndarray
    conv1_b: np.ndarray
    conv2_w: np.ndarray
    conv2_b: np.ndarray
    dense1_w: np.ndarray
    dense1_b: np.ndarray
    dense2_w: np.ndarray
    dense2_b: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in ARRAY_NAMES:
            array = np.asarray(getattr(self, name))
            if not np.issubdtype(array.dtype, np.floating):
                raise ModelFormatError(f"{name} must hold floats, got {array.dtype}")
            object.__setattr__(self, name, np.ascontiguousarray(array, dtype=np.float32))
        c1, c2 = self.conv1_w.shape, self.conv2_w.shape
        if c1[:3] != (3, 3, 1) or c2[:2] != (3, 3) or c2[2] != c1[3]:
            raise ModelFormatError(f"conv kernels must be (3, 3, 1, a) and (3, 3, a, b), got {c1} and {c2}")
        if self.dense1_w.shape[0] != 5 * 5 * c2[3] or self.dense2_w.shape != (self.dense1_w.shape[1], 10):
            raise ModelFormatError(
                f"dense shapes {self.dense1_w.shape} and {self.dense2_w.shape} do not fit the convolutions"
            )
        for weights, bias in (("conv1_w", "conv1_b"), ("conv2_w", "conv2_b")):
            if getattr(self, bias).shape != (getattr(self, weights).shape[-1],):
                raise ModelFormatError(f"{bias} does not match {weights}")
        for weights, bias in (("dense1_w", "dense1_b"), ("dense2_w", "dense2_b")):
            if getattr(self, bias).shape != (getattr(self, weights).shape[1],):
                raise ModelFormatError(f"{bias} does not match {weights}")

    # -- inference (numpy only) ----------------------------------------------------------------------------

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, 10) for uint8 images (28, 28), (784,), (N, 28, 28) or (N, 784)."""
        x = _as_batch(pixels).astype(np.float32) / np.float32(255.0)
        x = x[..., np.newaxis]
        x = _maxpool2(_relu(_conv3x3(x, self.conv1_w, self.conv1_b)))
        x = _maxpool2(_relu(_conv3x3(x, self.conv2_w, self.conv2_b)))
        x = x.reshape(len(x), -1)  # channels-last flatten, as keras.layers.Flatten
        x = _relu(x @ self.dense1_w + self.dense1_b)
        logits = x @ self.dense2_w + self.dense2_b
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        return np.argmax(self.probabilities(pixels), axis=1)

    def agrees(self, pixels: np.ndarray, digit: int, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> bool:
        """True when this model also says `digit` for one image, with at least `min_confidence`."""
        probabilities = self.probabilities(pixels)
        if len(probabilities) != 1:
            raise ValueError(f"agrees() takes one image, got {len(probabilities)}")
        best = int(np.argmax(probabilities[0]))
        return best == digit and float(probabilities[0, best]) >= min_confidence

    def agreement_mask(
        self, images: np.ndarray, digits: np.ndarray | int, min_confidence: float = DEFAULT_MIN_CONFIDENCE
    ) -> np.ndarray:
        """`agrees` over a batch: a bool array."""
        probabilities = self.probabilities(images)
        digits = np.broadcast_to(np.asarray(digits), (len(probabilities),))
        best = np.argmax(probabilities, axis=1)
        confident = probabilities[np.arange(len(best)), best] >= min_confidence
        return (best == digits) & confident

    # -- artifact ------------------------------------------------------------------------------------------

    def weights_sha256(self) -> str:
        digest = hashlib.sha256()
        for name in ARRAY_NAMES:
            digest.update(np.ascontiguousarray(getattr(self, name), dtype="<f4").tobytes())
        return digest.hexdigest()

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        manifest = {
            **self.manifest,
            "format_version": FORMAT_VERSION,
            "weights_sha256": self.weights_sha256(),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in ARRAY_NAMES}
        with path.open("wb") as handle:
            np.savez_compressed(handle, **arrays, manifest=np.array(text))
        path.with_suffix(".json").write_text(text + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str = DEFAULT_PATH) -> SecondOpinion:
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"no second-opinion model at {path}")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                missing = [name for name in (*ARRAY_NAMES, "manifest") if name not in arrays.files]
                if missing:
                    raise ModelFormatError(
                        f"{path} is not a second-opinion model: missing {', '.join(missing)}"
                    )
                weights = {name: arrays[name] for name in ARRAY_NAMES}
                manifest = json.loads(str(arrays["manifest"]))
        except ModelFormatError:
            raise
        except Exception as error:  # numpy raises many types for a file that is not an npz
            raise ModelFormatError(f"{path} is not a readable npz ({type(error).__name__})") from None
        model = cls(**weights, manifest=manifest)
        if manifest.get("weights_sha256") != model.weights_sha256():
            raise ModelFormatError(f"{path}: weights do not match the sha256 recorded in the manifest")
        return model


@lru_cache(maxsize=4)
def load_cached(path: str = str(DEFAULT_PATH)) -> SecondOpinion:
    """The model at `path`, loaded once per process (the service calls this per submission)."""
    return SecondOpinion.load(path)


def second_opinion_digit(pixels: np.ndarray, path: Path | str = DEFAULT_PATH) -> int:
    """The second model's digit for one 28x28 uint8 image."""
    return int(load_cached(str(path)).predict(pixels)[0])


def agrees(
    pixels: np.ndarray,
    digit: int,
    *,
    path: Path | str = DEFAULT_PATH,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> bool:
    """True when the second model also classifies the 28x28 uint8 image as `digit` (with at least
    `min_confidence` probability). The service calls this only after the published model said `digit`."""
    return load_cached(str(path)).agrees(pixels, digit, min_confidence)


# -- numpy layers ------------------------------------------------------------------------------------------


def _as_batch(pixels: np.ndarray) -> np.ndarray:
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {array.dtype}")
    if array.shape in ((28, 28), (784,)):
        return array.reshape(1, 28, 28)
    if array.ndim == 3 and array.shape[1:] == (28, 28):
        return array
    if array.ndim == 2 and array.shape[1] == 784:
        return array.reshape(-1, 28, 28)
    raise ValueError(f"pixels must be (28, 28), (784,), (N, 28, 28) or (N, 784), got {array.shape}")


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'valid' 3x3 convolution (cross-correlation, as Keras): (N, H, W, C) -> (N, H-2, W-2, F)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (N, H-2, W-2, C, 3, 3)
    return np.einsum("nhwcij,ijcf->nhwf", windows, kernel, optimize=True) + bias


def _maxpool2(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, 'valid' (odd edges dropped), as keras.layers.MaxPooling2D()."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


# -- training (Keras) --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 20
    limit: int | None = None  # train on the first N MNIST images only (tests)


def build_network(filters: tuple[int, int] = (16, 32), hidden: int = 64) -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(filters[0], 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(filters[1], 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def from_keras(network: Any, manifest: dict[str, Any] | None = None) -> SecondOpinion:
    import keras

    arrays: dict[str, Any] = {
        name: keras.ops.convert_to_numpy(weight)
        for name, weight in zip(ARRAY_NAMES, network.weights, strict=True)
    }
    return SecondOpinion(**arrays, manifest=manifest or {})


def forward_difference(model: SecondOpinion, network: Any, images: np.ndarray) -> float:
    """Largest |numpy probability - Keras probability| over `images` (uint8 (N, 28, 28))."""
    import keras

    logits = network.predict(images[..., np.newaxis].astype(np.float32) / 255.0, verbose=0)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    return float(np.abs(model.probabilities(images) - expected).max())


def train(
    options: TrainingOptions = TrainingOptions(), progress: bool = False
) -> tuple[SecondOpinion, dict[str, Any]]:
    """Train the CNN on MNIST, check the numpy forward pass against Keras, measure on the test set."""
    import keras

    from classifier.data import load_mnist

    keras.utils.set_random_seed(options.seed)
    mnist = load_mnist()
    x_train, y_train = mnist.x_train, mnist.y_train
    if options.limit is not None:
        x_train, y_train = x_train[: options.limit], y_train[: options.limit]
    network = build_network()
    network.compile(
        optimizer=keras.optimizers.Adam(options.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.monotonic()
    network.fit(
        x_train[..., np.newaxis].astype(np.float32) / 255.0,
        y_train.astype(np.int64),
        epochs=options.epochs,
        batch_size=options.batch_size,
        shuffle=True,
        verbose=2 if progress else 0,
    )
    seconds = time.monotonic() - started
    model = from_keras(network)
    sample = mnist.x_test[:256]
    difference = forward_difference(model, network, sample)
    if difference > FORWARD_TOLERANCE:
        raise ClassifierError(f"numpy forward pass differs from Keras by {difference:.2e}")
    metrics = measure_genuine(model, mnist.x_test, mnist.y_test)
    manifest = {
        "kind": "second-opinion CNN",
        "architecture": "conv3x3x16-relu-maxpool2-conv3x3x32-relu-maxpool2-dense64-relu-dense10-softmax",
        "input": "uint8 28x28 / 255, white digit on black",
        "parameters": int(sum(getattr(model, name).size for name in ARRAY_NAMES)),
        "training": {
            "epochs": options.epochs,
            "batch_size": options.batch_size,
            "optimizer": "adam",
            "learning_rate": options.learning_rate,
            "seed": options.seed,
            "mnist_examples": len(x_train),
            "seconds": round(seconds, 1),
            "keras": keras.__version__,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "numpy_vs_keras_max_abs_difference": difference,
        "metrics": metrics,
    }
    return dataclasses.replace(model, manifest=manifest), manifest


def measure_genuine(
    model: SecondOpinion,
    images: np.ndarray,
    labels: np.ndarray,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    published: Any | None = None,
) -> dict[str, Any]:
    """Accuracy and false rejections on genuine images. With `published` (an integer model), the false
    rejections that matter to a contributor: images the published model pays whose label is the paid
    digit, refused by this check."""
    probabilities = model.probabilities(images)
    best = probabilities.argmax(axis=1)
    agreed = (best == labels) & (probabilities.max(axis=1) >= min_confidence)
    result: dict[str, Any] = {
        "test_examples": len(labels),
        "test_accuracy": float((best == labels).mean()),
        "min_confidence": min_confidence,
        "false_rejection_rate": float(1 - agreed.mean()),
    }
    if published is not None:
        paid = np.asarray(published.predict(images)) == labels
        result["published_correct"] = int(paid.sum())
        result["false_rejection_rate_of_paid_genuine"] = float(1 - agreed[paid].mean())
    return result


# -- evaluation against the attack -------------------------------------------------------------------------


def evaluate(
    model: SecondOpinion,
    published: Any,
    *,
    attacks: int = 200,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Attack `attacks` MNIST test images (a random other digit as target each), once against the bare
    model and once through the service's preprocessing, and count how many fool the published model and
    how many of those this check stops; plus its false rejections on genuine test images."""
    from classifier.adversarial import attack_summary, targeted_attack, through_preprocessing
    from classifier.data import load_mnist

    mnist = load_mnist()
    result: dict[str, Any] = {}
    attacks_by_kind: tuple[tuple[str, dict[str, Any]], ...] = (
        ("model_only", {}),
        ("through_preprocessing", {"preprocess": through_preprocessing, "step": 16}),
    )
    for kind, options in attacks_by_kind:
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(mnist.x_test), attacks, replace=False)
        results = []
        for count, index in enumerate(picks, 1):
            label = int(mnist.y_test[index])
            target = int((label + rng.integers(1, 10)) % 10)
            results.append(targeted_attack(published, mnist.x_test[index], target, **options))
            if progress and count % 20 == 0:
                print(f"  {kind}: attacked {count}/{attacks}", file=sys.stderr)
        summary = attack_summary(results)
        summary["second_opinion"] = stopped_by(model, results, min_confidence)
        result[kind] = summary
    result["genuine"] = measure_genuine(model, mnist.x_test, mnist.y_test, min_confidence, published)
    return result


def stopped_by(model: SecondOpinion, results: Sequence[Any], min_confidence: float) -> dict[str, Any]:
    """How many successful attacks (AttackResult) this check refuses, judged on what the model saw."""
    fooled = [r for r in results if r.success]
    if not fooled:
        return {"min_confidence": min_confidence, "stopped": 0, "stopped_rate": None}
    seen = np.stack([r.seen for r in fooled])
    stopped = ~model.agreement_mask(seen, np.array([r.target for r in fooled]), min_confidence)
    says_original = model.predict(seen) == np.array([r.original_label for r in fooled])
    return {
        "min_confidence": min_confidence,
        "stopped": int(stopped.sum()),
        "stopped_rate": float(stopped.mean()),
        "says_original_digit": int(says_original.sum()),
    }


class KerasSurrogate:
    """An attacker's own CNN (same recipe, another seed) as `classifier.adversarial.Surrogate`: numpy to
    judge, TensorFlow for the gradient of its margin. Used to measure transfer to the private model."""

    def __init__(self, model: SecondOpinion, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
        self.model = model
        self.min_confidence = min_confidence
        self.network = build_network()
        self.network.set_weights([getattr(model, name) for name in ARRAY_NAMES])

    def accepts(self, pixels: np.ndarray, target: int) -> bool:
        return self.model.agrees(pixels, target, self.min_confidence)

    def gradient(self, pixels: np.ndarray, target: int) -> np.ndarray:
        import tensorflow as tf

        x = tf.constant(np.asarray(pixels, dtype=np.float32).reshape(1, 28, 28, 1) / 255.0)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = self.network(x, training=False)[0]
            others = tf.tensor_scatter_nd_update(logits, [[target]], [-1e9])
            margin = logits[target] - tf.reduce_max(others)
        return np.asarray(tape.gradient(margin, x)).reshape(-1).astype(np.float64)


def evaluate_transfer(
    model: SecondOpinion,
    published: Any,
    surrogate: SecondOpinion,
    *,
    attacks: int = 100,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Attack the published model and the attacker's `surrogate` jointly, through the preprocessing, and
    count how many of the images that fool both also pass this (private) model: the transfer rate."""
    from classifier.adversarial import attack_summary, targeted_attack, through_preprocessing
    from classifier.data import load_mnist

    mnist = load_mnist()
    stand_in = KerasSurrogate(surrogate, min_confidence)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(mnist.x_test), attacks, replace=False)
    results = []
    for count, index in enumerate(picks, 1):
        target = int((int(mnist.y_test[index]) + rng.integers(1, 10)) % 10)
        results.append(
            targeted_attack(
                published,
                mnist.x_test[index],
                target,
                preprocess=through_preprocessing,
                step=16,
                also=stand_in,
            )
        )
        if progress and count % 10 == 0:
            print(f"  joint attack {count}/{attacks}", file=sys.stderr)
    summary = attack_summary(results)
    summary["surrogate_test_accuracy"] = surrogate.manifest.get("metrics", {}).get("test_accuracy")
    summary["second_opinion"] = stopped_by(model, results, min_confidence)
    return summary


# -- command line ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.second_opinion", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = TrainingOptions()
    train_cmd = commands.add_parser("train", help="train the CNN and write its artifact")
    train_cmd.add_argument("--out", type=Path, required=True)
    train_cmd.add_argument("--epochs", type=int, default=defaults.epochs)
    train_cmd.add_argument("--seed", type=int, default=defaults.seed)
    train_cmd.add_argument("--limit", type=int, help="train on the first N MNIST training images only")
    train_cmd.add_argument("--json", action="store_true")
    evaluate_cmd = commands.add_parser("evaluate", help="attack success and how much of it this check stops")
    evaluate_cmd.add_argument("--model", type=Path, default=DEFAULT_PATH)
    evaluate_cmd.add_argument("--published", type=Path, default=DEFAULT_PATH.parent / "default.npz")
    evaluate_cmd.add_argument("--attacks", type=int, default=200)
    evaluate_cmd.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    evaluate_cmd.add_argument("--json", action="store_true")
    transfer_cmd = commands.add_parser(
        "transfer", help="joint attack with a surrogate CNN the attacker trains"
    )
    transfer_cmd.add_argument("--model", type=Path, default=DEFAULT_PATH)
    transfer_cmd.add_argument("--published", type=Path, default=DEFAULT_PATH.parent / "default.npz")
    transfer_cmd.add_argument("--surrogate", type=Path, help="a trained surrogate npz (default: train one)")
    transfer_cmd.add_argument("--surrogate-seed", type=int, default=1234)
    transfer_cmd.add_argument("--surrogate-epochs", type=int, default=2)
    transfer_cmd.add_argument("--attacks", type=int, default=100)
    transfer_cmd.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    transfer_cmd.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            options = TrainingOptions(epochs=args.epochs, seed=args.seed, limit=args.limit)
            model, manifest = train(options, progress=not args.json)
            model.save(args.out)
            result: dict[str, Any] = {"out": str(args.out), "bytes": args.out.stat().st_size, **manifest}
        elif args.command == "transfer":
            from classifier.integer_model import IntegerModel

            if args.surrogate:
                surrogate = SecondOpinion.load(args.surrogate)
            else:
                options = TrainingOptions(epochs=args.surrogate_epochs, seed=args.surrogate_seed)
                surrogate, _ = train(options, progress=not args.json)
            result = evaluate_transfer(
                SecondOpinion.load(args.model),
                IntegerModel.load(args.published),
                surrogate,
                attacks=args.attacks,
                min_confidence=args.min_confidence,
                progress=not args.json,
            )
        else:
            from classifier.integer_model import IntegerModel

            result = evaluate(
                SecondOpinion.load(args.model),
                IntegerModel.load(args.published),
                attacks=args.attacks,
                min_confidence=args.min_confidence,
                progress=not args.json,
            )
    except (ClassifierError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_flat(result)
    return 0


def _print_flat(result: dict[str, Any], prefix: str = "") -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            _print_flat(value, f"{prefix}{key}.")
        else:
            print(f"{prefix}{key}: {value}")


if __name__ == "__main__":
    sys.exit(main())
