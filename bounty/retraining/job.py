"""The retraining job as a plain function: lock, screen, export, train, write a version, gate, promote.

`retrain()` records a RetrainingRun whatever happens (skipped, refused, promoted or failed, each with its
reason); the Celery task and `manage.py retrain` only call it. Promotion activates the candidate and opens a
Redeployment; moving the bounties' slots is `bounty.retraining.redeploy`. The model page's plots are drawn
here (`plots`): the candidate's own when it is registered, the shared ones when the run ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from bounty.models import ModelVersion
from bounty.retraining import conf, dataset, gate, lease, plots
from bounty.retraining.models import CollectedImage, Redeployment, RetrainingRun

log = logging.getLogger(__name__)
LOCK = "retrain"


def retrain(
    trigger: str = "schedule", *, force: bool = False, progress: Callable[[str], None] | None = None
) -> RetrainingRun:
    """One retraining run; `force` trains even with fewer new images than RETRAIN_MIN_NEW_IMAGES."""
    say = progress or (lambda message: log.info("retrain: %s", message))
    run = RetrainingRun.objects.create(trigger=trigger, base_version=ModelVersion.active())
    seconds = conf.lease_seconds()
    token = lease.acquire(LOCK, seconds, holder=f"run-{run.pk}")
    if token is None:
        held = lease.holder(LOCK)
        until = f" until {held.expires_at:%Y-%m-%d %H:%M:%S} UTC" if held and held.expires_at else ""
        who = held.holder if held else "another run"
        run.finish(RetrainingRun.State.SKIPPED, f"another retraining is running ({who}{until})")
        return run
    started = time.monotonic()
    try:
        _run(run, token, seconds, force, say)
    except Exception as error:
        log.exception("retraining run %s failed", run.pk)
        run.finish(RetrainingRun.State.FAILED, f"{type(error).__name__}: {error}"[:2000])
    finally:
        lease.release(LOCK, token)
        RetrainingRun.objects.filter(pk=run.pk).update(seconds=round(time.monotonic() - started, 2))
        run.refresh_from_db()
    draw_plots("the shared plots", plots.render_shared)
    return run


def draw_plots(what: str, render: Callable[[], object]) -> None:
    """Draw plots for the model page, which only serves stored files; a failure is logged, never the run's."""
    try:
        render()
    except Exception:
        log.exception("retrain: could not draw %s", what)


def _run(run: RetrainingRun, token: str, seconds: int, force: bool, say: Callable[[str], None]) -> None:
    from classifier.integer_model import IntegerModel
    from classifier.train import TrainingOptions, train

    def beat(message: str) -> None:
        if not lease.heartbeat(LOCK, token, seconds):
            raise RuntimeError("lost the retraining lock (the lease expired)")
        RetrainingRun.objects.filter(pk=run.pk).update(heartbeat=timezone.now())
        say(message)

    base = run.base_version
    screened = dataset.screen_new(run, base)
    new = dataset.new_since_last_training()
    counts = {**{f"new_{role}": n for role, n in screened.items()}, "new_since_last_training": new}
    RetrainingRun.objects.filter(pk=run.pk).update(counts=counts)
    minimum = conf.min_new_images()
    if new < minimum and not force:
        run.finish(
            RetrainingRun.State.SKIPPED,
            f"too few new images: {new} collected since the last training, at least {minimum} needed",
            counts=counts,
        )
        return
    data = dataset.training_set()
    counts.update(
        mnist_train=len(data.y_train), collected_train=len(data.y_extra), heldout=len(data.y_heldout),
        flagged=CollectedImage.objects.filter(role=CollectedImage.Role.FLAGGED).count(),
        duplicates=CollectedImage.objects.filter(role=CollectedImage.Role.DUPLICATE).count(),
    )  # fmt: skip
    RetrainingRun.objects.filter(pk=run.pk).update(counts=counts)
    mnist = dataset.mnist()
    options = TrainingOptions(**conf.training_options())
    beat(f"training on {len(data.y_train)} MNIST + {len(data.y_extra)} collected images")
    result = train(
        data.x_train, data.y_train, mnist.x_test, mnist.y_test, options,
        extra=(data.x_extra, data.y_extra) if len(data.y_extra) else None, progress=beat,
    )  # fmt: skip
    CollectedImage.objects.filter(pk__in=data.extra_ids, trained_in__isnull=True).update(trained_in=run)
    artifact = conf.model_dir() / f"retrained-{run.pk:05d}-{result.model.weights_sha256()[:8]}.npz"
    result.model.save(artifact)
    candidate = ModelVersion.register(
        artifact, name=f"retrained-{run.pk}-{result.model.weights_sha256()[:8]}"
    )
    beat("drawing the candidate's plots")
    draw_plots(f"the plots of {candidate.name}", lambda: plots.render_version(candidate))
    beat("evaluating the candidate")
    old = IntegerModel.load(base.artifact) if base is not None else None
    passed, criteria, reason = gate.evaluate(
        old, result.model, artifact, mnist.x_test, mnist.y_test, data.x_heldout, data.y_heldout
    )
    if not passed:
        run.finish(RetrainingRun.State.REJECTED, reason, candidate=candidate, gate=criteria, counts=counts)
        return
    with transaction.atomic():
        if ModelVersion.active() != base:
            run.finish(
                RetrainingRun.State.REJECTED,
                "refused: the active version changed while this run trained; retrain on the new one",
                candidate=candidate, gate=criteria, counts=counts,
            )  # fmt: skip
            return
        candidate.activate()
        Redeployment.objects.create(
            target=candidate, previous=base, kind=Redeployment.Kind.PROMOTION, reason=reason, run=run
        )
        run.finish(RetrainingRun.State.PROMOTED, reason, candidate=candidate, gate=criteria, counts=counts)
