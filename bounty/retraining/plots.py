"""Plots of the model page, drawn server-side with matplotlib (Agg) into PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _png(figure) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def accuracy_over_time(rows: Sequence[tuple[str, object, float, bool]]) -> bytes:
    """rows: (name, created, MNIST test accuracy, promoted) per version, oldest first."""
    figure, axes = plt.subplots(figsize=(7, 3.2))
    if rows:
        dates = [row[1] for row in rows]
        values = [row[2] * 100 for row in rows]
        axes.plot(dates, values, color="#888", linewidth=1)
        for name, created, value, promoted in rows:
            axes.scatter([created], [value * 100], color="#2a7" if promoted else "#c44", zorder=3)
            axes.annotate(name, (created, value * 100), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_ylabel("MNIST test accuracy (%)")
    axes.set_title("Accuracy per version (green: was active, red: never promoted)")
    figure.autofmt_xdate()
    return _png(figure)


def confusion(matrix: np.ndarray, title: str) -> bytes:
    figure, axes = plt.subplots(figsize=(4.6, 4.2))
    axes.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            axes.text(j, i, str(count), ha="center", va="center", fontsize=6,
                      color="white" if i == j else "black")  # fmt: skip
    axes.set_xticks(range(10))
    axes.set_yticks(range(10))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    return _png(figure)


def mistakes(images: np.ndarray, labels: Sequence[int], predicted: Sequence[int]) -> bytes:
    count = max(len(images), 1)
    columns = min(count, 8)
    rows = (count + columns - 1) // columns
    figure, grid = plt.subplots(rows, columns, figsize=(columns * 1.0, rows * 1.2), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image, label, guess in zip(grid.flat, images, labels, predicted, strict=False):
        axes.imshow(image.reshape(28, 28), cmap="gray")
        axes.set_title(f"{label} as {guess}", fontsize=7, color="#c44")
    return _png(figure)


def collected_per_version(names: Sequence[str], counts: Sequence[int]) -> bytes:
    figure, axes = plt.subplots(figsize=(7, 2.8))
    axes.bar(range(len(names)), counts, color="#47a")
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("collected images")
    axes.set_title("Collected images each version learned from")
    return _png(figure)
