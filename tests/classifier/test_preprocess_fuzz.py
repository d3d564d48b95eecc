"""Fuzzing the upload path: whatever bytes arrive, `preprocess_image` returns a 28x28 uint8 image or raises
ImageRejected (whose message is shown to the contributor), never any other exception."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from classifier.errors import ImageRejected
from classifier.preprocess import preprocess_image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (mode, formats Pillow can write it as). TIFF and ICO are readable by Pillow but not accepted by us.
MODES = {
    "1": ("PNG", "BMP", "GIF", "TIFF"),
    "L": ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"),
    "LA": ("PNG", "WEBP", "TIFF"),
    "P": ("PNG", "BMP", "GIF", "TIFF"),
    "RGB": ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "ICO"),
    "RGBA": ("PNG", "WEBP", "GIF", "TIFF", "ICO"),
    "CMYK": ("JPEG", "TIFF"),
    "I": ("TIFF",),
    "I;16": ("PNG", "TIFF"),
    "F": ("TIFF",),
}
PATTERNS = ("noise", "blank", "bar", "gradient")


def outcome(data: bytes) -> str:
    """'image' or 'rejected'; any other exception propagates and fails the test."""
    try:
        result = preprocess_image(data)
    except ImageRejected as error:
        assert str(error), "a rejection must carry a message for the contributor"
        return _counted("rejected")
    assert isinstance(result, np.ndarray)
    assert result.shape == (28, 28)
    assert result.dtype == np.uint8
    return _counted("image")


def _counted(kind: str) -> str:
    if currently_in_test_context():
        event(kind)  # the share of each outcome is shown by --hypothesis-show-statistics
    return kind


def pixel_array(mode: str, width: int, height: int, pattern: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    top = {"1": 1, "I": 70_000, "I;16": 65_535, "F": 1000}.get(mode, 255)
    shape = (height, width, bands) if bands > 1 else (height, width)
    if pattern == "noise":
        return rng.integers(0, top + 1, shape)
    if pattern == "blank":
        return np.full(shape, int(rng.integers(0, top + 1)))
    if pattern == "gradient":
        ramp = np.linspace(0, top, width)[np.newaxis, :].repeat(height, axis=0)
        return np.broadcast_to(ramp[..., np.newaxis] if bands > 1 else ramp, shape).copy()
    array = np.zeros(shape, dtype=np.int64)
    array[
        height // 4 : max(height // 4 + 1, 3 * height // 4), width // 3 : width // 3 + max(1, width // 6)
    ] = top
    return array


def make_image(mode: str, width: int, height: int, pattern: str, seed: int) -> Image.Image:
    array = pixel_array(mode, width, height, pattern, seed)
    if mode == "1":
        return Image.fromarray((array > 0).astype(np.uint8) * 255, mode="L").convert("1")
    if mode == "I":
        return Image.fromarray(array.astype(np.int32), mode="I")
    if mode == "I;16":
        return Image.fromarray(array.astype(np.uint16))  # numpy uint16 becomes mode I;16
    if mode == "F":
        return Image.fromarray(array.astype(np.float32), mode="F")
    if mode == "P":
        return Image.fromarray(array.astype(np.uint8), mode="L").convert("P")
    if mode == "CMYK":
        return Image.fromarray(array[..., :3].astype(np.uint8), mode="RGB").convert("CMYK")
    return Image.fromarray(array.astype(np.uint8), mode=mode)


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    mode = draw(st.sampled_from(sorted(MODES)))
    fmt = draw(st.sampled_from(MODES[mode]))
    width, height = draw(st.integers(1, 80)), draw(st.integers(1, 80))
    pattern = draw(st.sampled_from(PATTERNS))
    image = make_image(mode, width, height, pattern, draw(st.integers(0, 2**32 - 1)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


@st.composite
def lying_pngs(draw: st.DrawFn) -> bytes:
    """A well-formed PNG container whose header claims any size and colour type, over arbitrary data."""
    width, height = draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))
    depth, colour = draw(st.sampled_from([(8, 0), (8, 2), (8, 4), (8, 6), (16, 0), (1, 0), (8, 3)]))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    data = zlib.compress(draw(st.binary(max_size=400)))
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
    )


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\x89PNG\r\n\x1a\n")
@example(b"GIF89a")
@example(b"\xff\xd8\xff")
def test_it_survives_random_bytes(data: bytes) -> None:
    assert outcome(data) == "rejected"  # random bytes are (almost surely) never a decodable image


@FUZZ
@given(encoded_images())
def test_it_survives_small_images_in_any_mode_and_format(data: bytes) -> None:
    outcome(data)


@FUZZ
@given(encoded_images(), st.floats(0.0, 1.0, exclude_max=True))
def test_it_survives_truncated_files(data: bytes, keep: float) -> None:
    outcome(data[: int(len(data) * keep)])


@FUZZ
@given(
    encoded_images(), st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=8)
)
def test_it_survives_corrupted_bytes(data: bytes, flips: list[tuple[int, int]]) -> None:
    corrupted = bytearray(data)
    for position, value in flips:
        corrupted[position % len(corrupted)] = value
    outcome(bytes(corrupted))


@FUZZ
@given(lying_pngs())
@example(struct.pack(">I", 0))  # not even a header
def test_it_survives_headers_that_lie_about_the_size(data: bytes) -> None:
    outcome(data)


def test_the_generators_reach_both_outcomes() -> None:
    """The fuzzers above would pass vacuously if every input were rejected: a digit-like PNG from the
    same generator is accepted, a blank one refused."""
    digit = io.BytesIO()
    make_image("L", 40, 40, "bar", 0).save(digit, format="PNG")
    assert outcome(digit.getvalue()) == "image"
    blank = io.BytesIO()
    make_image("RGB", 40, 40, "blank", 0).save(blank, format="PNG")
    assert outcome(blank.getvalue()) == "rejected"
