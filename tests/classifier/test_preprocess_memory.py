"""What one upload may cost: every image the limits allow is preprocessed in under 64 MB.

A small file can describe a huge image (a 30 KB PNG of 16 megapixels once cost 360 MB and more than a second
inside the web request). Each case runs in a fresh interpreter, warmed up on a small image of the same kind,
and the growth of its peak resident memory (which counts Pillow's and libjpeg's buffers, not only Python's)
is read from /proc; tracemalloc checks the Python and numpy side on any platform.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from classifier import preprocess
from classifier.preprocess import preprocess_image

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024 * 1024

# In a child: preprocess the small file (imports, first allocations), reset the peak, preprocess the large.
CHILD = r"""
import json, sys
from classifier.preprocess import preprocess_image

def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

small, large = (open(path, "rb").read() for path in sys.argv[1:3])
preprocess_image(small)
try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM, the peak resident size
except OSError:
    print(json.dumps({"unsupported": True}))
    raise SystemExit
before = status("VmRSS")
pixels = preprocess_image(large)
print(json.dumps({"peak": status("VmHWM") - before, "shape": list(pixels.shape), "max": int(pixels.max())}))
"""


def digit(width: int, height: int, mode: str = "L") -> Image.Image:
    """Mostly white paper with one dark, hand-sized "0" in the middle."""
    image = Image.new("L", (width, height), 255)
    radius = min(width, height) // 6
    box = (
        width // 2 - radius,
        height // 2 - int(radius * 1.4),
        width // 2 + radius,
        height // 2 + int(radius * 1.4),
    )
    ImageDraw.Draw(image).ellipse(box, outline=25, width=max(2, radius // 5))
    return image if mode == "L" else image.convert(mode)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def largest_square(per_pixel: int) -> int:
    return math.isqrt(preprocess.DECODE_BUDGET // per_pixel)


CASES: dict[str, Callable[[int, int], bytes]] = {
    # The largest image the pixel cap allows, as the grayscale PNG of a scan.
    "png-4096x4096-grey": lambda w, h: encode(digit(w, h), "PNG", optimize=True),
    # A 12 MP phone photo, and the same as a progressive JPEG (which keeps every coefficient while decoding).
    "jpeg-4000x3000-phone": lambda w, h: encode(digit(w, h, "RGB"), "JPEG", quality=90),
    "jpeg-4000x3000-progressive": lambda w, h: encode(
        digit(w, h, "RGB"), "JPEG", quality=90, progressive=True
    ),
    # The largest colour PNG and WebP the decoding budget allows.
    "png-largest-rgba": lambda w, h: encode(digit(w, h, "RGBA"), "PNG", optimize=True),
    "webp-largest": lambda w, h: encode(digit(w, h, "RGB"), "WEBP", lossless=True),
}
SIZES = {
    "png-4096x4096-grey": (4096, 4096),
    "jpeg-4000x3000-phone": (4000, 3000),
    "jpeg-4000x3000-progressive": (4000, 3000),
    "png-largest-rgba": (largest_square(4),) * 2,
    "webp-largest": (largest_square(16),) * 2,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("large-images")
    made = {}
    for name, make in CASES.items():
        small, large = folder / f"{name}-small", folder / f"{name}-large"
        small.write_bytes(make(300, 200))
        large.write_bytes(make(*SIZES[name]))
        made[name] = (small, large)
    return made


def test_the_cases_are_the_largest_the_limits_allow() -> None:
    assert SIZES["png-4096x4096-grey"][0] * SIZES["png-4096x4096-grey"][1] == preprocess.MAX_PIXELS
    for name in ("png-largest-rgba", "webp-largest"):
        side = SIZES[name][0] + 1
        with pytest.raises(preprocess.ImageRejected, match="too many pixels"):
            preprocess_image(CASES[name](side, side))


@pytest.mark.parametrize("name", list(CASES))
def test_it_preprocesses_a_large_image_in_under_64_mb_of_resident_memory(
    name: str, files: dict[str, tuple[Path, Path]]
) -> None:
    small, large = files[name]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(small), str(large)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    result = json.loads(child.stdout)
    if result.get("unsupported"):
        pytest.skip("peak resident memory cannot be reset here (needs Linux /proc/self/clear_refs)")
    assert result["shape"] == [28, 28] and result["max"] == 255  # read as a digit, not refused
    assert result["peak"] < LIMIT, f"{name}: peak resident memory grew by {result['peak'] / 2**20:.1f} MiB"


@pytest.mark.parametrize("name", list(CASES))
def test_it_allocates_under_64_mb_in_python_and_numpy(name: str, files: dict[str, tuple[Path, Path]]) -> None:
    small, large = files[name]
    preprocess_image(small.read_bytes())
    data = large.read_bytes()
    tracemalloc.start()
    try:
        pixels = preprocess_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pixels.shape == (28, 28) and pixels.max() == 255
    assert peak < LIMIT, f"{name}: {peak / 2**20:.1f} MiB allocated"


def test_it_decodes_a_large_photo_at_working_size_in_uint8() -> None:
    photo = encode(digit(4000, 3000, "RGB"), "JPEG", quality=90)
    gray = preprocess.decode_grayscale(photo)
    assert gray.dtype == np.uint8
    assert max(gray.shape) <= preprocess.WORKING_SIDE
    assert gray.shape == (750, 1000)  # libjpeg's own 1/4 scale, the aspect kept
