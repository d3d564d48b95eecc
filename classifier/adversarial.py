"""A targeted gradient-sign attack on the published integer model: the threat the service must mitigate.

The published model is in every locking script, so its weights are public. It is piecewise linear in the
pixels, `scores = relu(x @ w1 + b1) @ w2 + b2`, so on the region where the set of active hidden units is
fixed the gradient of any score difference is exact:

    d(score_t - score_o)/dx = w1[:, active] @ (w2[active, t] - w2[active, o])

The attack is iterated FGSM with projection (PGD under L_inf) on uint8 pixels: step `step` grey levels in
the direction of the sign of that gradient (o = the strongest other class), round, clip to the L_inf ball
of radius `epsilon` around the original and to 0..255, and stop as soon as the integer model says the
target. It tries a ladder of budgets from small to large and keeps the first success, so the reported
perturbation is close to the smallest this method finds. `python -m classifier.adversarial` measures it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from classifier.integer_model import IntegerModel

DEFAULT_EPSILONS = (16, 32, 48, 64, 96, 128)
DEFAULT_STEP = 4
DEFAULT_MAX_STEPS = 60


@dataclass(frozen=True)
class AttackResult:
    original: np.ndarray  # (784,) uint8
    adversarial: np.ndarray  # (784,) uint8: the image the attacker sends
    seen: np.ndarray  # (784,) uint8: what the model classifies (`adversarial` after preprocessing, if any)
    original_label: int  # what the published model said before the attack
    target: int
    success: bool  # the published model classifies `seen` as `target`
    epsilon: int  # the L_inf budget that was used (the last one tried on failure)
    steps: int

    @property
    def delta(self) -> np.ndarray:
        return self.adversarial.astype(np.int64) - self.original.astype(np.int64)

    @property
    def linf(self) -> int:
        return int(np.abs(self.delta).max())

    @property
    def l2(self) -> float:
        return float(np.linalg.norm(self.delta))

    @property
    def changed_pixels(self) -> int:
        return int(np.count_nonzero(self.delta))


def margin_and_gradient(model: IntegerModel, pixels: np.ndarray, target: int) -> tuple[int, np.ndarray]:
    """(score_target - best other score, its exact gradient in the pixels on the current linear region)."""
    x = pixels.astype(np.int64)
    pre = x @ model.w1 + model.b1
    active = pre > 0
    scores = np.maximum(pre, 0) @ model.w2 + model.b2
    others = scores.copy()
    others[target] = np.iinfo(np.int64).min
    rival = int(np.argmax(others))
    direction = model.w2[active, target] - model.w2[active, rival]
    return int(scores[target] - scores[rival]), model.w1[:, active] @ direction


Preprocess = Callable[[np.ndarray], np.ndarray]


def through_preprocessing(pixels: np.ndarray) -> np.ndarray:
    """What the service makes of a 28x28 upload (classifier.preprocess.normalise, as a flat uint8 array).
    Raises ImageRejected for an image it would refuse."""
    from classifier.preprocess import normalise

    return normalise(np.asarray(pixels, dtype=np.float64).reshape(28, 28)).reshape(-1)


class Surrogate(Protocol):
    """A second model the attacker can differentiate (see `targeted_attack(also=...)`)."""

    def accepts(self, pixels: np.ndarray, target: int) -> bool: ...

    def gradient(self, pixels: np.ndarray, target: int) -> np.ndarray: ...


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def targeted_attack(
    model: IntegerModel,
    pixels: np.ndarray,
    target: int,
    *,
    epsilons: Sequence[int] = DEFAULT_EPSILONS,
    step: int = DEFAULT_STEP,
    max_steps: int = DEFAULT_MAX_STEPS,
    preprocess: Preprocess | None = None,
    also: Surrogate | None = None,
) -> AttackResult:
    """Perturb one uint8 image (28x28 or 784) until `model` classifies it as `target`, within the first
    L_inf budget of `epsilons` that allows it. On failure `success` is False and `adversarial` is the last
    image tried under the largest budget.

    With `preprocess` (e.g. `through_preprocessing`) the attack targets what the service classifies: each
    step is projected through it (so the image stays a near fixed point of the preprocessing) and success
    means `model(preprocess(adversarial)) == target`. Without it, crafted images rarely survive the
    service's crop/rescale/threshold (measured in docs/threats.md).

    With `also` (another model the attacker can differentiate, e.g. their own CNN standing in for the
    service's private second opinion) each step follows the sum of both normalised gradients and success
    also needs that model to accept the image: a transfer attack."""
    original = np.asarray(pixels, dtype=np.uint8).reshape(-1)
    if original.shape != (model.shape[0],):
        raise ValueError(f"pixels must hold {model.shape[0]} values, got {np.asarray(pixels).shape}")
    if not 0 <= target < model.shape[2]:
        raise ValueError(f"target must be a class 0..{model.shape[2] - 1}, got {target}")
    label = int(model.predict(original))
    base = original.astype(np.int64)
    current = base
    steps = 0
    epsilon = 0
    seen = original
    for epsilon in epsilons:
        low, high = np.maximum(base - epsilon, 0), np.minimum(base + epsilon, 255)
        current = base.copy()
        for steps in range(max_steps + 1):
            candidate = current.astype(np.uint8)
            seen = candidate if preprocess is None else preprocess(candidate)
            published_says_target = int(model.predict(seen)) == target
            if published_says_target and (also is None or also.accepts(seen, target)):
                return AttackResult(original, candidate, seen, label, target, True, epsilon, steps)
            # The gradient where the model looks; preprocessing is close to the identity on its own output.
            _, gradient = margin_and_gradient(model, seen.astype(np.int64), target)
            if also is not None:
                other = also.gradient(seen, target)
                gradient = _unit(gradient.astype(np.float64)) * (not published_says_target) + _unit(other)
            if not gradient.any():
                break  # no active unit moves the margin: larger steps will not either
            current = np.clip(current + step * np.sign(gradient), low, high)
            if preprocess is not None:
                current = np.clip(preprocess(current.astype(np.uint8)).astype(np.int64), low, high)
    return AttackResult(original, current.astype(np.uint8), seen, label, target, False, epsilon, steps)


def attack_summary(results: Sequence[AttackResult]) -> dict[str, Any]:
    """Success rate and perturbation sizes (over the successful attacks)."""
    fooled = [r for r in results if r.success]
    linf = np.array([r.linf for r in fooled]) if fooled else np.zeros(0)
    l2 = np.array([r.l2 for r in fooled]) if fooled else np.zeros(0)
    changed = np.array([r.changed_pixels for r in fooled]) if fooled else np.zeros(0)

    def stats(values: np.ndarray, digits: int = 1) -> dict[str, float] | None:
        if not len(values):
            return None
        return {
            "median": round(float(np.median(values)), digits),
            "p90": round(float(np.percentile(values, 90)), digits),
            "max": round(float(values.max()), digits),
        }

    return {
        "attacks": len(results),
        "fooled": len(fooled),
        "success_rate": len(fooled) / len(results) if results else None,
        "linf_grey_levels": stats(linf),
        "l2_grey_levels": stats(l2),
        "l2_unit_scale": stats(l2 / 255.0, 2),
        "changed_pixels": stats(changed, 0),
        "epsilon_used": {
            str(e): sum(1 for r in fooled if r.epsilon == e) for e in sorted({r.epsilon for r in fooled})
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.adversarial", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--model", type=Path, default=Path(__file__).resolve().parent / "models" / "default.npz"
    )
    parser.add_argument("--count", type=int, default=200, help="MNIST test images to attack")
    parser.add_argument("--target", type=int, help="one target digit for all (default: a random other digit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from classifier.data import load_mnist

    model = IntegerModel.load(args.model)
    mnist = load_mnist()
    rng = np.random.default_rng(args.seed)
    results = []
    for index in rng.choice(len(mnist.x_test), args.count, replace=False):
        label = int(mnist.y_test[index])
        if args.target is None:
            target = int((label + rng.integers(1, 10)) % 10)
        elif args.target == label:
            continue
        else:
            target = args.target
        results.append(targeted_attack(model, mnist.x_test[index], target))
    summary = attack_summary(results)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
