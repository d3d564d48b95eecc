"""The near-duplicate index: each submission's 64-bit near hash and its four indexed 16-bit bands
(bounty.near_duplicates). Existing rows are hashed from their stored pixels, a chunk at a time, before the
indexes are built."""

import numpy as np
from django.db import migrations, models

from bounty import images

CHUNK = 2000
FIELDS = [f"near_band_{band}" for band in range(images.NEAR_HASH_BANDS)]


def backfill(apps, schema_editor):
    Submission = apps.get_model("bounty", "Submission")
    last = 0
    while True:
        rows = list(
            Submission.objects.filter(pk__gt=last, near_hash="")
            .order_by("pk")
            .values_list("pk", "pixels")[:CHUNK]
        )
        if not rows:
            return
        usable = [(pk, bytes(pixels)) for pk, pixels in rows if len(bytes(pixels)) == 784]
        if usable:
            batch = np.frombuffer(b"".join(pixels for _, pixels in usable), dtype=np.uint8).reshape(
                -1, 28, 28
            )
            changed = []
            for (pk, _), value in zip(usable, images.near_hashes(batch), strict=True):
                row = Submission(pk=pk, near_hash=f"{value:016x}")
                for band, part in enumerate(images.near_hash_bands(value)):
                    setattr(row, f"near_band_{band}", part)
                changed.append(row)
            Submission.objects.bulk_update(changed, ["near_hash", *FIELDS], batch_size=500)
        last = rows[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("bounty", "0010_slot_state_migrated"),
    ]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="near_band_0",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="submission",
            name="near_band_1",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="submission",
            name="near_band_2",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="submission",
            name="near_band_3",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="submission",
            name="near_hash",
            field=models.CharField(blank=True, default="", help_text="64-bit near hash, hex", max_length=16),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(fields=["near_band_0"], name="submission_near_band_0"),
        ),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(fields=["near_band_1"], name="submission_near_band_1"),
        ),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(fields=["near_band_2"], name="submission_near_band_2"),
        ),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(fields=["near_band_3"], name="submission_near_band_3"),
        ),
    ]
