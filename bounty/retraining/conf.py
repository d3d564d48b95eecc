"""Settings of the retraining job: Django settings when defined there, else the environment, else defaults.

The training defaults are the classifier package's own (`TrainingOptions()`); RETRAIN_OPTIONS (a JSON object
of TrainingOptions fields) and RETRAIN_MNIST_LIMIT make a run short, for tests and trials.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from bounty.env import envint, envstr


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def min_new_images() -> int:
    return int(_setting("RETRAIN_MIN_NEW_IMAGES", envint("RETRAIN_MIN_NEW_IMAGES", 50, minimum=0)))


def heldout_percent() -> int:
    """Share of collected images (by pixel hash, so stable across runs) kept out of training, in percent."""
    return int(_setting("RETRAIN_HELDOUT_PERCENT", envint("RETRAIN_HELDOUT_PERCENT", 20, minimum=0)))


def max_accuracy_drop() -> float:
    """How far MNIST test integer accuracy may fall, in accuracy points (0.005 = half a percent)."""
    raw = _setting("RETRAIN_MAX_ACCURACY_DROP", envstr("RETRAIN_MAX_ACCURACY_DROP", "0.005"))
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"RETRAIN_MAX_ACCURACY_DROP must be a number, not {raw!r}") from None


def _fraction(name: str, default: str) -> float:
    raw = _setting(name, envstr(name, default))
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name} must be a number between 0 and 1, not {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ImproperlyConfigured(f"{name} must be a number between 0 and 1, not {raw!r}")
    return value


def min_mnist_accuracy() -> float:
    """The floor: a candidate below this integer accuracy on the MNIST test images is never promoted, however
    its predecessor did (a per-run allowance alone would let repeated seasons ratchet accuracy down)."""
    return _fraction("RETRAIN_MIN_MNIST_ACCURACY", "0.975")


def heldout_max_p() -> float:
    """The one-sided exact McNemar p-value on the held-out collected images at or below which the candidate's
    gain counts as real (1 accepts any candidate that is no worse there)."""
    return _fraction("RETRAIN_HELDOUT_MAX_P", "0.05")


def drawn_max_drop() -> float:
    """How far accuracy on the drawn-style evaluation set may fall (0: not at all)."""
    return _fraction("RETRAIN_DRAWN_MAX_DROP", "0")


def drawn_set_path() -> Path | None:
    """An npz (`x`, `y`) to use as the drawn-style set; unset, the one `classifier.drawn` builds (cached)."""
    raw = _setting("RETRAIN_DRAWN_SET", envstr("RETRAIN_DRAWN_SET", ""))
    return Path(raw) if raw else None


def max_predicate_bytes() -> int:
    return int(
        _setting("RETRAIN_MAX_PREDICATE_BYTES", envint("RETRAIN_MAX_PREDICATE_BYTES", 40_000, minimum=1))
    )


def gate_digits() -> list[int]:
    """Digits whose predicate the gate compiles and measures (all ten unless narrowed)."""
    raw = str(_setting("RETRAIN_GATE_DIGITS", envstr("RETRAIN_GATE_DIGITS", "0,1,2,3,4,5,6,7,8,9")))
    try:
        digits = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise ImproperlyConfigured(f"RETRAIN_GATE_DIGITS must list digits, not {raw!r}") from None
    if not digits or digits[0] < 0 or digits[-1] > 9:
        raise ImproperlyConfigured(f"RETRAIN_GATE_DIGITS must list digits 0..9, not {raw!r}")
    return digits


def mnist_limit() -> int:
    """Train on the first N MNIST training images (0: all 60,000)."""
    return int(_setting("RETRAIN_MNIST_LIMIT", envint("RETRAIN_MNIST_LIMIT", 0, minimum=0)))


def training_options() -> dict[str, Any]:
    raw = _setting("RETRAIN_OPTIONS", None)
    if raw is None:
        raw = json.loads(os.environ.get("RETRAIN_OPTIONS", "") or "{}")
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("RETRAIN_OPTIONS must be a JSON object of TrainingOptions fields")
    return dict(raw)


def lease_seconds() -> int:
    """How long the retraining lock lasts without a heartbeat: a crashed worker's lock expires after this."""
    return int(_setting("RETRAIN_LEASE_SECONDS", envint("RETRAIN_LEASE_SECONDS", 900, minimum=5)))


def neighbours() -> int:
    return int(_setting("RETRAIN_NEIGHBOURS", envint("RETRAIN_NEIGHBOURS", 5, minimum=1)))


def model_dir() -> Path:
    default = str(Path(settings.VAR_DIR) / "models")
    return Path(_setting("RETRAIN_MODEL_DIR", envstr("RETRAIN_MODEL_DIR", default)))


def auto_redeploy() -> bool:
    return bool(_setting("RETRAIN_AUTO_REDEPLOY", True))
