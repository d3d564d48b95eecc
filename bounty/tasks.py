"""Celery tasks: thin wrappers that receive ids only and call the pipeline, the poller and the sweeper."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.signals import task_postrun, task_prerun, worker_init
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from bounty import confirmations, limits, pipeline, sweeper, warmup
from bounty.models import Submission
from bounty.payouts import TryLater

log = logging.getLogger(__name__)

# The database went away mid-task (a restart, a failover, a dropped connection): the work is idempotent, so
# try again soon; the broken connection is closed after the task (`release_connections`) and the next run
# opens a fresh one.
TRANSIENT = (TryLater, OperationalError, InterfaceError)


@task_prerun.connect
@task_postrun.connect
def release_connections(sender: object = None, **kwargs: object) -> None:
    """Around each task, as Django does around each request: close the database connections that failed or
    are older than DB_CONN_MAX_AGE and keep the others (settings.CELERY_DB_REUSE_MAX)."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run in its caller's process and transaction (tests, CELERY_TASK_ALWAYS_EAGER)
    close_old_connections()


@worker_init.connect
def warm_up(sender: object = None, **kwargs: object) -> None:
    """Before the pool forks: compile the open bounties' contracts and load the models (bounty.warmup)."""
    began = time.perf_counter()
    done = warmup.warm_up()
    connections.close_all()  # the pool's processes open their own
    log.info("warmed up in %.2f s: %s", time.perf_counter() - began, warmup.describe(done))


def separate_queues() -> bool:
    return bool(settings.CELERY_VERIFY_QUEUE != settings.CELERY_BROADCAST_QUEUE)


@shared_task(bind=True, max_retries=30, acks_late=True)
def process_submission(self, submission_id: int) -> str:
    """Verification, on CELERY_VERIFY_QUEUE. With one queue for both, the same task broadcasts too (no
    second trip through the broker); with two, a verified claim is handed to the broadcast queue."""
    stage = pipeline.Stage.VERIFY if separate_queues() else None
    try:
        state = pipeline.process(submission_id, stage)
    except TRANSIENT as error:
        raise self.retry(exc=error, countdown=min(2**self.request.retries, 60)) from error
    if stage is not None and state == Submission.State.VERIFIED:
        hand_over(broadcast_submission, submission_id)
    return state


@shared_task(bind=True, max_retries=30, acks_late=True)
def broadcast_submission(self, submission_id: int) -> str:
    """Broadcast a stored claim, on CELERY_BROADCAST_QUEUE. A claim that lost its slot comes back
    "checked": verification builds another, on its own queue."""
    try:
        state = pipeline.process(submission_id, pipeline.Stage.BROADCAST)
    except TRANSIENT as error:
        raise self.retry(exc=error, countdown=min(2**self.request.retries, 60)) from error
    if state == Submission.State.CHECKED:
        hand_over(process_submission, submission_id)
    return state


def hand_over(task, submission_id: int) -> None:
    """Queue the next stage; if the broker is down the sweeper finds the submission stuck and queues it."""
    try:
        task.delay(submission_id)
    except Exception as error:  # the state is committed; nothing is lost
        log.warning("could not queue submission %s for %s: %s", submission_id, task.name, error)


@shared_task
def poll_confirmations() -> int:
    return confirmations.poll_confirmations()


@shared_task
def sweep() -> dict[str, int]:
    return sweeper.sweep()


@shared_task
def expire_originals() -> int:
    return limits.expire_originals()
