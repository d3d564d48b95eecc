"""The model page's plots are drawn once, stored as files and served as files: a GET never draws one, loads
MNIST or a model; the retraining job and `manage.py render_plots` draw them."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from bounty_testing import BaseTestCase, model_artifact
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from bounty.models import ModelVersion
from bounty.retraining import job, plots
from bounty.retraining.models import RetrainingRun
from classifier.integer_model import IntegerModel

URLS = {name: f"/models/{name}.png" for name in plots.PLOTS}


@contextmanager
def nothing_drawn() -> Iterator[None]:
    """Fail the test if anything draws a plot, evaluates a model or loads MNIST."""
    with ExitStack() as stack:
        for target in ("bounty.retraining.plots.draw", "bounty.retraining.plots.evaluate"):
            stack.enter_context(mock.patch(target, autospec=True, side_effect=AssertionError("drew a plot")))
        stack.enter_context(
            mock.patch("bounty.retraining.dataset.mnist", side_effect=AssertionError("MNIST"))
        )
        yield


def stored_files() -> set[str]:
    return {str(path.relative_to(plots.root())) for path in plots.root().glob("*/*.png")}


def shifted_model() -> IntegerModel:
    """The test model with every class bias raised by one: other weights and sha, the same predictions."""
    model = IntegerModel.load(model_artifact())
    return IntegerModel(model.w1, model.b1, model.w2, model.b2 + 1, manifest=dict(model.manifest))


class StoredPlotsTestCase(BaseTestCase):
    def test_it_serves_each_stored_plot_without_drawing_it(self) -> None:
        call_command("render_plots", stdout=io.StringIO())
        with nothing_drawn():
            for name, url in URLS.items():
                with self.subTest(plot=name):
                    response = self.client.get(url)
                    self.assertEqual(response.status_code, 200)
                    self.assertEqual(response["Content-Type"], "image/png")
                    body = b"".join(response.streaming_content)
                    self.assertTrue(body.startswith(b"\x89PNG"))
                    self.assertEqual(body, plots.stored(name).read_bytes())  # type: ignore[union-attr]
            page = self.client.get("/models/")
        for url in URLS.values():
            self.assertContains(page, f'src="{url}"')
        self.assertNotContains(page, "not been drawn yet")

    def test_it_answers_404_for_a_plot_not_drawn_and_does_not_draw_it(self) -> None:
        with nothing_drawn():
            for name, url in URLS.items():
                with self.subTest(plot=name):
                    self.assertEqual(self.client.get(url).status_code, 404)
            page = self.client.get("/models/")
        self.assertContains(page, "This plot has not been drawn yet.")
        self.assertContains(page, "The confusion matrix of the active model has not been drawn yet.")
        self.assertNotContains(page, "<img")
        self.assertEqual(stored_files(), set())

    def test_it_stores_the_plots_by_version_and_numbers_when_the_command_runs(self) -> None:
        out = io.StringIO()
        call_command("render_plots", stdout=out)
        pk = self.version.pk
        names = stored_files()
        self.assertEqual({name.rsplit("-", 1)[0] for name in names}, {
            "shared/accuracy", "shared/collected", f"{pk}/confusion", f"{pk}/mistakes",
        })  # fmt: skip
        self.assertIn(f"drew {pk}/confusion-", out.getvalue())
        with nothing_drawn():  # the second run finds every plot stored
            call_command("render_plots", stdout=out)
        self.assertEqual(stored_files(), names)
        self.assertEqual([p.name for p in plots.root().rglob(".*.png*")], [], "no temporary file is left")

    def test_it_draws_a_named_version_with_the_command(self) -> None:
        newer = ModelVersion.register(
            shifted_model().save(Path(settings.MEDIA_ROOT) / "newer.npz"), name="newer"
        )
        call_command("render_plots", "--version", str(newer.pk), stdout=io.StringIO())
        self.assertTrue(any(name.startswith(f"{newer.pk}/confusion-") for name in stored_files()))
        self.assertFalse(any(name.startswith(f"{self.version.pk}/") for name in stored_files()))

    def test_it_serves_the_last_shared_plot_until_changed_numbers_are_drawn(self) -> None:
        call_command("render_plots", stdout=io.StringIO())
        drawn = plots.stored("accuracy")
        ModelVersion.objects.create(name="by-hand", artifact="x.npz", sha256="cd" * 32, metrics={
            "integer_test_accuracy": 0.99,
        })  # fmt: skip
        self.assertFalse(plots.shared("accuracy").path.exists())
        with nothing_drawn():
            response = self.client.get(URLS["accuracy"])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(b"".join(response.streaming_content), drawn.read_bytes())  # type: ignore[union-attr]
        call_command("render_plots", stdout=io.StringIO())
        self.assertEqual(plots.stored("accuracy"), plots.shared("accuracy").path)
        self.assertFalse(drawn.exists(), "the stale file is replaced")  # type: ignore[union-attr]

    def test_it_leaves_no_file_behind_when_drawing_fails(self) -> None:
        failing = mock.patch("bounty.retraining.plots.draw", autospec=True, side_effect=RuntimeError("boom"))
        with failing, self.assertRaises(RuntimeError):
            plots.render_shared()
        self.assertEqual(list(plots.root().rglob("*.png*")), [])


class RetrainingDrawsPlotsTestCase(BaseTestCase):
    def test_it_draws_the_plots_when_a_run_registers_and_promotes_a_candidate(self) -> None:
        trained = SimpleNamespace(model=shifted_model())
        with (
            mock.patch("classifier.train.train", return_value=trained),
            mock.patch("bounty.retraining.gate.evaluate", return_value=(True, {}, "promoted: test")),
            override_settings(RETRAIN_MODEL_DIR=tempfile.mkdtemp(prefix="retrain-models-"),
                              RETRAIN_HELDOUT_PERCENT=0, RETRAIN_MNIST_LIMIT=1000),
        ):  # fmt: skip
            run = job.retrain("test", force=True)
        self.assertEqual(run.state, RetrainingRun.State.PROMOTED, run.reason)
        candidate = run.candidate
        assert candidate is not None
        names = {name.rsplit("-", 1)[0] for name in stored_files()}
        self.assertEqual(names, {
            "shared/accuracy", "shared/collected", f"{candidate.pk}/confusion", f"{candidate.pk}/mistakes",
        })  # fmt: skip
        self.assertEqual(plots.stored("accuracy"), plots.shared("accuracy").path, "drawn after the promotion")
        with nothing_drawn():
            for url in URLS.values():
                self.assertEqual(self.client.get(url).status_code, 200, url)

    def test_it_finishes_the_run_when_drawing_fails(self) -> None:
        failing = mock.patch("bounty.retraining.plots.draw", autospec=True, side_effect=RuntimeError("boom"))
        with failing, self.assertLogs("bounty.retraining.job", "ERROR") as logs:
            run = job.retrain("test")  # skipped: too few new images; the shared plots are still attempted
        self.assertEqual(run.state, RetrainingRun.State.SKIPPED)
        self.assertIn("could not draw the shared plots", logs.output[0])
