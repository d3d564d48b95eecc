"""Each plot of the model page reads correctly with one version and with many: the accuracy axis never runs
past 100%, one version is not a point on a multi-year time axis, and an empty plot says so in words."""

from __future__ import annotations

from typing import Any

import numpy as np

from bounty.retraining import plots


def points(accuracies: list[float]) -> list[dict[str, Any]]:
    return [
        {"name": f"v{i}", "created": f"2025-{1 + i % 12:02d}-01", "accuracy": value, "promoted": i % 3 != 1}
        for i, value in enumerate(accuracies)
    ]


def texts(figure) -> list[str]:  # type: ignore[no-untyped-def]
    return [text.get_text() for axes in figure.axes for text in axes.texts]


def visible_labels(axes) -> list[str]:  # type: ignore[no-untyped-def]
    return [label.get_text() for label in axes.get_xticklabels() if label.get_text()]


def test_it_zooms_the_accuracy_of_one_version_without_passing_100_percent_or_a_time_axis() -> None:
    axes = plots.accuracy_figure(points([0.975])).axes[0]
    low, high = axes.get_ylim()
    assert 0 <= low < 97.5 < high <= 100
    left, right = axes.get_xlim()
    assert right - left <= 1  # one place, not years of dates around one point
    assert visible_labels(axes) == ["v0\n2025-01-01"]


def test_it_never_draws_the_accuracy_axis_past_100_percent() -> None:
    for accuracies in ([1.0], [0.99, 1.0], [0.2, 0.999]):
        axes = plots.accuracy_figure(points(accuracies)).axes[0]
        low, high = axes.get_ylim()
        assert low >= 0 and high <= 100, accuracies
        assert low <= 100 * min(accuracies) and 100 * max(accuracies) <= high


def test_it_keeps_many_versions_readable() -> None:
    accuracies = list(np.linspace(0.95, 0.99, 60))
    axes = plots.accuracy_figure(points(accuracies)).axes[0]
    low, high = axes.get_ylim()
    assert 0 <= low <= 95 and 99 <= high <= 100
    labels = visible_labels(axes)
    assert len(labels) <= plots.MOST_LABELS and labels[-1].startswith("v59")  # the newest is always named
    assert not axes.texts, "no value is written on each of 60 points"


def test_it_says_when_no_version_has_an_accuracy() -> None:
    figure = plots.accuracy_figure([])
    assert "No model version has a measured accuracy yet." in texts(figure)
    assert not figure.axes[0].axison


def test_it_shows_a_message_instead_of_a_negative_axis_when_nothing_was_collected() -> None:
    for names, counts in ((["v0"], [0]), (["v0", "v1", "v2"], [0, 0, 0])):
        figure = plots.collected_figure(names, counts)
        assert "No version has learned from collected images yet." in texts(figure)
        assert not figure.axes[0].axison
    assert "No model version yet." in texts(plots.collected_figure([], []))


def test_it_starts_the_collected_axis_at_zero_with_one_version_and_with_many() -> None:
    for counts in ([7], [0, 12, 40] * 20):
        names = [f"v{i}" for i in range(len(counts))]
        axes = plots.collected_figure(names, counts).axes[0]
        low, high = axes.get_ylim()
        assert low == 0 and high >= max(counts)
        assert len(visible_labels(axes)) <= plots.MOST_LABELS
        assert all(float(tick).is_integer() for tick in axes.get_yticks())  # whole images


def test_it_says_when_the_model_makes_no_mistake() -> None:
    figure = plots.mistakes_figure(np.zeros((0, 784), np.uint8), [], [])
    assert "The model reads every MNIST test image correctly." in texts(figure)
