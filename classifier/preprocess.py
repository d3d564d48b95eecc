"""One preprocessing path for every image people send, MNIST's own.

Grayscale, white digit on black (a light background is inverted), crop to the ink, bring a stroke far
thicker or thinner than MNIST's pens into their range, scale the longer side to 20 px keeping the aspect
ratio, paste into 28x28 with the centre of mass at the centre. Canvas drawings and
uploads both arrive as encoded image bytes and go through `preprocess_image`. What cannot be used is
refused with `ImageRejected`, whose message is written for the contributor.

A small file can hold a huge image, so the cost of an upload is bounded before any pixel is decoded: the
header gives the size, and an image whose decoding would hold more than DECODE_BUDGET bytes is refused. A
large image is brought down to at most WORKING_SIDE pixels a side while it is decoded (a JPEG by libjpeg's
own scaling, anything else strip by strip), in uint8, and only that copy is normalised, in float32.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageFilter, PngImagePlugin, UnidentifiedImageError

from classifier.errors import ImageRejected

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 4096 * 4096  # 16.8 megapixels: a 4096x4096 scan or a 12 MP (4000x3000) phone photo
# What decoding may hold at once, estimated from the header (see `_decode_cost`). With the working copy and
# the normalisation beside it, one upload then stays under 64 MB.
DECODE_BUDGET = 40 * 1024 * 1024
# A larger image is reduced to this many pixels on its longer side before normalisation: a digit that
# spans a tenth of the picture still keeps about 100 px, five times the 20 px box it is scaled into.
WORKING_SIDE = 1024
# Colour conversion runs over strips of about this many pixels, so its temporary copies stay small.
STRIP_PIXELS = 1 << 19
MIN_SIDE = 8
ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
DIGIT_BOX = 20
CANVAS = 28
# MNIST puts the centre of mass at index (14, 14) (measured on its test set: 13.99, 14.00).
# Ink is what differs from the background by more than this share of the full 0..255 range.
INK_THRESHOLD = 0.15
# Stroke width, in pixels of a frame whose longer side is STROKE_FRAME, that strokes are brought within.
# MNIST's writers used few kinds of pen: measured on 3,000 of its training digits, widths lie between 5.9
# (1st percentile) and 16.6 (95th), median 10.8. A 50 px pen on the 280 px canvas comes out at about 21 and a
# 6 px one at about 3, which the network reads less well (73.7% and 87.0% of such drawings, against 92.0%
# at the form's own 22 px pen). Within the range nothing changes.
STROKE_FRAME = 80
STROKE_WIDTH_RANGE = (5.0, 17.0)
# Bytes per pixel as Pillow holds a decoded image; every mode not listed takes 4.
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow unpacks a PNG's compressed text chunks when it reads the header, up to 64 MB by default: a 200 KB
# file could hold that much. No digit needs its text; 1 MB in all is plenty (more is refused as unreadable).
PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, 1024 * 1024)
# Pillow unpacks BMP's run-length compressions in Python, about 2 s for a 5 MB file; plain BMP is fine.
_BMP_RUN_LENGTH = {1, 2}


def preprocess_image(data: bytes) -> np.ndarray:
    """Decode image bytes and return the 28x28 uint8 MNIST-style image the network sees."""
    return normalise(decode_grayscale(data))


def decode_grayscale(data: bytes) -> np.ndarray:
    """Decode, refusing what is not a single still image of a sensible size, into uint8 grayscale 0..255
    of at most WORKING_SIDE pixels a side (a smaller image keeps its size)."""
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageRejected(
            f"The file is too large ({len(data) // 1024} KB); the limit is {MAX_BYTES // 1024} KB."
        )
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard (far above MAX_PIXELS) warns before it refuses; both are a refusal here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))  # reads the header only
            if image.format not in ACCEPTED_FORMATS or (
                image.format == "BMP" and image.info.get("compression") in _BMP_RUN_LENGTH
            ):
                raise ImageRejected("Please send a PNG or JPEG image.")
            _check_size(image)
            if getattr(image, "n_frames", 1) > 1:
                raise ImageRejected("Animated images are not accepted; send a single still image.")
            gray = _decode_reduced(image)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = _megapixels(MAX_PIXELS)
        raise ImageRejected(f"The image has too many pixels; the limit is {limit}.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise ImageRejected(
            "This file is not an image we can read (it may be damaged or truncated)."
        ) from None
    return np.asarray(gray, dtype=np.uint8)


def _check_size(image: Image.Image) -> None:
    """Refuse, from the header alone, an image too small to hold a digit or too large to decode here."""
    width, height = image.size
    pixels = width * height
    if pixels > MAX_PIXELS:
        raise ImageRejected(
            f"The image has too many pixels ({width}x{height}); the limit is {_megapixels(MAX_PIXELS)}."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageRejected(f"The image is too small; it must be at least {MIN_SIDE}x{MIN_SIDE} pixels.")
    cost = _decode_cost(image, _reduction(width, height))
    if cost > DECODE_BUDGET:
        allowed = pixels * DECODE_BUDGET // cost
        raise ImageRejected(
            f"The image has too many pixels ({width}x{height}); a {image.format} image like this one may "
            f"have at most {_megapixels(allowed)}. A smaller image, or a JPEG photo, will do."
        )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f} megapixels"


def _reduction(width: int, height: int) -> int:
    """The integer factor that brings the longer side to at most WORKING_SIDE (1 for a smaller image)."""
    return max(1, math.ceil(max(width, height) / WORKING_SIDE))


def _decode_cost(image: Image.Image, reduction: int) -> int:
    """Bytes that decoding `image` holds at once, from its header (measured with Pillow 13 on Linux)."""
    width, height = image.size
    pixels = width * height
    if image.format == "WEBP":
        # libwebp's decoder keeps two RGBA canvases and Pillow a copy of the frame: 16 bytes a pixel.
        return 16 * pixels
    if image.format == "JPEG":
        # What libjpeg writes, at the scale it decodes to (counted as colour, though it is often luma alone).
        scale = _jpeg_scale(reduction)
        cost = math.ceil(width / scale) * math.ceil(height / scale) * _STORED_BYTES.get(image.mode, 4)
        if image.info.get("progressive"):
            # A progressive JPEG keeps every DCT coefficient (2 bytes a sample) until its last scan.
            cost += 2 * math.ceil(pixels * _jpeg_samples_per_pixel(image))
        return cost
    return pixels * _STORED_BYTES.get(image.mode, 4)


def _jpeg_scale(reduction: int) -> int:
    """The power of two (at most 8) libjpeg can scale down by on its own, not past `reduction`."""
    return next(scale for scale in (8, 4, 2, 1) if scale <= reduction)


def _jpeg_samples_per_pixel(image: Image.Image) -> float:
    layers = getattr(image, "layer", None) or []
    if not layers:
        return float(len(image.getbands()))
    most = max(h for _, h, _, _ in layers) * max(v for _, _, v, _ in layers)
    return sum(h * v for _, h, v, _ in layers) / most


def _decode_reduced(image: Image.Image) -> Image.Image:
    """Decode into grayscale ("L"), reduced by an integer factor to at most WORKING_SIDE a side, upright.

    Transparent pixels are background: they are laid on white, as a viewer would show them.
    """
    reduction = _reduction(*image.size)
    if image.format == "JPEG" and reduction > 1:
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding, and gives luma alone for grayscale.
        scale = _jpeg_scale(reduction)
        image.draft("L" if image.mode == "RGB" else image.mode, (image.width // scale, image.height // scale))
    image.load()
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    reduction = _reduction(*image.size)
    width, height = image.size
    rows = max(1, STRIP_PIXELS // (width * reduction)) * reduction
    if rows >= height:
        gray = _flatten(image)
        if reduction > 1:
            gray = gray.reduce(reduction)
    else:
        gray = Image.new("L", (math.ceil(width / reduction), math.ceil(height / reduction)))
        for top in range(0, height, rows):
            strip = _flatten(image.crop((0, top, width, min(height, top + rows)))).reduce(reduction)
            gray.paste(strip, (0, top // reduction))
    method = _ORIENTATIONS.get(orientation) if isinstance(orientation, int) else None
    return gray.transpose(method) if method is not None else gray


def _flatten(image: Image.Image) -> Image.Image:
    """Grayscale, with transparency laid on white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(backdrop, rgba)
    return image.convert("L")


def normalise(gray: np.ndarray) -> np.ndarray:
    """MNIST normalisation of a grayscale image (any size, values 0..255) into 28x28 uint8.

    Works in float32 on the image (float64 would double the memory of a large one for no visible gain).
    """
    gray = np.asarray(gray)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.float32)
    background = float(np.median(border))
    ink = np.array(gray, dtype=np.float32)
    if background < 128:
        ink -= np.float32(background)
    else:
        np.subtract(np.float32(background), ink, out=ink)
    np.maximum(ink, 0, out=ink)
    peak = float(ink.max())
    if peak < INK_THRESHOLD * 255:
        raise ImageRejected("The image is blank: draw or upload a digit.")
    ink /= np.float32(peak)
    ink *= np.float32(255.0)
    ink[ink < INK_THRESHOLD * 255] = 0.0
    ink = even_strokes(_crop(ink))

    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink, mode="F").resize(size, Image.Resampling.LANCZOS))
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


def _crop(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def stroke_width(ink: np.ndarray) -> float:
    """The mean stroke width of cropped float `ink`, in pixels of a frame STROKE_FRAME pixels on its longer
    side: twice the ink's area over its outline (a stroke of width w and length L covers w * L pixels and
    has about 2 * L on its edges)."""
    return _frame_stroke_width(_to_frame(ink))


def _frame_stroke_width(frame: np.ndarray) -> float:
    mask = frame > 0.5 * frame.max()
    padded = np.pad(mask, 1)
    inner = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    area = int(mask.sum())
    return 2.0 * area / max(area - int(inner.sum()), 1)


def even_strokes(ink: np.ndarray) -> np.ndarray:
    """Cropped float `ink` with its strokes thinned or thickened into STROKE_WIDTH_RANGE (a grey-level
    erosion or dilation in the frame, a pixel a side at a time), cropped again; unchanged when they already
    lie in it, or when thinning would leave no ink."""
    framed = _to_frame(ink)
    width = _frame_stroke_width(framed)
    low, high = STROKE_WIDTH_RANGE
    # Each step moves both edges of a stroke by a pixel of the frame; the steps are counted as if the box kept
    # its size, so a thick stroke ends a little above the range's top (the box shrinks with it) and a thin one
    # a little below its bottom. Landing exactly on the range measured worse on the drawn-style set (90.55%
    # against 90.98% with the default model; README).
    steps = round((min(max(width, low), high) - width) / 2)
    if steps == 0:
        return ink
    frame = Image.fromarray(np.pad(framed, STROKE_FRAME // 4), mode="F")
    rank = ImageFilter.MaxFilter(3) if steps > 0 else ImageFilter.MinFilter(3)
    for _ in range(abs(steps)):
        frame = frame.filter(rank)
    evened = np.asarray(frame, dtype=np.float32)
    peak = float(evened.max())
    if peak <= 0:
        return ink
    evened = evened * np.float32(255.0 / peak)
    evened[evened < INK_THRESHOLD * 255] = 0.0
    return _crop(evened)


def _to_frame(ink: np.ndarray) -> np.ndarray:
    """`ink` resized so its longer side is STROKE_FRAME pixels."""
    height, width = ink.shape
    scale = STROKE_FRAME / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(ink, mode="F").resize(size, Image.Resampling.BILINEAR))


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
