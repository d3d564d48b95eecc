"""The heartbeat schedule, as a django-celery-beat row an admin can see (and must not delete)."""

from django.db import migrations

NAME = "ops: worker heartbeat"
TASK = "bounty.ops.tasks.heartbeat"
EVERY = 15  # seconds; HEARTBEAT_MAX_AGE (default 60) allows for three missed beats


def create(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = interval_model.objects.get_or_create(every=EVERY, period="seconds")
    task_model.objects.get_or_create(
        name=NAME, defaults={"task": TASK, "interval": interval, "expires": None, "one_off": False}
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = (("django_celery_beat", "0019_alter_periodictasks_options"),)
    operations = (migrations.RunPython(create, remove),)
