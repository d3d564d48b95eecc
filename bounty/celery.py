"""The Celery application: broker from REDIS_URL, schedules from django-celery-beat."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bounty.settings")

app = Celery("bounty")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["bounty"])
