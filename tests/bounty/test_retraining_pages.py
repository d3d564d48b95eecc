"""The model page and its plots render for anyone, from the active version's real evaluation."""

from __future__ import annotations

from bounty_testing import BaseTestCase

from bounty.retraining.models import RetrainingRun


class ModelPageTestCase(BaseTestCase):
    def test_it_shows_versions_and_decisions(self) -> None:
        RetrainingRun.objects.create(state="rejected", reason="refused: MNIST test accuracy fell")
        response = self.client.get("/models/")
        self.assertContains(response, "default (active)")
        self.assertContains(response, "refused: MNIST test accuracy fell")

    def test_it_renders_each_plot_as_png(self) -> None:
        for name in ("accuracy", "confusion", "mistakes", "collected"):
            with self.subTest(plot=name):
                response = self.client.get(f"/models/{name}.png")
                self.assertEqual(response["Content-Type"], "image/png")
                self.assertTrue(response.content.startswith(b"\x89PNG"))
                self.assertGreater(len(response.content), 2000)
