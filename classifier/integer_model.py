"""The integer reference model and its artifact: exactly what the compiled script computes.

    scores = relu(x @ w1 + b1) @ w2 + b2,   prediction = argmax(scores), the first index on ties

on uint8 pixels in int64 arithmetic, with no division. The artifact format is documented in
docs/model-artifact.md; `contracts` reads the same file without importing this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.errors import ModelFormatError

FORMAT_VERSION = 1
ARRAY_NAMES = ("w1", "b1", "w2", "b2")
INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class IntegerModel:
    w1: np.ndarray  # (n, h) int64
    b1: np.ndarray  # (h,) int64
    w2: np.ndarray  # (h, k) int64
    b2: np.ndarray  # (k,) int64
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        arrays = {name: np.asarray(getattr(self, name)) for name in ARRAY_NAMES}
        for name, array in arrays.items():
            if not np.issubdtype(array.dtype, np.integer):
                raise ModelFormatError(f"{name} must hold integers, got {array.dtype}")
            object.__setattr__(self, name, array.astype(np.int64))
        if self.w1.ndim != 2 or self.w2.ndim != 2 or self.b1.ndim != 1 or self.b2.ndim != 1:
            raise ModelFormatError("w1 and w2 must be 2-D, b1 and b2 1-D")
        hidden_units, classes = self.w1.shape[1], self.w2.shape[1]
        if (
            self.b1.shape[0] != hidden_units
            or self.w2.shape[0] != hidden_units
            or self.b2.shape[0] != classes
        ):
            raise ModelFormatError(
                f"inconsistent shapes: w1 {self.w1.shape}, b1 {self.b1.shape}, "
                f"w2 {self.w2.shape}, b2 {self.b2.shape}"
            )
        if self.worst_case_magnitude() > INT64_MAX:
            raise ModelFormatError("weights are so large that int64 arithmetic could overflow")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.w1.shape[0], self.w1.shape[1], self.w2.shape[1]

    def worst_case_magnitude(self) -> int:
        """An upper bound on |any intermediate value| for every uint8 input, in exact Python integers.

        |hidden_j| <= 255 * sum_i |w1_ij| + |b1_j| and |score_c| <= sum_j hidden_j * |w2_jc| + |b2_c|.
        For the default model (6-bit weights, a few hundred nonzero weights per unit) this is about 10^8,
        far below int64's 9.2 * 10^18, so the numpy reference cannot overflow for any uint8 input.
        """
        hidden = [255 * int(np.abs(self.w1[:, j]).sum()) + abs(int(self.b1[j])) for j in range(self.shape[1])]
        scores = [
            sum(h * abs(int(self.w2[j, c])) for j, h in enumerate(hidden)) + abs(int(self.b2[c]))
            for c in range(self.shape[2])
        ]
        return max([*hidden, *scores, 0])

    def hidden(self, pixels: np.ndarray) -> np.ndarray:
        x = self._check_pixels(pixels)
        return np.maximum(x @ self.w1 + self.b1, 0)

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """Class scores for one image (n,) or a batch (N, n) / (N, 28, 28) of uint8 pixels."""
        return self.hidden(pixels) @ self.w2 + self.b2

    def predict(self, pixels: np.ndarray) -> np.ndarray | int:
        scores = self.scores(pixels)
        best = np.argmax(scores, axis=-1)  # numpy's argmax returns the first index on ties
        return int(best) if scores.ndim == 1 else best

    def _check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels)
        n = self.shape[0]
        if pixels.dtype != np.uint8:
            raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
        if pixels.shape[-2:] == (28, 28) and n == 784:
            pixels = pixels.reshape(*pixels.shape[:-2], 784)
        if pixels.shape[-1] != n or pixels.ndim not in (1, 2):
            raise ValueError(f"pixels must have shape ({n},) or (N, {n}), got {pixels.shape}")
        return pixels.astype(np.int64)

    def weights_sha256(self) -> str:
        return weights_sha256(self.w1, self.b1, self.w2, self.b2)

    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.w1) + np.count_nonzero(self.w2))

    def sparsity(self) -> float:
        return float(1 - np.count_nonzero(self.w1) / self.w1.size)

    def save(self, path: Path | str) -> Path:
        """Write the artifact (docs/model-artifact.md): the npz, and its manifest beside it as JSON."""
        path = Path(path)
        recorded = ("format_version", "architecture", "weights_sha256")
        manifest = {
            **{key: value for key, value in self.manifest.items() if key not in recorded},
            "format_version": FORMAT_VERSION,
            "architecture": dict(zip(("inputs", "hidden", "classes"), self.shape, strict=True))
            | {"activation": "relu"},
            "weights_sha256": self.weights_sha256(),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle, w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2, manifest=np.array(text)
            )
        path.with_suffix(".json").write_text(text + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> IntegerModel:
        """Read and validate an artifact (docs/model-artifact.md, "Loading"); every problem is one
        ModelFormatError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"no model file at {path}")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                missing = [name for name in (*ARRAY_NAMES, "manifest") if name not in arrays.files]
                if missing:
                    raise ModelFormatError(f"{path} is not a model artifact: missing {', '.join(missing)}")
                weights = {name: arrays[name] for name in ARRAY_NAMES}
                text = str(arrays["manifest"][()])
        except ModelFormatError:
            raise
        except Exception as error:  # numpy raises many types for a file that is not an npz
            raise ModelFormatError(
                f"{path} is not a readable model artifact ({type(error).__name__})"
            ) from None
        for name, array in weights.items():
            if array.dtype != np.int64:
                raise ModelFormatError(f"{path}: {name} must be int64, got {array.dtype}")
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelFormatError(f"{path}: the manifest is not JSON ({error.msg})") from None
        if not isinstance(manifest, dict):
            raise ModelFormatError(f"{path}: the manifest must be a JSON object")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(
                f"{path}: format_version {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}"
            )
        try:
            model = cls(**weights, manifest=manifest)
        except ModelFormatError as error:
            raise ModelFormatError(f"{path}: {error}") from None
        if manifest.get("weights_sha256") != model.weights_sha256():
            raise ModelFormatError(f"{path}: weights do not match the sha256 recorded in the manifest")
        return model


def weights_sha256(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (w1, b1, w2, b2):
        digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return digest.hexdigest()
