"""The second opinion as the service uses it: the weights, numpy inference and the agreement check."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from classifier.errors import ModelFormatError
from classifier.second_opinion.artifact import ARRAY_NAMES, DEFAULT_PATH, read_artifact, write_artifact
from classifier.second_opinion.artifact import weights_sha256 as sha256_of
from classifier.second_opinion.network import probabilities as forward

# The agreement check also asks for this much probability on the digit: a crafted image often lands near
# a decision boundary of the second model even when it crosses it. Measured cost on MNIST test: see json.
DEFAULT_MIN_CONFIDENCE = 0.5


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

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    # -- inference (numpy only) ----------------------------------------------------------------------------

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, 10) for uint8 images (28, 28), (784,), (N, 28, 28) or (N, 784)."""
        return forward(self.weights, pixels)

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

    # -- artifact (artifact.py) ----------------------------------------------------------------------------

    def weights_sha256(self) -> str:
        return sha256_of(self.weights)

    def save(self, path: Path | str) -> Path:
        return write_artifact(path, self.weights, self.manifest)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_PATH) -> SecondOpinion:
        weights, manifest = read_artifact(path)
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
