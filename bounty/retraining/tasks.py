"""Celery tasks of the retraining loop: thin wrappers around `job.retrain` and `redeploy.resume`."""

from __future__ import annotations

from celery import shared_task

from bounty.retraining import conf, job, redeploy


@shared_task(name="bounty.retraining.tasks.retrain")
def retrain(trigger: str = "schedule", force: bool = False) -> str:
    run = job.retrain(trigger, force=force)
    if run.state == run.State.PROMOTED and conf.auto_redeploy():
        redeploy.resume()
    return f"{run.state}: {run.reason}"


@shared_task(name="bounty.retraining.tasks.resume_redeployments")
def resume_redeployments() -> int:
    """Run by beat: finishes migrations that waited for claims in flight, or were cut short by a crash."""
    return len(redeploy.resume())
