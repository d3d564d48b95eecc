from __future__ import annotations

import base64

from bounty_testing import BaseTestCase, blank_png, mnist_png, stroke_png
from django.core.files.uploadedfile import SimpleUploadedFile

from bounty.forms import SubmissionForm


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


class SubmissionFormTestCase(BaseTestCase):
    def form(
        self, address: str | None = None, upload: bytes | None = None, drawing: str = ""
    ) -> SubmissionForm:
        files = {"image": SimpleUploadedFile("digit.png", upload, "image/png")} if upload is not None else {}
        data = {"payout_address": address if address is not None else self.bob_address, "drawing": drawing}
        return SubmissionForm(data, files)

    def test_it_accepts_an_upload_and_preprocesses_it_to_28x28(self) -> None:
        form = self.form(upload=mnist_png(0))
        self.assertTrue(form.is_valid(), form.errors)
        self.assertEqual(form.cleaned_data["pixels"].shape, (28, 28))

    def test_it_accepts_a_canvas_drawing(self) -> None:
        form = self.form(drawing=data_url(stroke_png()))
        self.assertTrue(form.is_valid(), form.errors)
        self.assertGreater(int(form.cleaned_data["pixels"].max()), 200)

    def test_it_refuses_a_bad_checksum(self) -> None:
        address = self.bob_address[:-1] + ("2" if self.bob_address[-1] != "2" else "3")
        form = self.form(address=address, upload=mnist_png(0))
        self.assertFalse(form.is_valid())
        self.assertIn("checksum", form.errors["payout_address"][0])

    def test_it_refuses_a_mainnet_address_on_a_test_network(self) -> None:
        form = self.form(address="1BoatSLRHtKNngkdXEeobR76b53LETtpyT", upload=mnist_png(0))
        self.assertFalse(form.is_valid())
        self.assertIn("mainnet", form.errors["payout_address"][0])

    def test_it_refuses_what_is_not_an_image(self) -> None:
        form = self.form(upload=b"%PDF-1.4 not an image at all")
        self.assertFalse(form.is_valid())
        self.assertIn("image", form.errors["image"][0].lower())

    def test_it_refuses_an_empty_canvas(self) -> None:
        form = self.form(drawing=data_url(blank_png(color=0)))
        self.assertFalse(form.is_valid())
        self.assertIn("__all__", form.errors)

    def test_it_refuses_an_oversize_file(self) -> None:
        with self.settings(MAX_UPLOAD_BYTES=1024):
            form = self.form(upload=mnist_png(0) + b"\0" * 2048)
            self.assertFalse(form.is_valid())
        self.assertIn("too large", form.errors["image"][0])

    def test_it_asks_for_an_image_when_there_is_none(self) -> None:
        form = self.form()
        self.assertFalse(form.is_valid())
        self.assertIn("draw a digit", form.errors["__all__"][0].lower())

    def test_it_refuses_a_garbled_drawing(self) -> None:
        form = self.form(drawing="data:image/png;base64,@@@@")
        self.assertFalse(form.is_valid())
