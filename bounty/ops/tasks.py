"""The heartbeat task (scheduled by beat, see migration 0001) and the signal that beats on worker start."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import before_task_publish, task_prerun, worker_ready

from bounty.ops import heartbeat
from bounty.ops.logs import request_id_var

log = logging.getLogger(__name__)


@shared_task(name="bounty.ops.tasks.heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    heartbeat.record("worker")
    heartbeat.record("beat")


@worker_ready.connect
def on_worker_ready(sender: object = None, **kwargs: object) -> None:
    try:
        heartbeat.record("worker", hostname=getattr(sender, "hostname", None))
    except Exception as error:  # the worker must start even when Redis blips; the task beats later
        log.warning("could not record the worker heartbeat: %s", error)


@before_task_publish.connect
def add_request_id(headers: dict | None = None, **kwargs: object) -> None:
    """A task queued while serving a request carries the request id, so its logs can be joined to it."""
    request_id = request_id_var.get()
    if headers is not None and request_id:
        headers["request_id"] = request_id


@task_prerun.connect
def adopt_request_id(task: object = None, **kwargs: object) -> None:
    request = getattr(task, "request", None)
    request_id_var.set(getattr(request, "request_id", None) if request is not None else None)
