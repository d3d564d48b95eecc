"""Training the second opinion with Keras (TensorFlow is imported only here, and only when training), and
measuring it on genuine MNIST test images. The result is checked against the numpy forward pass the service
runs (`network.py`) before it is returned.

Rebuild the committed artifact with

    python -m classifier second-opinion train --out classifier/models/second_opinion.npz
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.errors import ClassifierError
from classifier.second_opinion.artifact import ARRAY_NAMES
from classifier.second_opinion.model import DEFAULT_MIN_CONFIDENCE, SecondOpinion
from classifier.second_opinion.network import FORWARD_TOLERANCE


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
