"""The model page: versions, decisions and redeployments, with plots served from the files `plots` stored.

No request draws a plot or loads MNIST or a model: a plot not drawn yet is a 404 here, and a note on the page.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from bounty.models import ModelVersion
from bounty.retraining import plots
from bounty.retraining.models import CollectedImage, Redeployment, RetrainingRun


@require_GET
def model_page(request: HttpRequest) -> HttpResponse:
    context = {
        "active": ModelVersion.active(),
        "versions": list(reversed(plots.versions())),
        "runs": RetrainingRun.objects.select_related("candidate")[:20],
        "redeployments": Redeployment.objects.select_related("target", "previous")[:10],
        "flagged": CollectedImage.objects.filter(role=CollectedImage.Role.FLAGGED).count(),
        "drawn": {name: plots.stored(name) is not None for name in plots.PLOTS},
    }
    return render(request, "retraining/models.html", context)


def serve(name: str) -> HttpResponse:
    path = plots.stored(name)
    if path is None:
        raise Http404(f"the {name} plot has not been drawn yet")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = "max-age=60"
    return response


@require_GET
def accuracy_png(request: HttpRequest) -> HttpResponse:
    return serve("accuracy")


@require_GET
def confusion_png(request: HttpRequest) -> HttpResponse:
    return serve("confusion")


@require_GET
def mistakes_png(request: HttpRequest) -> HttpResponse:
    return serve("mistakes")


@require_GET
def collected_png(request: HttpRequest) -> HttpResponse:
    return serve("collected")
