"""The periodic tasks of the pipeline, as django-celery-beat rows an admin can edit."""

from django.db import migrations

SCHEDULES = [
    ("bounty: poll confirmations", "bounty.tasks.poll_confirmations", 5),
    ("bounty: sweep stuck work", "bounty.tasks.sweep", 30),
]


def create(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in SCHEDULES:
        interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def remove(apps, schema_editor):
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    task_model.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = (("bounty", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options"))
    operations = (migrations.RunPython(create, remove),)
