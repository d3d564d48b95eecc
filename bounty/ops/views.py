"""Health (`/healthz`: the process answers), readiness (`/readyz`: every probe passes), the signing pages.

The signing pages are for staff holding `bounty.sign_offline`: anyone else signed in gets 403, and someone
not signed in the admin login.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bounty import keys
from bounty.models import Bounty, Slot, Transaction
from bounty.ops import probes, signing
from bounty.retraining import redeploy
from bounty.retraining.models import MigrationStep

log = logging.getLogger(__name__)
SIGN_OFFLINE = "bounty.sign_offline"
CONFIRM_OTHER_ADDRESS = "confirm_other_address"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: cheap, touches nothing, so a slow database never gets a healthy web process restarted."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = probes.run_all()
    ready = all(p.ok for p in results)
    body = {"status": "ready" if ready else "not ready", "checks": [p.to_json() for p in results]}
    return JsonResponse(body, status=200 if ready else 503)


@staff_member_required
@permission_required(SIGN_OFFLINE, raise_exception=True)
@never_cache
def signing_index(request: HttpRequest) -> HttpResponse:
    """Migrations waiting for the admin's signatures, and bounties whose free slots an admin can refund."""
    rows = []
    for bounty in Bounty.objects.exclude(state=Bounty.State.DRAFT).order_by("pk"):
        free = Slot.objects.free().filter(bounty=bounty)
        count = free.count()
        if count:
            rows.append((bounty, count, sum(free.values_list("satoshis", flat=True))))
    waiting = MigrationStep.objects.filter(state=MigrationStep.State.SIGNING)
    migrations = waiting.select_related("bounty", "from_version", "redeployment__target").order_by("pk")
    context = {
        "rows": rows, "migrations": migrations, "key_on_server": keys.admin_key_on_server(),
        "network": settings.NETWORK, "refund_address": signing.refund_address(),
    }  # fmt: skip
    return render(request, "ops/signing_index.html", context)


def refund_destination(request: HttpRequest, bounty: Bounty) -> tuple[str, str]:
    """The address the refund pays, and why it cannot be prepared for it yet ("": it can).

    The configured refund address needs nothing more. Any other, typed on the page or brought by a link's
    `?to=`, is prepared only from a POST with the confirmation box ticked: a link cannot tick it, so following
    one never shows preimages that pay someone else. Every confirmation is logged (user, bounty, address).
    """
    configured = signing.refund_address()
    to_address = (request.POST.get("to_address") or request.GET.get("to") or "").strip() or configured
    if to_address == configured:
        return to_address, ""
    if request.method != "POST" or request.POST.get(CONFIRM_OTHER_ADDRESS) != "yes":
        return to_address, (
            f"{to_address} is not the configured refund address (the operator wallet, {configured}). "
            "Nothing is prepared for it unless you tick the box to confirm that this refund pays it."
        )
    log.warning(
        "%s confirmed the refund of bounty #%s to %s, which is not the configured refund address",
        request.user.get_username(), bounty.pk, to_address,
    )  # fmt: skip
    return to_address, ""


@staff_member_required
@permission_required(SIGN_OFFLINE, raise_exception=True)
@never_cache
def signing_refund(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the unsigned refund, what it pays to whom and one preimage per input; POST: the confirmation of
    another address, or the signatures, assembled and broadcast."""
    bounty = get_object_or_404(Bounty, pk=pk)
    to_address, unconfirmed = refund_destination(request, bounty)
    configured = signing.refund_address()
    context: dict = {
        "bounty": bounty, "to_address": to_address, "network": settings.NETWORK,
        "refund_address": configured, "other_address": to_address != configured,
    }  # fmt: skip
    if unconfirmed:
        context["unconfirmed"] = unconfirmed
        status = 400 if request.method == "POST" else 200
        return render(request, "ops/signing_refund.html", context, status=status)
    status = 200
    if request.method == "POST" and "signatures" in request.POST:
        slot_ids = [int(x) for x in request.POST.get("slot_ids", "").split(",") if x.strip().isdigit()]
        signatures = [s for s in request.POST.get("signatures", "").split() if s]
        try:
            stored = signing.submit_signed_refund(bounty, slot_ids, to_address, signatures)
        except signing.SigningError as error:
            context["error"], status = str(error), 400
        else:
            context["stored"] = stored
            return render(request, "ops/signing_done.html", context)
    try:
        context["refund"] = signing.prepare_refund(bounty, to_address)
    except signing.SigningError as error:
        context.setdefault("error", str(error))
        status = 400 if request.method == "POST" else 200
    return render(request, "ops/signing_refund.html", context, status=status)


@staff_member_required
@permission_required(SIGN_OFFLINE, raise_exception=True)
@never_cache
def signing_refund_request(request: HttpRequest, pk: int) -> JsonResponse:
    """The refund's signing request as a file to carry to the offline machine; the same address rules."""
    bounty = get_object_or_404(Bounty, pk=pk)
    to_address, unconfirmed = refund_destination(request, bounty)
    if unconfirmed:
        return JsonResponse({"error": unconfirmed}, status=400)
    try:
        refund = signing.prepare_refund(bounty, to_address)
    except signing.SigningError as error:
        return JsonResponse({"error": str(error)}, status=400)
    return attachment(signing.refund_request(bounty, refund), f"refund-bounty-{bounty.pk}.json")


def attachment(body: dict, filename: str) -> JsonResponse:
    response = JsonResponse(body, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def migration_to_sign(
    step: MigrationStep,
) -> tuple[redeploy.MigrationToSign, list[signing.TransactionToSign]]:
    """The step's totals (`redeploy.to_sign`) and its transactions with their outputs in words."""
    migration = redeploy.to_sign(step)
    unsigned = [entry for entry, _ in redeploy.unsigned_migrations(step)]
    return migration, signing.migration_transactions(step.bounty, step.redeployment.target.name, unsigned)


@staff_member_required
@permission_required(SIGN_OFFLINE, raise_exception=True)
@never_cache
def signing_migration(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: a redeployment's migration of one bounty, one preimage per old slot; POST: the signatures,
    verified and stored, then broadcast and the bounty moved to the new model as any migration is."""
    steps = MigrationStep.objects.select_related("bounty", "from_version", "redeployment__target")
    step = get_object_or_404(steps, pk=pk)
    context: dict = {"step": step, "network": settings.NETWORK}
    status = 200
    if request.method == "POST":
        try:
            redeploy.accept_signatures(step, request.POST.get("signatures", "").split())
        except signing.SigningError as error:
            context["error"], status = str(error), 400
        else:
            redeploy.process(step.redeployment)
            step.refresh_from_db()
            context["transactions"] = Transaction.objects.filter(txid__in=step.txids).order_by("pk")
            return render(request, "ops/signing_migration_done.html", context)
    try:
        context["migration"], context["to_sign"] = migration_to_sign(step)
    except signing.SigningError as error:
        context.setdefault("error", str(error))
    return render(request, "ops/signing_migration.html", context, status=status)


@staff_member_required
@permission_required(SIGN_OFFLINE, raise_exception=True)
@never_cache
def signing_migration_request(request: HttpRequest, pk: int) -> JsonResponse:
    """The migration's signing request as a file; its outputs are fixed (new slots, the wallet's change)."""
    steps = MigrationStep.objects.select_related("bounty", "from_version", "redeployment__target")
    step = get_object_or_404(steps, pk=pk)
    try:
        migration, transactions = migration_to_sign(step)
    except signing.SigningError as error:
        return JsonResponse({"error": str(error)}, status=400)
    body = signing.migration_request(
        step.bounty, step.pk, step.redeployment.target.name, transactions, migration.fee
    )
    return attachment(body, f"migration-{step.pk}-bounty-{step.bounty_id}.json")
