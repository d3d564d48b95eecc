"""Contributor pages: the list of bounties, a page per bounty with the submission form, the status page."""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import Resolver404, resolve
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bounty import images, limits
from bounty.forms import (
    SubmissionForm,
    address_problem,
    extract_address,
    network_name,
    network_note,
    too_large_message,
)
from bounty.models import Bounty, Submission
from bounty.models.submissions import network_of
from bounty.presenters import status_payload
from bounty.queue import enqueue


def max_request_bytes() -> int:
    """The largest request body a legitimate submission sends: one upload at the limit plus a canvas drawing
    at its limit (base64), plus the form's other fields."""
    return settings.MAX_UPLOAD_BYTES * 3 + 64 * 1024


def limit_request_body(get_response):
    """Middleware: refuse a body far over the upload limit from its Content-Length, before anything (the
    CSRF check included) reads it into memory or a temporary file. A submission refused so gets its bounty
    page back with the reason and what to do; anything else a short plain-text answer."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > max_request_bytes():
            return too_large_response(request, int(length))
        return get_response(request)

    return middleware


def too_large_response(request: HttpRequest, length: int) -> HttpResponseBase:
    message = too_large_message(length, what="The upload")
    try:
        match = resolve(request.path_info)
    except Resolver404:
        match = None
    if match is None or match.url_name != "bounty-page":
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
    bounty = Bounty.objects.select_related("model_version").filter(pk=match.kwargs["pk"]).first()
    if bounty is None or bounty.state == Bounty.State.DRAFT:
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
    # The page carries a CSRF token matching the cookie the contributor already has; the CSRF middleware,
    # which would read it, never runs for a request answered here.
    csrf = CsrfViewMiddleware(lambda _: HttpResponse())
    csrf.process_request(request)
    response = render_bounty_page(request, bounty, SubmissionForm(), refusal=message, status=413)
    return csrf.process_response(request, response)


def client_ip(request: HttpRequest) -> str | None:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR")


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "bounty/index.html", {"rows": open_bounties(), "come_back": come_back_hint()})


def open_bounties() -> list[tuple[Bounty, int]]:
    """The bounties taking images now, each with its rewards left."""
    bounties = (
        Bounty.objects.filter(state=Bounty.State.ACTIVE, paused=False)
        .select_related("model_version")
        .order_by("digit", "-reward")
    )
    rows = [(bounty, bounty.rewards_left()) for bounty in bounties if bounty.is_open()]
    return [(bounty, left) for bounty, left in rows if left > 0]


def come_back_hint() -> str:
    """When there is no open bounty, when it is worth coming back."""
    if Bounty.objects.filter(state=Bounty.State.FUNDED).exists():
        return "A new bounty is being set up right now: come back in a few minutes."
    if Bounty.objects.filter(state=Bounty.State.ACTIVE, paused=True).exists():
        return "A bounty is paused by its funder and may open again: come back later today."
    return "Funders open new bounties from time to time, with no fixed schedule: come back in a day or two."


def closed_message(bounty: Bounty, slots_left: int) -> str:
    """Why a bounty takes no images now, in one sentence; empty while it does."""
    if bounty.state == Bounty.State.EXHAUSTED or (bounty.state == Bounty.State.ACTIVE and slots_left == 0):
        return (
            f"All {bounty.slot_count} rewards of this bounty have been claimed, "
            "so it is not accepting images any more."
        )
    if bounty.state in (Bounty.State.CLOSED, Bounty.State.REFUNDED):
        return "This bounty has ended, so it is not accepting images any more."
    if bounty.state == Bounty.State.FUNDED:
        return "This bounty is being set up and is not accepting images yet: try again in a few minutes."
    if bounty.paused:
        return "The funder has paused this bounty, so it is not accepting images right now."
    if not bounty.is_open():
        return "This bounty has ended, so it is not accepting images any more."
    return ""


def bounty_page(request: HttpRequest, pk: int) -> HttpResponse:
    bounty = get_object_or_404(Bounty.objects.select_related("model_version"), pk=pk)
    if bounty.state == Bounty.State.DRAFT:
        raise Http404("no such bounty")
    if request.method == "POST" and closed_message(bounty, bounty.slots_left()):
        # One message on the page says why; the form keeps what was sent.
        kept = {name: request.POST.get(name, "") for name in ("payout_address", "drawing")}
        return render_bounty_page(request, bounty, SubmissionForm(initial=kept), refused=True, status=400)
    ip = client_ip(request)
    if request.method == "POST":
        # Before the upload is decoded or stored: the limits cost a count on an index, the decode does not.
        address = extract_address(request.POST.get("payout_address", ""))
        size = sum(upload.size or 0 for _, uploads in request.FILES.lists() for upload in uploads[-1:])
        refusal = limits.rate_refusal(network_of(ip), address) or limits.storage_refusal(size)
        if refusal is not None:
            return refused_response(request, bounty, refusal)
    form = SubmissionForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        submission = create_submission(bounty, form.cleaned_data, ip)
        return redirect("bounty-status", public_id=submission.public_id)
    return render_bounty_page(request, bounty, form, status=400 if form.errors else 200)


def refused_response(request: HttpRequest, bounty: Bounty, refusal: limits.Refusal) -> HttpResponse:
    """The bounty page again with the refusal on it (the drawing and address kept), and Retry-After."""
    kept = {name: request.POST.get(name, "") for name in ("payout_address", "drawing")}
    response = render_bounty_page(
        request, bounty, SubmissionForm(initial=kept), refusal=refusal.message, status=refusal.status
    )
    response["Retry-After"] = str(refusal.retry_after)
    return response


def render_bounty_page(
    request: HttpRequest,
    bounty: Bounty,
    form: SubmissionForm,
    refusal: str = "",
    refused: bool = False,
    status: int = 200,
) -> HttpResponse:
    slots_left = bounty.slots_left()
    closed = closed_message(bounty, slots_left)
    others = [row for row in open_bounties() if row[0].pk != bounty.pk] if closed else []
    context = {
        "bounty": bounty,
        "form": form,
        "rewards_left": slots_left * bounty.lanes,
        "open": not closed,
        "closed_message": closed,
        "other_bounties": others,
        "refusal": refusal,
        # The form went back to the contributor refused: the page restores the drawing and the address.
        "refused": bool(refused or refusal or form.errors),
        "image_refused": bool(refusal or form.errors.get("image")),
        "network_name": network_name(),
        "network_note": network_note(),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
    }
    return render(request, "bounty/bounty.html", context, status=status)


def create_submission(bounty: Bounty, data: dict, ip: str | None) -> Submission:
    """Store the upload, then the row in one INSERT, and only then queue its processing (the task gets its
    id). The file is written before the row and outside any transaction: on SQLite every writer waits for
    the one write lock, which the request held while it wrote the file (with its other threads taking turns
    at the interpreter); under 200 submissions, 8 in flight, the web's BEGIN IMMEDIATE waited 30 ms on
    average."""
    pixels = data["pixels"]
    submission = Submission(
        bounty=bounty,
        pixels=pixels.tobytes(),
        pixel_sha256=images.pixel_sha256(pixels),
        phash=images.perceptual_hash(pixels),
        claimed_digit=bounty.digit,
        payout_address=data["payout_address"],
        contributor_ip=ip,
        original_bytes=len(data["original_bytes"]),
    )
    submission.original.save(data["original_name"], ContentFile(data["original_bytes"]), save=False)
    try:
        submission.save()
    except BaseException:
        submission.original.delete(save=False)  # no row, so no file: nothing is left that nothing names
        raise
    limits.note_stored(len(data["original_bytes"]))
    transaction.on_commit(lambda: enqueue(submission.pk))  # at once, or at the end of an enclosing atomic
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
            "page_url": request.build_absolute_uri(),
            "explorer_note": "(a test ledger: no public block explorer shows it)",
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
    text = request.GET.get("address", "")
    address, problem = address_problem(text)
    if problem:
        return JsonResponse({"valid": False, "message": problem, "address": address})
    message = "Looks good."
    if address != text.strip():
        message = "Looks good: the address was taken from the payment link."
    return JsonResponse({"valid": True, "message": message, "address": address})
