"""Queueing a submission for the worker, by the task's registered name.

The pipeline, the confirmation poller and the sweeper all hand submissions back to the worker, and the tasks
module calls all three: naming the task here, rather than importing `bounty.tasks`, keeps those modules free
of a cycle with it.
"""

from __future__ import annotations

import logging

from celery import current_app

log = logging.getLogger(__name__)

PROCESS_SUBMISSION = "bounty.tasks.process_submission"


def enqueue(submission_id: int, countdown: float | None = None) -> None:
    """Queue processing (after `countdown` seconds, if given); if the broker is down the sweeper picks the
    submission up later."""
    try:
        current_app.tasks[PROCESS_SUBMISSION].apply_async((submission_id,), countdown=countdown)
    except Exception as error:  # the submission is committed; nothing is lost
        log.warning("could not queue submission %s: %s", submission_id, error)
