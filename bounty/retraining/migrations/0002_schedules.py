"""The retraining schedules as django-celery-beat rows an admin can edit: a nightly retrain, and a resume of
unfinished redeployments every minute."""

from django.db import migrations

INTERVALS = [("retraining: resume redeployments", "bounty.retraining.tasks.resume_redeployments", 60)]
NIGHTLY = ("retraining: retrain the model", "bounty.retraining.tasks.retrain")


def create(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in INTERVALS:
        interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})
    nightly, _ = crontab_model.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    task_model.objects.get_or_create(name=NIGHTLY[0], defaults={"task": NIGHTLY[1], "crontab": nightly})


def remove(apps, schema_editor):
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    task_model.objects.filter(name__in=[NIGHTLY[0], *(name for name, _, _ in INTERVALS)]).delete()


class Migration(migrations.Migration):
    dependencies = (
        ("retraining", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    )
    operations = (migrations.RunPython(create, remove),)
