"""The training set of a retraining run: MNIST train plus the collected images, screened once each.

Collected images are paid submissions (labelled with their bounty's digit), reviewer-labelled ones, and
pending ones (pay on learn: a reviewer confirmed them, or both independent signals agree). When
first seen each gets one role, kept for good: a duplicate of earlier pixels; flagged for review when its label
disagrees both with the model that was active then and with its nearest MNIST training neighbours (a poisoned
or mislabelled image); held out (a stable share by pixel hash, never trained on, for the gate); or trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from django.db.models import F, Q

from bounty.classify import reference_model
from bounty.models import ModelVersion, Submission
from bounty.retraining import conf
from bounty.retraining.models import CollectedImage, RetrainingRun

PAID = (Submission.State.BROADCAST, Submission.State.CONFIRMED)


@cache
def mnist():
    from classifier.data import load_mnist

    return load_mnist()


# Pay on learn's rule against poisoning: a pending image (the model read another digit) is trained on
# unreviewed only when both independent signals read the digit it was sent for; otherwise only once a reviewer
# confirmed it (its true_digit). A flood of wrong digits claimed as D teaches nothing.
AGREED_PENDING = Q(
    state=Submission.State.PENDING,
    second_opinion=Submission.SecondOpinion.AGREES,
    neighbour_label=F("claimed_digit"),
)


def labelled_submissions():
    chosen = Q(true_digit__isnull=False) | Q(state__in=PAID) | AGREED_PENDING
    return Submission.objects.filter(chosen).select_related("bounty")


def label_of(submission: Submission) -> tuple[int, str]:
    if submission.true_digit is not None:
        # "confirmed": a reviewer said a kept (pending) image is the digit it was sent for
        confirmed = submission.pending_at is not None and submission.true_digit == submission.claimed_digit
        return int(submission.true_digit), "confirmed" if confirmed else "reviewer"
    if submission.state == Submission.State.PENDING:
        return int(submission.claimed_digit), "signals"
    return int(submission.bounty.digit), "paid"


def pixels_of(submission: Submission) -> np.ndarray:
    return np.frombuffer(bytes(submission.pixels), dtype=np.uint8).reshape(28, 28)


def is_heldout(pixel_sha256: str) -> bool:
    return int(pixel_sha256[:8], 16) % 100 < conf.heldout_percent()


@cache
def mnist_train_as_float() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST training images as float32 rows and their squared norms, made once per process: the check
    step asks for one image's neighbours at a time (pay on learn), and converting 60,000 images each time
    cost about a second. Workers make it before their first task (bounty.warmup)."""
    train = mnist().x_train.reshape(-1, 784).astype(np.float32)
    return train, np.einsum("ij,ij->i", train, train)  # squared norms, without a 188 MB temporary


def neighbour_labels(images: np.ndarray, k: int) -> np.ndarray:
    """Majority label of the k nearest MNIST training images (Euclidean distance on pixels)."""
    data = mnist()
    train, norms = mnist_train_as_float()
    labels = []
    for image in images.reshape(-1, 784).astype(np.float32):
        # + |image|^2, the same for every candidate. `2 * train @ image` would double all of train first (a
        # 188 MB temporary per image, 0.25 s); doubling the product is the same, exactly (a power of two).
        distances = norms - 2 * (train @ image)
        nearest = np.argpartition(distances, k)[:k]
        labels.append(int(np.bincount(data.y_train[nearest], minlength=10).argmax()))
    return np.array(labels, dtype=np.int64)


def screen_new(run: RetrainingRun | None, version: ModelVersion | None) -> dict[str, int]:
    """Give every labelled submission not seen before its role; returns how many got each role."""
    seen = set(CollectedImage.objects.values_list("submission_id", flat=True))
    known_hashes = set(CollectedImage.objects.values_list("pixel_sha256", flat=True))
    fresh = [s for s in labelled_submissions().order_by("pk") if s.pk not in seen]
    counts = {role: 0 for role in CollectedImage.Role.values}
    if not fresh:
        return counts
    images = np.stack([pixels_of(s) for s in fresh])
    labels = np.array([label_of(s)[0] for s in fresh])
    predicted = (
        np.asarray(reference_model(version.artifact).predict(images.reshape(-1, 784)))
        if version is not None
        else labels.copy()
    )
    suspicious = np.flatnonzero(predicted != labels)
    neighbours = np.full(len(fresh), -1)
    if len(suspicious):
        neighbours[suspicious] = neighbour_labels(images[suspicious], conf.neighbours())
    rows = []
    for index, submission in enumerate(fresh):
        label, source = label_of(submission)
        note = ""
        if submission.pixel_sha256 in known_hashes:
            role, note = CollectedImage.Role.DUPLICATE, "same pixels as an earlier collected image"
        elif source != "confirmed" and predicted[index] != label and neighbours[index] != label:
            # (a pending image a reviewer confirmed is what the model should learn: it disagrees by nature)
            role = CollectedImage.Role.FLAGGED
            note = (
                f"labelled {label}, but the model read {predicted[index]} and the nearest MNIST "
                f"images are {neighbours[index]}s"
            )
        elif is_heldout(submission.pixel_sha256):
            role = CollectedImage.Role.HELDOUT
        else:
            role = CollectedImage.Role.TRAIN
        known_hashes.add(submission.pixel_sha256)
        counts[role] += 1
        rows.append(
            CollectedImage(
                submission=submission,
                pixel_sha256=submission.pixel_sha256,
                label=label,
                source=source,
                role=role,
                note=note,
                model_prediction=int(predicted[index]),
                neighbour_label=int(neighbours[index]) if neighbours[index] >= 0 else None,
                first_run=run,
            )
        )
    CollectedImage.objects.bulk_create(rows, ignore_conflicts=True)
    return counts


def arrays(role: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Images (N, 28, 28) uint8, labels (N,) and CollectedImage ids of one role."""
    rows = list(CollectedImage.objects.filter(role=role).select_related("submission").order_by("pk"))
    if not rows:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), []
    images = np.stack([pixels_of(row.submission) for row in rows])
    return images, np.array([row.label for row in rows], dtype=np.uint8), [row.pk for row in rows]


def new_since_last_training() -> int:
    return CollectedImage.objects.filter(role=CollectedImage.Role.TRAIN, trained_in__isnull=True).count()


@dataclass(frozen=True)
class TrainingSet:
    x_train: np.ndarray
    y_train: np.ndarray
    x_extra: np.ndarray
    y_extra: np.ndarray
    extra_ids: list[int]
    x_heldout: np.ndarray
    y_heldout: np.ndarray


def training_set() -> TrainingSet:
    data = mnist()
    limit = conf.mnist_limit() or len(data.x_train)
    x_extra, y_extra, ids = arrays(CollectedImage.Role.TRAIN)
    x_heldout, y_heldout, _ = arrays(CollectedImage.Role.HELDOUT)
    return TrainingSet(
        data.x_train[:limit], data.y_train[:limit], x_extra, y_extra, ids, x_heldout, y_heldout
    )
