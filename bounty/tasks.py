"""Celery tasks: thin wrappers that receive ids only and call the pipeline, the poller and the sweeper."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from bounty import confirmations, limits, pipeline, sweeper
from bounty.payouts import TryLater

# The database went away mid-task (a restart, a failover, a dropped connection): the work is idempotent, so
# try again soon; Celery's Django fixup opens a fresh connection for the next run.
TRANSIENT = (TryLater, OperationalError, InterfaceError)


@shared_task(bind=True, max_retries=30, acks_late=True)
def process_submission(self, submission_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        return pipeline.process(submission_id)
    except TRANSIENT as error:
        raise self.retry(exc=error, countdown=min(2**self.request.retries, 60)) from error


@shared_task
def poll_confirmations() -> int:
    return confirmations.poll_confirmations()


@shared_task
def sweep() -> dict[str, int]:
    return sweeper.sweep()


@shared_task
def expire_originals() -> int:
    return limits.expire_originals()
