"""The model page: versions, decisions and redeployments, with plots served from the files `plots` stored.

No request draws a plot or loads MNIST or a model: a plot not drawn yet is a 404 here, and a note on the page.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from bounty import images
from bounty.models import ModelVersion, Submission
from bounty.retraining import pending, plots
from bounty.retraining.models import CollectedImage, Redeployment, RetrainingRun


@require_GET
def model_page(request: HttpRequest) -> HttpResponse:
    context = {
        "active": ModelVersion.active(),
        "versions": list(reversed(plots.versions())),
        "learning": version_rows(),
        "pending": Submission.objects.filter(state=Submission.State.PENDING).count(),
        "runs": RetrainingRun.objects.select_related("candidate")[:20],
        "redeployments": Redeployment.objects.select_related("target", "previous")[:10],
        "flagged": CollectedImage.objects.filter(role=CollectedImage.Role.FLAGGED).count(),
        "drawn": {name: plots.stored(name) is not None for name in plots.PLOTS},
    }
    return render(request, "retraining/models.html", context)


# Thumbnails of the pending images a version still reads as another digit, per version on the page.
STILL_WRONG_SHOWN = 12


def version_rows() -> list[dict]:
    """Per version, newest first, from what was stored when it was trained, gated and its bounties moved
    (no model is loaded here): accuracy on MNIST, on the held-out collected images and on the drawn-style
    set, the pending images it had paid, and those it still reads as another digit (as small images)."""
    rows = []
    for version, run in reversed(plots.versions()):
        gate = (run.gate if run is not None else None) or {}
        learning = version.learning or {}
        wrong_ids = list(learning.get("still_wrong", []))[-STILL_WRONG_SHOWN:]
        wrong = Submission.objects.filter(pk__in=wrong_ids).only("pk", "pixels", "claimed_digit")
        rows.append(
            {
                "version": version,
                "mnist": measured(gate, "mnist_accuracy", version.accuracy),
                "heldout": measured(gate, "heldout_accuracy", None),
                "heldout_images": (gate.get("heldout_accuracy") or {}).get("images"),
                "drawn": measured(gate, "drawn_accuracy", version.metrics.get("drawn_accuracy")),
                "reread": learning.get("reread", 0),
                "converted": pending.converted(version),
                "still_wrong": [
                    {"pk": s.pk, "digit": s.claimed_digit, "image": images.png_data_url(s.pixel_bytes)}
                    for s in wrong
                ],
            }
        )
    return rows


def measured(gate: dict, criterion: str, fallback: float | None) -> float | None:
    """The candidate's accuracy the gate recorded for `criterion` at promotion, else `fallback`."""
    value = (gate.get(criterion) or {}).get("new")
    return float(value) if value is not None else fallback


def serve(name: str) -> FileResponse:
    path = plots.stored(name)
    if path is None:
        raise Http404(f"the {name} plot has not been drawn yet")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = "max-age=60"
    return response


@require_GET
def accuracy_png(request: HttpRequest) -> FileResponse:
    return serve("accuracy")


@require_GET
def confusion_png(request: HttpRequest) -> FileResponse:
    return serve("confusion")


@require_GET
def mistakes_png(request: HttpRequest) -> FileResponse:
    return serve("mistakes")


@require_GET
def collected_png(request: HttpRequest) -> FileResponse:
    return serve("collected")
