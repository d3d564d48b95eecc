"""JSON log lines with request ids, and secrets that never reach a log."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from collections.abc import Callable

import pytest
from bsv import PrivateKey

from bounty.ops.logs import WIF_PATTERN, JsonFormatter, RedactSecretsFilter, logging_config, request_id_var
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


REDIS_URL_WITH_PASSWORD = "redis://:s3cret@host:6379/0"


def configured_handler(json_logs: bool, stream: io.StringIO) -> logging.Handler:
    """The production console handler (its redact filter and its JSON or plain formatter, from
    logging_config), writing to `stream` instead of stderr."""
    config = logging_config(json_logs=json_logs)
    console = config["handlers"]["console"]
    configurator = logging.config.DictConfigurator(config)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(config["formatters"][console["formatter"]]))
    for name in console["filters"]:
        handler.addFilter(configurator.configure_filter(config["filters"][name]))
    return handler


def emitted(json_logs: bool, log_call: Callable[[logging.Logger], None]) -> str:
    stream = io.StringIO()
    handler = configured_handler(json_logs, stream)
    logger = logging.getLogger("bounty.test.redaction")
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.INFO
    try:
        log_call(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_it_redacts_every_extra_field_in_the_json_log() -> None:
    wif = PrivateKey().wif()
    assert WIF_PATTERN.fullmatch(wif)
    output = emitted(
        True,
        lambda log: log.info(
            "connected", extra={"wif": wif, "broker": REDIS_URL_WITH_PASSWORD, "config": {"key": wif}}
        ),
    )
    entry = json.loads(output)
    for secret in (wif, "s3cret"):
        assert secret not in output
    assert entry["message"] == "connected"
    assert entry["wif"] == "***" and entry["broker"] == "redis://:***@host:6379/0"
    assert entry["config"] == "{'key': '***'}"


def raise_with_secrets(wif: str) -> None:
    raise ConnectionError(f"cannot reach {REDIS_URL_WITH_PASSWORD} while signing with {wif}")


@pytest.mark.parametrize("json_logs", [True, False], ids=["json", "plain"])
def test_it_keeps_a_traceback_that_held_a_secret_with_the_secret_replaced(json_logs: bool) -> None:
    wif = PrivateKey().wif()

    def log_failure(log: logging.Logger) -> None:
        try:
            raise_with_secrets(wif)
        except ConnectionError:
            log.exception("broker down", extra={"url": REDIS_URL_WITH_PASSWORD, "wif": wif}, stack_info=True)

    output = emitted(json_logs, log_failure)
    for secret in (wif, "s3cret"):
        assert secret not in output
    text = json.loads(output)["exception"] if json_logs else output
    assert "Traceback (most recent call last)" in text
    assert "in raise_with_secrets" in text
    assert "ConnectionError: cannot reach redis://:***@host:6379/0 while signing with ***" in text


def test_it_redacts_a_traceback_that_was_already_formatted() -> None:
    wif = PrivateKey().wif()
    try:
        raise_with_secrets(wif)
    except ConnectionError:
        record = logging.LogRecord("bounty.test", logging.ERROR, __file__, 1, "down", None, sys.exc_info())
    record.exc_text = logging.Formatter().formatException(record.exc_info)  # as an earlier handler leaves it
    RedactSecretsFilter().filter(record)
    exception = json.loads(JsonFormatter().format(record))["exception"]
    assert wif not in exception and "s3cret" not in exception
    assert "ConnectionError: cannot reach redis://:***@host:6379/0" in exception
