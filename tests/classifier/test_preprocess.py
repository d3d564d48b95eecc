"""Preprocessing: one MNIST-style path for drawings and uploads, and clear refusals."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile

from classifier import preprocess
from classifier.errors import ImageRejected
from classifier.preprocess import preprocess_image, to_png


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def bar_image(size=(200, 120), background=0, ink=255, box=(20, 30, 60, 100)) -> Image.Image:
    """A filled rectangle of ink, off centre, on a plain background."""
    array = np.full(size[::-1], background, dtype=np.uint8)
    left, top, right, bottom = box
    array[top:bottom, left:right] = ink
    return Image.fromarray(array, mode="L")


def truncated_png() -> bytes:
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    data = encode(Image.fromarray(noisy, mode="L"))
    return data[: len(data) // 2]


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(pixels.shape)
    total = pixels.sum()
    return float((rows * pixels).sum() / total), float((cols * pixels).sum() / total)


def test_it_centres_the_ink_by_its_centre_of_mass():
    out = preprocess_image(encode(bar_image()))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    row, col = centre_of_mass(out.astype(float))
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5


def test_it_scales_the_longer_side_to_twenty_pixels():
    out = preprocess_image(encode(bar_image(box=(20, 30, 60, 100))))  # 40 wide, 70 tall
    rows, cols = np.nonzero(out)
    assert rows.max() - rows.min() + 1 == 20
    assert 10 <= cols.max() - cols.min() + 1 <= 13  # 40/70 of 20 is 11.4, plus resampling blur


def test_it_inverts_a_light_background():
    dark = preprocess_image(encode(bar_image(background=0, ink=255)))
    light = preprocess_image(encode(bar_image(background=255, ink=0)))
    assert np.array_equal(dark, light)
    assert dark[0, 0] == 0 and dark.max() == 255


def test_it_reads_dark_strokes_on_a_transparent_canvas_as_a_digit():
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # opaque black stroke, the rest fully transparent
    out = preprocess_image(encode(Image.fromarray(rgba, mode="RGBA")))
    assert out.max() == 255 and out[0, 0] == 0


def test_it_keeps_mnist_digits_as_they_are(mnist):
    for image in mnist.x_test[:20]:
        out = preprocess_image(to_png(image, scale=4))
        assert np.abs(out.astype(int) - image).mean() < 25


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not an image at all", "not an image"),
        (truncated_png(), "not an image"),
        (encode(Image.new("L", (64, 64), 0)), "blank"),
        (encode(Image.new("L", (64, 64), 255)), "blank"),
        (encode(Image.new("RGB", (64, 64), (30, 30, 30))), "blank"),
        (encode(Image.new("L", (1, 1), 255)), "too small"),
        (encode(Image.new("L", (64, 64), 0), "TIFF"), "PNG or JPEG"),
    ],
    ids=["empty", "text", "truncated", "black", "white", "grey", "one-pixel", "tiff"],
)
def test_it_refuses_unusable_files_with_a_clear_message(data, message):
    with pytest.raises(ImageRejected, match=message):
        preprocess_image(data)


def test_it_refuses_an_animated_gif():
    frames = [bar_image(), bar_image(box=(50, 10, 90, 60))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageRejected, match="Animated"):
        preprocess_image(data)


def test_it_refuses_a_decompression_bomb():
    # 5000x5000 of one colour compresses to a few KB but would decode to 25 megapixels.
    data = encode(Image.new("L", (5000, 5000), 0), optimize=True)
    assert len(data) < preprocess.MAX_BYTES
    with pytest.raises(ImageRejected, match="too many pixels"):
        preprocess_image(data)


def test_it_refuses_a_file_over_the_byte_limit():
    with pytest.raises(ImageRejected, match="too large"):
        preprocess_image(b"\x89PNG" + b"\0" * preprocess.MAX_BYTES)


def test_it_reads_jpeg_photos_of_dark_ink_on_paper():
    photo = bar_image(background=230, ink=40).convert("RGB")
    out = preprocess_image(encode(photo, "JPEG", quality=85))
    assert out.max() == 255 and out[0, 0] == 0


def test_png_enlargement_keeps_crisp_pixels():
    pixels = np.arange(784, dtype=np.uint32).reshape(28, 28) % 256
    image = np.asarray(Image.open(io.BytesIO(to_png(pixels.astype(np.uint8), scale=3))))
    assert image.shape == (84, 84)
    assert np.array_equal(image[::3, ::3], pixels)


def refuse_decoding(monkeypatch) -> None:
    """Make any pixel decoding fail the test: what is refused must be refused from the header."""

    def load(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_it_refuses_an_image_over_the_pixel_cap_from_its_header(monkeypatch):
    data = encode(Image.new("L", (4097, 4096), 255), optimize=True)
    refuse_decoding(monkeypatch)
    with pytest.raises(ImageRejected, match=r"too many pixels \(4097x4096\); the limit is 16.8 megapixels"):
        preprocess_image(data)


def test_it_refuses_a_colour_png_too_large_to_decode_from_its_header(monkeypatch):
    # 3239x3239 is under the pixel cap, but Pillow holds colour at 4 bytes a pixel: 42 MB, over the budget.
    data = encode(
        bar_image(size=(3239, 3239), background=255, ink=0, box=(1400, 1000, 1800, 2200)).convert("RGBA")
    )
    refuse_decoding(monkeypatch)
    with pytest.raises(
        ImageRejected, match=r"too many pixels \(3239x3239\); a PNG .* at most 10.5 megapixels"
    ):
        preprocess_image(data)


def difference_up_to_a_pixel(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two 28x28 images, the smaller over shifting one by at most a pixel
    (a centre of mass at x.5 may round either way)."""
    padded = np.pad(b.astype(int), 1)
    shifts = [padded[1 + dy : 29 + dy, 1 + dx : 29 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return min(float(np.abs(a.astype(int) - shifted).mean()) for shifted in shifts)


def test_it_reads_a_large_scan_as_it_would_at_full_resolution(mnist):
    for image in mnist.x_test[:10]:
        scan = encode(Image.fromarray(255 - image).resize((2800, 2800), Image.Resampling.BICUBIC))
        gray = preprocess.decode_grayscale(scan)
        assert gray.dtype == np.uint8 and gray.shape == (934, 934)  # reduced by 3 while decoding
        full = preprocess.normalise(np.asarray(Image.open(io.BytesIO(scan)).convert("L")))
        assert difference_up_to_a_pixel(preprocess.normalise(gray), full) < 1


def test_it_turns_a_reduced_photo_upright_by_its_exif_orientation():
    stored = bar_image(size=(4000, 3000), background=230, ink=40, box=(1000, 1400, 3000, 1600)).convert("RGB")
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # the camera was turned: show the stored pixels rotated 90 degrees
    tagged = encode(stored, "JPEG", quality=90, exif=exif)
    upright = encode(stored.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=90)
    gray = preprocess.decode_grayscale(tagged)
    assert gray.shape == (1000, 750)
    assert difference_up_to_a_pixel(preprocess.normalise(gray), preprocess_image(upright)) < 1


def run_length_bmp(width: int = 64, height: int = 64) -> bytes:
    """An 8-bit BMP compressed with RLE8: a white page with a black vertical bar."""
    body = bytearray()
    for _ in range(height):
        body += bytes([20, 255, 8, 0, width - 28, 255, 0, 0])  # runs of 20 white, 8 black, the rest white
    body += b"\x00\x01"
    palette = b"".join(bytes([c, c, c, 0]) for c in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + bytes(body)


def test_it_refuses_a_run_length_compressed_bmp():
    assert Image.open(io.BytesIO(run_length_bmp())).info["compression"] == 1  # the file is what it claims
    with pytest.raises(ImageRejected, match="PNG or JPEG"):
        preprocess_image(run_length_bmp())


def test_it_refuses_a_png_whose_text_unpacks_past_a_megabyte():
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = encode(bar_image())
    text = b"".join(chunk(b"zTXt", b"note%d\0\0" % i + zlib.compress(b"a" * 1_000_000, 9)) for i in range(3))
    data = png[:33] + text + png[33:]  # after the 8-byte signature and the 25-byte IHDR chunk
    assert len(data) < 20_000
    with pytest.raises(ImageRejected, match="not an image we can read"):
        preprocess_image(data)


def pen_drawing(width: int) -> np.ndarray:
    """A 7 drawn on the web form's 280x280 canvas with a round pen `width` pixels wide."""
    from PIL import ImageDraw

    canvas = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(canvas).line([(80, 60), (200, 60), (130, 230)], fill=255, width=width, joint="curve")
    return np.asarray(canvas)


def evened_width(out: np.ndarray) -> float:
    return preprocess.stroke_width(preprocess._crop(out.astype(np.float32)))


@pytest.mark.parametrize("pen", [4, 50, 70])
def test_a_pen_far_thicker_or_thinner_than_mnists_comes_out_in_its_range(pen):
    drawing = pen_drawing(pen)
    before = preprocess.stroke_width(preprocess._crop(drawing.astype(np.float32)))
    low, high = preprocess.STROKE_WIDTH_RANGE
    assert not low <= before <= high, "the drawing starts outside the range"
    evened = preprocess.stroke_width(preprocess.even_strokes(preprocess._crop(drawing.astype(np.float32))))
    # Counted as if the box kept its size: a thick stroke ends a little above the top, a thin one below.
    assert low - 2 <= evened <= high + 3
    assert abs(evened - (low + high) / 2) < abs(before - (low + high) / 2)
    out = preprocess.normalise(drawing)
    assert out.max() == 255 and (out > 0).sum() >= 40  # still a digit, scaled and centred as any other


def test_a_pen_within_mnists_range_is_left_alone(mnist):
    drawing = pen_drawing(22)  # the form's own pen
    crop = preprocess._crop(drawing.astype(np.float32))
    assert preprocess.even_strokes(crop) is crop
    # MNIST's own digits: all but its thickest few are untouched.
    crops = [preprocess._crop(image.astype(np.float32)) for image in mnist.x_test[:300]]
    kept = sum(preprocess.even_strokes(crop) is crop for crop in crops)
    assert kept >= 0.95 * len(crops)


def test_thinning_never_wipes_out_the_ink():
    rng = np.random.default_rng(3)
    for _ in range(20):
        blotch = (rng.random((90, 90)) < rng.uniform(0.2, 0.9)) * 255
        blotch[:, :5] = blotch[:, -5:] = blotch[:5] = blotch[-5:] = 0
        out = preprocess.normalise(blotch.astype(np.uint8))
        assert out.shape == (28, 28) and out.max() == 255
