"""The model page's plots: drawn once with matplotlib, stored as PNG files, served as files.

Drawing a plot takes about a second, and the confusion matrix and the mistakes also need the MNIST test set
and the model: far too much for a public GET. So plots are drawn only in the retraining job (a candidate's
own plots when it is registered, the shared ones when the run ends) and by `manage.py render_plots`, and the
page serves the stored files.

Files live under MEDIA_ROOT/plots/, named by what they show: `<plot>-<hash of the numbers drawn>.png`, each
written to a temporary file and renamed into place. A version's own plots (confusion, mistakes) go to
`plots/<version pk>/`; their numbers follow from its weights and the fixed MNIST test set, so a version has
one of each. The shared plots (accuracy, collected) cover every version and go to `plots/shared/`; their
numbers come from the database, cheap enough for the page to ask for the file of exactly these numbers.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

from bounty.models import ModelVersion
from bounty.retraining.models import RetrainingRun

if TYPE_CHECKING:  # matplotlib is imported only where plots are drawn, never by the web process
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SHARED = ("accuracy", "collected")
PER_VERSION = ("confusion", "mistakes")
PLOTS = SHARED + PER_VERSION
# Part of every file's hash: raise it when the drawing changes, so the stored plots are drawn again.
STYLE = 1
MISTAKES_SHOWN = 24
MOST_LABELS = 12  # more version names than this on an axis overlap: only every k-th is written
PROMOTED, NEVER_PROMOTED = "#2a7", "#c44"


@dataclass(frozen=True)
class Drawing:
    """What one plot shows: its name, the numbers drawn and where the file of those numbers goes."""

    name: str
    numbers: dict[str, Any]
    folder: str

    @property
    def path(self) -> Path:
        digest = hashlib.sha256(
            json.dumps([STYLE, self.name, self.numbers], sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        return root() / self.folder / f"{self.name}-{digest}.png"


def root() -> Path:
    return Path(settings.MEDIA_ROOT) / "plots"


# The numbers -------------------------------------------------------------------------------------------


def versions() -> list[tuple[ModelVersion, RetrainingRun | None]]:
    """Every version, oldest first, with the run that produced it (None for one registered by hand)."""
    runs = {r.candidate_id: r for r in RetrainingRun.objects.filter(candidate__isnull=False).order_by("pk")}
    return [(v, runs.get(v.pk)) for v in ModelVersion.objects.order_by("created", "pk")]


def shared(name: str) -> Drawing:
    """A shared plot's numbers, from the database alone (cheap: the page asks for them)."""
    rows = versions()
    if name == "accuracy":
        points = [
            {
                "name": version.name,
                "created": f"{version.created:%Y-%m-%d}",
                "accuracy": version.accuracy,
                "promoted": version.is_active or run is None or run.state == RetrainingRun.State.PROMOTED,
            }
            for version, run in rows
            if version.accuracy is not None
        ]
        return Drawing("accuracy", {"points": points}, "shared")
    if name == "collected":
        names = [version.name for version, _ in rows]
        counts = [int(run.counts.get("collected_train", 0)) if run else 0 for _, run in rows]
        return Drawing("collected", {"names": names, "counts": counts}, "shared")
    raise ValueError(f"{name} is not a shared plot")


def evaluate(version: ModelVersion) -> list[Drawing]:
    """A version's own plots: its confusion matrix and its first mistakes on the 10,000 MNIST test images.

    Loads MNIST (downloaded on first use) and the model: only for the worker and `manage.py render_plots`.
    """
    from bounty.retraining import dataset
    from classifier.integer_model import IntegerModel

    data = dataset.mnist()
    predicted = np.asarray(IntegerModel.load(Path(version.artifact)).predict(data.x_test.reshape(-1, 784)))
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (data.y_test.astype(int), predicted), 1)
    wrong = np.flatnonzero(predicted != data.y_test)[:MISTAKES_SHOWN]
    title = f"{version.name}: {np.trace(matrix) / matrix.sum():.2%} of 10,000 MNIST test images"
    folder = str(version.pk)
    mistakes = {
        "indexes": wrong.tolist(),
        "labels": data.y_test[wrong].astype(int).tolist(),
        "predicted": predicted[wrong].astype(int).tolist(),
    }
    return [
        Drawing("confusion", {"matrix": matrix.tolist(), "title": title}, folder),
        Drawing("mistakes", mistakes, folder),
    ]


# Finding the stored files (what a GET may do) -----------------------------------------------------------


def stored(name: str) -> Path | None:
    """The file to serve for a plot of the page, or None when it has not been drawn yet. Never draws.

    A shared plot whose numbers changed since it was drawn (a version registered or activated by hand)
    falls back to the newest one stored until it is drawn again; a version's own plots are the active one's.
    """
    if name in SHARED:
        exact = shared(name).path
        if exact.exists():
            return exact
        return _newest(root() / "shared", name)
    if name in PER_VERSION:
        active = ModelVersion.active()
        return _newest(root() / str(active.pk), name) if active is not None else None
    raise ValueError(f"no plot named {name}")


def _newest(folder: Path, name: str) -> Path | None:
    files = [(path.stat().st_mtime, path) for path in folder.glob(f"{name}-*.png")]
    return max(files)[1] if files else None


# Drawing and storing (the worker and the command) -------------------------------------------------------


def render(version: ModelVersion | None = None, *, force: bool = False) -> list[Path]:
    """Draw the shared plots and the own plots of `version` (by default the active one) that are not stored
    yet, or all of them with `force`; returns the files written."""
    version = version or ModelVersion.active()
    written = render_shared(force=force)
    if version is not None:
        written += render_version(version, force=force)
    return written


def render_shared(*, force: bool = False) -> list[Path]:
    with _lock():
        return [path for name in SHARED if (path := _store(shared(name), force))]


def render_version(version: ModelVersion, *, force: bool = False) -> list[Path]:
    with _lock():
        folder = root() / str(version.pk)
        if not force and all(_newest(folder, name) for name in PER_VERSION):
            return []
        return [path for drawing in evaluate(version) if (path := _store(drawing, force))]


@contextmanager
def _lock() -> Iterator[None]:
    """One drawing at a time (the worker and a command may overlap): the second finds the files written."""
    root().mkdir(parents=True, exist_ok=True)
    with open(root() / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _store(drawing: Drawing, force: bool) -> Path | None:
    path = drawing.path
    if path.exists() and not force:
        return None
    body = draw(drawing.name, drawing.numbers)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)  # readers see the old file or the whole new one, never a part
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    for older in path.parent.glob(f"{drawing.name}-*.png"):
        if older != path:
            older.unlink(missing_ok=True)
    return path


def draw(name: str, numbers: dict[str, Any]) -> bytes:
    """The PNG of one plot from its numbers."""
    if name == "accuracy":
        figure = accuracy_figure(numbers["points"])
    elif name == "collected":
        figure = collected_figure(numbers["names"], numbers["counts"])
    elif name == "confusion":
        figure = confusion_figure(np.asarray(numbers["matrix"], dtype=np.int64), numbers["title"])
    elif name == "mistakes":
        from bounty.retraining import dataset

        images = dataset.mnist().x_test[np.asarray(numbers["indexes"], dtype=np.int64)]
        figure = mistakes_figure(images, numbers["labels"], numbers["predicted"])
    else:
        raise ValueError(f"no plot named {name}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


# The figures --------------------------------------------------------------------------------------------


def accuracy_figure(points: Sequence[dict[str, Any]]) -> Figure:
    """MNIST test accuracy per version, oldest left; the axis zooms on the values but never passes 100%."""
    from matplotlib.ticker import PercentFormatter

    figure = _figure(7, 3.4)
    axes = figure.subplots()
    axes.set_title("MNIST test accuracy per version (green: was active, red: never promoted)", fontsize=9)
    if not points:
        return _message(figure, axes, "No model version has a measured accuracy yet.")
    values = [100 * float(point["accuracy"]) for point in points]
    places = range(len(points))
    axes.plot(places, values, color="#888", linewidth=1, zorder=2)
    colours = [PROMOTED if point["promoted"] else NEVER_PROMOTED for point in points]
    axes.scatter(places, values, c=colours, zorder=3, clip_on=False)
    if len(points) <= MOST_LABELS:
        for place, value in zip(places, values, strict=True):
            # Beside the point, not above it: a value at 100% would run into the title.
            axes.annotate(
                f"{value:.2f}%",
                (place, value),
                xytext=(6, 0),
                textcoords="offset points",
                fontsize=7,
                va="center",
            )
    low, high = min(values), max(values)
    margin = max(1.0, (high - low) * 0.15)
    axes.set_ylim(max(0.0, low - margin), min(100.0, high + margin))
    axes.yaxis.set_major_formatter(PercentFormatter(decimals=None))  # as many decimals as the ticks need
    axes.set_ylabel("accuracy")
    axes.set_xlim(-0.5, len(points) - 0.5)
    shown = _labelled(len(points))
    axes.set_xticks(
        shown,
        [f"{points[i]['name']}\n{points[i]['created']}" for i in shown],
        rotation=30,
        ha="right",
        fontsize=7,
    )
    return figure


def collected_figure(names: Sequence[str], counts: Sequence[int]) -> Figure:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7, 3.0)
    axes = figure.subplots()
    axes.set_title("Collected images each version learned from", fontsize=9)
    if not names:
        return _message(figure, axes, "No model version yet.")
    if not any(counts):
        return _message(figure, axes, "No version has learned from collected images yet.")
    bars = axes.bar(range(len(names)), counts, color="#47a")
    if len(names) <= MOST_LABELS * 2:
        axes.bar_label(bars, fontsize=7)
    axes.set_ylim(0, max(counts) * 1.15)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("collected images")
    axes.set_xlim(-0.5, len(names) - 0.5)
    shown = _labelled(len(names))
    axes.set_xticks(shown, [names[i] for i in shown], rotation=30, ha="right", fontsize=7)
    return figure


def confusion_figure(matrix: np.ndarray, title: str) -> Figure:
    figure = _figure(4.6, 4.2)
    axes = figure.subplots()
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
    return figure


def mistakes_figure(images: np.ndarray, labels: Sequence[int], predicted: Sequence[int]) -> Figure:
    if len(images) == 0:
        figure = _figure(7, 1.2)
        return _message(figure, figure.subplots(), "The model reads every MNIST test image correctly.")
    columns = min(len(images), 8)
    rows = (len(images) + columns - 1) // columns
    figure = _figure(columns * 1.0, rows * 1.2)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image, label, guess in zip(grid.flat, images, labels, predicted, strict=False):
        axes.imshow(np.asarray(image).reshape(28, 28), cmap="gray")
        axes.set_title(f"{label} as {guess}", fontsize=7, color=NEVER_PROMOTED)
    return figure


def _figure(width: float, height: float) -> Figure:
    """A figure of its own (no pyplot: nothing global to close, safe beside other threads)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _message(figure: Figure, axes: Axes, text: str) -> Figure:
    """An empty plot says why in words, instead of showing bare or negative axes."""
    axes.set_axis_off()
    axes.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="#555", transform=axes.transAxes)
    return figure


def _labelled(count: int) -> list[int]:
    """Which of `count` places get a label: all of a few, else every k-th and always the newest."""
    step = max(1, -(-count // MOST_LABELS))
    places = list(range(count - 1, -1, -step))
    return sorted(places)
