"""The second opinion's artifact: one `.npz` (`allow_pickle=False`) holding the eight float32 weight arrays
and a JSON `manifest` (with `format_version` and the `weights_sha256` of the arrays), the manifest also
written beside it as `<name>.json` for people and reviews.

`read_artifact` refuses a missing file, a file that is not an npz, missing arrays and another
`format_version`; `SecondOpinion.load` also refuses weights that do not match the recorded sha256. Each is
a `ModelFormatError` that says which.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from classifier.errors import ModelFormatError

FORMAT_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "models" / "second_opinion.npz"
ARRAY_NAMES = ("conv1_w", "conv1_b", "conv2_w", "conv2_b", "dense1_w", "dense1_b", "dense2_w", "dense2_b")


def weights_sha256(weights: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in ARRAY_NAMES:
        digest.update(np.ascontiguousarray(weights[name], dtype="<f4").tobytes())
    return digest.hexdigest()


def write_artifact(path: Path | str, weights: Mapping[str, np.ndarray], manifest: Mapping[str, Any]) -> Path:
    path = Path(path)
    recorded = {**manifest, "format_version": FORMAT_VERSION, "weights_sha256": weights_sha256(weights)}
    text = json.dumps(recorded, indent=2, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {name: weights[name] for name in ARRAY_NAMES}
    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays, manifest=np.array(text))
    path.with_suffix(".json").write_text(text + "\n")
    return path


def read_artifact(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The weights and the manifest of the artifact at `path`, checked (see the module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"no second-opinion model at {path}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [name for name in (*ARRAY_NAMES, "manifest") if name not in arrays.files]
            if missing:
                raise ModelFormatError(f"{path} is not a second-opinion model: missing {', '.join(missing)}")
            weights = {name: arrays[name] for name in ARRAY_NAMES}
            manifest = json.loads(str(arrays["manifest"]))
    except ModelFormatError:
        raise
    except Exception as error:  # numpy raises many types for a file that is not an npz
        raise ModelFormatError(f"{path} is not a readable npz ({type(error).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise ModelFormatError(f"{path}: format_version {found!r}, this code reads {FORMAT_VERSION}")
    return weights, manifest
