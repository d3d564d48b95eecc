"""Images of the service: preprocessing through `classifier`, hashes for duplicate checks, PNG rendering.

Every image, drawn or uploaded, goes through `classifier.preprocess.preprocess_image`, the same MNIST
preprocessing the model was trained on; this module only adds what the service needs around it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

DATA_URL_PREFIXES = ("data:image/png;base64,", "data:image/jpeg;base64,")


class ImageProblem(ValueError):
    """The image cannot be used; the message is shown to the contributor."""


def preprocess(data: bytes) -> np.ndarray:
    """The 28x28 uint8 image the network sees, or ImageProblem with the reason in plain words."""
    from classifier.preprocess import ImageRejected, preprocess_image

    try:
        pixels = preprocess_image(data)
    except ImageRejected as error:
        raise ImageProblem(str(error)) from None
    pixels = np.asarray(pixels, dtype=np.uint8)
    if pixels.shape != (28, 28):
        raise ImageProblem("the image could not be reduced to 28x28 pixels")
    return pixels


def decode_data_url(value: str) -> bytes:
    """The bytes of a canvas drawing sent as a PNG/JPEG data URL."""
    for prefix in DATA_URL_PREFIXES:
        if value.startswith(prefix):
            try:
                return base64.b64decode(value[len(prefix) :], validate=True)
            except (binascii.Error, ValueError):
                break
    raise ImageProblem("the drawing could not be read; please draw again")


def pixel_sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def perceptual_hash(pixels: np.ndarray) -> str:
    """A 256-bit average hash: which cells of the image shrunk to 16x16 hold ink (mean above 64 of 255).

    Preprocessing already centres and scales every digit, so this grid is a stable summary: a re-saved or
    lightly touched image lies within a few bits of its original. Different drawings of a plain "1" can too,
    so the hash only finds candidates and `mean_abs_difference` decides (measured on 2,000 MNIST test
    images: distinct images differ by at least 2.4 grey levels on average, noise-touched copies by under 0.6).
    """
    small = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).resize((16, 16), Image.Resampling.BOX)
    bits = (np.asarray(small, dtype=np.int16) > 64).flatten()
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):064x}"


# The near-duplicate hash: 64 sign bits of fixed projections of the blurred image (SimHash on whitened data).
# The projection (`benchmarks/near_duplicates.py --write` derives it from the MNIST training images: their 64
# principal components of the blurred images, scaled to unit variance, turned by a seeded random rotation,
# rounded to int8) makes the bits balanced and nearly uncorrelated, so an exact match on a 16-bit band is
# selective (the 256-bit average hash's bits are neither, and bands of it match hundreds of rows). Each bit's
# threshold is its projection's median over those images. Integer arithmetic throughout: a hash never
# depends on the platform or a library's floating point, and stored hashes stay valid.
NEAR_HASH_BITS = 64
NEAR_HASH_BANDS = 4  # 16 bits each: two hashes at most 3 bits apart agree exactly on at least one band
NEAR_HASH_BAND_BITS = NEAR_HASH_BITS // NEAR_HASH_BANDS
NEAR_HASH_MAX_DISTANCE = NEAR_HASH_BANDS - 1  # what the bands guarantee to find (pigeonhole)
PROJECTION_FILE = Path(__file__).with_name("near_duplicate_projection.npz")
_BLUR = np.array([1, 4, 6, 4, 1], dtype=np.int64)  # binomial, a 5x5 Gaussian's integer stand-in


def blurred(pixels: np.ndarray) -> np.ndarray:
    """Images (..., 28, 28) uint8 -> (n, 784) int64 blurred by the 5x5 binomial kernel (sum 256), zero
    padded: a stroke that moves by a fraction of a pixel moves the hash's inputs only a little."""
    batch = np.asarray(pixels, dtype=np.int64).reshape(-1, 28, 28)
    padded = np.pad(batch, ((0, 0), (2, 2), (2, 2)))
    rows = sum(weight * padded[:, :, i : i + 28] for i, weight in enumerate(_BLUR))
    both = sum(weight * rows[:, i : i + 28, :] for i, weight in enumerate(_BLUR))
    return np.asarray(both).reshape(len(batch), 784)


@functools.cache
def near_hash_projection() -> tuple[np.ndarray, np.ndarray]:
    """(64 x 784 int64 projection, 64 int64 thresholds), from PROJECTION_FILE."""
    with np.load(PROJECTION_FILE) as stored:
        projection = stored["projection"].astype(np.int64)
        thresholds = stored["thresholds"].astype(np.int64)
    if projection.shape != (NEAR_HASH_BITS, 784) or thresholds.shape != (NEAR_HASH_BITS,):
        raise ValueError(f"{PROJECTION_FILE.name} holds no {NEAR_HASH_BITS}-bit projection")
    return projection, thresholds


def near_hashes(pixels: np.ndarray) -> list[int]:
    """The 64-bit near-duplicate hash of each image in a batch (..., 28, 28): bit i is set when projection i
    of the blurred image exceeds its threshold."""
    projection, thresholds = near_hash_projection()
    # In float64 for BLAS speed, and still exact: every product and partial sum is an integer below
    # 784 x 65,280 x 127 < 2**53.
    products = blurred(pixels).astype(np.float64) @ projection.T.astype(np.float64)
    bits = products > thresholds
    weights = np.left_shift(np.uint64(1), np.arange(NEAR_HASH_BITS, dtype=np.uint64))
    return [int(value) for value in (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)]


def near_hash(pixels: np.ndarray | bytes) -> int:
    array = np.frombuffer(bytes(pixels), dtype=np.uint8) if isinstance(pixels, bytes | memoryview) else pixels
    return near_hashes(np.asarray(array, dtype=np.uint8).reshape(28, 28))[0]


def near_hash_bands(value: int) -> tuple[int, ...]:
    """The hash cut into NEAR_HASH_BANDS integers of NEAR_HASH_BAND_BITS bits, lowest bits first."""
    mask = (1 << NEAR_HASH_BAND_BITS) - 1
    return tuple((value >> (band * NEAR_HASH_BAND_BITS)) & mask for band in range(NEAR_HASH_BANDS))


def mean_abs_difference(a: bytes, b: bytes) -> float:
    first = np.frombuffer(bytes(a), dtype=np.uint8).astype(np.int16)
    second = np.frombuffer(bytes(b), dtype=np.uint8).astype(np.int16)
    return float(np.abs(first - second).mean())


def png_bytes(pixels: bytes | np.ndarray, scale: int = 1) -> bytes:
    array = np.frombuffer(bytes(pixels), dtype=np.uint8) if isinstance(pixels, bytes | memoryview) else pixels
    image = Image.fromarray(np.asarray(array, dtype=np.uint8).reshape(28, 28))
    if scale > 1:
        image = image.resize((28 * scale, 28 * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_data_url(pixels: bytes | np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode()
