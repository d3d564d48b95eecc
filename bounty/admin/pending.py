"""The reviewers' grid of pending images: many thumbnails a page, one click (or key) each to confirm or
discard, and bulk actions on a selection.

Confirming says the image really is the digit it was sent for: it is labelled so (and trained on) and its
payout needs no further review once a later model reads it as the digit. Discarding rejects it. Looking needs
bounty.view_submission; acting needs bounty.label_submission and bounty.approve_payout (both held by the
reviewer group, migration 0007). Every action is a POST through Django's CSRF check.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from bounty import images
from bounty.models import Bounty, Submission
from bounty.retraining import pending

PER_PAGE = 60
ACTING = ("bounty.label_submission", "bounty.approve_payout")
ACTIONS = {"confirm": pending.confirm, "discard": pending.discard}


def may_act(request: HttpRequest) -> bool:
    return request.user.has_perms(ACTING)


def pending_grid(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    if not request.user.has_perm("bounty.view_submission"):
        raise PermissionDenied
    if request.method == "POST":
        return act(request)
    rows = Submission.objects.filter(state=Submission.State.PENDING).select_related("bounty")
    bounty_id = request.GET.get("bounty", "")
    if bounty_id.isdigit():
        rows = rows.filter(bounty_id=int(bounty_id))
    # Unreviewed first (the ones that still need a decision), oldest first within each.
    page = Paginator(rows.order_by("review_approved", "received_at", "pk"), PER_PAGE).get_page(
        request.GET.get("page")
    )
    tiles = [
        {
            "submission": submission,
            "image": images.png_data_url(submission.pixel_bytes),
            "confirmed": submission.review_approved and submission.true_digit == submission.claimed_digit,
            "signals_agree": pending.signals_agree(submission),
        }
        for submission in page
    ]
    context = {
        **site.each_context(request),
        "title": "Pending images",
        "page": page,
        "tiles": tiles,
        "may_act": may_act(request),
        "bounties": Bounty.objects.filter(submissions__state=Submission.State.PENDING).distinct(),
        "bounty_id": bounty_id,
        "total": rows.count(),
    }
    return TemplateResponse(request, "bounty/pending_grid.html", context)


def act(request: HttpRequest) -> HttpResponse:
    """One tile's button ("confirm:ID") or a bulk button on the selected ids; back to the same page."""
    if not may_act(request):
        raise PermissionDenied
    one = request.POST.get("one", "")
    if one:
        action, _, ident = one.partition(":")
        ids = [ident]
    else:
        action, ids = request.POST.get("bulk", ""), request.POST.getlist("ids")
    if action not in ACTIONS or not all(ident.isdigit() for ident in ids):
        messages.error(request, "Nothing was changed: the request named no known action or image.")
        return back(request)
    changed = 0
    for submission in Submission.objects.filter(pk__in=[int(i) for i in ids], state=Submission.State.PENDING):
        changed += int(ACTIONS[action](submission))
    word = "Confirmed" if action == "confirm" else "Discarded"
    messages.success(request, f"{word} {changed} pending image(s).")
    return back(request)


def back(request: HttpRequest) -> HttpResponse:
    query = request.POST.get("return_query", "")
    return HttpResponseRedirect(request.path + (f"?{query}" if query else ""))
