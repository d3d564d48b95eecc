"""Bad uploads over HTTP (the Django test client, CSRF checks on): each gets a clear message, creates no
submission and costs no slot."""

from __future__ import annotations

import base64
import io
import struct
import zlib

from bounty_testing import NOT_ON_POSTGRES_RERUN, BaseTestCase, blank_png, mnist_png
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageDraw

from bounty.models import Slot, Submission

pytestmark = NOT_ON_POSTGRES_RERUN  # form and HTTP validation: nothing database-specific


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 40_000) -> bytes:
    """A 2 KB PNG that claims side x side 8-bit grey pixels (1.6 GB decoded)."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    pixels = png_chunk(b"IDAT", zlib.compress(b"\0" * (side + 1) * 64, 9))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + png_chunk(b"IEND", b"")


def animated(format: str) -> bytes:
    frames = [Image.new("L", (64, 64), color) for color in (0, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=format, save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def scan_png(side: int, mode: str = "L") -> bytes:
    """A side x side page, white but for a dark hand-sized "0": a few KB that decode to side^2 pixels."""
    page = Image.new("L", (side, side), 255)
    ImageDraw.Draw(page).ellipse(
        (side * 3 // 8, side // 4, side * 5 // 8, side * 3 // 4), outline=20, width=side // 40
    )
    buffer = io.BytesIO()
    page.convert(mode).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 0).save(buffer, format="PNG")
    return buffer.getvalue()


class BadUploadTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.browser = Client(enforce_csrf_checks=True)
        page = self.browser.get(f"/bounties/{self.bounty.pk}/")
        self.token = page.cookies["csrftoken"].value

    def post(self, **fields: object):  # type: ignore[no-untyped-def]
        data = {"payout_address": self.bob_address, "csrfmiddlewaretoken": self.token, **fields}
        return self.browser.post(f"/bounties/{self.bounty.pk}/", data)

    def upload(self, content: bytes, name: str = "digit.png"):  # type: ignore[no-untyped-def]
        return self.post(image=SimpleUploadedFile(name, content, "image/png"))

    def assert_refused(self, response, message: str, status: int = 400) -> None:  # type: ignore[no-untyped-def]
        self.assertContains(response, message, status_code=status)
        self.assertFalse(Submission.objects.exists())
        self.assertEqual(Slot.objects.filter(bounty=self.bounty, state="free").count(), 3)

    def test_it_accepts_a_good_upload_with_the_token(self) -> None:  # the control: the same client succeeds
        with self.captureOnCommitCallbacks(execute=False):
            response = self.upload(mnist_png(0))
        self.assertEqual(response.status_code, 302)
        self.assertEqual(Submission.objects.count(), 1)

    def test_it_refuses_what_is_not_an_image(self) -> None:
        self.assert_refused(self.upload(b"%PDF-1.4 a document", "digit.pdf"), "not an image we can read")

    def test_it_refuses_a_truncated_png(self) -> None:
        png = mnist_png(0)
        self.assert_refused(self.upload(png[: len(png) // 2]), "damaged or truncated")

    def test_it_refuses_a_decompression_bomb(self) -> None:
        self.assert_refused(self.upload(bomb_png()), "too many pixels")

    def test_it_accepts_a_16_megapixel_scan(self) -> None:
        with self.captureOnCommitCallbacks(execute=False):
            response = self.upload(scan_png(4096))  # the largest image the pixel cap allows
        self.assertEqual(response.status_code, 302)
        self.assertEqual(Submission.objects.count(), 1)

    def test_it_refuses_a_colour_png_too_large_to_decode_with_the_limit(self) -> None:
        # Under the pixel cap, but held at 4 bytes a pixel it would take 42 MB to decode.
        response = self.upload(scan_png(3239, "RGBA"))
        self.assert_refused(response, "too many pixels (3239x3239)")
        self.assertContains(response, "at most 10.5 megapixels", status_code=400)

    def test_it_refuses_a_100_mb_file_before_reading_it(self) -> None:
        response = self.upload(b"\x89PNG\r\n\x1a\n" + b"\0" * (100 * 1024 * 1024))
        self.assert_refused(response, "The upload is too large", status=413)

    def test_it_refuses_a_file_just_over_the_limit_in_the_form(self) -> None:
        with self.settings(MAX_UPLOAD_BYTES=64 * 1024):
            response = self.upload(mnist_png(0) + b"\0" * (65 * 1024))
        self.assert_refused(response, "too large")

    def test_it_refuses_an_animated_gif(self) -> None:
        self.assert_refused(self.upload(animated("GIF"), "digit.gif"), "Animated images are not accepted")

    def test_it_refuses_an_animated_png(self) -> None:
        self.assert_refused(self.upload(animated("PNG")), "Animated images are not accepted")

    def test_it_refuses_a_1x1_image(self) -> None:
        self.assert_refused(self.upload(tiny_png()), "too small")

    def test_it_refuses_a_blank_canvas(self) -> None:
        drawing = "data:image/png;base64," + base64.b64encode(blank_png(color=0)).decode()
        self.assert_refused(self.post(drawing=drawing), "blank")

    def test_it_refuses_a_huge_canvas_payload(self) -> None:
        with self.settings(MAX_UPLOAD_BYTES=64 * 1024):
            drawing = "data:image/png;base64," + "A" * (100 * 1024)
            self.assert_refused(self.post(drawing=drawing), "drawing is too large")
            self.assert_refused(self.post(drawing="A" * (1024 * 1024)), "The upload is too large", 413)

    def test_it_refuses_a_canvas_payload_that_is_not_a_data_url(self) -> None:
        self.assert_refused(self.post(drawing="javascript:alert(1)"), "could not be read")
