"""The integer model as `contracts` sees it: four int64 arrays read from the shared `.npz` artifact.

    hidden = max(0, x @ w1 + b1),  scores = hidden @ w2 + b2
    prediction = argmax(scores), the first index on ties

This is the numpy reference the compiled script must match bit for bit. It is written independently of
`classifier` (which writes the artifact; see docs/model-artifact.md): the two packages share a file format,
not code.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contracts.errors import ImageError, ModelFormatError

ARRAY_NAMES = ("w1", "b1", "w2", "b2")
FORMAT_VERSION = 1
PIXEL_MAX = 255
INT64_MAX = int(np.iinfo(np.int64).max)


def weights_sha256(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> str:
    """The manifest's `weights_sha256`: the four arrays as little-endian int64, C order, concatenated."""
    digest = hashlib.sha256()
    for array in (w1, b1, w2, b2):
        digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class IntegerModel:
    """A two-layer integer MLP of any shape (n inputs, h hidden ReLU units, k classes)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in ARRAY_NAMES:
            array = np.asarray(getattr(self, name))
            if not np.issubdtype(array.dtype, np.integer):
                raise ModelFormatError(f"{name} must hold integers, got dtype {array.dtype}")
            object.__setattr__(self, name, np.ascontiguousarray(array, dtype=np.int64))
        if self.w1.ndim != 2 or self.w2.ndim != 2 or self.b1.ndim != 1 or self.b2.ndim != 1:
            raise ModelFormatError("w1 and w2 must be 2-D and b1 and b2 1-D")
        inputs, hidden = self.w1.shape
        if inputs == 0 or hidden == 0 or self.w2.shape[1] == 0:
            raise ModelFormatError(f"empty layer: w1 {self.w1.shape}, w2 {self.w2.shape}")
        if self.b1.shape != (hidden,) or self.w2.shape[0] != hidden or self.b2.shape != (self.w2.shape[1],):
            raise ModelFormatError(
                f"inconsistent shapes: w1 {self.w1.shape}, b1 {self.b1.shape}, "
                f"w2 {self.w2.shape}, b2 {self.b2.shape}"
            )
        if self.largest_intermediate() > INT64_MAX:
            raise ModelFormatError(
                "weights so large that the int64 reference could overflow on a uint8 image"
            )

    def __eq__(self, other: object) -> bool:
        """Equal when the four arrays are equal (the manifest is information, not the model)."""
        if not isinstance(other, IntegerModel):
            return NotImplemented
        return all(np.array_equal(getattr(self, name), getattr(other, name)) for name in ARRAY_NAMES)

    def __hash__(self) -> int:
        return hash(self.weights_sha256())

    @property
    def shape(self) -> tuple[int, int, int]:
        """(inputs, hidden units, classes)."""
        return int(self.w1.shape[0]), int(self.w1.shape[1]), int(self.w2.shape[1])

    @classmethod
    def load(cls, path: str | Path) -> IntegerModel:
        """Read and validate an artifact (docs/model-artifact.md, "Loading"); every problem is one
        ModelFormatError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"{path}: no such model file")
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [name for name in (*ARRAY_NAMES, "manifest") if name not in archive.files]
                if missing:
                    raise ModelFormatError(f"{path}: missing array(s) {', '.join(missing)}")
                arrays = {name: archive[name] for name in ARRAY_NAMES}
                manifest_text = str(archive["manifest"][()])
        except ModelFormatError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise ModelFormatError(f"{path}: not a readable .npz model ({error})") from None
        for name, array in arrays.items():
            if array.dtype != np.int64:
                raise ModelFormatError(f"{path}: {name} must be int64, got {array.dtype}")
        try:
            manifest = json.loads(manifest_text)
        except json.JSONDecodeError as error:
            raise ModelFormatError(f"{path}: manifest is not JSON ({error.msg})") from None
        if not isinstance(manifest, dict):
            raise ModelFormatError(f"{path}: manifest must be a JSON object")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(
                f"{path}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        try:
            model = cls(arrays["w1"], arrays["b1"], arrays["w2"], arrays["b2"], manifest)
        except ModelFormatError as error:
            raise ModelFormatError(f"{path}: {error}") from None
        if manifest.get("weights_sha256") != model.weights_sha256():
            raise ModelFormatError(f"{path}: weights do not match the manifest's weights_sha256")
        return model

    def save(self, path: str | Path) -> Path:
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

    def weights_sha256(self) -> str:
        return weights_sha256(self.w1, self.b1, self.w2, self.b2)

    def largest_intermediate(self, pixel_max: int = PIXEL_MAX) -> int:
        """An upper bound on |any value| the network computes for pixels in 0..pixel_max (exact integers)."""
        hidden = [
            pixel_max * int(np.abs(self.w1[:, j]).sum()) + abs(int(self.b1[j])) for j in range(self.shape[1])
        ]
        scores = [
            sum(h * abs(int(self.w2[j, c])) for j, h in enumerate(hidden)) + abs(int(self.b2[c]))
            for c in range(self.shape[2])
        ]
        return max([*hidden, *scores])

    def check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels as int64 of shape (n,) or (N, n); ImageError on a wrong shape, dtype or value."""
        array = np.asarray(pixels)
        inputs = self.shape[0]
        if array.ndim not in (1, 2) or array.shape[-1] != inputs:
            raise ImageError(f"pixels must have shape ({inputs},) or (N, {inputs}), got {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise ImageError(f"pixels must be integers 0..{PIXEL_MAX}, got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() > PIXEL_MAX):
            raise ImageError(f"pixel values must lie in 0..{PIXEL_MAX}, got {array.min()}..{array.max()}")
        return array.astype(np.int64)

    def hidden(self, pixels: np.ndarray) -> np.ndarray:
        return np.maximum(self.check_pixels(pixels) @ self.w1 + self.b1, 0)

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """Class scores (int64) for one image (n,) or a batch (N, n)."""
        return self.hidden(pixels) @ self.w2 + self.b2

    def predict(self, pixels: np.ndarray) -> np.ndarray | int:
        """argmax of the scores, the first index on ties (numpy's argmax rule); an int for one image."""
        scores = self.scores(pixels)
        best = np.argmax(scores, axis=-1)
        return int(best) if scores.ndim == 1 else best.astype(np.int64)
