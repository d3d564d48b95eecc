"""The evaluation gate promotes only a real improvement, and a refusal changes nothing else.

The job-level tests replace the trainer by one that returns a fixed candidate (built from the active model),
so they are about the gate and what a refusal leaves behind, not about training. The criteria-level tests
call `gate.evaluate` with models whose answers are scripted image by image, so each number in the recorded
reason is known in advance."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from bounty_testing import BaseTestCase, mnist_test_set, model_artifact, reference_predictions
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from bounty.models import Bounty, ModelVersion, Slot, Submission
from bounty.retraining import conf, gate, job
from bounty.retraining.models import CollectedImage, Redeployment, RetrainingRun
from classifier.integer_model import IntegerModel
from classifier.train import TrainingResult


def never_seven(artifact: str) -> IntegerModel:
    """The model with the score of 7 pushed far down: it reads every 7 as something else."""
    model = IntegerModel.load(Path(artifact))
    b2 = model.b2.copy()
    b2[7] -= 10**9
    return IntegerModel(model.w1, model.b1, model.w2, b2, manifest=dict(model.manifest))


def favouring(model: IntegerModel, digit: int, boost: int) -> IntegerModel:
    b2 = model.b2.copy()
    b2[digit] += boost
    return IntegerModel(model.w1, model.b1, model.w2, b2, manifest=dict(model.manifest))


def trained(model: IntegerModel) -> TrainingResult:
    return TrainingResult(model=model, float_test_accuracy=0.9, integer_test_accuracy=0.9, seconds=0.1)


GATE_SETTINGS = {
    "RETRAIN_HELDOUT_PERCENT": 100,
    "RETRAIN_MNIST_LIMIT": 1000,
    "RETRAIN_GATE_DIGITS": "7",
    "RETRAIN_MAX_ACCURACY_DROP": 0.005,
}


class HeldoutGateTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.models = tempfile.mkdtemp(prefix="retrain-models-")

    def collect(self, indexes: np.ndarray) -> None:
        x_test, _ = mnist_test_set()
        for i in indexes:
            self.make_submission(pixels=x_test[i], state=Submission.State.CONFIRMED)

    def retrain_with(self, candidate: IntegerModel, **settings: object) -> tuple[RetrainingRun, mock.Mock]:
        with (
            self.settings(**{**GATE_SETTINGS, "RETRAIN_MODEL_DIR": self.models, **settings}),
            mock.patch("classifier.train.train", autospec=True, return_value=trained(candidate)) as trainer,
        ):
            return job.retrain("test", force=True), trainer

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        return {
            "slots": list(Slot.objects.order_by("pk").values_list("pk", "state", "deploy_tx", "spent_by")),
            "bounties": list(
                Bounty.objects.order_by("pk").values_list("pk", "model_version", "state", "paused")
            ),
        }

    def assert_nothing_changed(self, run: RetrainingRun, candidate: IntegerModel, before: dict) -> None:
        self.assertEqual(ModelVersion.active(), self.version)
        self.assertEqual(run.candidate.sha256, candidate.weights_sha256())
        self.assertFalse(run.candidate.is_active)
        self.assertFalse(Redeployment.objects.exists())
        self.assertEqual(self.snapshot(), before)

    def test_it_refuses_a_candidate_worse_on_the_heldout_images_and_leaves_everything_as_it_was(self) -> None:
        _, y_test = mnist_test_set()
        # Sevens the active model reads as 7 (the reference predictions are those of the same weights).
        self.collect(np.flatnonzero((y_test[:2000] == 7) & (reference_predictions() == 7))[:8])
        before = self.snapshot()
        candidate = never_seven(self.version.artifact)
        run, trainer = self.retrain_with(
            candidate, RETRAIN_MAX_ACCURACY_DROP=0.5, RETRAIN_MIN_MNIST_ACCURACY=0
        )

        self.assertEqual(run.state, RetrainingRun.State.REJECTED, run.reason)
        self.assertTrue(run.reason.startswith("refused: "), run.reason)
        self.assertIn("held-out 0/8 (was 8/8), McNemar b=0 c=8 p=1 > 0.05, worse: not promoted", run.reason)
        heldout = run.gate["heldout_accuracy"]
        self.assertEqual(
            {k: heldout[k] for k in ("old", "new", "images", "b", "c", "p_value", "max_p", "passed")},
            {"old": 1.0, "new": 0.0, "images": 8, "b": 0, "c": 8, "p_value": 1.0, "max_p": 0.05,
             "passed": False},
        )  # fmt: skip
        self.assertTrue(run.gate["mnist_accuracy"]["passed"], "MNIST alone would have let it through")
        self.assertFalse(run.gate["drawn_accuracy"]["passed"], "it reads no drawn 7 either")
        self.assertIsNone(trainer.call_args.kwargs["extra"], "held-out images are never trained on")
        self.assertEqual((run.counts["heldout"], run.counts["collected_train"]), (8, 0))
        self.assert_nothing_changed(run, candidate, before)
        roles = set(CollectedImage.objects.values_list("role", "trained_in"))
        self.assertEqual(roles, {(CollectedImage.Role.HELDOUT, None)})

    def test_a_candidate_worse_on_mnist_is_refused_when_two_or_three_heldout_images_are_its_only_gain(
        self,
    ) -> None:
        """The failure seen in a season: paid MNIST-style 7s, then a candidate 0.17 points worse on MNIST that
        read two or three more held-out images right was promoted under a 0.5-point allowance."""
        x_test, y_test = mnist_test_set()
        active = IntegerModel.load(Path(self.version.artifact))
        old_right = np.asarray(active.predict(x_test.reshape(-1, 784))) == y_test
        # Favour 7 until MNIST accuracy falls by at least 0.1 points (within the old 0.5-point allowance).
        for boost in range(0, 10**7, 500):
            candidate = favouring(active, 7, boost)
            new_predictions = np.asarray(candidate.predict(x_test.reshape(-1, 784)))
            if (new_predictions == y_test).mean() <= old_right.mean() - 0.001:
                break
        new_right = new_predictions == y_test
        drop = old_right.mean() - new_right.mean()
        self.assertTrue(0.001 <= drop < 0.005, drop)
        sevens = y_test == 7
        learned = np.flatnonzero(sevens & new_right & ~old_right)[:3]
        both = np.flatnonzero(sevens & new_right & old_right)[:9]
        self.assertEqual(len(learned), 3)
        self.collect(np.concatenate([learned, both]))
        before = self.snapshot()
        # Only the paired test refuses here: the floor and the drawn-style set are set out of the way.
        run, _ = self.retrain_with(candidate, RETRAIN_MIN_MNIST_ACCURACY=0, RETRAIN_DRAWN_MAX_DROP=1)

        self.assertEqual(run.state, RetrainingRun.State.REJECTED, run.reason)
        self.assertEqual(
            run.reason, "refused: held-out 12/12 (was 9/12), McNemar b=3 c=0 p=0.125 > 0.05: not promoted"
        )
        self.assertTrue(run.gate["mnist_accuracy"]["passed"])
        self.assertLess(run.gate["mnist_accuracy"]["new"], run.gate["mnist_accuracy"]["old"])
        self.assertEqual(run.gate["heldout_accuracy"]["p_value"], 0.125)
        self.assert_nothing_changed(run, candidate, before)

    def test_the_floor_refuses_a_candidate_below_it_whatever_its_predecessor_did(self) -> None:
        x_test, y_test = mnist_test_set()
        self.collect(np.flatnonzero(y_test[:2000] == 7)[:4])
        active = IntegerModel.load(Path(self.version.artifact))
        same = favouring(active, 0, 0)  # the same answers
        old = float(np.mean(np.asarray(active.predict(x_test.reshape(-1, 784))) == y_test))
        floor = round(old + 0.001, 4)
        run, _ = self.retrain_with(same, RETRAIN_MIN_MNIST_ACCURACY=floor, RETRAIN_HELDOUT_MAX_P=1)
        self.assertEqual(run.state, RetrainingRun.State.REJECTED, run.reason)
        self.assertEqual(
            run.reason, f"refused: MNIST test accuracy {old:.2%} is below the floor of {floor:.2%}"
        )
        self.assertEqual(run.gate["mnist_accuracy"]["floor"], floor)

    def test_a_candidate_no_better_passes_only_when_no_gain_is_asked_for(self) -> None:
        """The same answers are no improvement: refused by default, promoted when RETRAIN_HELDOUT_MAX_P is 1
        (what the short job tests use), with every number in the reason."""
        _, y_test = mnist_test_set()
        self.collect(np.flatnonzero((y_test[:2000] == 7) & (reference_predictions() == 7))[:5])
        model = IntegerModel.load(Path(self.version.artifact))
        same = IntegerModel(model.w1, model.b1, model.w2, model.b2 + 1, manifest=dict(model.manifest))
        run, _ = self.retrain_with(same)
        self.assertEqual(run.state, RetrainingRun.State.REJECTED, run.reason)
        self.assertEqual(
            run.reason, "refused: held-out 5/5 (was 5/5), McNemar b=0 c=0 p=1 > 0.05: not promoted"
        )
        run, _ = self.retrain_with(same, RETRAIN_HELDOUT_MAX_P=1)
        self.assertEqual(run.state, RetrainingRun.State.PROMOTED, run.reason)
        self.assertRegex(
            run.reason,
            r"^promoted: MNIST test accuracy (\d+\.\d\d)% \(was \1%, floor 97\.50%\), "
            r"held-out 5/5 \(was 5/5\), McNemar b=0 c=0 p=1 <= 1, "
            r"drawn-style ([\d,]+)/([\d,]+) \(was \2/\3\), predicate at most [\d,]+ bytes$",
        )
        self.assertEqual(ModelVersion.active(), run.candidate)


class Scripted:
    """A model whose answer for image i is answers[i]: the images carry their index in their first pixels."""

    def __init__(self, answers: np.ndarray) -> None:
        self.answers = np.asarray(answers)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape(len(x), 784).astype(np.int64)
        return self.answers[x[:, 0] * 256 + x[:, 1]]


def indexed(count: int, offset: int = 0) -> np.ndarray:
    """`count` images whose first two pixels spell offset + i."""
    images = np.zeros((count, 28, 28), np.uint8)
    index = np.arange(offset, offset + count)
    images[:, 0, 0], images[:, 0, 1] = index // 256, index % 256
    return images


class CriteriaTestCase(SimpleTestCase):
    """Scripted answers on 1,000 MNIST-like, 50 held-out and 200 drawn-style images."""

    def setUp(self) -> None:
        self.x_mnist, self.y_mnist = indexed(1000), np.zeros(1000, np.int64)
        self.x_heldout, self.y_heldout = indexed(50, 1000), np.zeros(50, np.int64)
        x_drawn, y_drawn = indexed(200, 1050), np.zeros(200, np.int64)
        self.drawn = Path(tempfile.mkdtemp(prefix="drawn-")) / "drawn.npz"
        np.savez(self.drawn, x=x_drawn, y=y_drawn)
        gate._drawn_set.cache_clear()
        self.addCleanup(gate._drawn_set.cache_clear)

    def models(self, mnist: tuple[int, int], heldout: tuple[int, int, int], drawn: tuple[int, int]):  # type: ignore[no-untyped-def]
        """(old, new): wrong on the given counts of MNIST and drawn images; on the held-out images b are
        right by the new model only, c by the old only, `both` by both."""
        old, new = np.ones(1250, np.int64), np.ones(1250, np.int64)  # 1 is wrong: every label is 0
        old[: 1000 - mnist[0]] = 0
        new[: 1000 - mnist[1]] = 0
        b, c, both = heldout
        new[1000 : 1000 + b] = 0
        old[1000 + b : 1000 + b + c] = 0
        old[1000 + b + c : 1000 + b + c + both] = new[1000 + b + c : 1000 + b + c + both] = 0
        old[1050 : 1250 - drawn[0]] = 0
        new[1050 : 1250 - drawn[1]] = 0
        return Scripted(old), Scripted(new)

    def evaluate(self, old, new, **settings: object):  # type: ignore[no-untyped-def]
        with override_settings(RETRAIN_DRAWN_SET=str(self.drawn), RETRAIN_GATE_DIGITS="7", **settings):
            return gate.evaluate(
                old, new, model_artifact(), self.x_mnist, self.y_mnist, self.x_heldout, self.y_heldout
            )

    def test_the_issues_example_is_refused_with_its_numbers(self) -> None:
        old, new = self.models(mnist=(20, 20), heldout=(8, 2, 33), drawn=(10, 10))
        passed, criteria, reason = self.evaluate(old, new)
        self.assertFalse(passed)
        self.assertEqual(
            reason, "refused: held-out 41/50 (was 35/50), McNemar b=8 c=2 p=0.0547 > 0.05: not promoted"
        )
        self.assertEqual((criteria["heldout_accuracy"]["b"], criteria["heldout_accuracy"]["c"]), (8, 2))
        self.assertAlmostEqual(criteria["heldout_accuracy"]["p_value"], 56 / 1024)

    def test_a_gain_the_test_supports_is_promoted(self) -> None:
        old, new = self.models(mnist=(20, 19), heldout=(9, 1, 33), drawn=(10, 9))
        passed, criteria, reason = self.evaluate(old, new)
        self.assertTrue(passed, reason)
        self.assertEqual(
            reason,
            "promoted: MNIST test accuracy 98.10% (was 98.00%, floor 97.50%), held-out 42/50 (was 34/50), "
            "McNemar b=9 c=1 p=0.0107 <= 0.05, drawn-style 191/200 (was 190/200), predicate at most "
            f"{criteria['predicate_bytes']['largest']:,} bytes",
        )
        self.assertAlmostEqual(criteria["heldout_accuracy"]["p_value"], 11 / 1024)

    def test_one_drawn_image_fewer_refuses_unless_a_drop_is_allowed(self) -> None:
        old, new = self.models(mnist=(20, 20), heldout=(9, 0, 30), drawn=(10, 11))
        passed, criteria, reason = self.evaluate(old, new)
        self.assertFalse(passed)
        self.assertEqual(reason, "refused: drawn-style 189/200 (was 190/200): worse")
        self.assertEqual(criteria["drawn_accuracy"], {
            "old": 0.95, "new": 0.945, "images": 200, "max_drop": 0.0, "passed": False,
        })  # fmt: skip
        passed, _, reason = self.evaluate(old, new, RETRAIN_DRAWN_MAX_DROP=0.01)
        self.assertTrue(passed, reason)

    def test_the_floor_and_the_drop_are_both_named(self) -> None:
        old, new = self.models(mnist=(20, 30), heldout=(9, 0, 30), drawn=(10, 10))
        passed, _, reason = self.evaluate(
            old, new, RETRAIN_MAX_ACCURACY_DROP=0.005, RETRAIN_MIN_MNIST_ACCURACY=0.975
        )
        self.assertFalse(passed)
        self.assertEqual(
            reason,
            "refused: MNIST test accuracy fell from 98.00% to 97.00%, more than the allowed 0.50%; "
            "MNIST test accuracy 97.00% is below the floor of 97.50%",
        )

    def test_a_first_model_is_judged_by_the_floor_the_drawn_set_and_its_size(self) -> None:
        _, new = self.models(mnist=(20, 20), heldout=(0, 0, 0), drawn=(10, 10))
        passed, criteria, reason = self.evaluate(None, new)
        self.assertTrue(passed, reason)
        self.assertTrue(
            reason.startswith("promoted: MNIST test accuracy 98.00% (floor 97.50%), drawn-style 190/200")
        )
        self.assertIsNone(criteria["drawn_accuracy"]["old"])


@pytest.mark.parametrize(
    ("b", "c", "p"), [(0, 0, 1.0), (3, 0, 0.125), (5, 0, 0.03125), (8, 2, 56 / 1024), (1, 4, 31 / 32)]
)
def test_the_exact_one_sided_mcnemar_p_value(b: int, c: int, p: float) -> None:
    assert gate.mcnemar_p(b, c) == pytest.approx(p)


@pytest.mark.parametrize(
    "name", ["RETRAIN_MIN_MNIST_ACCURACY", "RETRAIN_HELDOUT_MAX_P", "RETRAIN_DRAWN_MAX_DROP"]
)
@pytest.mark.parametrize("value", ["1.5", "-0.1", "most"])
def test_settings_outside_zero_to_one_are_refused_with_their_name(settings, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    setattr(settings, name, value)
    reader = {
        "RETRAIN_MIN_MNIST_ACCURACY": conf.min_mnist_accuracy,
        "RETRAIN_HELDOUT_MAX_P": conf.heldout_max_p,
        "RETRAIN_DRAWN_MAX_DROP": conf.drawn_max_drop,
    }[name]
    with pytest.raises(ImproperlyConfigured, match=name):
        reader()


def test_the_defaults(settings) -> None:  # type: ignore[no-untyped-def]
    for name in ("RETRAIN_MIN_MNIST_ACCURACY", "RETRAIN_HELDOUT_MAX_P", "RETRAIN_DRAWN_MAX_DROP"):
        if hasattr(settings, name):
            delattr(settings, name)
    assert (conf.min_mnist_accuracy(), conf.heldout_max_p(), conf.drawn_max_drop()) == (0.975, 0.05, 0.0)
