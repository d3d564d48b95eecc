"""Exports of a bounty's collected images: a zip of PNGs with a CSV and JSON manifest, or a training npz."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np

from bounty.images import png_bytes
from bounty.models import Bounty, Submission

PAID = (Submission.State.BROADCAST, Submission.State.CONFIRMED)


def collected(bounty: Bounty) -> list[tuple[Submission, int]]:
    """(submission, label) for paid images (label: the bounty's digit) and reviewer-labelled ones."""
    rows = []
    for submission in bounty.submissions.order_by("pk"):
        if submission.true_digit is not None:
            rows.append((submission, submission.true_digit))
        elif submission.state in PAID:
            rows.append((submission, submission.claimed_digit))
    return rows


def manifest_row(submission: Submission, label: int) -> dict:
    return {
        "file": f"{submission.pk:07d}_{label}.png",
        "submission": submission.pk,
        "label": label,
        "predicted": submission.predicted_digit,
        "state": submission.state,
        "pixel_sha256": submission.pixel_sha256,
        "received_at": submission.received_at.isoformat(),
        "claim_txid": submission.claim_tx.txid if submission.claim_tx else "",
    }


def export_zip(bounty: Bounty) -> bytes:
    buffer = io.BytesIO()
    rows = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for submission, label in collected(bounty):
            row = manifest_row(submission, label)
            archive.writestr(f"images/{row['file']}", png_bytes(submission.pixel_bytes))
            rows.append(row)
        archive.writestr("manifest.json", json.dumps({"bounty": bounty.pk, "images": rows}, indent=2))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=_columns())
        writer.writeheader()
        writer.writerows(rows)
        archive.writestr("manifest.csv", table.getvalue())
    return buffer.getvalue()


def _columns() -> list[str]:
    return ["file", "submission", "label", "predicted", "state", "pixel_sha256", "received_at", "claim_txid"]


def export_npz(bounty: Bounty) -> bytes:
    """`images` (N,28,28) uint8 white-on-black and `labels` (N,): what `classifier.data.load_labelled_arrays`
    reads for training."""
    rows = collected(bounty)
    x = np.zeros((len(rows), 28, 28), dtype=np.uint8)
    y = np.zeros(len(rows), dtype=np.uint8)
    for index, (submission, label) in enumerate(rows):
        x[index] = np.frombuffer(submission.pixel_bytes, dtype=np.uint8).reshape(28, 28)
        y[index] = label
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, images=x, labels=y, submission=np.array([s.pk for s, _ in rows], dtype=np.int64)
    )
    return buffer.getvalue()
