"""Celery tasks of the retraining loop: thin wrappers around `job.retrain`, `redeploy.resume` and pay on
learn (`pending`)."""

from __future__ import annotations

from celery import shared_task

from bounty.models import ModelVersion
from bounty.retraining import conf, job, pending, plots, redeploy


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


@shared_task(name="bounty.retraining.tasks.render_plots")
def render_plots(version_id: int | None = None) -> int:
    """Draw the /models/ plots a version does not have yet (queued when a version becomes active)."""
    version = ModelVersion.objects.filter(pk=version_id).first() if version_id else None
    return len(plots.render(version))


@shared_task(name=pending.PAY_PENDING)
def pay_pending(bounty_id: int) -> dict[str, int]:
    """Queued when a bounty's slots have moved to a new model: its pending images are read again and those
    now read as its digit are paid."""
    return pending.pay_pending(bounty_id)


@shared_task(name="bounty.retraining.tasks.expire_pending")
def expire_pending() -> int:
    """Run by beat: pending images whose window ended are rejected (they stay in the collection)."""
    return pending.expire()
