"""System checks (`manage.py check`): configuration errors are Errors, services that are down are Warnings.

Reachability is a warning so that `migrate` works before Redis and the ledger are started; `make run` and the
production smoke test run `manage.py check --fail-level WARNING` once everything is up.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}"))


@register("bounty")
def check_keys(app_configs: object = None, **kwargs: object) -> list:
    from bounty import keys

    problems = []
    try:
        keys.operator_key()
    except ImproperlyConfigured as error:
        problems.append(Error(f"operator key: {error}", id="bounty.E001"))
    try:
        # With ADMIN_PUBKEY alone the admin key is deliberately off the server: refunds are signed offline.
        keys.admin_public_key()
    except ImproperlyConfigured as error:
        problems.append(Error(f"admin key: {error}", id="bounty.E002"))
    return problems


@register("bounty")
def check_native_vm(app_configs: object = None, **kwargs: object) -> list:
    from bsv.native import NATIVE_AVAILABLE

    if not NATIVE_AVAILABLE:
        return [
            Error(
                "bsv-sdk's native extension is not available: script verification would run about 20x slower",
                hint="install bsv-sdk from a wheel built for this platform",
                id="bounty.E003",
            )
        ]
    return []


@register("bounty")
def check_model_artifact(app_configs: object = None, **kwargs: object) -> list:
    if not settings.MODEL_ARTIFACT.exists():
        return [
            Warning(
                f"the default model artifact {settings.MODEL_ARTIFACT} does not exist",
                hint="run `make model` or set MODEL_ARTIFACT",
                id="bounty.W003",
            )
        ]
    return []


@register("bounty")
def check_second_opinion(app_configs: object = None, **kwargs: object) -> list:
    """With SECOND_OPINION on, its model must load: otherwise every payout would be held (fail closed), and
    it is better to refuse to start than to find out from a queue of held contributors."""
    if not settings.SECOND_OPINION:
        return []
    from classifier.second_opinion import load_cached

    try:
        load_cached(str(settings.SECOND_OPINION_MODEL))
    except Exception as error:
        return [
            Error(
                f"SECOND_OPINION is on but its model {settings.SECOND_OPINION_MODEL} cannot be loaded: "
                f"{error}",
                hint="restore the file (python -m classifier second-opinion train --out PATH), point "
                "SECOND_OPINION_MODEL at it, or set SECOND_OPINION=0 (development only)",
                id="bounty.E004",
            )
        ]
    return []


@register("bounty", "services")
def check_chain_reachable(app_configs: object = None, **kwargs: object) -> list:
    from bounty import chain

    try:
        chain.ping()
    except Exception as error:
        where = settings.LEDGER_DIR if settings.CHAIN_BACKEND == "local" else settings.ARC_URL
        return [Warning(f"the chain backend at {where} is not reachable: {error}", id="bounty.W001")]
    return []


@register("bounty", "services")
def check_redis_reachable(app_configs: object = None, **kwargs: object) -> list:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as error:
        return [
            Warning(f"Redis at {redacted(settings.REDIS_URL)} is not reachable: {error}", id="bounty.W002")
        ]
    return []
