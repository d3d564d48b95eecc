"""The evaluation gate: a candidate is promoted only if every criterion passes, and each one is recorded.

1. Integer accuracy on the 10,000 MNIST test images may fall by at most RETRAIN_MAX_ACCURACY_DROP.
2. Accuracy on the held-out collected images (never trained on) may not fall at all.
3. The compiled predicate of every gated digit fits RETRAIN_MAX_PREDICATE_BYTES.
Accuracies of the old model are measured again here, not read from its manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bounty.retraining import conf


def accuracy(model: Any, images: np.ndarray, labels: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    return float(np.mean(np.asarray(model.predict(images.reshape(-1, 784))) == labels))


def predicate_bytes(artifact: Path, digits: list[int]) -> dict[str, int]:
    from contracts.compiler import compile_predicate
    from contracts.model import IntegerModel

    model = IntegerModel.load(artifact)
    return {str(d): len(compile_predicate(model, d, mode="verify").script) for d in digits}


def evaluate(
    old: Any | None, new: Any, new_artifact: Path, x_test: np.ndarray, y_test: np.ndarray,
    x_heldout: np.ndarray, y_heldout: np.ndarray,
) -> tuple[bool, dict[str, Any], str]:  # fmt: skip
    """(passed, the criteria as JSON, a one-line reason)."""
    criteria: dict[str, Any] = {}
    margin = conf.max_accuracy_drop()
    new_mnist = accuracy(new, x_test, y_test)
    old_mnist = accuracy(old, x_test, y_test) if old is not None else None
    criteria["mnist_accuracy"] = {
        "old": old_mnist, "new": new_mnist, "max_drop": margin,
        "passed": old_mnist is None or (new_mnist is not None and new_mnist >= old_mnist - margin),
    }  # fmt: skip
    new_heldout = accuracy(new, x_heldout, y_heldout)
    old_heldout = accuracy(old, x_heldout, y_heldout) if old is not None else None
    criteria["heldout_accuracy"] = {
        "old": old_heldout, "new": new_heldout, "images": len(y_heldout),
        "passed": old_heldout is None or new_heldout is None or new_heldout >= old_heldout,
    }  # fmt: skip
    budget = conf.max_predicate_bytes()
    sizes = predicate_bytes(new_artifact, conf.gate_digits())
    criteria["predicate_bytes"] = {
        "per_digit": sizes, "largest": max(sizes.values()), "budget": budget,
        "passed": max(sizes.values()) <= budget,
    }  # fmt: skip
    failures = []
    if not criteria["mnist_accuracy"]["passed"]:
        failures.append(
            f"MNIST test accuracy fell from {old_mnist:.2%} to {new_mnist:.2%}, more than the allowed "
            f"{margin:.2%}"
        )
    if not criteria["heldout_accuracy"]["passed"]:
        failures.append(
            f"held-out collected accuracy fell from {old_heldout:.2%} to {new_heldout:.2%} "
            f"on {len(y_heldout)} images"
        )
    if not criteria["predicate_bytes"]["passed"]:
        failures.append(f"the predicate takes {max(sizes.values()):,} bytes, over the budget of {budget:,}")
    if failures:
        return False, criteria, "refused: " + "; ".join(failures)
    summary = f"MNIST test accuracy {new_mnist:.2%}"
    if old_mnist is not None:
        summary += f" (was {old_mnist:.2%})"
    if new_heldout is not None:
        summary += (
            f", held-out collected {new_heldout:.2%} (was {old_heldout:.2%}) on {len(y_heldout)} images"
        )
    summary += f", predicate at most {max(sizes.values()):,} bytes"
    return True, criteria, "promoted: " + summary
