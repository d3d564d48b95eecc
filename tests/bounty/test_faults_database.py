"""The database connection dropped in the middle of a claim: after the slot is reserved (while the claim is
built) and after the broadcast (before it is recorded). On PostgreSQL the server ends the backend
(pg_terminate_backend), the step fails with OperationalError, the task is retried on a fresh connection and
finishes; on SQLite the connection is closed under the worker and Django reopens it."""

from __future__ import annotations

from unittest import mock

import psycopg
import pytest
from bounty_testing import mnist_pixels
from django.db import InterfaceError, OperationalError, connection
from fault_support import check_invariants

from bounty import chain, images, pipeline, tasks
from bounty.models import Bounty, ModelVersion, Slot, Submission

pytestmark = pytest.mark.django_db(transaction=True)


def drop_connection() -> None:
    if connection.vendor == "postgresql":
        pid = connection.connection.info.backend_pid
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    else:
        connection.close()


@pytest.fixture
def bounty(settings) -> Bounty:  # type: ignore[no-untyped-def]
    from bounty_testing import deployed_bounty, model_artifact

    version = ModelVersion.register(model_artifact(), name="db-faults", activate=True)
    chain.faucet(chain.operator_address(), 1_000_000)
    return deployed_bounty(version, digit=7, slots=2)


def submission_for(bounty: Bounty, nth: int) -> Submission:
    from django.core.files.base import ContentFile

    pixels = mnist_pixels(7, nth)
    submission = Submission(
        bounty=bounty, pixels=pixels.tobytes(), pixel_sha256=images.pixel_sha256(pixels),
        phash=images.perceptual_hash(pixels), claimed_digit=7, payout_address=chain.operator_address(),
    )  # fmt: skip
    submission.original.save("x.png", ContentFile(images.png_bytes(pixels)), save=False)
    submission.save()
    return submission


def run_like_a_worker(submission: Submission) -> str:
    """What a worker does: run the step; on a dropped connection, throw it away and try again (Celery's
    Django fixup closes unusable connections around each task; `tasks` retries the database errors)."""
    for _ in range(3):
        try:
            return pipeline.process(submission.pk)
        except tasks.TRANSIENT:
            connection.close_if_unusable_or_obsolete()
    raise AssertionError("still failing after three attempts")


@pytest.mark.parametrize("where", ["while building the claim", "after the broadcast"])
def test_a_dropped_connection_mid_claim_pays_once(bounty, where: str) -> None:  # type: ignore[no-untyped-def]
    submission = submission_for(bounty, 0)
    target = "build_claim" if where == "while building the claim" else "broadcast"
    real = getattr(chain, target)
    dropped = []

    def then_drop(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        if not dropped:
            dropped.append(connection.vendor)
            drop_connection()
        return result

    with mock.patch.object(chain, target, side_effect=then_drop):
        if connection.vendor == "postgresql":
            with pytest.raises((OperationalError, InterfaceError)):
                pipeline.process(submission.pk)
            connection.close_if_unusable_or_obsolete()
            submission.refresh_from_db()
            expected = "checked" if target == "build_claim" else "verified"
            assert submission.state == expected
            assert Slot.objects.get(submission=submission).state == "reserved"
        assert run_like_a_worker(submission) == "broadcast"
    assert dropped
    assert check_invariants()["paid"] == 1


def test_the_task_retries_a_database_error(bounty) -> None:  # type: ignore[no-untyped-def]
    submission = submission_for(bounty, 1)
    real = pipeline.process
    calls = []

    def flaky(pk: int, stage: pipeline.Stage | None = None) -> str:
        calls.append(pk)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(pk, stage)

    with mock.patch.object(pipeline, "process", side_effect=flaky):
        tasks.process_submission.apply(args=(submission.pk,))
    assert len(calls) == 2
    assert Submission.objects.get(pk=submission.pk).state == "broadcast"
