"""The model page: versions, decisions and redeployments, with plots rendered as PNG by `plots`."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from bounty.models import ModelVersion
from bounty.retraining import dataset, plots
from bounty.retraining.models import CollectedImage, Redeployment, RetrainingRun


def versions() -> list[tuple[ModelVersion, RetrainingRun | None]]:
    runs = {r.candidate_id: r for r in RetrainingRun.objects.filter(candidate__isnull=False).order_by("pk")}
    return [(v, runs.get(v.pk)) for v in ModelVersion.objects.order_by("created", "pk")]


@lru_cache(maxsize=4)
def evaluation(artifact: str, sha256: str) -> tuple[np.ndarray, np.ndarray]:
    """(confusion matrix, indexes of misclassified MNIST test images) of one artifact, cached by its sha."""
    from bounty.pipeline import reference_model

    data = dataset.mnist()
    predicted = np.asarray(reference_model(artifact).predict(data.x_test.reshape(-1, 784)))
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (data.y_test.astype(int), predicted), 1)
    return matrix, np.flatnonzero(predicted != data.y_test)


def png(body: bytes) -> HttpResponse:
    response = HttpResponse(body, content_type="image/png")
    response["Cache-Control"] = "max-age=60"
    return response


@require_GET
def model_page(request: HttpRequest) -> HttpResponse:
    context = {
        "active": ModelVersion.active(),
        "versions": list(reversed(versions())),
        "runs": RetrainingRun.objects.select_related("candidate")[:20],
        "redeployments": Redeployment.objects.select_related("target", "previous")[:10],
        "flagged": CollectedImage.objects.filter(role=CollectedImage.Role.FLAGGED).count(),
    }
    return render(request, "retraining/models.html", context)


@require_GET
def accuracy_png(request: HttpRequest) -> HttpResponse:
    rows = []
    for version, run in versions():
        if version.accuracy is not None:
            promoted = version.is_active or run is None or run.state == RetrainingRun.State.PROMOTED
            rows.append((version.name, version.created, version.accuracy, promoted))
    return png(plots.accuracy_over_time(rows))


@require_GET
def confusion_png(request: HttpRequest) -> HttpResponse:
    active = ModelVersion.active()
    if active is None:
        return png(plots.confusion(np.zeros((10, 10), dtype=np.int64), "no active model"))
    matrix, _ = evaluation(active.artifact, active.sha256)
    accuracy = np.trace(matrix) / matrix.sum()
    return png(plots.confusion(matrix, f"{active.name}: {accuracy:.2%} of 10,000 MNIST test images"))


@require_GET
def mistakes_png(request: HttpRequest) -> HttpResponse:
    active = ModelVersion.active()
    if active is None:
        return png(plots.mistakes(np.zeros((0, 784), np.uint8), [], []))
    data = dataset.mnist()
    _, wrong = evaluation(active.artifact, active.sha256)
    from bounty.pipeline import reference_model

    chosen = wrong[:24]
    predicted = np.asarray(reference_model(active.artifact).predict(data.x_test[chosen].reshape(-1, 784)))
    return png(plots.mistakes(data.x_test[chosen], data.y_test[chosen].tolist(), predicted.tolist()))


@require_GET
def collected_png(request: HttpRequest) -> HttpResponse:
    names, counts = [], []
    for version, run in versions():
        names.append(version.name)
        counts.append(int(run.counts.get("collected_train", 0)) if run else 0)
    return png(plots.collected_per_version(names, counts))
