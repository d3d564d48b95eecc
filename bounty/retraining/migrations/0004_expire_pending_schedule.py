"""Pay on learn's schedule as a django-celery-beat row an admin can edit: pending images whose window ended are
rejected once an hour."""

from django.db import migrations

NAME, TASK, SECONDS = "pay on learn: expire pending images", "bounty.retraining.tasks.expire_pending", 3600


def create(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = interval_model.objects.get_or_create(every=SECONDS, period="seconds")
    task_model.objects.get_or_create(name=NAME, defaults={"task": TASK, "interval": interval})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = (
        ("retraining", "0003_migration_step_signing"),
        ("bounty", "0009_pay_on_learn"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    )
    operations = (migrations.RunPython(create, remove),)
