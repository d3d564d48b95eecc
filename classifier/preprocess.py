"""One preprocessing path for every image people send, MNIST's own.

Grayscale, white digit on black (a light background is inverted), crop to the ink, scale the longer side to
20 px keeping the aspect ratio, paste into 28x28 with the centre of mass at the centre. Canvas drawings and
uploads both arrive as encoded image bytes and go through `preprocess_image`. What cannot be used is
refused with `ImageRejected`, whose message is written for the contributor.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classifier.errors import ImageRejected

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 16_000_000  # a 4000x4000 photo; Pillow's bomb guard is set to this for our decodes
MIN_SIDE = 8
ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
DIGIT_BOX = 20
CANVAS = 28
# MNIST puts the centre of mass at index (14, 14) (measured on its test set: 13.99, 14.00).
# Ink is what differs from the background by more than this share of the full 0..255 range.
INK_THRESHOLD = 0.15


def preprocess_image(data: bytes) -> np.ndarray:
    """Decode image bytes and return the 28x28 uint8 MNIST-style image the network sees."""
    return normalise(decode_grayscale(data))


def decode_grayscale(data: bytes) -> np.ndarray:
    """Decode, refusing what is not a single still image of a sensible size, into float grayscale 0..255."""
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageRejected(
            f"The file is too large ({len(data) // 1024} KB); the limit is {MAX_BYTES // 1024} KB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            try:
                image: Image.Image = Image.open(io.BytesIO(data))
                if image.format not in ACCEPTED_FORMATS:
                    raise ImageRejected("Please send a PNG or JPEG image.")
                if getattr(image, "n_frames", 1) > 1:
                    raise ImageRejected("Animated images are not accepted; send a single still image.")
                if image.width * image.height > MAX_PIXELS:
                    raise ImageRejected("The image has too many pixels.")
                image.load()
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("The image has too many pixels.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise ImageRejected(
            "This file is not an image we can read (it may be damaged or truncated)."
        ) from None
    if min(image.size) < MIN_SIDE:
        raise ImageRejected(f"The image is too small; it must be at least {MIN_SIDE}x{MIN_SIDE} pixels.")
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are background: lay the image on white, as a viewer would show it.
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(backdrop, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64)


def normalise(gray: np.ndarray) -> np.ndarray:
    """MNIST normalisation of a grayscale image (any size, values 0..255) into 28x28 uint8."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = gray - background if background < 128 else background - gray
    ink = np.clip(ink, 0, None)
    peak = float(ink.max())
    if peak < INK_THRESHOLD * 255:
        raise ImageRejected("The image is blank: draw or upload a digit.")
    ink = ink / peak * 255.0
    ink[ink < INK_THRESHOLD * 255] = 0.0
    rows, cols = np.nonzero(ink)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]

    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    box = np.clip(box, 0, None)
    if box.max() <= 0:
        raise ImageRejected("The image is blank: draw or upload a digit.")
    box = box * (255.0 / box.max())  # resampling softens the peak; MNIST's strokes reach 255

    rows_idx, cols_idx = np.indices(box.shape)
    centre_row = float((rows_idx * box).sum() / box.sum())
    centre_col = float((cols_idx * box).sum() / box.sum())
    top = _offset(CANVAS / 2 - centre_row, box.shape[0])
    left = _offset(CANVAS / 2 - centre_col, box.shape[1])
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float64)
    canvas[top : top + box.shape[0], left : left + box.shape[1]] = box
    return np.rint(canvas).astype(np.uint8)


def _offset(ideal: float, length: int) -> int:
    """Where to paste a box so its centre of mass lands at the centre, without leaving the canvas."""
    return int(min(max(round(ideal), 0), CANVAS - length))


def to_png(pixels: np.ndarray, scale: int = 1) -> bytes:
    """Encode a 28x28 uint8 image as PNG, optionally enlarged with crisp pixels (for pages and exports)."""
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8).reshape(CANVAS, CANVAS), mode="L")
    if scale > 1:
        image = image.resize((CANVAS * scale, CANVAS * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
