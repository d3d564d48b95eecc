"""How much of the attack on the published model the second opinion stops: the attack run against the bare
model and through the service's preprocessing, and a joint attack with a surrogate CNN the attacker trains
to measure transfer. `python -m classifier second-opinion evaluate|transfer` runs them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from classifier.second_opinion.artifact import ARRAY_NAMES
from classifier.second_opinion.model import DEFAULT_MIN_CONFIDENCE, SecondOpinion
from classifier.second_opinion.training import build_network, measure_genuine


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
