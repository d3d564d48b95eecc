"""Training and compression: the seed's 784-64-10 network, pruned and quantized into the integer model.

1. Train the float network as the seed did (Keras, RMSprop, ReLU hidden layer, 50 epochs).
2. Prune the first layer by magnitude, in steps up to the target sparsity, fine-tuning with the mask fixed.
3. Quantization-aware fine-tuning: the forward pass uses weights rounded to `bits`-bit integers times a
   per-layer scale (straight-through gradients), so the network that is evaluated is the one that is compiled.
4. Fold the scales away (argmax is invariant to a positive scale, ReLU is positively homogeneous) and round
   the biases, giving integer w1, b1, w2, b2 that act on raw uint8 pixels.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from classifier.integer_model import IntegerModel

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter, not our errors
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 0.001
    weight_decay: float = 0.0  # decoupled, applied by the optimizer at each step
    sparsity: float = 0.9
    bits: int = 4
    prune_steps: int = 5
    prune_epochs: int = 3  # fine-tuning epochs after each pruning step
    quant_epochs: int = 20
    seed: int = 1
    hidden: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError("sparsity must lie in [0, 1)")
        if not 2 <= self.bits <= 16:
            raise ValueError("bits must lie in 2..16")
        if self.epochs < 1 or self.batch_size < 1 or self.hidden < 1:
            raise ValueError("epochs, batch size and hidden units must be positive")


@dataclass(frozen=True)
class TrainingResult:
    model: IntegerModel
    float_test_accuracy: float
    integer_test_accuracy: float
    seconds: float


def max_level(bits: int) -> int:
    """The largest magnitude of a signed `bits`-bit weight, symmetric around zero."""
    return 2 ** (bits - 1) - 1


def _compressed_dense_class():
    """Build the Keras layer lazily so that importing this module does not import TensorFlow."""
    import keras
    from keras import ops

    class CompressedDense(keras.layers.Layer):
        """Dense layer with a fixed pruning mask and optional straight-through weight quantization."""

        def __init__(self, units: int, levels: int, relu: bool, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units, self.levels, self.relu = units, levels, relu

        def build(self, input_shape: tuple[int, ...]) -> None:
            fan_in = int(input_shape[-1])
            self.kernel = self.add_weight(
                shape=(fan_in, self.units), initializer="glorot_uniform", name="kernel"
            )
            self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
            self.keep = self.add_weight(
                shape=(fan_in, self.units), initializer="ones", trainable=False, name="keep"
            )
            # 0.0 while training in float, 1.0 during quantization-aware fine-tuning; a variable (not a Python
            # flag) so switching it does not need the training function to be traced again.
            self.quantizing = self.add_weight(
                shape=(), initializer="zeros", trainable=False, name="quantizing"
            )

        def effective_kernel(self):
            kernel = self.kernel * self.keep
            scale = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel)), 1e-12) / self.levels)
            rounded = ops.clip(ops.round(kernel / scale), -self.levels, self.levels) * scale
            return kernel + self.quantizing * ops.stop_gradient(rounded - kernel)

        def call(self, inputs):
            outputs = ops.matmul(inputs, self.effective_kernel()) + self.bias
            return ops.relu(outputs) if self.relu else outputs

    return CompressedDense


def build_network(options: TrainingOptions, inputs: int = 784, classes: int = 10):
    import keras

    layer = _compressed_dense_class()
    levels = max_level(options.bits)
    network = keras.Sequential(
        [
            keras.Input(shape=(inputs,)),
            layer(options.hidden, levels, relu=True, name="hidden"),
            layer(classes, levels, relu=False, name="scores"),
        ]
    )
    network.compile(
        optimizer=keras.optimizers.RMSprop(
            learning_rate=options.learning_rate, weight_decay=options.weight_decay or None
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return network


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    options: TrainingOptions = TrainingOptions(),
    *,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Callable[[str], None] = print,
    verbose: int = 2,
) -> TrainingResult:
    """Train, prune, quantize and fold into an integer model; evaluate both on the test set."""
    import keras
    import tensorflow as tf

    started = time.monotonic()
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()

    extra_count = 0
    if extra is not None and len(extra[0]):
        extra_count = len(extra[0])
        x_train = np.concatenate([x_train.reshape(-1, 784), extra[0].reshape(-1, 784)])
        y_train = np.concatenate([y_train, extra[1]])
    x_fit = x_train.reshape(-1, 784).astype("float32") / 255.0
    x_eval = x_test.reshape(-1, 784).astype("float32") / 255.0
    y_fit = y_train.astype("int32")

    network = build_network(options, inputs=x_fit.shape[1], classes=10)
    hidden, scores = network.get_layer("hidden"), network.get_layer("scores")

    def fit(epochs: int, stage: str, learning_rate: float) -> None:
        """Train for `epochs`, the learning rate falling along a cosine from `learning_rate` to a tenth."""

        def rate(epoch: int) -> float:
            return learning_rate * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * epoch / max(epochs, 1))))

        progress(f"{stage}: {epochs} epoch(s), learning rate {learning_rate:g}")
        network.fit(
            x_fit,
            y_fit,
            batch_size=options.batch_size,
            epochs=epochs,
            shuffle=True,
            verbose=verbose,
            callbacks=[keras.callbacks.LearningRateScheduler(rate)],
        )

    fit(options.epochs, "float training", options.learning_rate)
    float_accuracy = float(network.evaluate(x_eval, y_test, verbose=0)[1])
    progress(f"float test accuracy {float_accuracy:.4f}")

    for step in range(1, options.prune_steps + 1):
        # Cubic schedule: prune fast while many small weights remain, gently near the target.
        target = options.sparsity * (1 - (1 - step / options.prune_steps) ** 3)
        kernel = _masked_kernel(hidden)
        hidden.keep.assign(magnitude_mask(kernel, target).astype("float32"))
        fit(options.prune_epochs, f"pruning step {step}: sparsity {target:.3f}", options.learning_rate / 2)

    for layer in (hidden, scores):
        layer.quantizing.assign(1.0)
    fit(
        options.quant_epochs,
        f"quantization-aware fine-tuning ({options.bits} bits)",
        options.learning_rate / 4,
    )

    model = fold_to_integers(
        kernel1=_masked_kernel(hidden),
        bias1=keras.ops.convert_to_numpy(hidden.bias),
        kernel2=_masked_kernel(scores),
        bias2=keras.ops.convert_to_numpy(scores.bias),
        bits=options.bits,
    )
    integer_accuracy = float(np.mean(model.predict(x_test.reshape(-1, 784)) == y_test))
    progress(f"integer test accuracy {integer_accuracy:.4f}, nonzero weights {model.nonzero_weights()}")
    per_class = {
        str(digit): float(np.mean(model.predict(x_test.reshape(-1, 784)[y_test == digit]) == digit))
        for digit in range(10)
    }
    seconds = time.monotonic() - started
    manifest = {
        "architecture": {"inputs": 784, "hidden": options.hidden, "classes": 10, "activation": "relu"},
        "sparsity": model.sparsity(),
        "nonzero_weights": model.nonzero_weights(),
        "bits": options.bits,
        "scales": model.manifest["scales"],
        "training": {
            **asdict(options),
            "optimizer": "RMSprop",
            "mnist_examples": len(x_train) - extra_count,
            "extra_examples": extra_count,
            "seconds": round(seconds, 1),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "metrics": {
            "float_test_accuracy": float_accuracy,
            "integer_test_accuracy": integer_accuracy,
            "per_class_accuracy": per_class,
            "test_examples": len(y_test),
        },
    }
    model = IntegerModel(model.w1, model.b1, model.w2, model.b2, manifest=manifest)
    return TrainingResult(model, float_accuracy, integer_accuracy, seconds)


def _masked_kernel(layer: Any) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(layer.kernel) * keras.ops.convert_to_numpy(layer.keep)


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep the largest-magnitude weights so that `sparsity` of the whole matrix is zero."""
    drop = round(sparsity * kernel.size)
    if drop <= 0:
        return np.ones_like(kernel, dtype=bool)
    order = np.argsort(np.abs(kernel), axis=None, kind="stable")
    keep = np.ones(kernel.size, dtype=bool)
    keep[order[:drop]] = False
    return keep.reshape(kernel.shape)


def fold_to_integers(
    kernel1: np.ndarray, bias1: np.ndarray, kernel2: np.ndarray, bias2: np.ndarray, bits: int
) -> IntegerModel:
    """Quantize float weights (trained on pixels / 255) into an integer model on raw uint8 pixels.

    With w1 = s1 * q1 and w2 = s2 * q2:  (x/255) @ w1 + b1 = (s1/255) * (x @ q1 + b1 * 255/s1), and the
    scores are (s1*s2/255) * (relu(x @ q1 + B1) @ q2 + b2 * 255/(s1*s2)): a positive factor that neither
    ReLU nor argmax can see.
    """
    levels = max_level(bits)
    s1 = max(float(np.abs(kernel1).max()), 1e-12) / levels
    s2 = max(float(np.abs(kernel2).max()), 1e-12) / levels
    q1 = np.clip(np.rint(kernel1 / s1), -levels, levels).astype(np.int64)
    q2 = np.clip(np.rint(kernel2 / s2), -levels, levels).astype(np.int64)
    b1 = np.rint(bias1 * 255.0 / s1).astype(np.int64)
    b2 = np.rint(bias2 * 255.0 / (s1 * s2)).astype(np.int64)
    return IntegerModel(q1, b1, q2, b2, manifest={"scales": {"layer1": s1, "layer2": s2, "input": 1 / 255}})
