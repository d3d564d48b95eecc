"""JSON log lines with request ids, and secrets that never reach a log."""

from __future__ import annotations

import json
import logging

import pytest

from bounty.ops.logs import JsonFormatter, RedactSecretsFilter, request_id_var
from contracts.keys import Key


def formatted(message: str, *args: object) -> dict:
    record = logging.LogRecord("bounty.test", logging.INFO, __file__, 1, message, args, None)
    RedactSecretsFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_it_writes_one_json_object_with_the_request_id() -> None:
    token = request_id_var.set("req-12345678")
    try:
        entry = formatted("paid %s", "abc")
    finally:
        request_id_var.reset(token)
    assert entry["message"] == "paid abc" and entry["request_id"] == "req-12345678"
    assert entry["level"] == "INFO" and entry["logger"] == "bounty.test"


def test_it_redacts_configured_secrets_and_anything_shaped_like_a_wif(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ARC_API_KEY = "arc-api-key-0123456789"
    settings.DATABASE_URL = "postgres://bounty:db-password-42@127.0.0.1/bounty"
    wif = Key.generate("testnet").wif
    entry = formatted("key %s api %s url %s", wif, settings.ARC_API_KEY, settings.DATABASE_URL)
    for secret in (wif, "arc-api-key-0123456789", "db-password-42"):
        assert secret not in json.dumps(entry)
    assert entry["message"].count("***") == 3


@pytest.mark.django_db
def test_it_sets_a_request_id_and_keeps_a_sane_one_from_the_proxy(client) -> None:  # type: ignore[no-untyped-def]
    from django.test import override_settings

    with override_settings(MIDDLEWARE=["bounty.ops.middleware.RequestIdMiddleware"]):
        made = client.get("/healthz")
        kept = client.get("/healthz", HTTP_X_REQUEST_ID="nginx-0123456789abcdef")
        forged = client.get("/healthz", HTTP_X_REQUEST_ID="<script>")
    assert len(made["X-Request-ID"]) == 32
    assert kept["X-Request-ID"] == "nginx-0123456789abcdef"
    assert forged["X-Request-ID"] != "<script>"
