"""The evaluation gate: a candidate is promoted only if every criterion passes, and each one is recorded.

1. MNIST, as the script executes the model (the integer network on the 10,000 test images): never below the
   floor RETRAIN_MIN_MNIST_ACCURACY, and not more than RETRAIN_MAX_ACCURACY_DROP below the active model.
2. The held-out collected images (never trained on): the candidate must be better, by a margin an exact
   one-sided McNemar test supports. Only the images the two models disagree on count: b read right by the
   candidate alone, c by the active model alone; under "no difference" each is a fair coin, so
   p = P(X >= b) for X ~ Binomial(b + c, 1/2) must be at most RETRAIN_HELDOUT_MAX_P, and b >= c always.
   Two or three images never suffice at the default 0.05 (three wins and no loss give p = 0.125).
3. The drawn-style evaluation set (`classifier.drawn`): accuracy may not fall by more than
   RETRAIN_DRAWN_MAX_DROP (default: not at all).
4. The compiled predicate of every gated digit fits RETRAIN_MAX_PREDICATE_BYTES.
The active model is measured again here, not read from its manifest. The reason names each test and its
numbers, e.g. "held-out 41/50 (was 35/50), McNemar b=8 c=2 p=0.055 > 0.05".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bounty.retraining import conf


def accuracy(model: Any, images: np.ndarray, labels: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    return float(np.mean(correct(model, images, labels)))


def correct(model: Any, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which images the model reads as their label, as booleans."""
    if len(labels) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(model.predict(np.asarray(images).reshape(-1, 784))) == np.asarray(labels)


def predicate_bytes(artifact: Path, digits: list[int]) -> dict[str, int]:
    from contracts.compiler import compile_predicate
    from contracts.model import IntegerModel

    model = IntegerModel.load(artifact)
    return {str(d): len(compile_predicate(model, d, mode="verify").script) for d in digits}


@dataclass(frozen=True)
class McNemar:
    """The exact one-sided McNemar test of "the candidate reads more images right" on paired outcomes."""

    b: int  # right by the candidate only
    c: int  # right by the active model only
    p_value: float

    @classmethod
    def of(cls, new_correct: np.ndarray, old_correct: np.ndarray) -> McNemar:
        b = int(np.sum(new_correct & ~old_correct))
        c = int(np.sum(old_correct & ~new_correct))
        return cls(b, c, mcnemar_p(b, c))


def mcnemar_p(b: int, c: int) -> float:
    """P(X >= b) for X ~ Binomial(b + c, 1/2): 1 when the models never disagree."""
    n = b + c
    return sum(math.comb(n, k) for k in range(b, n + 1)) / 2**n


@cache
def _drawn_set(path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    from classifier import drawn

    if path is not None:
        return drawn.load(path)
    built = drawn.cached()
    return built.x, built.y


def drawn_set() -> tuple[np.ndarray, np.ndarray]:
    """The drawn-style evaluation set: RETRAIN_DRAWN_SET, or the one `classifier.drawn` builds (cached)."""
    return _drawn_set(conf.drawn_set_path())


def _count(right: np.ndarray) -> str:
    return f"{int(right.sum()):,}/{len(right):,}"


def evaluate(
    old: Any | None, new: Any, new_artifact: Path, x_test: np.ndarray, y_test: np.ndarray,
    x_heldout: np.ndarray, y_heldout: np.ndarray,
) -> tuple[bool, dict[str, Any], str]:  # fmt: skip
    """(passed, the criteria as JSON, a one-line reason naming each test and its numbers)."""
    criteria: dict[str, Any] = {}
    failures: list[str] = []
    notes: list[str] = []

    margin, floor = conf.max_accuracy_drop(), conf.min_mnist_accuracy()
    new_mnist = float(np.mean(correct(new, x_test, y_test)))
    old_mnist = accuracy(old, x_test, y_test) if old is not None else None
    within_drop = old_mnist is None or new_mnist >= old_mnist - margin
    above_floor = new_mnist >= floor
    criteria["mnist_accuracy"] = {
        "old": old_mnist, "new": new_mnist, "max_drop": margin, "floor": floor,
        "passed": within_drop and above_floor,
    }  # fmt: skip
    if not within_drop:
        failures.append(
            f"MNIST test accuracy fell from {old_mnist:.2%} to {new_mnist:.2%}, more than the allowed "
            f"{margin:.2%}"
        )
    if not above_floor:
        failures.append(f"MNIST test accuracy {new_mnist:.2%} is below the floor of {floor:.2%}")
    notes.append(
        f"MNIST test accuracy {new_mnist:.2%}"
        + (f" (was {old_mnist:.2%}, floor {floor:.2%})" if old_mnist is not None else f" (floor {floor:.2%})")
    )

    new_right = correct(new, x_heldout, y_heldout)
    if old is not None:
        max_p = conf.heldout_max_p()
        old_right = correct(old, x_heldout, y_heldout)
        test = McNemar.of(new_right, old_right)
        passed = test.b >= test.c and test.p_value <= max_p
        criteria["heldout_accuracy"] = {
            "old": accuracy(old, x_heldout, y_heldout), "new": accuracy(new, x_heldout, y_heldout),
            "images": len(y_heldout), "test": "mcnemar_exact_one_sided", **asdict(test), "max_p": max_p,
            "passed": passed,
        }  # fmt: skip
        verdict = "<=" if test.p_value <= max_p else ">"
        line = (
            f"held-out {_count(new_right)} (was {_count(old_right)}), McNemar b={test.b} c={test.c} "
            f"p={test.p_value:.3g} {verdict} {max_p:g}"
        )
        if passed:
            notes.append(line)
        else:
            failures.append(line + ("" if test.b >= test.c else ", worse") + ": not promoted")
    else:
        # Nothing to compare with: the first model is judged by the floor, the drawn set and its size.
        criteria["heldout_accuracy"] = {
            "old": None, "new": accuracy(new, x_heldout, y_heldout), "images": len(y_heldout),
            "passed": True,
        }  # fmt: skip

    x_drawn, y_drawn = drawn_set()
    new_drawn = correct(new, x_drawn, y_drawn)
    allowed = conf.drawn_max_drop()
    if old is not None:
        old_drawn = correct(old, x_drawn, y_drawn)
        drawn_passed = bool(new_drawn.mean() >= old_drawn.mean() - allowed)
        line = f"drawn-style {_count(new_drawn)} (was {_count(old_drawn)})"
        if drawn_passed:
            notes.append(line)
        else:
            failures.append(line + (": worse" if allowed == 0 else f": more than {allowed:.2%} worse"))
    else:
        old_drawn, drawn_passed = None, True
        notes.append(f"drawn-style {_count(new_drawn)}")
    criteria["drawn_accuracy"] = {
        "old": float(old_drawn.mean()) if old_drawn is not None else None, "new": float(new_drawn.mean()),
        "images": len(y_drawn), "max_drop": allowed, "passed": drawn_passed,
    }  # fmt: skip

    budget = conf.max_predicate_bytes()
    sizes = predicate_bytes(new_artifact, conf.gate_digits())
    criteria["predicate_bytes"] = {
        "per_digit": sizes, "largest": max(sizes.values()), "budget": budget,
        "passed": max(sizes.values()) <= budget,
    }  # fmt: skip
    if not criteria["predicate_bytes"]["passed"]:
        failures.append(f"the predicate takes {max(sizes.values()):,} bytes, over the budget of {budget:,}")
    notes.append(f"predicate at most {max(sizes.values()):,} bytes")

    if failures:
        return False, criteria, "refused: " + "; ".join(failures)
    return True, criteria, "promoted: " + ", ".join(notes)
