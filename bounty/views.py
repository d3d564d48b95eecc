"""Contributor pages: the list of bounties, a page per bounty with the submission form, the status page."""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bounty import chain, images, pipeline
from bounty.forms import SubmissionForm
from bounty.models import Bounty, Submission
from bounty.presenters import status_payload


def max_request_bytes() -> int:
    """The largest request body a legitimate submission sends: one upload at the limit plus a canvas drawing
    at its limit (base64), plus the form's other fields."""
    return settings.MAX_UPLOAD_BYTES * 3 + 64 * 1024


def limit_request_body(get_response):  # type: ignore[no-untyped-def]
    """Middleware: refuse a body far over the upload limit from its Content-Length, before anything (the
    CSRF check included) reads it into memory or a temporary file."""

    def middleware(request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > max_request_bytes():
            message = (
                f"The upload is too large ({int(length):,} bytes); "
                f"images may be at most {settings.MAX_UPLOAD_BYTES:,} bytes."
            )
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return get_response(request)

    return middleware


def client_ip(request: HttpRequest) -> str | None:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR")


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    bounties = (
        Bounty.objects.filter(state=Bounty.State.ACTIVE, paused=False)
        .select_related("model_version")
        .order_by("digit", "-reward")
    )
    rows = [(bounty, bounty.slots_left()) for bounty in bounties if bounty.is_open()]
    return render(request, "bounty/index.html", {"rows": rows})


def bounty_page(request: HttpRequest, pk: int) -> HttpResponse:
    bounty = get_object_or_404(Bounty.objects.select_related("model_version"), pk=pk)
    if bounty.state == Bounty.State.DRAFT:
        raise Http404("no such bounty")
    form = SubmissionForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if not bounty.is_open():
            form.add_error(None, "This bounty is not accepting images right now.")
        elif form.is_valid():
            submission = create_submission(bounty, form.cleaned_data, client_ip(request))
            return redirect("bounty-status", public_id=submission.public_id)
    context = {"bounty": bounty, "form": form, "slots_left": bounty.slots_left(), "open": bounty.is_open()}
    return render(request, "bounty/bounty.html", context, status=400 if form.errors else 200)


def create_submission(bounty: Bounty, data: dict, ip: str | None) -> Submission:
    """Store the submission, commit it, and only then queue its processing (the task gets its id)."""
    pixels = data["pixels"]
    with transaction.atomic():
        submission = Submission(
            bounty=bounty,
            pixels=pixels.tobytes(),
            pixel_sha256=images.pixel_sha256(pixels),
            phash=images.perceptual_hash(pixels),
            claimed_digit=bounty.digit,
            payout_address=data["payout_address"],
            contributor_ip=ip,
        )
        submission.original.save(data["original_name"], ContentFile(data["original_bytes"]), save=False)
        submission.save()
        transaction.on_commit(lambda: pipeline.enqueue(submission.pk))
    return submission


@never_cache
@require_GET
def status_page(request: HttpRequest, public_id: str) -> HttpResponse:
    submission = get_object_or_404(Submission.objects.select_related("bounty"), public_id=public_id)
    return render(
        request,
        "bounty/status.html",
        {
            "submission": submission,
            "status": status_payload(submission),
            "digit_url": digit_png_url(submission),
        },
    )


def digit_png_url(submission: Submission) -> str:
    return images.png_data_url(submission.pixel_bytes)


@never_cache
@require_GET
def status_json(request: HttpRequest, public_id: str) -> JsonResponse:
    submission = get_object_or_404(Submission.objects.select_related("bounty"), public_id=public_id)
    return JsonResponse(status_payload(submission))


@require_GET
def address_check(request: HttpRequest) -> JsonResponse:
    """Checked in the browser as the contributor types; the form checks the same way on submit."""
    problem = chain.address_problem(request.GET.get("address", "").strip())
    return JsonResponse({"valid": not problem, "message": problem or "Looks good."})
