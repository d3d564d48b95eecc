"""Training and compression: the seed's 784-64-10 network, pruned and quantized into the integer model.

1. Train the float network as the seed did (Keras, RMSprop, ReLU hidden layer, 50 epochs), each epoch on
   freshly shifted and augmented images (`classifier.augment`: the digits people draw and photograph).
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

from classifier import drawn
from classifier.augment import AugmentOptions, augment_share
from classifier.integer_model import IntegerModel

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter, not our errors
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 0.001
    weight_decay: float = 0.0  # decoupled, applied by the optimizer at each step
    sparsity: float = 0.936
    bits: int = 5
    prune_steps: int = 5
    prune_epochs: int = 3  # fine-tuning epochs after each pruning step
    quant_epochs: int = 20
    seed: int = 1
    shift: int = 1  # random shift augmentation, in pixels (0: none)
    # Share of the training images changed each epoch by `classifier.augment` (thickness, shape, elastic,
    # blur, contrast), 0 for none; the ranges are AugmentOptions' defaults.
    augment: float = 0.5
    # Pruning saliency weighs each pixel by its RMS over augmented images rather than MNIST's own, so the
    # pixels that drawn digits reach but MNIST's seldom do keep their weights.
    saliency_augmented: bool = True
    hidden: int = 64
    # Each collected image (`extra`) counts this many times per epoch: a few thousand of them beside MNIST's
    # 60,000 are otherwise too few to move the network toward the digits people write. Measured by
    # benchmarks/retrain_loop.py on the drawn-style set (about 1,500 collected training images): counted once,
    # the candidate read 89.50% of the images never submitted against the default's 90.25%, and the gate
    # refused it; counted 5 times, 92.85%, MNIST 97.57%, promoted.
    extra_repeat: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError("sparsity must lie in [0, 1)")
        if not 2 <= self.bits <= 16:
            raise ValueError("bits must lie in 2..16")
        if self.epochs < 1 or self.batch_size < 1 or self.hidden < 1:
            raise ValueError("epochs, batch size and hidden units must be positive")
        if not 0.0 <= self.augment <= 1.0:
            raise ValueError("augment (the share of images augmented per epoch) must lie in [0, 1]")
        if not 1 <= self.extra_repeat <= 100:
            raise ValueError("extra_repeat (times each collected image counts per epoch) must lie in 1..100")


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
        """Dense layer with a fixed pruning mask and optional straight-through weight quantization.

        The fake quantization is the same arithmetic as `quantize` below, which folds the trained weights
        into integers, so the network fine-tuned here is the integer network that gets compiled.
        """

        def __init__(
            self,
            units: int,
            levels: int,
            relu: bool,
            per_column: bool,
            row_factors: Callable[[], Any] | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.units, self.levels, self.relu = units, levels, relu
            self.per_column, self.row_factors = per_column, row_factors

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

        def column_scales(self):
            """Per-output scales of the quantized kernel (one value repeated when the layer has one scale)."""
            kernel = ops.abs(self.kernel * self.keep)
            if self.row_factors is not None:
                kernel = kernel * ops.expand_dims(self.row_factors(), 1)
            peak = ops.max(kernel, axis=0) if self.per_column else ops.max(kernel) * ops.ones((self.units,))
            return ops.stop_gradient(ops.maximum(peak, 1e-12) / self.levels)

        def effective_kernel(self):
            kernel = self.kernel * self.keep
            rows = (
                1.0 if self.row_factors is None else ops.stop_gradient(ops.expand_dims(self.row_factors(), 1))
            )
            scales = self.column_scales()
            rounded = ops.clip(ops.round(kernel * rows / scales), -self.levels, self.levels) * scales / rows
            return kernel + self.quantizing * ops.stop_gradient(rounded - kernel)

        def call(self, inputs):
            outputs = ops.matmul(inputs, self.effective_kernel()) + self.bias
            return ops.relu(outputs) if self.relu else outputs

    return CompressedDense


def build_network(options: TrainingOptions, inputs: int = 784, classes: int = 10):
    import keras

    layer = _compressed_dense_class()
    levels = max_level(options.bits)
    # Layer 1 gets one scale per hidden unit; folding it into the integer model multiplies row j of
    # layer 2 by that scale, so layer 2 is quantized as those scaled rows with one scale (`fold_to_integers`).
    hidden = layer(options.hidden, levels, relu=True, per_column=True, name="hidden")
    scores = layer(classes, levels, relu=False, per_column=False, row_factors=lambda: hidden.column_scales(),
                   name="scores")  # fmt: skip
    network = keras.Sequential([keras.Input(shape=(inputs,)), hidden, scores])
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
) -> TrainingResult:
    """Train, prune, quantize and fold into an integer model; evaluate both on the test set."""
    import keras
    import tensorflow as tf

    started = time.monotonic()
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()

    mnist_count, extra_count = len(x_train), 0
    if extra is not None and len(extra[0]):
        extra_count = len(extra[0])
        repeat = options.extra_repeat
        x_train = np.concatenate([x_train.reshape(-1, 784), np.tile(extra[0].reshape(-1, 784), (repeat, 1))])
        y_train = np.concatenate([y_train, np.tile(extra[1], repeat)])
    x_fit = x_train.reshape(-1, 784).astype("float32") / 255.0
    x_eval = x_test.reshape(-1, 784).astype("float32") / 255.0
    y_fit = y_train.astype("int32")

    network = build_network(options, inputs=x_fit.shape[1], classes=10)
    hidden, scores = network.get_layer("hidden"), network.get_layer("scores")

    images = x_train.reshape(-1, 28, 28)
    pixel_rms = np.sqrt(np.mean(np.square(x_fit), axis=0))
    if options.saliency_augmented and options.augment:
        sample = augment_share(images, np.random.default_rng([options.seed, 17]), AugmentOptions(share=1.0))
        pixel_rms = np.sqrt(np.mean(np.square(sample.reshape(len(sample), -1) / 255.0), axis=0))
    shifts = np.random.default_rng(options.seed)
    # Its own generator, so the shifts draw the same numbers with or without augmentation.
    augmenting = np.random.default_rng([options.seed, 16])
    augment_options = AugmentOptions(share=options.augment)

    def fit(epochs: int, stage: str, learning_rate: float) -> None:
        """Train for `epochs`, the learning rate falling along a cosine from `learning_rate` to a tenth.

        Each epoch sees every image moved by a fresh random shift of up to `options.shift` pixels: people's
        digits are never centred quite like MNIST's, and the pruned network generalises better for it. A
        share `options.augment` of the images is first redrawn thicker or thinner, warped, blurred or
        faded (`classifier.augment`), as the digits people draw and photograph are.
        """
        progress(f"{stage}: {epochs} epoch(s), learning rate {learning_rate:g}")
        for epoch in range(epochs):
            rate = learning_rate * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))
            network.optimizer.learning_rate.assign(rate)
            source = augment_share(images, augmenting, augment_options) if options.augment else images
            x_epoch = (
                random_shifts(source, shifts, options.shift)
                if options.shift
                else source.reshape(len(source), -1).astype("float32") / 255.0
            )
            history = network.fit(
                x_epoch, y_fit, batch_size=options.batch_size, epochs=1, shuffle=True, verbose=0
            ).history
            progress(
                f"  epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}, "
                f"accuracy {history['accuracy'][-1]:.4f}"
            )

    fit(options.epochs, "float training", options.learning_rate)
    float_accuracy = float(network.evaluate(x_eval, y_test, verbose=0)[1])
    progress(f"float test accuracy {float_accuracy:.4f}")

    for step in range(1, options.prune_steps + 1):
        # Cubic schedule: prune fast while many small weights remain, gently near the target.
        target = options.sparsity * (1 - (1 - step / options.prune_steps) ** 3)
        # Saliency, not bare magnitude: a weight matters as much as the pixel it multiplies is usually
        # bright, so weights on pixels that are almost always black go first.
        saliency = _masked_kernel(hidden) * pixel_rms[:, None]
        hidden.keep.assign(magnitude_mask(saliency, target).astype("float32"))
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
    integer_predictions = np.asarray(model.predict(x_test.reshape(-1, 784)))
    integer_accuracy = float(np.mean(integer_predictions == y_test))
    # How often the fine-tuned (fake-quantized) network and the folded integer model agree: only bias
    # rounding separates them, so anything below ~99.9% would mean the folding is wrong.
    network_predictions = network.predict(x_eval, verbose=0).argmax(axis=1)
    agreement = float(np.mean(network_predictions == integer_predictions))
    progress(f"integer test accuracy {integer_accuracy:.4f}, nonzero weights {model.nonzero_weights()}")
    per_class = {
        str(digit): float(np.mean(integer_predictions[y_test == digit] == digit)) for digit in range(10)
    }
    # The drawn-style set (digits as people draw, type and photograph them) beside MNIST: what augmentation
    # is for, and what the /models/ page shows for the version.
    drawn_accuracy = drawn.family_accuracy(model, drawn.cached())
    progress(f"drawn-style accuracy {drawn_accuracy['all']:.4f}")
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
            "mnist_examples": mnist_count,
            "extra_examples": extra_count,
            "seconds": round(seconds, 1),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "metrics": {
            "float_test_accuracy": float_accuracy,
            "integer_test_accuracy": integer_accuracy,
            "network_integer_agreement": agreement,
            "per_class_accuracy": per_class,
            "test_examples": len(y_test),
            "drawn_accuracy": drawn_accuracy["all"],
            "drawn_accuracy_per_family": {k: v for k, v in drawn_accuracy.items() if k != "all"},
        },
    }
    model = IntegerModel(model.w1, model.b1, model.w2, model.b2, manifest=manifest)
    return TrainingResult(model, float_accuracy, integer_accuracy, seconds)


def random_shifts(images: np.ndarray, rng: np.random.Generator, limit: int) -> np.ndarray:
    """Every (N, 28, 28) image (0..255) moved by its own random offset in [-limit, limit]^2, as (N, 784)
    floats in 0..1."""
    count, height, width = images.shape
    padded = np.pad(images, ((0, 0), (limit, limit), (limit, limit)))
    offsets = rng.integers(-limit, limit + 1, size=(count, 2))
    moved = np.empty_like(images)
    for dy in range(-limit, limit + 1):
        for dx in range(-limit, limit + 1):
            chosen = np.flatnonzero((offsets[:, 0] == dy) & (offsets[:, 1] == dx))
            top, left = limit - dy, limit - dx
            moved[chosen] = padded[chosen, top : top + height, left : left + width]
    return moved.reshape(count, -1).astype("float32") / 255.0


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

    Layer 1 has a scale per hidden unit: w1[:, j] = s1_j * q1[:, j], so hidden unit j of the float network is
    (s1_j / 255) * relu(x @ q1[:, j] + B1_j) with B1_j = b1_j * 255 / s1_j. That factor moves into row j of
    layer 2, which is then quantized with one scale s2: w2[j] * s1_j / 255 = s2 * q2[j], B2 = b2 / s2. The
    float scores equal s2 * (relu(x @ q1 + B1) @ q2 + B2): a positive factor neither ReLU nor argmax can see.
    """
    levels = max_level(bits)
    s1 = np.maximum(np.abs(kernel1).max(axis=0), 1e-12) / levels
    q1 = np.clip(np.rint(kernel1 / s1), -levels, levels).astype(np.int64)
    rows = (s1 / 255.0)[:, None]
    s2 = max(float(np.abs(kernel2 * rows).max()), 1e-12) / levels
    q2 = np.clip(np.rint(kernel2 * rows / s2), -levels, levels).astype(np.int64)
    b1 = np.rint(bias1 / rows[:, 0]).astype(np.int64)
    b2 = np.rint(bias2 / s2).astype(np.int64)
    scales = {"layer1_per_unit": s1.tolist(), "layer2": s2, "input": 1 / 255}
    return IntegerModel(q1, b1, q2, b2, manifest={"scales": scales})
