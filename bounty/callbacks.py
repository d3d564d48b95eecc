"""ARC's callback: ARC POSTs a transaction's new status here, so a claim advances when ARC knows.

Enabled when ARC_CALLBACK_TOKEN is set (ARC_CALLBACK_URL tells ARC where to call). ARC sends the token back
as `Authorization: Bearer <token>`; anything else is refused. A callback only moves a transaction forward
through the same `apply_status` as the poll, so a late, repeated or forged-but-authenticated report of an
older state changes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bounty import chain
from bounty.confirmations import apply_status
from bounty.models import Transaction

log = logging.getLogger(__name__)
MAX_CALLBACK_BYTES = 1_000_000


def authorized(request: HttpRequest) -> bool:
    token = settings.ARC_CALLBACK_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@csrf_exempt
@require_POST
def arc_callback(request: HttpRequest) -> HttpResponse:
    if not settings.ARC_CALLBACK_TOKEN:
        return HttpResponse(status=404)
    if not authorized(request):
        return JsonResponse({"error": "unauthorized"}, status=401)
    if len(request.body) > MAX_CALLBACK_BYTES:
        return JsonResponse({"error": "too large"}, status=413)
    try:
        body = json.loads(request.body)
        # A batched callback (X-CallbackBatch) carries {"count", "callbacks": [...]}.
        items = body["callbacks"] if isinstance(body, dict) and "callbacks" in body else [body]
        statuses = [chain.read_callback(item) for item in items]
    except (ValueError, TypeError, KeyError) as error:
        return JsonResponse({"error": f"not an ARC callback: {error}"}, status=400)
    applied = 0
    for status in statuses:
        tx = Transaction.objects.filter(txid=status.txid).first()
        if tx is None:
            continue  # not ours (or already forgotten): acknowledged so that ARC stops retrying
        with transaction.atomic():
            apply_status(tx, status)
        applied += 1
    log.info("ARC callback: %d of %d statuses applied", applied, len(statuses))
    return JsonResponse({"applied": applied})
