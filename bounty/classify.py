"""What the models say about an image: the published integer model (the one the script runs) and the
unpublished second opinion."""

from __future__ import annotations

import functools
import logging

import numpy as np
from django.conf import settings

from bounty.models import ModelVersion, Submission
from classifier import second_opinion
from classifier.integer_model import IntegerModel

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def reference_model(artifact: str) -> IntegerModel:
    """The integer model of a version's artifact, loaded once per process."""
    return IntegerModel.load(artifact)


def classify(version: ModelVersion, pixels: bytes) -> tuple[int, list[int]]:
    """(the predicted digit, the ten scores) of the integer model that the version's scripts execute."""
    model = reference_model(version.artifact)
    array = np.frombuffer(bytes(pixels), dtype=np.uint8).reshape(784)
    scores = [int(s) for s in np.asarray(model.scores(array)).reshape(-1)]
    return int(np.argmax(scores)), scores


def ask_second_opinion(submission: Submission) -> str:
    """`second_opinion_of`, recorded on the submission now."""
    verdict = second_opinion_of(submission)
    Submission.objects.filter(pk=submission.pk).update(second_opinion=verdict)
    return verdict


def second_opinion_of(submission: Submission) -> str:
    """An unpublished model must also read the digit (an image optimised against the public weights
    rarely fools it). Any error (a missing or corrupt model, memory) gives FAILED, never agreement: the
    claim step holds the payout for a reviewer unless the answer is AGREES. Set on `submission`; the
    caller stores it."""
    pixels = np.frombuffer(submission.pixel_bytes, dtype=np.uint8).reshape(28, 28)
    try:
        agreed = second_opinion.agrees(pixels, submission.claimed_digit, path=settings.SECOND_OPINION_MODEL)
        verdict = Submission.SecondOpinion.AGREES if agreed else Submission.SecondOpinion.DISAGREES
    except Exception:  # fail closed, whatever went wrong
        log.exception("second opinion on submission %s failed; holding it for review", submission.pk)
        verdict = Submission.SecondOpinion.FAILED
    submission.second_opinion = verdict
    return verdict
