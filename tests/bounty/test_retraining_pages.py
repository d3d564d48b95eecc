"""The model page and its plots are public, the plots drawn from the active version's real evaluation."""

from __future__ import annotations

import io

from bounty_testing import BaseTestCase
from django.core.management import call_command

from bounty.retraining.models import RetrainingRun


class ModelPageTestCase(BaseTestCase):
    def test_it_shows_versions_and_decisions(self) -> None:
        RetrainingRun.objects.create(state="rejected", reason="refused: MNIST test accuracy fell")
        response = self.client.get("/models/")
        self.assertContains(response, "default (active)")
        self.assertContains(response, "refused: MNIST test accuracy fell")

    def test_it_serves_each_drawn_plot_as_png_to_anyone(self) -> None:
        call_command("render_plots", stdout=io.StringIO())
        for name in ("accuracy", "confusion", "mistakes", "collected"):
            with self.subTest(plot=name):
                response = self.client.get(f"/models/{name}.png")
                self.assertEqual(response["Content-Type"], "image/png")
                body = b"".join(response.streaming_content)
                self.assertTrue(body.startswith(b"\x89PNG"))
                self.assertGreater(len(body), 2000)
