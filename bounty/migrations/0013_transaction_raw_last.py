"""Move Transaction.raw_hex to the end of the row.

SQLite stores a row's columns in order and reaches a column stored after a large value only by walking that
value's overflow pages. A deploy transaction of a few hundred slots is megabytes of hex, and raw_hex stood
second: every join that read a later column of it (a slot's deploy status, read by each slot reservation)
walked megabytes. A column added is appended, so the raw moves to a new last column and the old one goes.
(PostgreSQL keeps large values out of line, where the order does not matter; the same steps are harmless.)
"""

from django.db import migrations, models
from django.db.models import F


def copy_raw(apps, schema_editor):
    apps.get_model("bounty", "Transaction").objects.update(raw_last=F("raw_hex"))


def copy_raw_back(apps, schema_editor):
    apps.get_model("bounty", "Transaction").objects.update(raw_hex=F("raw_last"))


class Migration(migrations.Migration):
    dependencies = [("bounty", "0012_batch_slots")]

    operations = [
        migrations.AddField("transaction", "raw_last", models.TextField(default="")),
        migrations.RunPython(copy_raw, copy_raw_back),
        # A default for the way back only: unapplied, the column comes back before its copy is filled in.
        migrations.AlterField("transaction", "raw_hex", models.TextField(default="")),
        migrations.RemoveField("transaction", "raw_hex"),
        migrations.RenameField("transaction", "raw_last", "raw_hex"),
        migrations.AlterField("transaction", "raw_hex", models.TextField()),
    ]
