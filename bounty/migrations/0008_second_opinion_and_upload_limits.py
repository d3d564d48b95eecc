"""The second opinion's answer and the hold reason as columns; what the web form's limits count (the client
network, the stored upload's size, with indexes for the recent-submission counts); the daily task that deletes
expired original uploads; the stored size of the originals already kept."""

from django.db import migrations, models

SCHEDULE = ("bounty: delete expired original uploads", "bounty.tasks.expire_originals", 24 * 3600)


def create_schedule(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    name, task, seconds = SCHEDULE
    interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
    task_model.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE[0]).delete()


def measure_originals(apps, schema_editor):
    """Sizes of the originals already stored, so the storage cap counts them."""
    submission_model = apps.get_model("bounty", "Submission")
    for submission in submission_model.objects.exclude(original="").iterator(chunk_size=500):
        try:
            size = submission.original.size
        except OSError:
            continue  # the file is gone: nothing to count
        submission_model.objects.filter(pk=submission.pk).update(original_bytes=size)


class Migration(migrations.Migration):
    dependencies = [
        ("bounty", "0007_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="client_net",
            field=models.CharField(blank=True, default="", max_length=50),
        ),
        migrations.AddField(
            model_name="submission",
            name="hold",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "-"),
                    ("review_window", "the bounty's review window (released when it ends)"),
                    ("second_opinion", "the second model does not read the digit (a reviewer decides)"),
                    ("second_opinion_failed", "the second model could not be asked (a reviewer)"),
                    ("second_opinion_missing", "the second model was never asked (a reviewer)"),
                ],
                default="",
                max_length=24,
            ),
        ),
        migrations.AddField(
            model_name="submission",
            name="original_bytes",
            field=models.PositiveIntegerField(default=0, help_text="size of the stored original upload"),
        ),
        migrations.AddField(
            model_name="submission",
            name="second_opinion",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "not asked"),
                    ("agrees", "reads the claimed digit"),
                    ("disagrees", "does not read the claimed digit"),
                    ("failed", "could not be asked (an error): held, never taken as agreement"),
                ],
                default="",
                max_length=12,
            ),
        ),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(fields=["client_net", "received_at"], name="submission_net_recent"),
        ),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(fields=["payout_address", "received_at"], name="submission_address_recent"),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
        migrations.RunPython(measure_originals, migrations.RunPython.noop),
    ]
